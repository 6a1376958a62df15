"""Two-dimensional convolution (NHWC x HWIO) and bias addition, forward and backward, in plain NumPy.

Shapes: x is (N, H, W, CI), the kernel is (KH, KW, CI, CO), the output is (N, OH, OW, CO).

The forward pass is the classic *im2col* trick. Every output pixel is a dot product between one
KH x KW x CI window of the (padded) input and each of the CO filters. If we lay every window out as
one row of a matrix ``cols`` of shape (N*OH*OW, KH*KW*CI), the whole convolution is ONE matrix
product ``cols @ kernel.reshape(KH*KW*CI, CO)``, which NumPy hands to BLAS. The windows are not
copied one by one: ``numpy.lib.stride_tricks.sliding_window_view`` returns them all as a view of
the padded input (no copy), we take every stride-th one, and a single ``reshape`` copies them
into ``cols``.

The backward pass is the same product read the other way round:
``dkernel = cols.T @ dy`` and ``dcols = dy @ kernel.T``. Each row of ``dcols`` is the gradient of
one window; because windows overlap, the input gradient is the sum of these window gradients
placed back where the windows came from (*col2im*), which we do with one vectorised
``+=`` per kernel offset (KH*KW of them).

Notes: TensorFlow's convolution is a cross-correlation (the kernel is not flipped), and so is
this one; TF's "SAME" padding puts the odd extra row/column at the bottom/right (see
``padding_amounts``).
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import check_dy, float_array, int_pair, padding_mode, positive_int
from .activations import relu_backward, relu_forward

__all__ = [
    "padding_amounts",
    "conv2d_forward",
    "conv2d_backward",
    "bias_add_forward",
    "bias_add_backward",
]


# ----------------------------------------------------------------------------------------------
# Padding
# ----------------------------------------------------------------------------------------------


def padding_amounts(size, kernel, stride, padding):
    """Output length and zero padding of one spatial axis, by TensorFlow's rules.

    For an axis of length ``size`` swept by a window of length ``kernel`` moving ``stride`` cells:

    * "valid" (no padding): ``out = ceil((size - kernel + 1) / stride)``; cells left over at the
      bottom/right are dropped. Needs ``size >= kernel``.
    * "same": ``out = ceil(size / stride)``;
      ``pad_total = max(0, (out - 1) * stride + kernel - size)``,
      ``pad_before = pad_total // 2``, ``pad_after = pad_total - pad_before``.

    Example: size 28, kernel 5, stride 2 gives "same" -> (14, 1, 2) and "valid" -> (12, 0, 0).

    Returns:
        (out_size, pad_before, pad_after), all ints.

    Notes: TF puts the odd extra padding cell at the END (bottom/right), so "same" is not the
    symmetric ``kernel // 2`` padding whenever the stride is > 1 or the kernel is even.
    """
    size = positive_int(size, "size")
    kernel = positive_int(kernel, "kernel")
    stride = positive_int(stride, "stride")
    mode = padding_mode(padding)
    if mode == "valid":
        if size < kernel:
            raise ValueError(
                f'With padding="valid" the input ({size}) must be at least as large as the '
                f"window. Received: size={size}, kernel={kernel}"
            )
        return math.ceil((size - kernel + 1) / stride), 0, 0
    out = math.ceil(size / stride)
    pad_total = max(0, (out - 1) * stride + kernel - size)
    pad_before = pad_total // 2
    return out, pad_before, pad_total - pad_before


def _windows(x_padded, window, strides, out_shape):
    """All (N, OH, OW, C, KH, KW) windows of a padded NHWC array, as a view (nothing is copied).

    ``sliding_window_view`` gives the window starting at EVERY position; keeping every stride-th
    one and the first OH x OW of those gives exactly the windows the convolution/pooling uses.
    """
    (kh, kw), (sh, sw), (oh, ow) = window, strides, out_shape
    every_window = sliding_window_view(x_padded, (kh, kw), axis=(1, 2))
    return every_window[:, ::sh, ::sw][:, :oh, :ow]


def _spatial_plan(x_shape, window, strides, padding):
    """Output size and padding along H and W: ((OH, OW), ((top, bottom), (left, right)))."""
    (_, h, w, _), (kh, kw), (sh, sw) = x_shape, window, strides
    oh, top, bottom = padding_amounts(h, kh, sh, padding)
    ow, left, right = padding_amounts(w, kw, sw, padding)
    return (oh, ow), ((top, bottom), (left, right))


def _im2col(x, window, strides, padding):
    """The im2col matrix of a padded NHWC batch: one row per output pixel, one column per weight.

    Row ``(n, oh, ow)`` holds the window ``x_pad[n, oh*sh : oh*sh + KH, ow*sw : ow*sw + KW, :]``
    flattened in the kernel's (KH, KW, CI) order, so that ``cols @ kernel.reshape(-1, CO)`` is
    the convolution. The final ``reshape`` of the transposed window view is the one copy.

    Returns:
        cols (N*OH*OW, KH*KW*CI), (OH, OW), the padded shape, and the pads ((top, bottom), (left, right)).
    """
    (kh, kw), ci = window, x.shape[3]
    out_shape, pads = _spatial_plan(x.shape, window, strides, padding)
    x_padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    windows = _windows(x_padded, window, strides, out_shape)  # (N, OH, OW, CI, KH, KW), a view
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * ci)
    return cols, out_shape, x_padded.shape, pads


def _col2im(dwindows, padded_shape, strides, pads, dtype):
    """Sum window gradients (N, OH, OW, KH, KW, C) back into an input gradient (N, H, W, C).

    Window (oh, ow) covers padded rows ``oh*sh + i`` for i in 0..KH-1 (and likewise columns),
    so for each kernel offset (i, j) the slab ``dwindows[:, :, :, i, j, :]`` lands on the strided
    rows ``i, i+sh, ..., i+(OH-1)*sh`` and columns ``j, j+sw, ...``: one vectorised ``+=`` per
    offset. The ``+=`` accumulates where windows overlap. The padding is cut off at the end.
    """
    n, oh, ow, kh, kw, _ = dwindows.shape
    (sh, sw), ((top, bottom), (left, right)) = strides, pads
    dx_padded = np.zeros(padded_shape, dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + (oh - 1) * sh + 1, sh)
            cols = slice(j, j + (ow - 1) * sw + 1, sw)
            dx_padded[:, rows, cols, :] += dwindows[:, :, :, i, j, :]
    height, width = padded_shape[1], padded_shape[2]
    return dx_padded[:, top : height - bottom, left : width - right, :].copy()


# ----------------------------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------------------------


def conv2d_forward(x, kernel, strides=1, padding="valid"):
    """2-D convolution (cross-correlation) of an NHWC batch with an HWIO kernel, no bias.

    ``y[n, oh, ow, co] = sum_{i, j, ci} x_pad[n, oh*sh + i, ow*sw + j, ci] * kernel[i, j, ci, co]``

    Args:
        x: (N, H, W, CI) float array.
        kernel: (KH, KW, CI, CO); cast to x's dtype.
        strides: int or (sh, sw).
        padding: "same" or "valid" (case-insensitive), TensorFlow's rules (``padding_amounts``).

    Returns:
        y: (N, OH, OW, CO), x's dtype.
        cache: (x, kernel, (sh, sw), padding) for ``conv2d_backward``.

    Notes: like tf.nn.conv2d, no kernel flip, and SAME padding's extra row/column goes at the
    bottom/right.
    """
    x = float_array(x, "x", ndim=4)
    kernel = float_array(kernel, "kernel", ndim=4).astype(x.dtype, copy=False)
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(
            "The kernel's input channels (axis 2) must equal x's channels (axis 3). "
            f"Received: x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    strides, padding = int_pair(strides, "strides"), padding_mode(padding)
    kh, kw, ci, co = kernel.shape
    cols, (oh, ow), _, _ = _im2col(x, (kh, kw), strides, padding)
    y = cols @ kernel.reshape(kh * kw * ci, co)
    return y.reshape(x.shape[0], oh, ow, co), (x, kernel, strides, padding)


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of a convolution with respect to its input and its kernel.

    With ``cols`` the im2col matrix (N*OH*OW, KH*KW*CI) of the forward pass and ``dy`` flattened
    to (N*OH*OW, CO):

    * ``dkernel = cols.T @ dy``, reshaped to (KH, KW, CI, CO);
    * ``dcols = dy @ kernel.T``, the gradient of every window, summed back into place (col2im)
      to give ``dx`` (N, H, W, CI).

    Args:
        dy: (N, OH, OW, CO) gradient of the loss with respect to y.
        cache: from ``conv2d_forward``.
        need_dx: False skips dx (returned as None): a model's first layer needs no input gradient,
            and the dcols product and col2im are about a third of a backward.

    Returns:
        (dx, dkernel), both of x's dtype; new arrays (never views of dy).
    """
    x, kernel, strides, padding = cache
    n = x.shape[0]
    kh, kw, ci, co = kernel.shape
    # The forward's im2col matrix is rebuilt rather than cached: it is about KH*KW times bigger than x.
    cols, (oh, ow), padded_shape, pads = _im2col(x, (kh, kw), strides, padding)
    dy = check_dy(dy, (n, oh, ow, co), x.dtype, "conv2d_backward")
    dy_rows = dy.reshape(-1, co)

    dkernel = (cols.T @ dy_rows).reshape(kh, kw, ci, co)
    if not need_dx:
        return None, dkernel
    dcols = (dy_rows @ kernel.reshape(kh * kw * ci, co).T).reshape(n, oh, ow, kh, kw, ci)
    dx = _col2im(dcols, padded_shape, strides, pads, x.dtype)
    return dx, dkernel


