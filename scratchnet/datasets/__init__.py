"""scratchnet's data API: Keras-style ``load_data()`` per dataset, and ``load(name, **kw) -> Dataset``.

    >>> from scratchnet import datasets
    >>> (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    >>> ds = datasets.load("emnist-letters", data_dir="~/emnist")   # + x_val, classes, num_classes, source

Names (``NAMES``): mnist, fashion-mnist, emnist-<split> (byclass, bymerge, balanced, letters, digits, mnist),
notmnist, notmnist-synthetic, kaggle; and ``folder:DIR``, images filed by class in sub-folders of DIR (the
drawings ``python -m scratchnet.serve`` saves), read with the model's class names: ``load("folder:DIR",
classes=...)`` (``datasets.folder``). Every named loader takes ``data_dir``, ``cache_dir``, ``download``,
``progress`` and ``verbose``; bad or missing data raise ``DataError`` (a ``ValueError``) in one line naming
the file and what was expected.

Images are uint8 (n, 28, 28) in MNIST orientation, except notmnist and notmnist-synthetic, whose source
normalises them: float32 (n, 28, 28) as (v - 127.5) / 255, in [-0.5, 0.5]. Labels are uint8 class indices
0..num_classes-1 and ``classes[label]`` is that class's character (Fashion-MNIST: its article name).
A dataset with a validation set of its own gives it as ``x_val`` / ``y_val``: notMNIST's, and kaggle's
80/20 split of ``train.csv`` (seed 1212), the same whichever entry point loads it (``datasets.kaggle``).

``scratchnet.data`` holds the readers behind these loaders (IDX files, archives, downloads, the cache); it
is internal: use this package.
"""

from functools import partial

from ..data.errors import DataError, DownloadError
from . import emnist, fashion_mnist, folder, kaggle, mnist, notmnist
from .dataset import Dataset

__all__ = ["NAMES", "DataError", "Dataset", "DownloadError", "emnist", "fashion_mnist", "folder", "kaggle", "load",
           "mnist", "notmnist"]

LOADERS = {"mnist": mnist.load, "fashion-mnist": fashion_mnist.load}
LOADERS.update({f"emnist-{split}": partial(emnist.load, split) for split in emnist.SPLITS})
LOADERS.update({"notmnist": notmnist.load, "notmnist-synthetic": partial(notmnist.load, synthetic=True),
                "kaggle": kaggle.load})
NAMES = tuple(LOADERS)


def load(name, **kwargs) -> Dataset:
    """Load dataset ``name`` (one of ``NAMES``, or ``folder:DIR``); keyword arguments go to its loader
    (``data_dir=`` ..., ``classes=`` for a folder)."""
    if str(name).startswith(folder.PREFIX):
        return folder.load(str(name)[len(folder.PREFIX):], **kwargs)
    key = str(name).lower().replace("_", "-")
    if key not in LOADERS:
        raise ValueError(f"load: unknown dataset {name!r}, expected one of {', '.join(NAMES)} or folder:DIR")
    return LOADERS[key](**kwargs)
