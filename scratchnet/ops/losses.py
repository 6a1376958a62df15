"""Losses, forward and backward: cross-entropies (from logits and from probabilities, numerically
stable) and the regression losses mean squared and mean absolute error.

Every loss is the MEAN over the batch and is returned as a 0-d NumPy scalar of the predictions'
dtype. Every backward has the signature ``<name>_backward(dloss, cache)``, where ``dloss`` is the
gradient of the final objective with respect to this loss (1.0 when the loss is the objective),
and returns the gradient with respect to the forward's FIRST argument (logits or probabilities).

Shapes: N examples, C classes. Labels are either integer class ids (N,) ("sparse") or rows (N, C)
of one-hot vectors or probabilities ("dense").
"""

import numpy as np

from ._checks import float_array
from .activations import sigmoid
from .dense import dense_backward, dense_forward

__all__ = [
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "sigmoid_binary_cross_entropy_forward",
    "sigmoid_binary_cross_entropy_backward",
    "categorical_cross_entropy_forward",
    "categorical_cross_entropy_backward",
    "binary_cross_entropy_forward",
    "binary_cross_entropy_backward",
    "logistic_regression_gradients",
    "mean_squared_error_forward",
    "mean_squared_error_backward",
    "mean_absolute_error_forward",
    "mean_absolute_error_backward",
]

EPSILON = 1e-7
"""Keras's ``backend.epsilon()``: probabilities are clipped to [EPSILON, 1 - EPSILON] before a log."""


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _scalar(value, dtype):
    """A 0-d NumPy scalar of ``dtype`` (so a float32 loss never becomes a float64)."""
    return np.dtype(dtype).type(value)


def _dloss(dloss, dtype):
    """The upstream gradient as a 0-d array of ``dtype`` (a float64 NumPy scalar would promote)."""
    dloss = np.asarray(dloss)
    if dloss.size != 1:
        raise ValueError(
            f"`dloss` must be a scalar (the loss is a scalar). Received: dloss.shape={dloss.shape}"
        )
    return dloss.reshape(()).astype(dtype)


def class_labels(labels, predictions):
    """Validate labels against (N, C) predictions; return ("sparse", ids) or ("dense", rows).

    Sparse ids (N,) (or (N, 1), as Keras accepts) are integers in [0, C); dense rows are (N, C),
    cast to the predictions' dtype.
    """
    n, c = predictions.shape
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape == (n, 1) and c != 1 and np.issubdtype(labels.dtype, np.integer):
        labels = labels[:, 0]
    if labels.ndim == 1:
        if labels.shape[0] != n:
            raise ValueError(
                f"Sparse `labels` must have one class id per example ({n}). "
                f"Received: labels.shape={labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            ids = labels.astype(np.int64) if np.issubdtype(labels.dtype, np.floating) else None
            if ids is None or not np.array_equal(ids, labels):
                raise ValueError(
                    f"Sparse `labels` must be integer class ids. Received: labels.dtype={labels.dtype}"
                )
            labels = ids
        if labels.size and (labels.min() < 0 or labels.max() >= c):
            raise ValueError(
                f"Sparse `labels` must lie in [0, {c}). "
                f"Received: labels in [{labels.min()}, {labels.max()}]"
            )
        return "sparse", labels
    if labels.shape != (n, c):
        raise ValueError(
            f"`labels` must be class ids ({n},) or rows ({n}, {c}) matching the predictions. "
            f"Received: labels.shape={labels.shape}"
        )
    return "dense", labels.astype(predictions.dtype, copy=False)


def _one_hot(ids, num_classes, dtype):
    """(N,) class ids -> (N, C) one-hot rows."""
    rows = np.zeros((ids.shape[0], num_classes), dtype=dtype)
    rows[np.arange(ids.shape[0]), ids] = 1
    return rows


def _same_shape_labels(labels, predictions):
    """Binary labels: same shape as the predictions, cast to their dtype."""
    labels = np.asarray(labels)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"`labels` must have the predictions' shape {predictions.shape}. "
            f"Received: labels.shape={labels.shape}"
        )
    return labels.astype(predictions.dtype, copy=False)


def check_batch(predictions, name):
    """Predictions need a batch axis with at least one example."""
    if predictions.ndim < 1 or predictions.shape[0] == 0:
        raise ValueError(
            f"`{name}` must hold a batch of at least one example. Received: {name}.shape={predictions.shape}"
        )


