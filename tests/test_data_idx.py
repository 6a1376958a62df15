"""Tests for scratchnet.data.idx: IDX round trips and every malformed file the reader must refuse."""

import gzip
import os
import struct

import numpy as np
import pytest

from scratchnet.data.errors import DataError
from scratchnet.data.idx import idx_bytes, read_idx, write_idx


def idx_header(type_byte, dims):
    return bytes([0, 0, type_byte, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def labels_bytes(values):
    return idx_header(0x08, [len(values)]) + bytes(values)


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_gz_and_raw(tmp_path, name, dtype):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)


def test_idx_reader_matches_hand_written_bytes(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(labels_bytes([5, 0, 4]))
    np.testing.assert_array_equal(read_idx(path), [5, 0, 4])
    big = tmp_path / "ints"
    big.write_bytes(idx_header(0x0C, [2]) + struct.pack(">2i", -1, 258))
    np.testing.assert_array_equal(read_idx(big), [-1, 258])
    assert idx_bytes(np.array([-1, 258], np.int32)) == big.read_bytes()


def test_idx_reader_detects_gzip_by_magic_not_name(tmp_path):
    raw_named_gz = tmp_path / "labels.gz"
    raw_named_gz.write_bytes(labels_bytes([1, 2]))
    gz_named_raw = tmp_path / "labels"
    gz_named_raw.write_bytes(gzip.compress(labels_bytes([3, 4])))
    np.testing.assert_array_equal(read_idx(raw_named_gz), [1, 2])
    np.testing.assert_array_equal(read_idx(gz_named_raw), [3, 4])


def test_write_idx_compress_argument_overrides_name(tmp_path):
    path = write_idx(tmp_path / "a.gz", np.arange(3, dtype=np.uint8), compress=False)
    assert path.read_bytes() == labels_bytes([0, 1, 2])
    path = write_idx(tmp_path / "b", np.arange(3, dtype=np.uint8), compress=True)
    assert gzip.decompress(path.read_bytes()) == labels_bytes([0, 1, 2])


def test_write_idx_is_deterministic(tmp_path):
    a = write_idx(tmp_path / "a.gz", np.arange(10, dtype=np.uint8)).read_bytes()
    b = write_idx(tmp_path / "b.gz", np.arange(10, dtype=np.uint8)).read_bytes()
    assert a == b


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        write_idx(tmp_path / "a", np.arange(3, dtype=np.uint64))
    assert os.listdir(tmp_path) == []


def test_idx_reader_checks_md5_of_uncompressed_data(tmp_path):
    import hashlib

    data = labels_bytes([1, 2, 3])
    path = tmp_path / "l.gz"
    path.write_bytes(gzip.compress(data))
    read_idx(path, md5=hashlib.md5(data).hexdigest())
    with pytest.raises(DataError, match="MD5"):
        read_idx(path, md5="0" * 32)


BAD_FILES = {
    "zero-byte": (b"", "empty file"),
    "truncated payload": (labels_bytes([1, 2, 3])[:-1], "truncated"),
    "truncated header": (b"\x00\x00\x08", "truncated header"),
    "dimensions cut off": (bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02", "dimensions cut off"),
    "trailing bytes": (labels_bytes([1, 2]) + b"\x00", "trailing bytes"),
    "wrong magic": (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "wrong magic"),
    "unknown type byte": (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown type byte"),
    "zero dimensions": (b"\x00\x00\x08\x00", "0 dimensions"),
    "html page": (b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", "HTML"),
    "html after whitespace": (b"\n\n  <html><body>Access denied</body></html>", "HTML"),
    "gzip that isn't": (b"\x1f\x8b" + b"this is not deflate data at all", "gzip"),
    "truncated gzip": (gzip.compress(labels_bytes(list(range(200))))[:-12], "gzip"),
    "gzipped html": (gzip.compress(b"<html>moved</html>"), "HTML"),
    "gzipped trailing bytes": (gzip.compress(labels_bytes([1]) + b"xx"), "trailing bytes"),
    "huge declared size": (idx_header(0x08, [4_000_000_000, 4_000_000_000]) + b"\x00" * 10, "truncated"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_idx_reader_rejects_malformed_file(tmp_path, case):
    content, message = BAD_FILES[case]
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    text = str(info.value)
    assert str(path) in text and "expected" in text and "\n" not in text


def test_idx_reader_rejects_wrong_dimension_count(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(labels_bytes([1, 2]))
    with pytest.raises(DataError, match="declares 1 dimensions, expected 3"):
        read_idx(path, ndim=3)


def test_idx_reader_rejects_wrong_element_type(tmp_path):
    path = write_idx(tmp_path / "f", np.zeros(2, np.float32))
    with pytest.raises(DataError, match="float32 values, expected uint8"):
        read_idx(path, dtype=np.uint8)


def test_idx_reader_rejects_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)
