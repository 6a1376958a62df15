"""Keras-style entry point for notMNIST: ``scratchnet.datasets.notmnist.load_data()`` (``synthetic=True`` offline)."""

from ..data.notmnist import LETTERS, load_notmnist

__all__ = ["LETTERS", "load_data"]


def load_data(data_dir=None, *, synthetic=False, sizes=None, seed=133, dedup=False, cache_dir=None, download=True,
              progress=True, verbose=False):
    """((x_train, y_train), (x_valid, y_valid), (x_test, y_test)): float32 (n, 28, 28) as (v - 127.5) / 255
    and labels 0..9 for A..J. ``synthetic=True`` gives the SYNTHETIC stand-in rendered from local fonts."""
    d = load_notmnist(data_dir, sizes=sizes, seed=seed, dedup=dedup, synthetic=synthetic, cache_dir=cache_dir,
                      download=download, progress=progress, verbose=verbose)
    return (d.x_train, d.y_train), (d.x_valid, d.y_valid), (d.x_test, d.y_test)
