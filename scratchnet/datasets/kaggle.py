"""Keras-style entry point for Kaggle's digit recognizer: ``scratchnet.datasets.kaggle.load_data(data_dir)``."""

from ..data.kaggle import load_kaggle, mnist_to_kaggle_csv, write_submission

__all__ = ["load_data", "mnist_to_kaggle_csv", "write_submission"]


def load_data(data_dir=None, *, validation_split=0.2, seed=1212, cache_dir=None, download=True, progress=True,
              verbose=False):
    """((x_train, y_train), (x_val, y_val), x_unlabelled): train.csv split 80/20 with ``seed``, and test.csv.

    Without ``data_dir`` the CSVs are written from MNIST into the cache first (offline stand-in).
    """
    train, held_out, x_unlabelled, _ = load_kaggle(data_dir, validation_split=validation_split, seed=seed,
                                                   cache_dir=cache_dir, download=download, progress=progress,
                                                   verbose=verbose)
    return train, held_out, x_unlabelled
