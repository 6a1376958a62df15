"""Kaggle's digit recognizer: ``scratchnet.datasets.kaggle.load_data()`` or ``load()``, and the submission file.

One split, however it is loaded: ``train.csv`` shuffled with seed 1212, 80% train and 20% validation
(33,600 / 8,400); ``test.csv`` (28,000) is the test set when its labels are known and ``x_unlabelled`` always.
Without ``data_dir`` the two CSVs are cut from MNIST (Kaggle's images are MNIST's), labels known, in memory.

``python -m scratchnet.datasets.kaggle OUT_DIR`` writes that cut as Kaggle-format files (``train.csv``,
``test.csv`` and the answer key ``test_labels.csv``); loading OUT_DIR gives the same split again.
"""

import sys
from pathlib import Path

from ..data.errors import DataError
from ..data.kaggle import SEED, load_kaggle, mnist_to_kaggle_csv, read_submission, write_submission
from ..data.mnist import load_mnist
from .dataset import DIGITS, Dataset

__all__ = ["load", "load_data", "mnist_to_kaggle_csv", "read_submission", "write_submission"]


def load(data_dir=None, *, validation_split=0.2, seed=SEED, cache_dir=None, download=True, progress=True,
         verbose=False) -> Dataset:
    """Kaggle's digits as a ``Dataset``: uint8 (n, 28, 28) images, labels 0..9.

    ``data_dir``: a folder with Kaggle's ``train.csv`` and ``test.csv`` (``test_labels.csv`` beside them
    labels the test set), or with the four MNIST files to cut them from; default: MNIST from its usual
    sources. ``x_test`` / ``y_test`` are None for Kaggle's own files, whose test labels are secret.
    """
    d = load_kaggle(data_dir, validation_split=validation_split, seed=seed, cache_dir=cache_dir, download=download,
                    progress=progress, verbose=verbose)
    return Dataset("kaggle", d.x_train, d.y_train, d.x_test, d.y_test, DIGITS, d.source, x_val=d.x_val,
                   y_val=d.y_val, x_unlabelled=d.x_unlabelled)


def load_data(data_dir=None, **kwargs):
    """((x_train, y_train), (x_val, y_val), x_unlabelled): the notebook's 80/20 split of ``train.csv``, and
    ``test.csv`` to predict for ``write_submission``; keyword arguments as ``load``."""
    ds = load(data_dir, **kwargs)
    return (ds.x_train, ds.y_train), (ds.x_val, ds.y_val), ds.x_unlabelled


def main(argv=None) -> int:
    """``python -m scratchnet.datasets.kaggle OUT_DIR``: write Kaggle-format CSVs from MNIST (exit 1 on bad data)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scratchnet.datasets.kaggle",
                                     description="Write Kaggle digit-recognizer CSVs (train.csv, test.csv, "
                                                 "test_labels.csv) from MNIST, so the Kaggle pipeline runs offline.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--data-dir", type=Path, help="folder with the four MNIST files (default: usual sources)")
    parser.add_argument("--train-rows", type=int, help="rows of train.csv (default: 60%%, 42,000 of MNIST)")
    parser.add_argument("--test-rows", type=int, help="rows of test.csv (default: the rest, 28,000)")
    args = parser.parse_args(argv)
    try:
        data = load_mnist(args.data_dir)
        paths = mnist_to_kaggle_csv(args.out_dir, data, n_train=args.train_rows, n_test=args.test_rows)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
