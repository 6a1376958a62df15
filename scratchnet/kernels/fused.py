"""A fused training pass for logistic regression on a big batch: forward, loss gradient and backward in ONE read.

A one-unit sigmoid Dense layer trained with binary cross-entropy (the zoo's ``logreg``: 60,000 x 785
float64, 377 MB per step) is bound by memory, not arithmetic: the layer-by-layer step reads x twice
(``x @ kernel`` forward, ``x.T @ dlogits`` backward). Here each row is read once: its logit, its
gradient ``(sigmoid(z) - label) / N`` and its share of ``dkernel`` are done while the row is in cache
(figures: docs/performance.md). `logistic_regression_gradients` is the engine's twin of the readable op
of that name, and takes this path when the batch is large.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops import losses as reference
from scratchnet.runtime import threads

__all__ = ["FUSED_MIN_BYTES", "logistic_regression_gradients", "sigmoid_dense_gradients"]

FUSED_MIN_BYTES = 32 * 1024 * 1024
"""Batches smaller than this stay layer by layer: they fit in cache, so the second read is cheap.

Trades one fused pass against the readable layer-by-layer step. Retune with the last-level cache size."""


def logistic_regression_gradients(x, kernel, bias, labels):
    """The twin of `scratchnet.ops.losses.logistic_regression_gradients`: one pass over a big x.

    Small batches, and arrays the one-pass kernel does not take (another dtype or layout, labels of
    another shape), go to the reference, which reads x twice.
    """
    x, labels = np.asarray(x), np.asarray(labels)
    suits = (x.ndim == 2 and x.dtype in SUPPORTED_DTYPES and x.flags.c_contiguous and x.nbytes >= FUSED_MIN_BYTES
             and np.shape(kernel) == (x.shape[1], 1) and labels.shape == (len(x), 1)
             and np.asarray(kernel).dtype == x.dtype and labels.dtype == x.dtype
             and (bias is None or np.asarray(bias).dtype == x.dtype))
    if not suits:
        return reference.logistic_regression_gradients(x, kernel, bias, labels)
    return sigmoid_dense_gradients(x, kernel, bias, labels)


def sigmoid_dense_gradients(x, kernel, bias, labels):
    """One pass over x for ``loss = mean BCE(sigmoid(x @ kernel + bias), labels)`` with ONE output unit.

    x: (N, CI) C-contiguous; kernel: (CI, 1); bias: (1,) or None; labels: (N, 1); all of x's dtype
    (float32 or float64). Returns (logits (N, 1), dkernel (CI, 1), dbias (1,) or None), the same values
    as ``dense_forward`` then ``sigmoid_binary_cross_entropy_backward`` then ``dense_backward`` up to
    the order of the sums. The rows are cut into `scratchnet.runtime.threads.PARTS` slices whatever the
    thread count, and the slices' sums added in order: the same values at any thread count.
    """
    n, ci = x.shape
    dtype = x.dtype
    if dtype not in SUPPORTED_DTYPES or kernel.shape != (ci, 1) or labels.shape != (n, 1):
        raise ValueError(
            f"sigmoid_dense_gradients needs x (N, CI) float32/float64, kernel (CI, 1), labels (N, 1). "
            f"Received: x {x.shape} {dtype}, kernel {kernel.shape}, labels {labels.shape}"
        )
    x = np.ascontiguousarray(x)
    weights = np.ascontiguousarray(kernel[:, 0], dtype=dtype)
    flat_labels = np.ascontiguousarray(labels[:, 0], dtype=dtype)
    offset = dtype.type(0) if bias is None else dtype.type(bias[0])
    inv_size = dtype.type(1.0) / dtype.type(n)  # the reference's dloss / logits.size, dloss = 1
    logits = np.empty(n, dtype=dtype)
    bounds = threads.part_spans(n)

    def rows(span):
        dkernel = np.zeros(ci, dtype=dtype)
        dlogit_sum = np.zeros(1, dtype=dtype)
        _sigmoid_dense_rows(x, weights, flat_labels, (offset, inv_size), span, logits, dkernel, dlogit_sum)
        return dkernel, dlogit_sum

    results = threads.parallel_map(rows, bounds)
    dkernel = np.sum([r[0] for r in results], axis=0, dtype=dtype).reshape(ci, 1)
    dbias = None if bias is None else np.sum([r[1] for r in results], axis=0, dtype=dtype)
    return logits.reshape(n, 1), dkernel, dbias


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _sigmoid_dense_rows(x, w, labels, scalars, span, logits, dkernel, dlogit_sum):
    """Rows span = (r0, r1), two at a time: logit, dlogit = (sigmoid - label) * inv_size, dkernel += row * dlogit,
    with scalars = (offset, inv_size): the bias and 1 / N.

    The sigmoid is the reference's stable form (exp of -|z| only). ``reassoc`` lets the dot products
    vectorise (their summation order is free, as in BLAS); nothing else is reordered.
    """
    offset, inv_size = scalars
    r0, r1 = span
    k_size = x.shape[1]
    i = r0
    while i < r1:
        pair = i + 1 < r1
        s0 = offset
        s1 = offset
        if pair:
            for j in range(k_size):
                s0 += x[i, j] * w[j]
                s1 += x[i + 1, j] * w[j]
        else:
            for j in range(k_size):
                s0 += x[i, j] * w[j]
        e0 = np.exp(-abs(s0))
        d0 = ((1 / (1 + e0) if s0 >= 0 else e0 / (1 + e0)) - labels[i]) * inv_size
        logits[i] = s0
        dlogit_sum[0] += d0
        if pair:
            e1 = np.exp(-abs(s1))
            d1 = ((1 / (1 + e1) if s1 >= 0 else e1 / (1 + e1)) - labels[i + 1]) * inv_size
            logits[i + 1] = s1
            dlogit_sum[0] += d1
            for j in range(k_size):
                dkernel[j] += x[i, j] * d0 + x[i + 1, j] * d1
            i += 2
        else:
            for j in range(k_size):
                dkernel[j] += x[i, j] * d0
            i += 1