# ----------------------------------------------------------------------------------------------
# Softmax cross-entropy from logits
# ----------------------------------------------------------------------------------------------


def softmax_cross_entropy_forward(logits, labels):
    """Mean softmax cross-entropy of logits against labels.

    ``log_softmax(z) = z - m - log(sum_j exp(z_j - m))`` with ``m = max_j z_j`` (stable: no
    overflow at ±1000 and never log(0)); ``loss = -mean_n sum_k labels[n, k] * log_softmax(z)[n, k]``
    (for sparse labels, ``-mean_n log_softmax(z)[n, labels[n]]``).

    Args:
        logits: (N, C) float array.
        labels: (N,) integer class ids, or (N, C) one-hot / probability rows.

    Returns:
        loss: 0-d scalar of logits' dtype; cache for ``softmax_cross_entropy_backward``.

    Notes: the same quantity as ``tf.nn.softmax_cross_entropy_with_logits`` /
    ``tf.nn.sparse_softmax_cross_entropy_with_logits`` averaged over the batch, and what Keras
    computes for a softmax output layer (it reads the logits, no clipping).
    """
    logits = float_array(logits, "logits", ndim=2)
    check_batch(logits, "logits")
    kind, labels = class_labels(labels, logits)
    n, c = logits.shape
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    if kind == "sparse":
        loss = -log_probs[np.arange(n), labels].mean()
        labels = _one_hot(labels, c, logits.dtype)
    else:
        loss = -(labels * log_probs).sum(axis=1).mean()
    return _scalar(loss, logits.dtype), (np.exp(log_probs), labels)


def softmax_cross_entropy_backward(dloss, cache):
    """``dlogits = dloss * (softmax(logits) - labels) / N`` (labels as rows; sparse ids made one-hot).

    Returns:
        dlogits: (N, C), logits' dtype.
    """
    probs, label_rows = cache
    dloss = _dloss(dloss, probs.dtype)
    return (probs - label_rows) * (dloss / probs.shape[0])


# ----------------------------------------------------------------------------------------------
# Binary cross-entropy from logits (sigmoid fused in)
# ----------------------------------------------------------------------------------------------


def sigmoid_binary_cross_entropy_forward(logits, labels):
    """Mean binary cross-entropy of ``sigmoid(logits)`` against 0/1 (or soft) labels, from the logits.

    Mathematically ``-mean(y log p + (1 - y) log(1 - p))`` with ``p = sigmoid(z)``; computed in the
    stable form ``max(z, 0) - z * y + log1p(exp(-|z|))``, which never overflows and never takes
    log(0), even for |z| in the thousands (raw 0..255 pixels make large logits).

    Args:
        logits: (N, ...) float array, e.g. (N, 1).
        labels: same shape, values in [0, 1].

    Returns:
        loss: 0-d scalar of logits' dtype, the mean over every element (for (N, 1), the mean over the
        batch); cache for ``sigmoid_binary_cross_entropy_backward``.

    Notes: the formula of ``tf.nn.sigmoid_cross_entropy_with_logits``; Keras's binary
    cross-entropy averages over the last axis and then the batch, i.e. over every element.
    """
    logits = float_array(logits, "logits")
    check_batch(logits, "logits")
    labels = _same_shape_labels(labels, logits)
    per_element = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    return _scalar(per_element.mean(), logits.dtype), (logits, labels)


def sigmoid_binary_cross_entropy_backward(dloss, cache):
    """``dlogits = dloss * (sigmoid(logits) - labels) / size`` (size = N for (N, 1) logits).

    Returns:
        dlogits: logits' shape and dtype.
    """
    logits, labels = cache
    dloss = _dloss(dloss, logits.dtype)
    return (sigmoid(logits) - labels) * (dloss / logits.size)


def logistic_regression_gradients(x, kernel, bias, labels):
    """One training pass of logistic regression: its logits and the gradients of its loss, in one op.

    The model is one Dense unit with a sigmoid, trained with mean binary cross-entropy:
    ``z = x @ kernel + bias``, ``loss = mean BCE(sigmoid(z), labels)``, whose gradients are the textbook
    ``dkernel = x.T @ (sigmoid(z) - labels) / N`` and ``dbias = sum(sigmoid(z) - labels) / N``. This is
    `dense_forward`, `sigmoid_binary_cross_entropy_backward` and `dense_backward` in a row (no dx: x is the
    data).

    Args:
        x: (N, CI) float array; kernel: (CI, 1); bias: (1,) or None; labels: (N, 1) in [0, 1].

    Returns:
        (logits (N, 1), dkernel (CI, 1), dbias (1,) or None), in x's dtype.

    Notes: bundled as one op because it reads x twice (forward and backward) and nothing else: the numba
    twin reads each row once, for both.
    """
    logits, dense_cache = dense_forward(x, kernel, bias)
    _, loss_cache = sigmoid_binary_cross_entropy_forward(logits, labels)
    dlogits = sigmoid_binary_cross_entropy_backward(1.0, loss_cache)
    _, dkernel, dbias = dense_backward(dlogits, dense_cache, need_dx=False)
    return logits, dkernel, dbias


