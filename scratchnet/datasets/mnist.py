"""Keras-style entry point for MNIST: ``scratchnet.datasets.mnist.load_data()``."""

from ..data.mnist import load_mnist


def load_data(data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    """((x_train, y_train), (x_test, y_test)) as uint8, (60000, 28, 28) / (60000,) and (10000, 28, 28) /
    (10000,), like ``keras.datasets.mnist.load_data()``. See ``scratchnet.data.mnist`` for the sources tried.
    """
    return load_mnist(data_dir, cache_dir=cache_dir, download=download, progress=progress, verbose=verbose)
