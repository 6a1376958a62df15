"""Keras-style entry point for Fashion-MNIST: ``scratchnet.datasets.fashion_mnist.load_data()``."""

from ..data.fashion_mnist import CLASSES, load_fashion_mnist

__all__ = ["CLASSES", "load_data"]


def load_data(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    """((x_train, y_train), (x_test, y_test)) uint8, like ``keras.datasets.fashion_mnist.load_data()``."""
    return load_fashion_mnist(data_dir, cache_dir=cache_dir, download=download, progress=progress, verbose=verbose)
