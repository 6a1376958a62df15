"""Fast 2-D max-pooling: numba kernels with the same API as scratchnet.ops, routing by stored argmax indices.

The forward scans each window in row-major order with a strict ``>``, so the FIRST maximum wins (as in
TensorFlow on the CPU), and records its position; the backward sends each window's whole gradient to
that one position, accumulating where windows overlap. Padded cells (SAME) are never chosen: they act
as -infinity.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops import pooling as reference
from scratchnet.ops._checks import check_dy, float_array, int_pair, padding_mode
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


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Max-pool NHWC images: x (N, H, W, C) -> y (N, OH, OW, C) in x's dtype, and a cache for backward.

    pool_size and strides: int or (PH, PW) / (SH, SW); strides default to pool_size. padding: "same" or
    "valid" (case-insensitive), TensorFlow's asymmetric SAME.

    Notes: ties go to the first maximum in row-major order within the window.
    """
    x = float_array(x, "x", ndim=4)
    if x.dtype not in SUPPORTED_DTYPES:  # e.g. float16: numba has no arithmetic for it
        return reference.max_pool2d_forward(x, pool_size, strides, padding)
    ph, pw = int_pair(pool_size, "pool_size")
    sh, sw = (ph, pw) if strides is None else int_pair(strides, "strides")
    padding = padding_mode(padding)
    x = np.ascontiguousarray(x)
    n, h, w, c = x.shape
    oh, pad_top, _ = padding_amounts(h, ph, sh, padding)
    ow, pad_left, _ = padding_amounts(w, pw, sw, padding)

    y = np.empty((n, oh, ow, c), dtype=x.dtype)
    argmax = np.empty((n, oh, ow, c), dtype=np.int32)  # flat index ih * W + iw of each window's max
    window = (ph, pw, sh, sw, pad_top, pad_left)  # one plain tuple: numba types it in well under a microsecond
    threads.run_pieces([(_forward_piece, (x, window, (y, argmax), span)) for span in _image_spans(n, x.size)])
    cache = (x.shape, x.dtype, argmax)
    return y, cache


def max_pool2d_backward(dy, cache):
    """Gradient of `max_pool2d_forward`: dy (N, OH, OW, C) -> dx (N, H, W, C), a new array.

    Each window's gradient goes to its first maximum; overlapping windows accumulate. Neither `dy` nor
    the cache is modified.
    """
    if len(cache) != 3:  # a dtype the kernels leave to the reference (see max_pool2d_forward)
        return reference.max_pool2d_backward(dy, cache)
    x_shape, dtype, argmax = cache
    dy = np.ascontiguousarray(check_dy(dy, argmax.shape, dtype, "max_pool2d_backward"))
    n, h, w, c = x_shape
    dx = np.empty((n, h * w, c), dtype=dtype)  # zeroed image by image in the kernel, in parallel
    threads.run_pieces([(_backward_piece, (dy, argmax, dx, span)) for span in _image_spans(n, dx.size)])
    return dx.reshape(x_shape)


@njit(cache=True, nogil=True)
def _max_pool_forward(x, window, y, argmax):
    """Fill y and argmax (N, OH, OW, C) with each window's first maximum of x (N, H, W, C) and its ih*W+iw.

    window: (PH, PW, SH, SW, pad_top, pad_left). A window is clipped to the image (padding never wins);
    an empty window gives -inf and index -1.
    """
    ph_size, pw_size, sh, sw, pad_top, pad_left = window
    n_size, h, w, c_size = x.shape
    oh_size = y.shape[1]
    ow_size = y.shape[2]
    for n in range(n_size):
        for oh in range(oh_size):
            top = oh * sh - pad_top
            h_start = max(top, 0)
            h_end = min(top + ph_size, h)
            for ow in range(ow_size):
                left = ow * sw - pad_left
                w_start = max(left, 0)
                w_end = min(left + pw_size, w)
                if h_start >= h_end or w_start >= w_end:
                    for c in range(c_size):
                        y[n, oh, ow, c] = -np.inf
                        argmax[n, oh, ow, c] = -1
                    continue
                first = h_start * w + w_start
                for c in range(c_size):
                    y[n, oh, ow, c] = x[n, h_start, w_start, c]
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
                                argmax[n, oh, ow, c] = flat


@njit(cache=True, nogil=True)
def _max_pool_backward(dy, argmax, dx):
    """Zero dx (N, H*W, C), then add dy (N, OH, OW, C) into it at the positions argmax (N, OH, OW, C) names."""
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
    """`_max_pool_forward` of images span[0]..span[1]-1 into outputs (y, argmax), as a piece of
    `scratchnet.runtime.threads.run_pieces`."""
    team.post_done(state, post_slot, job)
    y, argmax = outputs
    n0, n1 = span
    _max_pool_forward(x[n0:n1], window, y[n0:n1], argmax[n0:n1])
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True)
def _backward_piece(dy, argmax, dx, span, state, post_slot, done_slot, job):
    """`_max_pool_backward` of images span[0]..span[1]-1, as a piece of `scratchnet.runtime.threads.run_pieces`."""
    team.post_done(state, post_slot, job)
    n0, n1 = span
    _max_pool_backward(dy[n0:n1], argmax[n0:n1], dx[n0:n1])
    team.mark_done(state, post_slot, done_slot, job)
