"""The softmax cross-entropy of a batch of logits in one pass per row: the twin of the readable loss op.

`scratchnet.ops.losses.softmax_cross_entropy_forward` spells the loss out in NumPy: a max, a shift, an
exp, a sum, a log, a subtraction, a gather, a mean, an exp again and a one-hot matrix: a dozen passes
and array allocations, each costing a few microseconds however small the batch. The classifiers train on
batches of 16 to 100 rows of 10 to 62 classes, where those calls took 58 us of notmnist_cnn's 4 ms step
(16 x 10 logits) while the arithmetic is a fraction of a microsecond. Here each row is read once and its
probabilities, its one-hot row and its share of the loss are written in the same loop. The validation, the
cache and the backward are the reference's.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops import losses as reference
from scratchnet.ops._checks import float_array

__all__ = ["softmax_cross_entropy_forward"]


def softmax_cross_entropy_forward(logits, labels):
    """The twin of `scratchnet.ops.losses.softmax_cross_entropy_forward`: the same loss, the same cache
    (probabilities, label rows) for the reference's backward, the same errors.

    The row sums are those of the reference (``log_softmax(z) = z - m - log(sum_j exp(z_j - m))``, in the
    logits' dtype); the batch mean is summed in float64, where NumPy's pairwise float32 mean may differ in
    the last bit. Logits of another dtype go to the reference.
    """
    logits = float_array(logits, "logits", ndim=2)
    reference.check_batch(logits, "logits")
    kind, labels = reference.class_labels(labels, logits)
    if logits.dtype not in SUPPORTED_DTYPES:
        return reference.softmax_cross_entropy_forward(logits, labels)
    logits = np.ascontiguousarray(logits)
    probs = np.empty_like(logits)
    if kind == "sparse":
        rows = np.zeros_like(logits)
        total = _sparse_rows(logits, labels, probs, rows)
    else:
        rows = labels
        total = _dense_rows(logits, np.ascontiguousarray(labels), probs)
    return logits.dtype.type(-(total / logits.shape[0])), (probs, rows)


@njit(cache=True, nogil=True, inline="always")
def _log_softmax_row(z, out):
    """out = log_softmax(z) of one row, as the reference computes it: z - m - log(sum exp(z - m))."""
    m = z[0]
    for k in range(1, z.size):
        m = max(m, z[k])
    total = z.dtype.type(0.0)
    for k in range(z.size):
        total += np.exp(z[k] - m)
    log_total = np.log(total)
    for k in range(z.size):
        out[k] = (z[k] - m) - log_total


@njit(cache=True, nogil=True)
def _sparse_rows(logits, ids, probs, rows):
    """probs = softmax(logits), rows = one_hot(ids); returns the sum over rows of log_softmax at the row's id
    (float64)."""
    total = 0.0
    for n in range(logits.shape[0]):
        _log_softmax_row(logits[n], probs[n])
        total += probs[n, ids[n]]
        rows[n, ids[n]] = 1.0
        for k in range(logits.shape[1]):
            probs[n, k] = np.exp(probs[n, k])
    return total


@njit(cache=True, nogil=True)
def _dense_rows(logits, labels, probs):
    """probs = softmax(logits); returns the sum over rows of sum_k labels * log_softmax (float64)."""
    total = 0.0
    for n in range(logits.shape[0]):
        _log_softmax_row(logits[n], probs[n])
        row = probs.dtype.type(0.0)
        for k in range(logits.shape[1]):
            row += labels[n, k] * probs[n, k]
            probs[n, k] = np.exp(probs[n, k])
        total += row
    return total
