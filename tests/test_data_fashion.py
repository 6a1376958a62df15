"""Tests for scratchnet.data.fashion_mnist: Debian's real files, a named folder, the mirror, no source."""

import hashlib
import os

import numpy as np
import pytest

from scratchnet import datasets
from scratchnet.data import download as dl
from scratchnet.data import fashion_mnist as fm
from scratchnet.data.errors import DataError
from scratchnet.data.folder import FILES
from scratchnet.data.idx import idx_bytes, write_idx


def no_network(url, timeout):
    """Stands in for urllib's urlopen: tests never touch the network."""
    raise dl.urllib.error.URLError("no network in tests")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "urlopen", no_network)


def test_fashion_mnist_reads_the_real_debian_files():
    if not fm.DEBIAN_DIR.is_dir():  # CI installs it (run.sh), so there a missing package is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("Debian's dataset-fashion-mnist is not installed")
    (x, y), (xt, yt) = datasets.fashion_mnist.load_data(download=False)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert list(y[:5]) == [9, 0, 0, 3, 0] and list(yt[:5]) == [9, 2, 1, 1, 6]
    assert np.bincount(y).tolist() == [6000] * 10
    ds = datasets.load("fashion-mnist", download=False)
    assert ds.source == f"Debian package {fm.DEBIAN_DIR}" and ds.classes[9] == "Ankle boot"


def tiny(folder, gz=True):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), np.array([0, 9, 3, 3], np.uint8),
              rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), np.array([1, 2], np.uint8)]
    for name, a in zip(FILES, arrays):
        write_idx(folder / (name + (".gz" if gz else "")), a)
    return arrays


def test_fashion_mnist_named_folder_wins_and_must_be_complete(tmp_path):
    arrays = tiny(tmp_path / "f")
    (x, y), _ = fm.load_fashion_mnist(tmp_path / "f")
    np.testing.assert_array_equal(x, arrays[0])
    (tmp_path / "f" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        fm.load_fashion_mnist(tmp_path / "f")


def test_fashion_mnist_downloads_from_mirror_with_checksums(tmp_path, monkeypatch):
    arrays = tiny(tmp_path / "mirror")
    monkeypatch.setattr(fm, "MIRRORS", ((tmp_path / "mirror").as_uri() + "/",))
    monkeypatch.setattr(fm, "GZ_MD5", {n: dl.file_digest(tmp_path / "mirror" / f"{n}.gz") for n in FILES})
    monkeypatch.setattr(fm, "RAW_MD5", {n: hashlib.md5(idx_bytes(a)).hexdigest() for n, a in zip(FILES, arrays)})
    monkeypatch.setattr(dl, "urlopen", dl.urllib.request.urlopen)
    (_, y), _ = fm.load_fashion_mnist(debian_dir=None, progress=False)
    np.testing.assert_array_equal(y, arrays[1])
    data, source = fm.load_fashion_mnist_with_source(debian_dir=None, download=False)
    assert source.startswith("cache")


def test_fashion_mnist_without_any_source_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="dataset-fashion-mnist") as info:
        fm.load_fashion_mnist(debian_dir=tmp_path / "none", progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="no download allowed"):
        fm.load_fashion_mnist(debian_dir=None, download=False)
