"""Element-wise activations (relu, sigmoid) and the softmax, forward and backward, numerically stable.

Every function works on arrays of any shape (softmax acts along the last axis) and keeps the dtype.
"""

import numpy as np

from ._checks import check_dy, float_array

__all__ = [
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "softmax_forward",
    "softmax_backward",
]


def relu_forward(x):
    """Rectified linear unit: ``y = max(x, 0)``.

    Returns:
        y: x's shape and dtype; cache: x, for ``relu_backward``.
    """
    x = float_array(x, "x")
    return np.maximum(x, 0), x


def relu_backward(dy, cache):
    """``dx = dy`` where ``x > 0`` and 0 elsewhere.

    Notes: the gradient at exactly x == 0 is 0, as in TensorFlow (``tf.nn.relu``'s gradient
    uses ``x > 0``).
    """
    x = cache
    dy = check_dy(dy, x.shape, x.dtype, "relu_backward")
    return np.where(x > 0, dy, 0).astype(x.dtype, copy=False)


def sigmoid(x):
    """The logistic function ``1 / (1 + exp(-x))`` computed without overflow, x's dtype.

    ``exp`` is only ever taken of ``-|x| <= 0``, so it never overflows:
    for x >= 0, ``1 / (1 + exp(-x))``; for x < 0, the equal ``exp(x) / (1 + exp(x))``.
    """
    e = np.exp(-np.abs(x))  # in (0, 1]
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_forward(x):
    """Logistic sigmoid ``y = 1 / (1 + exp(-x))``, stable at any magnitude (no overflow at ±1000).

    Returns:
        y: x's shape and dtype, in [0, 1]; cache: y, for ``sigmoid_backward``.
    """
    x = float_array(x, "x")
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dy, cache):
    """``dx = dy * y * (1 - y)``, using the forward's output y."""
    y = cache
    dy = check_dy(dy, y.shape, y.dtype, "sigmoid_backward")
    return dy * y * (1 - y)


def softmax_forward(x):
    """Softmax over the last axis: ``y[..., k] = exp(x[..., k]) / sum_j exp(x[..., j])``.

    Stable: the row maximum is subtracted first (softmax does not change under a shift), so every
    exponent is <= 0 and nothing overflows.

    Returns:
        y: x's shape and dtype, rows summing to 1; cache: y, for ``softmax_backward``.
    """
    x = float_array(x, "x")
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    y = e / e.sum(axis=-1, keepdims=True)
    return y, y


def softmax_backward(dy, cache):
    """Vector-Jacobian product of softmax, row by row.

    The Jacobian is ``dy_k/dx_j = y_k (delta_kj - y_j)``, so
    ``dx_j = y_j * (dy_j - sum_k dy_k y_k)`` (the full C x C Jacobian is never built).
    """
    y = cache
    dy = check_dy(dy, y.shape, y.dtype, "softmax_backward")
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
