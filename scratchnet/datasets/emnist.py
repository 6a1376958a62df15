"""Keras-style entry point for EMNIST: ``scratchnet.datasets.emnist.load_data(split="byclass")``."""

from ..data.emnist import SPLITS, load_emnist

__all__ = ["SPLITS", "load_data"]


def load_data(split="byclass", data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False):
    """((x_train, y_train), (x_test, y_test)) of one EMNIST split, uint8, MNIST orientation, 0-based labels."""
    return load_emnist(split, data_dir, cache_dir=cache_dir, download=download, progress=progress, verbose=verbose)
