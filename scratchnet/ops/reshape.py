"""Flattening each example of a batch into one row vector (Keras's Flatten), forward and backward."""

import numpy as np

from ._checks import check_dy

__all__ = ["flatten_forward", "flatten_backward"]


def flatten_forward(x):
    """Reshape (N, d1, d2, ...) to (N, d1*d2*...), in C (row-major) order.

    For an NHWC image batch (N, H, W, C) a row is laid out as (h, w, c): all channels of pixel
    (0, 0), then of pixel (0, 1), ... .

    Returns:
        y: (N, prod(d)), x's dtype (a view of x when x is contiguous).
        cache: (x.shape, x.dtype), for ``flatten_backward``.

    Notes: Keras's Flatten on NHWC data flattens in exactly this (h, w, c) order, so a dense
    kernel copied from Keras lines up row for row.
    """
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"`x` must have a batch axis. Received: x.shape={x.shape}")
    return x.reshape(x.shape[0], -1), (x.shape, x.dtype)


def flatten_backward(dy, cache):
    """Reshape the gradient (N, prod(d)) back to the input's shape (N, d1, d2, ...); a new array."""
    x_shape, dtype = cache
    flat_shape = (x_shape[0], int(np.prod(x_shape[1:])))
    dy = check_dy(dy, flat_shape, dtype, "flatten_backward")
    return dy.reshape(x_shape).copy()
