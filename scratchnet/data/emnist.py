"""Load any of EMNIST's six splits from the official ``gzip.zip`` or its extracted files, in MNIST orientation.

EMNIST (Cohen et al. 2017) ships one archive, ``gzip.zip``, whose members are
``gzip/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte.gz`` and ``gzip/emnist-<split>-mapping.txt``
for the splits byclass (62 classes), bymerge (47), balanced (47), letters (26, labelled 1..26 on disk),
digits (10) and mnist (10). Images are stored transposed relative to MNIST; this loader transposes them back
and makes labels 0-based, and ``classes[label]`` is the label's character from the mapping file (for
letters, the upper-case one). Image counts always come from the IDX headers.
"""

import logging
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import download as _download
from .errors import DataError, DownloadError, one_line
from .idx import read_idx

log = logging.getLogger(__name__)

SPLITS = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10, "mnist": 10}
ZIP_NAME = "gzip.zip"
ZIP_URLS = ("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
            "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip")
ZIP_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"  # as torchvision checks it
PARTS = ("train-images-idx3", "train-labels-idx1", "test-images-idx3", "test-labels-idx1")


def member_names(split):
    """The five file names of one split (four IDX .gz files and the mapping), without the ``gzip/`` folder."""
    return [f"emnist-{split}-{part}-ubyte.gz" for part in PARTS] + [f"emnist-{split}-mapping.txt"]


def load_emnist(split="byclass", data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    """EMNIST ``split`` as ((x_train, y_train), (x_test, y_test)): uint8 (n, 28, 28) in MNIST orientation and
    uint8 labels 0..num_classes-1. See ``load_emnist_with_source`` for the class characters."""
    data, _, _ = load_emnist_with_source(split, data_dir, cache_dir=cache_dir, download=download,
                                         progress=progress, verbose=verbose)
    return data


def load_emnist_with_source(split="byclass", data_dir=None, *, cache_dir=None, download=True, progress=True,
                            verbose=False):
    """-> (data, classes, source): data as ``load_emnist``; ``classes[label]`` the character of each label.

    ``data_dir`` may be the ``gzip.zip`` file, a folder holding it, or a folder (or its ``gzip/`` subfolder)
    with the extracted files. Otherwise the cache ``<cache_dir>/emnist/gzip.zip`` is used, downloaded first
    (about 536 MB, MD5-checked) when ``download`` is true.
    """
    split = str(split).lower()
    if split not in SPLITS:
        raise ValueError(f"load_emnist: unknown split {split!r}, expected one of {', '.join(SPLITS)}")
    reader, source = _open_source(split, data_dir, cache_dir, download, progress)
    try:
        data, classes = _read_split(split, reader)
    finally:
        getattr(reader, "close", lambda: None)()
    log.info("EMNIST %s loaded from %s", split, source)
    if verbose:
        print(f"emnist-{split}: loaded from {source}", file=sys.stderr)
    return data, classes, source


def _open_source(split, data_dir, cache_dir, download, progress):
    """-> (reader, source): reader(name, kind) yields the bytes/array of one member."""
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if path.is_file():
            return _zip_reader(path), f"archive {path}"
        if not path.is_dir():
            raise DataError(f"{path}: not found, expected EMNIST's {ZIP_NAME} or a folder with it or its "
                            f"extracted files")
        for name in (ZIP_NAME, "emnist-gzip.zip"):
            if (path / name).is_file():
                return _zip_reader(path / name), f"archive {path / name}"
        for folder in (path, path / "gzip"):
            if any((folder / n).is_file() for n in member_names(split)):
                return _folder_reader(folder), f"folder {folder}"
        raise DataError(f"{path}: no {ZIP_NAME} and no emnist-{split}-* files, expected EMNIST's {ZIP_NAME} or "
                        f"its extracted files")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _download.cache_dir()
    archive = cache / "emnist" / ZIP_NAME
    if not archive.is_file():
        if not download:
            raise DataError(f"{archive}: EMNIST not cached and download disabled; pass --data-dir with EMNIST's "
                            f"{ZIP_NAME} (from https://www.nist.gov/itl/products-and-services/emnist-dataset)")
        try:
            _download.download(ZIP_URLS, archive, md5=ZIP_MD5, progress=progress)
        except DownloadError as exc:
            raise DataError(f"{exc}; pass --data-dir with EMNIST's {ZIP_NAME} or its extracted files") from None
    return _zip_reader(archive), f"cache {archive}"


def _zip_reader(path):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({one_line(exc)}), expected EMNIST's {ZIP_NAME}") \
            from None
    members = {Path(info.filename).name: info.filename for info in archive.infolist()
               if not info.is_dir() and Path(info.filename).parent.as_posix() in ("gzip", ".")}

    def read(name, ndim=None):
        label = f"{path}:gzip/{name}"
        if name not in members:
            raise DataError(f"{path}: missing member gzip/{name}, expected EMNIST's {ZIP_NAME} with all six splits")
        try:
            with archive.open(members[name]) as f:
                if ndim is None:
                    return f.read().decode("ascii")
                return read_idx(label, ndim=ndim, dtype=np.uint8, fileobj=f)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, UnicodeDecodeError) as exc:
            raise DataError(f"{label}: corrupt archive member ({one_line(exc)}), expected "
                            f"{'an IDX file' if ndim else 'a text mapping file'}") from None

    read.close = archive.close
    read.label = lambda name: f"{path}:gzip/{name}"
    return read


