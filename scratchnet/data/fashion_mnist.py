"""Load Fashion-MNIST through the IDX reader: a folder you name, Debian's package, the cache, or the mirror.

Sources, in order: ``data_dir`` (the four files, raw or gzipped; an error if missing or incomplete), Debian's
``dataset-fashion-mnist`` files in ``/usr/share/datasets/fashion-mnist/``, the cache
``<cache_dir>/fashion-mnist/``, and (with ``download=True``) the public mirror. Every source except a
folder you name is checked against the MD5s of the official uncompressed files.
"""

import logging
import sys
from pathlib import Path

from . import download as _download
from .errors import DataError, DownloadError
from .folder import FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, find_files, has_files, read_folder

log = logging.getLogger(__name__)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
GZ_MD5 = {
    TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}
# MD5 of the uncompressed files (Debian recompresses them, so its .gz bytes differ from the mirror's).
RAW_MD5 = {
    TRAIN_IMAGES: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    TRAIN_LABELS: "9018921c3c673c538a1fc5bad174d6f9",
    TEST_IMAGES: "8181f5470baa50b63fa0f6fddb340f0a",
    TEST_LABELS: "15d484375f8d13e6eb1aabb0c3f46965",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")


def load_fashion_mnist(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False,
                       debian_dir=DEBIAN_DIR):
    """Fashion-MNIST as ((x_train, y_train), (x_test, y_test)), like ``keras.datasets.fashion_mnist``.

    uint8 (60000, 28, 28) / (60000,) and (10000, 28, 28) / (10000,); labels index ``CLASSES``.
    """
    data, _ = load_fashion_mnist_with_source(data_dir, cache_dir=cache_dir, download=download, progress=progress,
                                             verbose=verbose, debian_dir=debian_dir)
    return data


def load_fashion_mnist_with_source(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False,
                                   debian_dir=DEBIAN_DIR):
    """Like ``load_fashion_mnist`` but returns (data, source)."""
    data, source = _load(data_dir, cache_dir, download, progress, debian_dir)
    log.info("Fashion-MNIST loaded from %s", source)
    if verbose:
        print(f"fashion-mnist: loaded from {source}", file=sys.stderr)
    return data, source


def _load(data_dir, cache_dir, download, progress, debian_dir):
    if data_dir is not None:
        return read_folder(find_files(data_dir, what="Fashion-MNIST")), f"folder {Path(data_dir).expanduser()}"
    if debian_dir is not None and has_files(debian_dir):
        return read_folder(find_files(debian_dir, what="Fashion-MNIST"), md5=RAW_MD5), f"Debian package {debian_dir}"
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _download.cache_dir()
    folder = cache / "fashion-mnist"
    if not has_files(folder) and download:
        try:
            _download.download_files(folder, FILES, MIRRORS, GZ_MD5, progress=progress)
        except DownloadError as exc:
            raise DataError(f"{exc}; install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
                            f"or pass --data-dir") from None
    if has_files(folder):
        try:
            return read_folder(find_files(folder, what="Fashion-MNIST"), md5=RAW_MD5), f"cache {folder}"
        except DataError as exc:
            raise DataError(f"{exc} (in the Fashion-MNIST cache: delete {folder} to fetch it again)") from None
    raise DataError(f"{folder}: Fashion-MNIST not found (not in {debian_dir}, not cached, no download allowed); "
                    f"install Debian's dataset-fashion-mnist, pass --data-dir, or allow the download")
