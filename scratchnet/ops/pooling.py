"""Two-dimensional max-pooling over NHWC batches, forward and backward, in plain NumPy.

Shapes: x is (N, H, W, C), the window is PH x PW, the output is (N, OH, OW, C).

The forward pass looks at every window at once: ``sliding_window_view`` gives all of them as a
view of the padded input (nothing copied), we keep every stride-th one, flatten each window to
PH*PW values, and ``argmax`` picks the position of its maximum. The backward pass sends each
window's gradient to that one position, summing where windows overlap, with one vectorised
``+=`` per window offset (PH*PW of them), exactly as the convolution's col2im does.

Notes: TensorFlow pads "same" max-pooling with -infinity, so a padded cell is never the maximum,
and on the CPU it routes a window's whole gradient to ONE maximum, the first in row-major order
within the window (``argmax`` returns the first of equal maxima, so ties behave the same here).
``tf.reduce_max`` would instead split the gradient of a tie equally; max-pooling does not.
"""

import numpy as np

from ._checks import check_dy, float_array, int_pair, padding_mode
from .conv import _spatial_plan, _windows

__all__ = ["max_pool2d_forward", "max_pool2d_backward"]


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Max-pooling: ``y[n, oh, ow, c] = max_{i, j} x_pad[n, oh*sh + i, ow*sw + j, c]``.

    Args:
        x: (N, H, W, C) float array.
        pool_size: int or (PH, PW), the window size.
        strides: int or (sh, sw); None means ``pool_size`` (the Keras default).
        padding: "same" or "valid" (case-insensitive), TensorFlow's rules (see
            ``conv.padding_amounts``); windows may overlap when the stride is smaller than the pool.

    Returns:
        y: (N, OH, OW, C), x's dtype.
        cache: (x.shape, x.dtype, argmax, (PH, PW), (sh, sw), padding) where ``argmax`` (N, OH, OW, C) is
        the row-major index ``i * PW + j`` of the chosen maximum inside each window.

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
        cache: from ``max_pool2d_forward``.

    Returns:
        dx: (N, H, W, C), the forward input's dtype; a new array.
    """
    x_shape, dtype, argmax, (ph, pw), (sh, sw), padding = cache
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
