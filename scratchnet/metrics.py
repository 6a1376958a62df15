"""Accuracy metrics with Keras's names, each giving one score per example (1.0 right, 0.0 wrong).

``Sequential`` sums these scores over batches and divides by the number of examples, which is how Keras
accumulates accuracy over an epoch. ``get("accuracy", loss)`` picks the variant that fits the loss.
"""

import numpy as np

__all__ = ["sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy", "get"]


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the highest-scoring class of ``y_pred`` (N, C) equals the class id ``y_true`` (N,)."""
    return (np.argmax(y_pred, axis=-1) == np.reshape(y_true, -1)).astype(y_pred.dtype)


def categorical_accuracy(y_true, y_pred):
    """1.0 where the highest-scoring classes of ``y_pred`` and the one-hot ``y_true`` (N, C) agree."""
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(y_pred.dtype)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of the outputs of each example where ``y_pred > threshold`` equals the 0/1 ``y_true``.

    Notes: like Keras, the prediction is thresholded with ``>`` (0.5 itself counts as class 0) and
    the result averaged over the last axis.
    """
    hits = (y_pred > threshold).astype(y_pred.dtype) == y_true
    return hits.reshape(len(y_pred), -1).mean(axis=1).astype(y_pred.dtype)


_FUNCTIONS = {f.__name__: f for f in (sparse_categorical_accuracy, categorical_accuracy, binary_accuracy)}
_FOR_LOSS = {
    "SparseCategoricalCrossentropy": sparse_categorical_accuracy,
    "CategoricalCrossentropy": categorical_accuracy,
    "BinaryCrossentropy": binary_accuracy,
}


def get(identifier, loss=None):
    """Return a metric function from its name; "accuracy" (or "acc") resolves by the loss, as in Keras."""
    if callable(identifier):
        return identifier
    if identifier in ("accuracy", "acc"):
        if loss is None or type(loss).__name__ not in _FOR_LOSS:
            raise ValueError(f"Cannot tell which accuracy {identifier!r} means for loss={loss!r}")
        return _FOR_LOSS[type(loss).__name__]
    if identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]
    raise ValueError(f"Unknown metric: {identifier!r}. Known names: {['accuracy', *_FUNCTIONS]}")
