"""Read and write IDX files (the MNIST file format), gzipped or raw, validating every byte of the header.

An IDX file is: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), a byte giving the number of dimensions, one big-endian uint32 per dimension, then exactly
prod(dimensions) big-endian values. Anything else is a DataError that names the file.
"""

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from .download import atomic_write
from .errors import DataError, one_line

GZIP_MAGIC = b"\x1f\x8b"
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
TYPE_CODES = {np.dtype(v).newbyteorder("=").str: k for k, v in DTYPES.items()}
CHUNK = 1 << 24


class _Hashing:
    """A read-only wrapper that feeds everything read through a hash (for checksums of decompressed data)."""

    def __init__(self, f, digest):
        self.f, self.digest = f, digest

    def read(self, n):
        data = self.f.read(n)
        if self.digest is not None:
            self.digest.update(data)
        return data


def _read_exactly(f, n: int) -> bytearray:
    """Read up to n bytes in bounded chunks (a corrupt header cannot make us allocate gigabytes up front)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(n - len(buf), CHUNK))
        if not chunk:
            break
        buf += chunk
    return buf


def read_idx(path, *, ndim=None, dtype=None, md5=None, fileobj=None) -> np.ndarray:
    """Read an IDX file, gzipped or raw (gzip is detected by its magic bytes 1f 8b, not by the file name).

    Args:
        path: the file (with ``fileobj``: only the name used in error messages, e.g. ``archive.zip:member``).
        ndim: if given, the number of dimensions the file must have (3 for images, 1 for labels).
        dtype: if given, the element type the file must hold (e.g. ``np.uint8``).
        md5: if given, the MD5 of the uncompressed file (header + payload) it must match.
        fileobj: an open binary file to read instead of opening ``path`` (a zip member, say).

    Returns:
        The array in native byte order, shape = the header's dimensions.

    Raises:
        DataError: missing or unreadable file, not gzip although it says so, an HTML page, wrong magic,
            unexpected type or dimension count, truncated payload, trailing bytes, checksum mismatch.
    """
    if fileobj is not None:
        return _read_stream(path, fileobj, ndim, dtype, md5)
    path = Path(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the reader it is handed to
    except FileNotFoundError:
        raise DataError(f"{path}: file not found, expected an IDX file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({one_line(exc.strerror or exc)}), expected an IDX file") from None
    with raw:
        return _read_stream(path, raw, ndim, dtype, md5)


class _Prepended:
    """A file whose first bytes were already read (to sniff the gzip magic) and are given back first."""

    def __init__(self, head, f):
        self.head, self.f = head, f

    def read(self, n=-1):
        if not self.head:
            return self.f.read(n)
        if n is None or n < 0:
            data, self.head = self.head + self.f.read(), b""
            return data
        data, self.head = self.head[:n], self.head[n:]
        return data + (self.f.read(n - len(data)) if n > len(data) else b"")


def _read_stream(path, raw, ndim, dtype, md5):
    try:
        head = raw.read(2)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)}), expected an IDX file") from None
    compressed = head == GZIP_MAGIC
    stream = _Prepended(head, raw)
    if compressed:
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    what = "a gzipped IDX" if compressed else "an IDX"
    try:
        return _parse(path, _Hashing(stream, hashlib.md5() if md5 else None), what, ndim, dtype, md5)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt or truncated {'gzip' if compressed else 'file'} data "
                        f"({one_line(exc)}), expected {what} file") from None


def _parse(path, f, what, ndim, dtype, md5) -> np.ndarray:
    header = f.read(4)
    if len(header) == 0:
        raise DataError(f"{path}: empty file, expected {what} file")
    if header[:2] != b"\0\0":
        if (header + f.read(512)).lstrip()[:1] == b"<":
            raise DataError(f"{path}: looks like an HTML/XML page (a failed download?), expected {what} file")
        raise DataError(f"{path}: wrong magic number 0x{header.hex()}, expected {what} file "
                        f"(starting 0x0000, a type byte, a dimension count)")
    if len(header) < 4:
        raise DataError(f"{path}: truncated header ({len(header)} bytes), expected {what} file")
    if header[2] not in DTYPES:
        raise DataError(f"{path}: wrong magic number 0x{header.hex()}: unknown type byte 0x{header[2]:02x}, "
                        f"expected one of 08, 09, 0B, 0C, 0D, 0E")
    file_ndim = header[3]
    if file_ndim == 0:
        raise DataError(f"{path}: header declares 0 dimensions, expected at least 1")
    if ndim is not None and file_ndim != ndim:
        raise DataError(f"{path}: header declares {file_ndim} dimensions, expected {ndim}")
    file_dtype = np.dtype(DTYPES[header[2]])
    if dtype is not None and file_dtype.newbyteorder("=") != np.dtype(dtype):
        raise DataError(f"{path}: holds {file_dtype.newbyteorder('=').name} values, expected {np.dtype(dtype).name}")
    dims_bytes = f.read(4 * file_ndim)
    if len(dims_bytes) != 4 * file_ndim:
        raise DataError(f"{path}: truncated header (dimensions cut off), expected {file_ndim} dimension sizes")
    shape = tuple(int(d) for d in np.frombuffer(dims_bytes, ">u4"))
    count = 1
    for d in shape:
        count *= d
    need = count * file_dtype.itemsize
    payload = _read_exactly(f, need)
    if len(payload) != need:
        raise DataError(f"{path}: truncated: {len(payload)} of the {need} payload bytes for shape {shape}, "
                        f"expected a complete {what.split(' ', 1)[1]} file")
    if f.read(1):
        raise DataError(f"{path}: trailing bytes after the {need} payload bytes for shape {shape}, "
                        f"expected the file to end there")
    if md5 and f.digest.hexdigest() != md5:
        raise DataError(f"{path}: MD5 of the uncompressed data is {f.digest.hexdigest()}, expected {md5} "
                        f"(a corrupt or different file)")
    array = np.frombuffer(payload, file_dtype).reshape(shape)
    return array if file_dtype.itemsize == 1 else array.astype(file_dtype.newbyteorder("="))


def idx_bytes(array) -> bytes:
    """The uncompressed IDX encoding of ``array`` (header + big-endian payload)."""
    array = np.asarray(array)
    code = TYPE_CODES.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise TypeError(f"write_idx: dtype {array.dtype} has no IDX type code; expected one of "
                        f"uint8, int8, int16, int32, float32, float64")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, compress=None) -> Path:
    """Write ``array`` as an IDX file, atomically (a failure leaves no partial file).

    ``compress``: True for gzip, False for raw, None to decide by the name (gzip when it ends in ``.gz``).
    The gzip stream has no name and mtime 0, so the same array always gives the same bytes.
    """
    path = Path(path)
    if compress is None:
        compress = path.name.endswith(".gz")
    data = idx_bytes(array)
    with atomic_write(path) as f:
        if compress:
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
                gz.write(data)
        else:
            f.write(data)
    return path
