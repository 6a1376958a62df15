"""Tests of scratchnet.models.saving: one .npz file round-trips a model; bad files give clear errors."""

import json
import os

import numpy as np
import pytest

from scratchnet import layers, optimizers
from scratchnet.models import Sequential, load_model


def cnn(dtype="float32"):
    model = Sequential([
        layers.Conv2D(4, 3, strides=2, activation="relu", kernel_initializer="variance_scaling",
                      input_shape=(8, 8, 1)),
        layers.MaxPooling2D(2, padding="same"), layers.BiasAdd(bias_initializer="ones"),
        layers.Flatten(), layers.Dropout(0.25), layers.Dense(3, activation="softmax"),
    ], dtype=dtype, seed=4, name="tiny_cnn")
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=16):
    rng = np.random.default_rng(1)
    return rng.random((n, 8, 8, 1)), rng.integers(0, 3, n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_then_load_gives_identical_predictions_config_and_dtype(tmp_path, dtype):
    x, y = data()
    model = cnn(dtype)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    assert loaded.get_compile_config() == model.get_compile_config()
    assert loaded.dtype == dtype and {w.dtype for w in loaded.get_weights()} == {np.dtype(dtype)}
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_loaded_model_resumes_training_exactly_with_the_optimizer_state(tmp_path):
    x, y = data()
    model = cnn()
    model.layers[4].rate = 0.0  # no dropout, so both copies see the same computation
    model.train_step(x, y)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.optimizer.iterations == 1
    model.train_step(x, y)
    loaded.layers[4].rate = 0.0
    loaded.train_step(x, y)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_file_is_a_plain_npz_readable_without_pickle_and_named_as_given(tmp_path):
    path = tmp_path / "weights.model"
    cnn().save(path)
    assert os.listdir(tmp_path) == ["weights.model"]  # no ".npz" appended, no temporary left behind
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["config"][()]))
        assert header["format"] == "scratchnet" and header["format_version"] == 1
        assert archive["weight_000"].shape == (3, 3, 1, 4)


def test_saving_over_an_existing_file_replaces_it(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    cnn().save(path)
    assert load_model(path).name == "tiny_cnn"


def test_truncated_file_raises_a_value_error_naming_the_file(tmp_path):
    path = tmp_path / "m.npz"
    cnn().save(path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"m\.npz.*not a valid scratchnet model file"):
        load_model(path)


@pytest.mark.parametrize("content", [b"<html>not a model</html>", b""])
def test_non_npz_file_raises_a_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / "page.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"page\.npz"):
        load_model(path)


def test_npz_without_a_scratchnet_config_is_rejected(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz.*no 'config'"):
        load_model(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        load_model(tmp_path / "nothing.npz")


def test_uncompiled_model_saves_and_loads_without_optimizer(tmp_path):
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.optimizer is None
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_unbuilt_model_cannot_be_saved_and_leaves_no_file(tmp_path):
    model = Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not built yet"):
        model.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_file_naming_an_unknown_model_class_is_rejected(tmp_path):
    path = tmp_path / "m.npz"
    cnn().save(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays["config"][()]))
    header["class_name"] = "Functional"
    arrays["config"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"m\.npz.*class_name 'Functional' is none of Sequential"):
        load_model(path)


def test_only_a_registered_model_class_can_be_saved(tmp_path):
    class Custom(Sequential):
        pass

    model = Custom([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(TypeError, match=r"registered model class.*received Custom"):
        model.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []
