"""Tests for the registry scratchnet.datasets.load and the Keras-style load_data entry points."""

import ast
from pathlib import Path

import numpy as np
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


def test_notmnist_load_data_gives_the_dataset_validation_set(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path))
    ds = datasets.load("notmnist-synthetic", sizes=(20, 10, 10))
    (x_train, _), (x_val, y_val), (x_test, _) = datasets.notmnist.load_data(synthetic=True, sizes=(20, 10, 10))
    assert x_val.shape == (10, 28, 28) and np.bincount(y_val).tolist() == [1] * 10
    np.testing.assert_array_equal(x_val, ds.x_val)
    np.testing.assert_array_equal(x_train, ds.x_train)
    np.testing.assert_array_equal(x_test, ds.x_test)


def test_errors_of_the_readers_are_public_here():
    from scratchnet.data import errors

    assert datasets.DataError is errors.DataError and issubclass(datasets.DataError, ValueError)
    assert datasets.DownloadError is errors.DownloadError


# ---------------------------------------------------------------------------------- package structure

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path, package):
    """Every module ``path`` imports (at the top or inside a function), relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_only_the_data_packages_import_scratchnet_data():
    """scratchnet.data is internal: everything else loads data through scratchnet.datasets."""
    offenders = []
    for path in [*ROOT.glob("scratchnet/**/*.py"), *ROOT.glob("tf_reference/**/*.py"),
                 *ROOT.glob("benchmarks/**/*.py")]:
        name = module_name(path)
        if name.startswith(("scratchnet.data.", "scratchnet.datasets")) or name == "scratchnet.data":
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        hits = {m for m in imported_modules(path, package) if m.split(".")[:2] == ["scratchnet", "data"]}
        offenders += [f"{path.relative_to(ROOT)} imports {m}" for m in sorted(hits)]
    assert offenders == []


def test_data_packages_have_no_import_cycles():
    graph = {}
    for path in [*ROOT.glob("scratchnet/data/*.py"), *ROOT.glob("scratchnet/datasets/*.py")]:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = imported_modules(path, package)
    modules = set(graph)
    # A module's own parent package is always imported first; that edge is Python's, not a cycle of ours.
    graph = {m: {d for d in deps if d in modules and d != m and not m.startswith(d + ".")}
             for m, deps in graph.items()}
    assert graph["scratchnet.datasets.kaggle"] >= {"scratchnet.data.kaggle", "scratchnet.datasets.dataset"}

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    return path + [start]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, path + [dep]))
        return None

    cycles = [" -> ".join(c) for c in map(cycle_from, sorted(graph)) if c]
    assert cycles == []