# ----------------------------------------------------------------------------------------------
# Cross-entropies from probabilities (Keras's from_logits=False forms)
# ----------------------------------------------------------------------------------------------


def categorical_cross_entropy_forward(probs, labels):
    """Mean categorical cross-entropy of predicted class probabilities, as Keras computes it.

    Dense labels (N, C) (Keras's ``categorical_crossentropy``): the rows are renormalised,
    ``q = p / sum_j p_j``, clipped, ``c = clip(q, EPSILON, 1 - EPSILON)``, and
    ``loss = -mean_n sum_k labels[n, k] * log(c[n, k])``.

    Sparse labels (N,) (Keras's ``sparse_categorical_crossentropy``): clipped WITHOUT
    renormalising, ``c = clip(p, EPSILON, 1 - EPSILON)``, and then the log-probabilities go through
    a log-softmax, which renormalises: ``loss = -mean_n (log c[n, label] - log sum_j c[n, j])``.

    Args:
        probs: (N, C) probabilities (e.g. a softmax output).
        labels: (N,) integer class ids or (N, C) rows.

    Returns:
        loss: 0-d scalar of probs' dtype; cache for ``categorical_cross_entropy_backward``.

    Notes: Keras 3's two paths differ only when clipping moves a row's sum away from 1; both are
    reproduced exactly. Clipping bounds are cast to probs' dtype (in float32, 1 - 1e-7 rounds).
    """
    probs = float_array(probs, "probs", ndim=2)
    check_batch(probs, "probs")
    kind, labels = class_labels(labels, probs)
    n, c = probs.shape
    low, high = _scalar(EPSILON, probs.dtype), _scalar(1 - EPSILON, probs.dtype)
    if kind == "sparse":
        clipped = np.clip(probs, low, high)
        row_sums = clipped.sum(axis=1)
        loss = -(np.log(clipped[np.arange(n), labels]) - np.log(row_sums)).mean()
        return _scalar(loss, probs.dtype), (kind, probs, labels, low, high)
    row_sums = probs.sum(axis=1, keepdims=True)
    clipped = np.clip(probs / row_sums, low, high)
    loss = -(labels * np.log(clipped)).sum(axis=1).mean()
    return _scalar(loss, probs.dtype), (kind, probs, labels, low, high)


def categorical_cross_entropy_backward(dloss, cache):
    """Gradient of ``categorical_cross_entropy_forward`` with respect to the probabilities.

    The clip passes gradient only where ``EPSILON <= value <= 1 - EPSILON`` (as tf.clip_by_value).

    * Dense: with ``s = sum_j p_j``, ``q = p / s`` and ``g_k = -labels_k / c_k`` (0 where clipped),
      the renormalisation's Jacobian ``dq_j/dp_k = (delta_jk - q_j) / s`` gives
      ``dp_k = (g_k - sum_j g_j q_j) / s``.
    * Sparse: ``dc_k = -[k == label] / c_k + 1 / sum_j c_j``, then 0 where clipped.

    Both are finally scaled by ``dloss / N``.

    Returns:
        dprobs: (N, C), probs' dtype.
    """
    kind, probs, labels, low, high = cache
    dloss = _dloss(dloss, probs.dtype)
    n, c = probs.shape
    if kind == "sparse":
        clipped = np.clip(probs, low, high)
        one_hot = _one_hot(labels, c, probs.dtype)
        dclipped = -one_hot / clipped + 1 / clipped.sum(axis=1, keepdims=True)
        dprobs = np.where((probs >= low) & (probs <= high), dclipped, 0)
    else:
        row_sums = probs.sum(axis=1, keepdims=True)
        q = probs / row_sums
        clipped = np.clip(q, low, high)
        dq = np.where((q >= low) & (q <= high), -labels / clipped, 0)
        dprobs = (dq - (dq * q).sum(axis=1, keepdims=True)) / row_sums
    return (dprobs * (dloss / n)).astype(probs.dtype, copy=False)