# ----------------------------------------------------------------------------------------------
# Bias addition
# ----------------------------------------------------------------------------------------------


def bias_add_forward(x, bias):
    """Add a bias along the last (channel) axis: ``y[..., c] = x[..., c] + bias[c]``.

    Args:
        x: (..., C) float array of any rank >= 1 (e.g. (N, H, W, C) or (N, C)).
        bias: (C,); cast to x's dtype.

    Returns:
        y: same shape and dtype as x; cache: (x.shape, x.dtype) for ``bias_add_backward``.

    Notes: like tf.nn.bias_add with data_format NHWC (bias on the last axis).
    """
    x = float_array(x, "x")
    bias = float_array(bias, "bias", ndim=1).astype(x.dtype, copy=False)
    if x.ndim < 1 or x.shape[-1] != bias.shape[0]:
        raise ValueError(
            "`bias` must have one value per channel (x's last axis). "
            f"Received: x.shape={x.shape}, bias.shape={bias.shape}"
        )
    return x + bias, (x.shape, x.dtype)


def bias_add_backward(dy, cache):
    """Gradients of a bias addition: ``dx = dy`` and ``dbias[c] = sum of dy[..., c]``.

    Returns:
        (dx, dbias): dx (..., C) a copy of dy; dbias (C,); x's dtype.
    """
    x_shape, dtype = cache
    dy = check_dy(dy, x_shape, dtype, "bias_add_backward")
    dbias = dy.reshape(math.prod(x_shape[:-1]), x_shape[-1]).sum(axis=0)  # rows of channels (any count, 0 too)
    return dy.copy(), dbias


