"""Find and read the four IDX files of an MNIST-style dataset (train/t10k images/labels) in one folder."""

from pathlib import Path

import numpy as np

from .errors import DataError
from .idx import read_idx

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def find_files(directory, names=FILES, *, what="MNIST") -> dict:
    """Map each base name in ``names`` to ``<directory>/<name>`` or ``<directory>/<name>.gz``.

    Raises DataError (one line naming the directory) when the directory is missing or lacks a file: a
    folder the user named is never silently replaced by another source.
    """
    directory = Path(directory).expanduser()
    expected = f"expected a folder with the {what} files {', '.join(n + '(.gz)' for n in names)}"
    if not directory.exists():
        raise DataError(f"{directory}: directory not found, {expected}")
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory, {expected}")
    found, missing = {}, []
    for name in names:
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name + "(.gz)")
    if missing:
        raise DataError(f"{directory}: missing {', '.join(missing)}; {expected}")
    return found


def has_files(directory, names=FILES) -> bool:
    """True when every file of ``names`` is in ``directory`` (raw or gzipped)."""
    directory = Path(directory)
    return all((directory / f"{n}.gz").is_file() or (directory / n).is_file() for n in names)


def read_pair(images_path, labels_path, *, num_classes, image_shape=(28, 28), md5=None):
    """Read one images file and its labels file, checking shapes, counts and the label range.

    ``md5`` optionally maps a base name to the MD5 of its uncompressed content. Returns (x uint8 (N, H, W),
    y uint8 (N,)).
    """
    md5 = md5 or {}
    x = read_idx(images_path, ndim=3, dtype=np.uint8, md5=md5.get(_base(images_path)))
    if x.shape[1:] != tuple(image_shape):
        raise DataError(f"{images_path}: images are {x.shape[1]}x{x.shape[2]}, expected "
                        f"{image_shape[0]}x{image_shape[1]}")
    y = read_idx(labels_path, ndim=1, dtype=np.uint8, md5=md5.get(_base(labels_path)))
    if len(x) != len(y):
        raise DataError(f"{labels_path}: {len(y)} labels for the {len(x)} images of {Path(images_path).name}, "
                        f"expected one label per image")
    if len(y) and int(y.max()) >= num_classes:
        raise DataError(f"{labels_path}: label {int(y.max())} out of range, expected 0..{num_classes - 1}")
    return x, y


def read_folder(files: dict, *, num_classes=10, md5=None):
    """Read the four files found by ``find_files`` -> ((x_train, y_train), (x_test, y_test))."""
    train = read_pair(files[TRAIN_IMAGES], files[TRAIN_LABELS], num_classes=num_classes, md5=md5)
    test = read_pair(files[TEST_IMAGES], files[TEST_LABELS], num_classes=num_classes, md5=md5)
    return train, test


def _base(path) -> str:
    name = Path(path).name
    return name[:-3] if name.endswith(".gz") else name
