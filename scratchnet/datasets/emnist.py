"""EMNIST, any of its six splits: ``scratchnet.datasets.emnist.load_data(split)`` or ``load(split)``."""

from ..data.emnist import SPLITS, load_emnist_with_source
from .dataset import Dataset

__all__ = ["SPLITS", "load", "load_data"]


def load(split="byclass", data_dir=None, *, cache_dir=None, download=True, progress=True, verbose=False) -> Dataset:
    """EMNIST ``split`` (a key of ``SPLITS``) as a ``Dataset`` named ``emnist-<split>``; ``classes[label]``
    is the label's character."""
    ((x, y), (xt, yt)), classes, source = load_emnist_with_source(split, data_dir, cache_dir=cache_dir,
                                                                  download=download, progress=progress,
                                                                  verbose=verbose)
    return Dataset(f"emnist-{split}", x, y, xt, yt, classes, source)


def load_data(split="byclass", data_dir=None, **kwargs):
    """((x_train, y_train), (x_test, y_test)) of one EMNIST split, uint8, MNIST orientation, 0-based labels."""
    ds = load(split, data_dir, **kwargs)
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)
