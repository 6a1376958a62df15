"""Two-dimensional pooling over NHWC batches (max, average, global average, global max), in plain NumPy.

Shapes: x is (N, H, W, C), the window is PH x PW, the output is (N, OH, OW, C); the global poolings
give (N, C).

The forward pass looks at every window at once: ``sliding_window_view`` gives all of them as a
view of the padded input (nothing copied), we keep every stride-th one, flatten each window to
PH*PW values, and ``argmax`` picks the position of its maximum. The backward pass sends each
window's gradient to that one position, summing where windows overlap, with one vectorised
``+=`` per window offset (PH*PW of them), exactly as the convolution's col2im does.

Notes: TensorFlow pads "same" max-pooling with -infinity, so a padded cell is never the maximum,
and on the CPU it routes a window's whole gradient to ONE maximum, the first in row-major order
within the window (``argmax`` returns the first of equal maxima, so ties behave the same here).
``tf.reduce_max`` would instead split the gradient of a tie equally; max-pooling does not.

Average pooling sums each window the same way and divides by the number of REAL cells in it: TensorFlow's
"same" average pooling leaves padded cells out of the count (a corner window of a 2x2 pool may average
one value). Global pooling reduces over all of H and W at once, as Keras's GlobalAveragePooling2D and
GlobalMaxPooling2D (``reduce_mean`` / ``reduce_max``).
"""

import numpy as np

from ._checks import check_dy, float_array, int_pair, padding_mode, training_cache
from .conv import _spatial_plan, _windows

__all__ = [
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "global_max_pool2d_forward",
    "global_max_pool2d_backward",
]


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid", training=True):
    """Max-pooling: ``y[n, oh, ow, c] = max_{i, j} x_pad[n, oh*sh + i, ow*sw + j, c]``.

    Args:
        x: (N, H, W, C) float array.
        pool_size: int or (PH, PW), the window size.
        strides: int or (sh, sw); None means ``pool_size`` (the Keras default).
        padding: "same" or "valid" (case-insensitive), TensorFlow's rules (see
            ``conv.padding_amounts``); windows may overlap when the stride is smaller than the pool.
        training: False (``predict``, ``evaluate``: no backward follows) takes only the maxima, not
            where they are, and keeps no cache.

    Returns:
        y: (N, OH, OW, C), x's dtype.
        cache: (x.shape, x.dtype, argmax, (PH, PW), (sh, sw), padding) where ``argmax`` (N, OH, OW, C) is
        the row-major index ``i * PW + j`` of the chosen maximum inside each window; None when not training.

    Notes: padded cells are -inf (never chosen); of equal maxima the first in row-major order
    wins, as on TensorFlow's CPU.
    """
    x = float_array(x, "x", ndim=4)
    pool = int_pair(pool_size, "pool_size")
    strides = pool if strides is None else int_pair(strides, "strides")
    padding = padding_mode(padding)
    (oh, ow), pads = _spatial_plan(x.shape, pool, strides, padding)

    x_padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    windows = _windows(x_padded, pool, strides, (oh, ow))  # (N, OH, OW, C, PH, PW)
    if not training:
        return windows.max(axis=(-2, -1)), None
    flat_windows = windows.reshape(*windows.shape[:4], pool[0] * pool[1])
    argmax = flat_windows.argmax(axis=-1)  # the FIRST maximum of each window
    y = np.take_along_axis(flat_windows, argmax[..., np.newaxis], axis=-1)[..., 0]
    return y, (x.shape, x.dtype, argmax, pool, strides, padding)


def max_pool2d_backward(dy, cache):
    """Gradient of max-pooling: each window's ``dy`` goes to the one input cell it took the max of.

    ``dx[n, oh*sh + i, ow*sw + j, c] += dy[n, oh, ow, c]`` where (i, j) is that window's argmax;
    overlapping windows that chose the same cell add up, every other cell gets 0.

    Args:
        dy: (N, OH, OW, C) gradient of the loss with respect to y.
        cache: from ``max_pool2d_forward`` with training=True.

    Returns:
        dx: (N, H, W, C), the forward input's dtype; a new array.
    """
    x_shape, dtype, argmax, (ph, pw), (sh, sw), padding = training_cache(cache, "max_pool2d_backward")
    (oh, ow), ((top, bottom), (left, right)) = _spatial_plan(x_shape, (ph, pw), (sh, sw), padding)
    dy = check_dy(dy, argmax.shape, dtype, "max_pool2d_backward")

    n, h, w, c = x_shape
    dx_padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dtype)
    for i in range(ph):
        for j in range(pw):
            rows = slice(i, i + (oh - 1) * sh + 1, sh)
            cols = slice(j, j + (ow - 1) * sw + 1, sw)
            dx_padded[:, rows, cols, :] += np.where(argmax == i * pw + j, dy, 0)
    return dx_padded[:, top : top + h, left : left + w, :].copy()


def _window_plan(x, pool_size, strides, padding):
    """Validated ((PH, PW), (sh, sw), padding, (OH, OW), pads) for pooling x, Keras's defaults."""
    pool = int_pair(pool_size, "pool_size")
    strides = pool if strides is None else int_pair(strides, "strides")
    padding = padding_mode(padding)
    out_shape, pads = _spatial_plan(x.shape, pool, strides, padding)
    return pool, strides, padding, out_shape, pads