def binary_cross_entropy_forward(probs, labels):
    """Mean binary cross-entropy of predicted probabilities, as Keras computes it.

    ``c = clip(p, EPSILON, 1 - EPSILON)``, ``loss = -mean(y log c + (1 - y) log(1 - c))``
    over every element (for (N, 1), over the batch).

    Args:
        probs: (N, ...) probabilities, e.g. a sigmoid output of shape (N, 1).
        labels: same shape, values in [0, 1].

    Returns:
        loss: 0-d scalar of probs' dtype; cache for ``binary_cross_entropy_backward``.

    Notes: Keras 3 clips to [1e-7, 1 - 1e-7] and takes plain logs (no "+ epsilon" inside the log).
    With probabilities as input, an exact 0 or 1 is clipped, so large logits saturate the loss at
    about 16.1 (-log 1e-7): use ``sigmoid_binary_cross_entropy_forward`` when you have logits.
    """
    probs = float_array(probs, "probs")
    check_batch(probs, "probs")
    labels = _same_shape_labels(labels, probs)
    low, high = _scalar(EPSILON, probs.dtype), _scalar(1 - EPSILON, probs.dtype)
    clipped = np.clip(probs, low, high)
    per_element = -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    return _scalar(per_element.mean(), probs.dtype), (probs, labels, low, high)


def binary_cross_entropy_backward(dloss, cache):
    """``dprobs = dloss * (-(y / c) + (1 - y) / (1 - c)) / size``, 0 where the clip was active.

    Returns:
        dprobs: probs' shape and dtype.
    """
    probs, labels, low, high = cache
    dloss = _dloss(dloss, probs.dtype)
    clipped = np.clip(probs, low, high)
    dclipped = -labels / clipped + (1 - labels) / (1 - clipped)
    dprobs = np.where((probs >= low) & (probs <= high), dclipped, 0)
    return (dprobs * (dloss / probs.size)).astype(probs.dtype, copy=False)


# ----------------------------------------------------------------------------------------------
# Regression losses
# ----------------------------------------------------------------------------------------------


def mean_squared_error_forward(predictions, labels):
    """Mean squared error over every element: ``loss = mean((predictions - labels)^2)``.

    Args:
        predictions: (N, ...) float array.
        labels: the same shape (cast to the predictions' dtype).

    Returns:
        loss: 0-d scalar of the predictions' dtype; cache for ``mean_squared_error_backward``.

    Notes: Keras's ``mean_squared_error`` averages over the last axis and its default reduction
    (``sum_over_batch_size``) then over the batch: for equal-sized rows, the mean over every element.
    Unlike Keras, labels must have the predictions' shape (Keras would broadcast (N, 1) labels against
    (N, C) outputs without a word).
    """
    predictions = float_array(predictions, "predictions")
    check_batch(predictions, "predictions")
    labels = _same_shape_labels(labels, predictions)
    difference = predictions - labels
    return _scalar((difference * difference).mean(), predictions.dtype), difference


def mean_squared_error_backward(dloss, cache):
    """``dpredictions = dloss * 2 * (predictions - labels) / size``.

    Returns:
        dpredictions: the predictions' shape and dtype.
    """
    difference = cache
    dloss = _dloss(dloss, difference.dtype)
    return difference * (2 * dloss / difference.size)


def mean_absolute_error_forward(predictions, labels):
    """Mean absolute error over every element: ``loss = mean(|predictions - labels|)``.

    Args:
        predictions: (N, ...) float array.
        labels: the same shape (cast to the predictions' dtype).

    Returns:
        loss: 0-d scalar of the predictions' dtype; cache for ``mean_absolute_error_backward``.

    Notes: as Keras's ``mean_absolute_error`` with its default reduction (see
    ``mean_squared_error_forward``).
    """
    predictions = float_array(predictions, "predictions")
    check_batch(predictions, "predictions")
    labels = _same_shape_labels(labels, predictions)
    difference = predictions - labels
    return _scalar(np.abs(difference).mean(), predictions.dtype), difference


def mean_absolute_error_backward(dloss, cache):
    """``dpredictions = dloss * sign(predictions - labels) / size``; 0 where they are equal (TF's |x|' at 0).

    Returns:
        dpredictions: the predictions' shape and dtype.
    """
    difference = cache
    dloss = _dloss(dloss, difference.dtype)
    return np.sign(difference) * (dloss / difference.size)
