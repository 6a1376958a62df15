"""Fast 2-D max-pooling: numba kernels with the same API as scratchnet.ops, routing by stored argmax indices.

The forward scans each window in row-major order with a strict ``>``, so the FIRST maximum wins (as in
TensorFlow on the CPU), and records its position; the backward sends each window's whole gradient to
that one position, accumulating where windows overlap. Padded cells (SAME) are never chosen: they act
as -infinity. In inference (``training=False``) the forward records no positions.

The forward of a 2x2 pool with stride 2 (every pooling of the zoo) has its own loop for the windows that
lie wholly in the image: their four cells compared in a fixed order, channels innermost. Every other
window (another pool, or the clipped last row and column of a SAME pool of an odd size) takes the general
loop.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops import pooling as reference
from scratchnet.ops._checks import check_dy, float_array, int_pair, padding_mode, training_cache
from scratchnet.ops.conv import padding_amounts
from scratchnet.runtime import team, threads

__all__ = ["max_pool2d_backward", "max_pool2d_forward"]

PARALLEL_MIN_SIZE = 100_000
"""Inputs with at least this many values are pooled in one slice of images per thread, each slice one
nogil call on the spinning team of `scratchnet.runtime.threads.run_pieces`; smaller ones in one call.

Trades the team's hand-over (microseconds) against the pass over memory it shares. Retune if the
hand-over's cost changes."""


def _image_spans(n, size):
    """(start, stop) spans of the batch: one per thread when the input has `size` >= PARALLEL_MIN_SIZE values."""
    return threads.spans(n, threads.num_threads() if size >= PARALLEL_MIN_SIZE else 1)


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid", training=True):
    """Max-pool NHWC images: x (N, H, W, C) -> y (N, OH, OW, C) in x's dtype, and a cache for backward.

    pool_size and strides: int or (PH, PW) / (SH, SW); strides default to pool_size. padding: "same" or
    "valid" (case-insensitive), TensorFlow's asymmetric SAME. training: False (predict, evaluate) finds
    only the maxima, not where they are, and returns the cache None.

    Notes: ties go to the first maximum in row-major order within the window.
    """
    x = float_array(x, "x", ndim=4)
    if x.dtype not in SUPPORTED_DTYPES:  # e.g. float16: numba has no arithmetic for it
        return reference.max_pool2d_forward(x, pool_size, strides, padding, training)
    ph, pw = int_pair(pool_size, "pool_size")
    sh, sw = (ph, pw) if strides is None else int_pair(strides, "strides")
    padding = padding_mode(padding)
    x = np.ascontiguousarray(x)
    n, h, w, c = x.shape
    oh, pad_top, _ = padding_amounts(h, ph, sh, padding)
    ow, pad_left, _ = padding_amounts(w, pw, sw, padding)

    y = np.empty((n, oh, ow, c), dtype=x.dtype)
    # The flat index ih * W + iw of each window's max. Inference needs none: an empty argmax tells the loops
    # to skip it, one array type either way, so numba compiles each loop once for both (the check is hoisted).
    argmax = np.empty((n, oh, ow, c) if training else (1, 1, 1, 0), dtype=np.int32)
    window = (ph, pw, sh, sw, pad_top, pad_left)  # one plain tuple: numba types it in well under a microsecond
    threads.run_pieces([(_forward_piece, (x, window, (y, argmax), span)) for span in _image_spans(n, x.size)])
    return y, (x.shape, x.dtype, argmax) if training else None


def max_pool2d_backward(dy, cache):
    """Gradient of `max_pool2d_forward`: dy (N, OH, OW, C) -> dx (N, H, W, C), a new array.

    Each window's gradient goes to its first maximum; overlapping windows accumulate. Neither `dy` nor
    the cache is modified; a cache of None (a forward with training=False) raises a ValueError.
    """
    cache = training_cache(cache, "max_pool2d_backward")
    if len(cache) != 3:  # a dtype the kernels leave to the reference (see max_pool2d_forward)
        return reference.max_pool2d_backward(dy, cache)
    x_shape, dtype, argmax = cache
    dy = np.ascontiguousarray(check_dy(dy, argmax.shape, dtype, "max_pool2d_backward"))
    n, h, w, c = x_shape
    dx = np.empty((n, h * w, c), dtype=dtype)  # zeroed image by image in the kernel, in parallel
    threads.run_pieces([(_backward_piece, (dy, argmax, dx, span)) for span in _image_spans(n, dx.size)])
    return dx.reshape(x_shape)


@njit(cache=True, nogil=True, inline="always")
def _max_pool_forward(x, window, y, argmax, images):
    """Fill y (N, OH, OW, C) with each window's first maximum of x (N, H, W, C), and argmax (the same shape,
    or empty: no positions) with its flat position ih*W+iw, for the images images[0]..images[1]-1.

    window: (PH, PW, SH, SW, pad_top, pad_left). A window is clipped to the image (padding never wins);
    an empty window gives -inf and index -1.
    """
    rows, cols = _whole_2x2_windows(window, x.shape)
    _max_pool_2x2_forward(x, y, argmax, images, rows, cols)
    _max_pool_windows_forward(x, window, y, argmax, images, rows, cols)


@njit(cache=True, nogil=True, inline="always")
def _whole_2x2_windows(window, x_shape):
    """(rows, cols): for a 2x2 pool with stride 2, the windows (oh < rows, ow < cols) that lie wholly in the
    image (such a pool pads, if at all, after the image); (0, 0) for any other pool."""
    if window == (2, 2, 2, 2, 0, 0):
        return x_shape[1] // 2, x_shape[2] // 2
    return 0, 0


