"""Tests for scratchnet.data.emnist on a tiny archive laid out exactly like EMNIST's gzip.zip."""

import gzip
import zipfile

import numpy as np
import pytest

from scratchnet import datasets
from scratchnet.data.emnist import SPLITS, load_emnist, load_emnist_with_source, member_names
from scratchnet.data.errors import DataError
from scratchnet.data.idx import idx_bytes

CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BALANCED = CHARS[:36] + "abdefghnqrt"


def mapping(split):
    if split == "letters":
        return "".join(f"{i} {ord(c)} {ord(c.lower())}\n" for i, c in enumerate(CHARS[10:36], 1))
    chars = {"byclass": CHARS, "bymerge": BALANCED, "balanced": BALANCED}.get(split, CHARS[:10])
    return "".join(f"{i} {ord(c)}\n" for i, c in enumerate(chars))


def split_arrays(split, n_train=7, n_test=4, seed=0):
    """MNIST-oriented images and 0-based labels, as the loader should return them."""
    rng = np.random.default_rng(seed)
    k = SPLITS[split]
    return ((rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, k, n_train, dtype=np.uint8)),
            (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, k, n_test, dtype=np.uint8)))


def split_files(split, data):
    """{member name: bytes} of one split as EMNIST stores it: images transposed, letters labelled from 1."""
    offset = 1 if split == "letters" else 0
    (x, y), (xt, yt) = data
    arrays = [x.transpose(0, 2, 1), y + offset, xt.transpose(0, 2, 1), yt + offset]
    files = {name: gzip.compress(idx_bytes(np.ascontiguousarray(a, np.uint8)))
             for name, a in zip(member_names(split)[:4], arrays)}
    files[member_names(split)[4]] = mapping(split).encode()
    return files


def make_zip(path, splits=SPLITS, skip=()):
    data = {split: split_arrays(split, seed=i) for i, split in enumerate(splits)}
    with zipfile.ZipFile(path, "w") as z:
        for split in splits:
            for name, content in split_files(split, data[split]).items():
                if name not in skip:
                    z.writestr(f"gzip/{name}", content)
    return data


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("emnist") / "gzip.zip"
    return path, make_zip(path)


@pytest.mark.parametrize("split", SPLITS)
def test_emnist_loads_every_split_from_the_zip(archive, split):
    path, data = archive
    (x, y), (xt, yt) = load_emnist(split, path)
    np.testing.assert_array_equal(x, data[split][0][0])  # transposed back to MNIST orientation
    np.testing.assert_array_equal(y, data[split][0][1])  # 0-based, letters too
    np.testing.assert_array_equal(xt, data[split][1][0])
    np.testing.assert_array_equal(yt, data[split][1][1])
    assert x.flags.c_contiguous and x.dtype == y.dtype == np.uint8


def test_emnist_classes_come_from_the_mapping_file(archive):
    path, _ = archive
    assert load_emnist_with_source("byclass", path)[1] == tuple(CHARS)
    assert load_emnist_with_source("letters", path)[1] == tuple(CHARS[10:36])
    assert load_emnist_with_source("balanced", path)[1][-1] == "t"
    ds = datasets.load("emnist-letters", data_dir=path.parent)
    assert ds.num_classes == 26 and ds.classes[0] == "A" and ds.source == f"archive {path}"


def test_emnist_reads_extracted_files_raw_or_gz(tmp_path):
    data = split_arrays("digits")
    folder = tmp_path / "gzip"
    folder.mkdir()
    for name, content in split_files("digits", data).items():
        if name.startswith("emnist-digits-train-images"):  # one file gunzipped by hand
            (folder / name[:-3]).write_bytes(gzip.decompress(content))
        else:
            (folder / name).write_bytes(content)
    (x, y), (xt, yt) = load_emnist("digits", tmp_path)
    np.testing.assert_array_equal(x, data[0][0])
    np.testing.assert_array_equal(yt, data[1][1])


def test_emnist_counts_come_from_headers(tmp_path):
    path = tmp_path / "gzip.zip"
    data = {"mnist": split_arrays("mnist", n_train=13, n_test=2)}
    with zipfile.ZipFile(path, "w") as z:
        for name, content in split_files("mnist", data["mnist"]).items():
            z.writestr(f"gzip/{name}", content)
    (x, _), (xt, _) = load_emnist("mnist", path)
    assert len(x) == 13 and len(xt) == 2


def test_emnist_zip_missing_a_split_names_the_member(tmp_path):
    path = tmp_path / "gzip.zip"
    make_zip(path, splits=("digits", "mnist"))
    expected = r"missing member gzip/emnist-letters-mapping\.txt, expected EMNIST's gzip\.zip"
    with pytest.raises(DataError, match=expected):
        load_emnist("letters", path)


def test_emnist_unknown_split_and_missing_sources(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown split 'upper'"):
        load_emnist("upper", tmp_path)
    with pytest.raises(DataError, match=r"no gzip\.zip and no emnist-digits"):
        load_emnist("digits", tmp_path)
    with pytest.raises(DataError, match="not cached and download disabled"):
        load_emnist("digits", cache_dir=tmp_path, download=False)
