"""Image folders: one sub-folder of drawings per class, read as a ``Dataset`` (``datasets.load("folder:DIR")``).

This is the layout ``python -m scratchnet.serve`` writes its corrections in (``<DIR>/<class>/0001.png``) and
the one Keras's ``image_dataset_from_directory`` and torchvision's ``ImageFolder`` read. Unlike theirs, the
class of each sub-folder is not its rank in alphabetical order: it comes from the model's own class names
(``classes``), so that folder "7" is output 7 whatever other folders exist. Each file is a raw photo or
drawing; it goes through ``imageprep.prepare``, the same preparation ``scratchnet.predict`` and the server
apply, and is stored as uint8 (0..255, ink 255) like MNIST, so a trainer scales it by its own recipe.
"""

import re
from pathlib import Path

import numpy as np

from ..data.errors import DataError, one_line
from ..imageprep import ImagePrepError, prepare
from .dataset import Dataset

__all__ = ["IMAGE_SUFFIXES", "PREFIX", "folder_name", "load"]

PREFIX = "folder:"
# The formats Keras's image_dataset_from_directory reads; other files (notes, thumbnails' databases) are skipped.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_UNSAFE = re.compile(r"[^0-9A-Za-z_.\- ]")


def folder_name(label: str) -> str:
    """The sub-folder of a class: its label, with characters a file name cannot safely hold replaced by
    "_" (Fashion-MNIST's "T-shirt/top" becomes "T-shirt_top"); "." and ".." are never names."""
    name = _UNSAFE.sub("_", label).strip()
    return name if name.strip(".") else f"_{len(name)}"


def load(directory, classes, *, verbose=False) -> Dataset:
    """Read every image under ``directory/<folder_name(class)>/`` as a ``Dataset`` of training images.

    ``classes`` are the model's class names in output order; the drawings of ``classes[i]`` get label ``i``.
    ``x_train`` is uint8 (n, 28, 28), ink 255 on 0, in MNIST's framing; ``y_train`` uint8 (n,); there is no
    test set (``x_test`` is None). Files are read in sorted order, so a folder loads the same every time.
    Hidden files and sub-folders (a save still being written) and files that are not images are skipped.

    Raises ``DataError`` (one line) when ``directory`` is missing, holds a sub-folder that is no class of
    ``classes`` (the message lists the class folders), holds no image at all, or when a file cannot be read
    as an image with ink (the message names the file).
    """
    root = Path(directory).expanduser()
    classes = tuple(classes)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected one sub-folder of images per class)")
    index_of = {folder_name(label): index for index, label in enumerate(classes)}
    expected = ", ".join(folder_name(label) for label in classes)
    images, labels = [], []
    for folder in sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")):
        if folder.name not in index_of:
            raise DataError(f"{folder}: not a class of the model; expected sub-folders named {expected}")
        for file in sorted(folder.iterdir()):
            if file.name.startswith(".") or not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            images.append(_read(file))
            labels.append(index_of[folder.name])
    if not images:
        raise DataError(f"{root}: no images found; expected sub-folders named {expected} holding "
                        f"{', '.join(IMAGE_SUFFIXES)} files")
    if verbose:
        print(f"read {len(images)} images of {len(set(labels))} classes from {root}")
    x = np.stack(images)
    y = np.asarray(labels, dtype=np.uint8 if len(classes) <= 256 else np.int64)
    return Dataset(f"{PREFIX}{root}", x, y, None, None, classes, source=str(root))


def _read(file: Path) -> np.ndarray:
    """One image file, prepared like ``scratchnet.predict`` does, as uint8 (28, 28) with ink 255."""
    try:
        prepared = prepare(file)
    except (ImagePrepError, OSError, ValueError) as error:
        raise DataError(f"{file}: cannot be read as a drawing: {one_line(error)}") from error
    return np.round(prepared * 255).astype(np.uint8)
