"""notMNIST (letters A..J): ``scratchnet.datasets.notmnist.load_data()`` or ``load()``; ``synthetic=True``
gives the SYNTHETIC stand-in rendered from local fonts (offline)."""

from ..data.notmnist import SEED, load_notmnist
from ..data.notmnist_layout import LETTERS
from .dataset import Dataset

__all__ = ["LETTERS", "load", "load_data"]


def load(data_dir=None, *, synthetic=False, sizes=None, seed=SEED, dedup=False, cache_dir=None, download=True,
         progress=True, verbose=False) -> Dataset:
    """notMNIST's merged train / validation / test sets as a ``Dataset`` (named ``notmnist-synthetic`` when
    synthetic): float32 (n, 28, 28) as (v - 127.5) / 255, labels 0..9 for A..J. ``sizes`` = (train,
    validation, test); the source's (200000, 10000, 10000) by default, (10000, 1000, 1000) when synthetic."""
    d = load_notmnist(data_dir, sizes=sizes, seed=seed, dedup=dedup, synthetic=synthetic, cache_dir=cache_dir,
                      download=download, progress=progress, verbose=verbose)
    return Dataset("notmnist-synthetic" if d.synthetic else "notmnist", d.x_train, d.y_train, d.x_test, d.y_test,
                   LETTERS, d.source, x_val=d.x_val, y_val=d.y_val)


def load_data(data_dir=None, **kwargs):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)); keyword arguments as ``load``."""
    ds = load(data_dir, **kwargs)
    return (ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)