def _folder_reader(folder):
    def read(name, ndim=None):
        path = folder / name
        if ndim is not None and not path.is_file() and (folder / name[:-3]).is_file():
            path = folder / name[:-3]  # gunzipped by hand
        if not path.is_file():
            raise DataError(f"{folder}: missing {name}, expected the extracted EMNIST files of this split")
        if ndim is None:
            try:
                return path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: unreadable ({one_line(exc)}), expected a text mapping file") from None
        return read_idx(path, ndim=ndim, dtype=np.uint8)

    read.label = lambda name: str(folder / name)
    return read


def parse_mapping(text, name, num_classes):
    """Parse ``emnist-<split>-mapping.txt`` (lines ``label code [code ...]``) -> (first label, classes)."""
    rows = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            values = [int(v) for v in fields]
        except ValueError:
            values = []
        if len(values) < 2 or not all(0 < v < 0x110000 for v in values[1:]) or values[0] in rows:
            raise DataError(f"{name}: line {number} is {line.strip()[:40]!r}, expected 'label ascii_code' with "
                            f"a new label")
        rows[values[0]] = chr(values[1])
    first = min(rows, default=0)
    if sorted(rows) != list(range(first, first + len(rows))) or len(rows) != num_classes:
        raise DataError(f"{name}: maps {len(rows)} labels {min(rows, default='-')}..{max(rows, default='-')}, "
                        f"expected {num_classes} consecutive labels")
    return first, tuple(rows[label] for label in sorted(rows))


def _read_split(split, read):
    names = member_names(split)
    where = read.label
    first, classes = parse_mapping(read(names[4]), where(names[4]), SPLITS[split])
    data = []
    for images_name, labels_name in ((names[0], names[1]), (names[2], names[3])):
        x = read(images_name, 3)
        if x.shape[1:] != (28, 28):
            raise DataError(f"{where(images_name)}: images are {x.shape[1]}x{x.shape[2]}, expected 28x28")
        y = read(labels_name, 1)
        if len(x) != len(y):
            raise DataError(f"{where(labels_name)}: {len(y)} labels for the {len(x)} images of {images_name}, "
                            f"expected one label per image")
        if len(y) and (int(y.min()) < first or int(y.max()) >= first + len(classes)):
            raise DataError(f"{where(labels_name)}: labels {int(y.min())}..{int(y.max())}, expected "
                            f"{first}..{first + len(classes) - 1} as in {names[4]}")
        x = np.ascontiguousarray(x.transpose(0, 2, 1))  # EMNIST stores images transposed
        data.append((x, (y - first).astype(np.uint8)))
    return tuple(data), classes