def bias_add_relu_forward(x, bias):
    """``y = relu(x + bias)`` with the bias on the last (channel) axis: `bias_add_forward` then
    `relu_forward`, as one op (what a Conv2D layer with a bias and a relu runs).

    Args:
        x: (..., C) float array; bias: (C,), cast to x's dtype.

    Returns:
        y: x's shape and dtype; cache: ``z = x + bias``, the pre-activation (a layer keeps it as its logits).

    Notes: the same values as the two ops in a row; the numba twin does both in one pass over memory.
    """
    z, _ = bias_add_forward(x, bias)
    y, _ = relu_forward(z)
    return y, z


def bias_add_relu_backward(dy, cache):
    """Gradients of ``relu(x + bias)``: ``dx = dy`` where ``z > 0`` (else 0), ``dbias[c] = sum of dx[..., c]``.

    Returns:
        (dx, dbias): dx (..., C) a new array, dbias (C,); z's dtype.
    """
    z = cache
    dx = relu_backward(dy, z)
    return dx, dx.reshape(math.prod(z.shape[:-1]), z.shape[-1]).sum(axis=0)


def conv2d_bias_relu_forward(x, kernel, bias, strides=1, padding="valid"):
    """``y = relu(conv2d(x, kernel) + bias)``: a Conv2D layer with a bias and a relu, as one op.

    `conv2d_forward`, then `bias_add_relu_forward`; nothing new but the bundling, which lets the numba
    twin add the bias and apply the relu in the same memory the convolution just wrote.

    Args:
        x: (N, H, W, CI); kernel: (KH, KW, CI, CO); bias: (CO,); strides, padding: as `conv2d_forward`.

    Returns:
        y: (N, OH, OW, CO) in x's dtype; cache: (the convolution's cache, y).

    Notes: the cache keeps the output y, not the pre-activation: relu's gradient can be read from its
    output, since ``y > 0`` exactly where ``conv + bias > 0`` (a NaN is neither).
    """
    z, conv_cache = conv2d_forward(x, kernel, strides, padding)
    y, _ = bias_add_relu_forward(z, bias)
    return y, (conv_cache, y)


def conv2d_bias_relu_backward(dy, cache, need_dx=True):
    """Gradients of `conv2d_bias_relu_forward`: relu's and the bias's (`bias_add_relu_backward`, with the
    output y in place of the pre-activation), then the convolution's (`conv2d_backward`).

    Returns:
        (dx, dkernel, dbias): dx (N, H, W, CI), or None when ``need_dx`` is False; dkernel (KH, KW, CI, CO);
        dbias (CO,).
    """
    conv_cache, y = cache
    dz, dbias = bias_add_relu_backward(dy, y)
    dx, dkernel = conv2d_backward(dz, conv_cache, need_dx)
    return dx, dkernel, dbias
