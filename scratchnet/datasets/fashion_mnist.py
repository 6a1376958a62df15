"""Fashion-MNIST: ``scratchnet.datasets.fashion_mnist.load_data()`` or ``load()`` (a ``Dataset``)."""

from ..data.fashion_mnist import CLASSES, load_fashion_mnist_with_source
from .dataset import Dataset

__all__ = ["CLASSES", "load", "load_data"]


def load(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False) -> Dataset:
    """Fashion-MNIST as a ``Dataset``; ``classes`` are the article names (``CLASSES``)."""
    ((x, y), (xt, yt)), source = load_fashion_mnist_with_source(data_dir, cache_dir=cache_dir, download=download,
                                                                progress=progress, verbose=verbose)
    return Dataset("fashion-mnist", x, y, xt, yt, CLASSES, source)


def load_data(data_dir=None, **kwargs):
    """((x_train, y_train), (x_test, y_test)) uint8, like ``keras.datasets.fashion_mnist.load_data()``."""
    ds = load(data_dir, **kwargs)
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)