@njit(cache=True, nogil=True)
def _max_pool_2x2_forward(x, y, argmax, images, rows, cols):
    """`_max_pool_forward` for the windows (oh < rows, ow < cols) of a 2x2 pool with stride 2 and no padding
    before the image.

    The image rows are seen flat (W*C values): a window's four cells are runs of C values at fixed offsets
    in two rows, and the loop over channels, innermost, compares them in the window's row-major order
    (strict >: the first maximum stays), which LLVM turns into vector compares and selects.
    """
    n_size, h, w, c_size = x.shape
    oh_size, ow_size = y.shape[1], y.shape[2]
    x_rows = x.reshape(n_size, h, w * c_size)
    y_rows = y.reshape(n_size, oh_size, ow_size * c_size)
    keep = argmax.size > 0
    argmax_rows = argmax.reshape(argmax.shape[0], argmax.shape[1], argmax.shape[2] * argmax.shape[3])
    for n in range(images[0], images[1]):
        for oh in range(rows):
            top, bottom = x_rows[n, 2 * oh], x_rows[n, 2 * oh + 1]
            y_row = y_rows[n, oh]
            argmax_row = argmax_rows[n, oh] if keep else argmax_rows[0, 0]
            for ow in range(cols):
                left, right, out = 2 * ow * c_size, (2 * ow + 1) * c_size, ow * c_size  # offsets in the rows
                # flat positions ih*W+iw of the four cells, int32 as argmax, so that the selects stay 32-bit
                first = 2 * oh * w + 2 * ow
                top_left, top_right = np.int32(first), np.int32(first + 1)
                bottom_left, bottom_right = np.int32(first + w), np.int32(first + w + 1)
                for c in range(c_size):
                    value, position = top[left + c], top_left
                    if top[right + c] > value:
                        value, position = top[right + c], top_right
                    if bottom[left + c] > value:
                        value, position = bottom[left + c], bottom_left
                    if bottom[right + c] > value:
                        value, position = bottom[right + c], bottom_right
                    y_row[out + c] = value
                    if keep:
                        argmax_row[out + c] = position


@njit(cache=True, nogil=True)
def _max_pool_windows_forward(x, window, y, argmax, images, rows, cols):
    """`_max_pool_forward` for every window but (oh < rows, ow < cols), which `_max_pool_2x2_forward` fills."""
    ph_size, pw_size, sh, sw, pad_top, pad_left = window
    h, w, c_size = x.shape[1], x.shape[2], x.shape[3]
    oh_size, ow_size = y.shape[1], y.shape[2]
    keep = argmax.size > 0
    for n in range(images[0], images[1]):
        for oh in range(oh_size):
            top = oh * sh - pad_top
            h_start = max(top, 0)
            h_end = min(top + ph_size, h)
            for ow in range(cols if oh < rows else 0, ow_size):
                left = ow * sw - pad_left
                w_start = max(left, 0)
                w_end = min(left + pw_size, w)
                if h_start >= h_end or w_start >= w_end:
                    for c in range(c_size):
                        y[n, oh, ow, c] = -np.inf
                        if keep:
                            argmax[n, oh, ow, c] = -1
                    continue
                first = h_start * w + w_start
                for c in range(c_size):
                    y[n, oh, ow, c] = x[n, h_start, w_start, c]
                    if keep:
                        argmax[n, oh, ow, c] = first
                for ih in range(h_start, h_end):
                    for iw in range(w_start, w_end):
                        flat = ih * w + iw
                        if flat == first:
                            continue
                        for c in range(c_size):
                            value = x[n, ih, iw, c]
                            if value > y[n, oh, ow, c]:  # strict: the first maximum keeps the window
                                y[n, oh, ow, c] = value
                                if keep:
                                    argmax[n, oh, ow, c] = flat


@njit(cache=True, nogil=True)
def _max_pool_backward(dy, argmax, dx):
    """Zero dx (N, H*W, C), then add dy (N, OH, OW, C) into it at the positions argmax (N, OH, OW, C) names.

    Zeroing an image at once (a memset, in cache) and adding one value per window is faster than writing
    each cell once, even where the windows do not overlap: choosing, cell by cell, between the gradient and
    0 is a branch or a select per cell.
    """
    n_size, oh_size, ow_size, c_size = dy.shape
    for n in range(n_size):
        dx[n] = 0.0
        for oh in range(oh_size):
            for ow in range(ow_size):
                for c in range(c_size):
                    position = argmax[n, oh, ow, c]
                    if position >= 0:
                        dx[n, position, c] += dy[n, oh, ow, c]


@njit(cache=True, nogil=True)
def _forward_piece(x, window, outputs, span, state, post_slot, done_slot, job):
    """`_max_pool_forward` of images span[0]..span[1]-1 into outputs (y, argmax or an empty one), as a piece of
    `scratchnet.runtime.threads.run_pieces`."""
    team.post_done(state, post_slot, job)
    y, argmax = outputs
    _max_pool_forward(x, window, y, argmax, span)
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True)
def _backward_piece(dy, argmax, dx, span, state, post_slot, done_slot, job):
    """`_max_pool_backward` of images span[0]..span[1]-1, as a piece of `scratchnet.runtime.threads.run_pieces`."""
    team.post_done(state, post_slot, job)
    n0, n1 = span
    _max_pool_backward(dy[n0:n1], argmax[n0:n1], dx[n0:n1])
    team.mark_done(state, post_slot, done_slot, job)