def _cells_per_window(x_shape, pool, strides, padding):
    """(OH, OW) count of the real (unpadded) input cells in each window."""
    (oh, ow), pads = _spatial_plan(x_shape, pool, strides, padding)
    real = np.pad(np.ones(x_shape[1:3]), pads)[np.newaxis, :, :, np.newaxis]
    return _windows(real, pool, strides, (oh, ow)).sum(axis=(-2, -1))[0, :, :, 0]


def avg_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Average pooling: ``y[n, oh, ow, c] = sum_{i, j} x_pad[n, oh*sh + i, ow*sw + j, c] / count[oh, ow]``.

    ``count[oh, ow]`` is the number of real input cells in window (oh, ow): PH * PW with "valid", fewer
    at the edges with "same" (padded cells are left out of both the sum and the count).

    Args:
        x: (N, H, W, C) float array.
        pool_size: int or (PH, PW).
        strides: int or (sh, sw); None means ``pool_size`` (the Keras default).
        padding: "same" or "valid" (case-insensitive), TensorFlow's rules (``conv.padding_amounts``).

    Returns:
        y: (N, OH, OW, C), x's dtype.
        cache: (x.shape, x.dtype, (PH, PW), (sh, sw), padding), for ``avg_pool2d_backward``.

    Notes: as ``tf.nn.avg_pool2d`` (Keras's AveragePooling2D), whose "same" padding divides by the count
    of real cells, not by PH * PW.
    """
    x = float_array(x, "x", ndim=4)
    pool, strides, padding, out_shape, pads = _window_plan(x, pool_size, strides, padding)
    x_padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    sums = _windows(x_padded, pool, strides, out_shape).sum(axis=(-2, -1))  # (N, OH, OW, C)
    counts = _cells_per_window(x.shape, pool, strides, padding).astype(x.dtype)
    y = sums / counts[np.newaxis, :, :, np.newaxis]
    return y, (x.shape, x.dtype, pool, strides, padding)


def avg_pool2d_backward(dy, cache):
    """Gradient of average pooling: every cell of a window gets that window's ``dy / count``.

    ``dx[n, oh*sh + i, ow*sw + j, c] += dy[n, oh, ow, c] / count[oh, ow]`` for every (i, j) of the
    window; overlapping windows add up; padded cells are cut off at the end.

    Returns:
        dx: (N, H, W, C), the forward input's dtype; a new array.
    """
    x_shape, dtype, (ph, pw), (sh, sw), padding = cache
    (oh, ow), ((top, bottom), (left, right)) = _spatial_plan(x_shape, (ph, pw), (sh, sw), padding)
    n, h, w, c = x_shape
    dy = check_dy(dy, (n, oh, ow, c), dtype, "avg_pool2d_backward")
    counts = _cells_per_window(x_shape, (ph, pw), (sh, sw), padding).astype(dtype)
    share = dy / counts[np.newaxis, :, :, np.newaxis]

    dx_padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dtype)
    for i in range(ph):
        for j in range(pw):
            dx_padded[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :] += share
    return dx_padded[:, top : top + h, left : left + w, :].copy()


def global_avg_pool2d_forward(x):
    """Mean over all positions of each channel: ``y[n, c] = sum_{h, w} x[n, h, w, c] / (H * W)``.

    Returns:
        y: (N, C), x's dtype; cache: (x.shape, x.dtype), for ``global_avg_pool2d_backward``.

    Notes: Keras's GlobalAveragePooling2D is ``reduce_mean`` over axes 1 and 2 (its ``keepdims=True``
    is the layer's reshape to (N, 1, 1, C)).
    """
    x = float_array(x, "x", ndim=4)
    return x.mean(axis=(1, 2)), (x.shape, x.dtype)


def global_avg_pool2d_backward(dy, cache):
    """``dx[n, h, w, c] = dy[n, c] / (H * W)``: the mean spreads its gradient evenly. A new array."""
    (n, h, w, c), dtype = cache
    dy = check_dy(dy, (n, c), dtype, "global_avg_pool2d_backward")
    return np.broadcast_to((dy / (h * w))[:, np.newaxis, np.newaxis, :], (n, h, w, c)).copy()


def global_max_pool2d_forward(x):
    """Maximum over all positions of each channel: ``y[n, c] = max_{h, w} x[n, h, w, c]``.

    Returns:
        y: (N, C), x's dtype; cache: (x, y), for ``global_max_pool2d_backward``.

    Notes: Keras's GlobalMaxPooling2D is ``reduce_max`` over axes 1 and 2, whose gradient SPLITS a tie
    equally among the tied cells (unlike MaxPooling2D, which gives it all to the first).
    """
    x = float_array(x, "x", ndim=4)
    y = x.max(axis=(1, 2))
    return y, (x, y)


def global_max_pool2d_backward(dy, cache):
    """``dx = dy / k`` at each of the k cells equal to their channel's maximum, 0 elsewhere (TF's rule).

    Returns:
        dx: (N, H, W, C), x's dtype.
    """
    x, y = cache
    n, _, _, c = x.shape
    dy = check_dy(dy, (n, c), x.dtype, "global_max_pool2d_backward")
    is_max = (x == y[:, np.newaxis, np.newaxis, :]).astype(x.dtype)
    ties = is_max.sum(axis=(1, 2), keepdims=True)
    return is_max / ties * dy[:, np.newaxis, np.newaxis, :]  # TF's order: (indicator / k) * dy
