"""Tests for the registry scratchnet.datasets.load and the Keras-style load_data entry points."""

import pytest

from scratchnet import datasets


def test_registry_names_every_dataset():
    assert set(datasets.NAMES) == {"mnist", "fashion-mnist", "notmnist", "notmnist-synthetic", "kaggle"} | {
        f"emnist-{s}" for s in ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")}


def test_registry_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset 'cifar10', expected one of mnist, fashion-mnist"):
        datasets.load("cifar10")


def test_keras_style_modules_exist():
    for module in (datasets.mnist, datasets.fashion_mnist, datasets.emnist, datasets.notmnist, datasets.kaggle):
        assert callable(module.load_data)


def test_dataset_underscore_names_are_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path))
    ds = datasets.load("NOTMNIST_SYNTHETIC", sizes=(10, 10, 10))
    assert ds.name == "notmnist-synthetic" and ds.num_classes == 10
