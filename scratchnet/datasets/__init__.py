"""Keras-style dataset entry points, and one registry: ``scratchnet.datasets.load(name, **kw) -> Dataset``.

    >>> from scratchnet import datasets
    >>> (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    >>> ds = datasets.load("emnist-letters", data_dir="~/emnist")   # + name, classes, num_classes, source

Names (``NAMES``): mnist, fashion-mnist, emnist-<split> (byclass, bymerge, balanced, letters, digits, mnist),
notmnist, notmnist-synthetic, kaggle. Every loader takes ``data_dir``, ``cache_dir``, ``download``,
``progress`` and ``verbose``.

Images are uint8 (n, 28, 28) in MNIST orientation, except notmnist and notmnist-synthetic, whose source
normalises them: float32 (n, 28, 28) as (v - 127.5) / 255, in [-0.5, 0.5]. Labels are uint8 class indices
0..num_classes-1 and ``classes[label]`` is that class's character (Fashion-MNIST: its article name).
kaggle's x_test / y_test are the labelled 20% held out of train.csv (seed 1212); test.csv, which has no labels,
is ``x_unlabelled`` (for ``scratchnet.data.kaggle.write_submission``). notmnist has a validation set
(``x_val``, ``y_val``).
"""

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from . import emnist, fashion_mnist, kaggle, mnist, notmnist

__all__ = ["Dataset", "NAMES", "emnist", "fashion_mnist", "kaggle", "load", "mnist", "notmnist"]

DIGITS = tuple("0123456789")


@dataclass(frozen=True)
class Dataset:
    """One loaded dataset: train and test arrays, class names, where it came from, and optional extras."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    source: str = ""
    x_val: np.ndarray | None = field(default=None, repr=False)
    y_val: np.ndarray | None = field(default=None, repr=False)
    x_unlabelled: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def synthetic(self) -> bool:
        return "SYNTHETIC" in self.source

    def __repr__(self):
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape} {self.x_train.dtype}, "
                f"test={self.x_test.shape}, num_classes={self.num_classes}, source={self.source!r})")


def _mnist(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    from ..data.mnist import load_mnist_with_source

    ((x, y), (xt, yt)), source = load_mnist_with_source(data_dir, cache_dir=cache_dir, download=download,
                                                        progress=progress, verbose=verbose)
    return Dataset("mnist", x, y, xt, yt, DIGITS, source)


def _fashion(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    from ..data.fashion_mnist import CLASSES, load_fashion_mnist_with_source

    ((x, y), (xt, yt)), source = load_fashion_mnist_with_source(data_dir, cache_dir=cache_dir, download=download,
                                                                progress=progress, verbose=verbose)
    return Dataset("fashion-mnist", x, y, xt, yt, CLASSES, source)


def _emnist(split, data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    from ..data.emnist import load_emnist_with_source

    ((x, y), (xt, yt)), classes, source = load_emnist_with_source(split, data_dir, cache_dir=cache_dir,
                                                                  download=download, progress=progress,
                                                                  verbose=verbose)
    return Dataset(f"emnist-{split}", x, y, xt, yt, classes, source)


def _notmnist(data_dir=None, *, synthetic=False, sizes=None, seed=133, dedup=False, cache_dir=None, download=True,
              progress=True, verbose=False):
    from ..data.notmnist import LETTERS, load_notmnist

    d = load_notmnist(data_dir, sizes=sizes, seed=seed, dedup=dedup, synthetic=synthetic, cache_dir=cache_dir,
                      download=download, progress=progress, verbose=verbose)
    return Dataset("notmnist-synthetic" if d.synthetic else "notmnist", d.x_train, d.y_train, d.x_test, d.y_test,
                   LETTERS, d.source, x_val=d.x_valid, y_val=d.y_valid)


def _kaggle(data_dir=None, *, validation_split=0.2, seed=1212, cache_dir=None, download=True, progress=True,
            verbose=False):
    from ..data.kaggle import load_kaggle

    (x, y), (xt, yt), x_unlabelled, source = load_kaggle(data_dir, validation_split=validation_split, seed=seed,
                                                         cache_dir=cache_dir, download=download, progress=progress,
                                                         verbose=verbose)
    return Dataset("kaggle", x, y, xt, yt, DIGITS, source, x_unlabelled=x_unlabelled)


LOADERS = {"mnist": _mnist, "fashion-mnist": _fashion}
LOADERS.update({f"emnist-{split}": partial(_emnist, split) for split in emnist.SPLITS})
LOADERS.update({"notmnist": _notmnist, "notmnist-synthetic": partial(_notmnist, synthetic=True), "kaggle": _kaggle})
NAMES = tuple(LOADERS)


def load(name, **kwargs) -> Dataset:
    """Load dataset ``name`` (one of ``NAMES``); keyword arguments go to its loader (``data_dir=`` ...)."""
    key = str(name).lower().replace("_", "-")
    if key not in LOADERS:
        raise ValueError(f"load: unknown dataset {name!r}, expected one of {', '.join(NAMES)}")
    return LOADERS[key](**kwargs)
