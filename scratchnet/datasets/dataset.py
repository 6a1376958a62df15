"""``Dataset``: what ``scratchnet.datasets.load(name)`` returns, the same fields for every dataset."""

from dataclasses import dataclass, field

import numpy as np

DIGITS = tuple("0123456789")


@dataclass(frozen=True)
class Dataset:
    """One loaded dataset: train, validation and test arrays, class names, and where it came from.

    ``x_val`` / ``y_val`` are the dataset's own validation set (None when it has none: a trainer then holds
    out part of the training set itself). ``x_test`` / ``y_test`` are None only for Kaggle's files without an
    answer key; ``x_unlabelled`` holds images without labels (Kaggle's ``test.csv``, for a submission).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: tuple
    source: str = ""
    x_val: np.ndarray | None = field(default=None, repr=False)
    y_val: np.ndarray | None = field(default=None, repr=False)
    x_unlabelled: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def synthetic(self) -> bool:
        return "SYNTHETIC" in self.source

    def __repr__(self):
        parts = [f"train={self.x_train.shape} {self.x_train.dtype}"]
        parts += [f"{part}={x.shape}" for part, x in (("val", self.x_val), ("test", self.x_test)) if x is not None]
        return (f"Dataset(name={self.name!r}, {', '.join(parts)}, num_classes={self.num_classes}, "
                f"source={self.source!r})")
