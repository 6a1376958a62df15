"""Fast 2-D convolution: numba im2col/col2im kernels feeding BLAS matrix products, same API as scratchnet.ops.

The arithmetic runs in matrix products (``np.matmul`` on 2-D arrays, i.e. BLAS sgemm/dgemm); numba only
moves data. The batch is processed in chunks of images so the column matrix of one chunk stays in cache;
the chunks run on the worker threads of `scratchnet.threads` (the kernels release the GIL, BLAS runs one
thread per worker). The column buffers are per-thread work arrays reused from call to call: they live
only inside one call, so nothing handed to a caller, and nothing in a cache, is ever overwritten later.

For a chunk of images, with K = KH*KW*CI and rows = images*OH*OW:

    cols (rows, K)     = im2col(x_padded chunk)     row (n, oh, ow), column (kh, kw, ci)
    y    (rows, CO)    = cols @ kernel.reshape(K, CO)
    dkernel (K, CO)   += cols.T @ dy2d               (cols recomputed in backward: cheaper than storing)
    dcols (rows, K)    = dy2d @ kernel.reshape(K, CO).T
    dx_chunk          += col2im(dcols)               (scatter-add; overlapping windows accumulate)

x_padded is x with TensorFlow's zero padding applied once per call (np.pad), so the kernels copy
contiguous runs of KW*CI values without bounds checks.
"""
from __future__ import annotations

import threading

import numpy as np
from numba import njit

from scratchnet import threads
from scratchnet.ops import conv as reference
from scratchnet.ops._checks import check_dy, float_array, int_pair, padding_mode
from scratchnet.ops.conv import padding_amounts

__all__ = ["conv2d_forward", "conv2d_backward"]

CHUNK_BYTES = 4 * 1024 * 1024
"""Target size of one chunk's column matrix; a chunk holds at least one image."""

PARALLEL_MIN_MACS = 25_000_000
"""Convolutions with at least this many multiply-adds (N*OH*OW*KH*KW*CI*CO) split their chunks over
the worker threads; smaller ones run on the calling thread (handing work over costs more than it saves).
Measured on 2 cores: deep_mnist conv2 and both emnist_cnn convs gain, kaggle/notmnist convs lose."""

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes the kernels compile for; other floating dtypes are passed to scratchnet.ops."""


# ----------------------------------------------------------------------------------------------------
# Work buffers: one growing 1-D array per (role, dtype) and thread; valid only during a single call.
# ----------------------------------------------------------------------------------------------------
_local = threading.local()


def _work_array(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Return a C-contiguous scratch array of `shape`, reusing this thread's buffer for `role`."""
    buffers = _local.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    key = (role, dtype)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=dtype)
        buffers[key] = buffer
    return buffer[:size].reshape(shape)


def clear_work_buffers() -> None:
    """Free this thread's conv work buffers (they are re-created on the next call)."""
    _local.__dict__.pop("buffers", None)


# ----------------------------------------------------------------------------------------------------
# Public API (validates and allocates).
# ----------------------------------------------------------------------------------------------------
def conv2d_forward(x, kernel, strides=1, padding="valid"):
    """2-D cross-correlation of NHWC images with an HWIO kernel, TensorFlow padding, no bias.

    x: (N, H, W, CI); kernel: (KH, KW, CI, CO); strides: int or (SH, SW); padding: "same" or "valid"
    (case-insensitive). Returns y: (N, OH, OW, CO) in x's dtype, and a cache for `conv2d_backward`.

    Notes: SAME padding follows TensorFlow (out = ceil(in / stride), the extra row/column at the
    bottom/right), so results match `tf.nn.conv2d` and `scratchnet.ops.conv2d_forward`.
    """
    x = float_array(x, "x", ndim=4)
    if x.dtype not in SUPPORTED_DTYPES:  # e.g. float16: numba has no arithmetic for it
        return reference.conv2d_forward(x, kernel, strides, padding)
    kernel = float_array(kernel, "kernel", ndim=4).astype(x.dtype, copy=False)
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(
            "The kernel's input channels (axis 2) must equal x's channels (axis 3). "
            f"Received: x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    sh, sw = int_pair(strides, "strides")
    padding = padding_mode(padding)
    kernel = np.ascontiguousarray(kernel)
    n, h, w, ci = x.shape
    kh, kw, _, co = kernel.shape
    oh, pad_top, pad_bottom = padding_amounts(h, kh, sh, padding)
    ow, pad_left, pad_right = padding_amounts(w, kw, sw, padding)
    geometry = (kh, kw, sh, sw, oh, ow)
    pads = ((pad_top, pad_bottom), (pad_left, pad_right))

    y = np.empty((n, oh, ow, co), dtype=x.dtype)
    if y.size:
        x_padded = _padded(x, pads)
        k = kh * kw * ci
        kernel2d = kernel.reshape(k, co)
        y2d = y.reshape(n * oh * ow, co)

        def forward_chunk(images):
            n0, n1 = images
            cols = _work_array("cols", ((n1 - n0) * oh * ow, k), x.dtype)
            _im2col(x_padded, ci, n0, n1, *geometry, cols)
            np.matmul(cols, kernel2d, out=y2d[n0 * oh * ow : n1 * oh * ow])

        parallel = n * oh * ow * k * co >= PARALLEL_MIN_MACS
        threads.parallel_map(forward_chunk, _chunks(n, oh * ow * k, x.itemsize, parallel), parallel=parallel)
    cache = (x, kernel, geometry, pads)
    return y, cache


def conv2d_backward(dy, cache):
    """Gradients of `conv2d_forward`: dy (N, OH, OW, CO) -> (dx (N, H, W, CI), dkernel (KH, KW, CI, CO)).

    Neither `dy` nor the cache is modified; both outputs are new arrays in x's dtype.
    """
    if isinstance(cache[-1], str):  # the reference's cache ends with padding: a dtype left to ops
        return reference.conv2d_backward(dy, cache)
    x, kernel, geometry, pads = cache
    kh, kw, sh, sw, oh, ow = geometry
    n, h, w, ci = x.shape
    co = kernel.shape[3]
    dy = np.ascontiguousarray(check_dy(dy, (n, oh, ow, co), x.dtype, "conv2d_backward"))

    k = kh * kw * ci
    kernel2d = kernel.reshape(k, co)
    (pad_top, pad_bottom), (pad_left, pad_right) = pads
    dx_padded = np.zeros((n, h + pad_top + pad_bottom, (w + pad_left + pad_right) * ci), dtype=x.dtype)
    if dy.size:
        x_padded = _padded(x, pads)
        dy2d = dy.reshape(n * oh * ow, co)

        def backward_chunk(images):  # chunks hold different images: their dx rows never overlap
            n0, n1 = images
            dy_rows = dy2d[n0 * oh * ow : n1 * oh * ow]
            cols = _work_array("cols", ((n1 - n0) * oh * ow, k), x.dtype)
            _im2col(x_padded, ci, n0, n1, *geometry, cols)
            dkernel_part = cols.T @ dy_rows
            dcols = _work_array("dcols", cols.shape, x.dtype)
            np.matmul(dy_rows, kernel2d.T, out=dcols)
            _col2im_add(dcols, ci, n0, n1, *geometry, dx_padded)
            return dkernel_part

        parallel = n * oh * ow * k * co >= PARALLEL_MIN_MACS
        chunks = _chunks(n, oh * ow * k, x.itemsize, parallel)
        parts = threads.parallel_map(backward_chunk, chunks, parallel=parallel)
        dkernel2d = np.sum(parts, axis=0, dtype=x.dtype) if len(parts) > 1 else parts[0]
    else:
        dkernel2d = np.zeros((k, co), dtype=x.dtype)
    dx = dx_padded.reshape(n, h + pad_top + pad_bottom, w + pad_left + pad_right, ci)
    if pad_top or pad_bottom or pad_left or pad_right:
        dx = dx[:, pad_top : pad_top + h, pad_left : pad_left + w].copy()
    return dx, dkernel2d.reshape(kernel.shape)


def _padded(x, pads):
    """x (N, H, W, CI) zero-padded and viewed as (N, H + pads, (W + pads) * CI); x itself when no pads."""
    (pad_top, pad_bottom), (pad_left, pad_right) = pads
    if pad_top or pad_bottom or pad_left or pad_right:
        x = np.pad(x, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))
    else:
        x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


def _chunks(n, cols_per_image, itemsize, parallel):
    """(n0, n1) image ranges whose column matrices hold about CHUNK_BYTES (at least one image each).

    When `parallel`, there are at least as many chunks as worker threads (if the batch allows).
    """
    per_chunk = max(1, CHUNK_BYTES // max(1, cols_per_image * itemsize))
    if parallel:
        per_chunk = min(per_chunk, -(-n // threads.num_threads()))
    return [(n0, min(n, n0 + per_chunk)) for n0 in range(0, n, per_chunk)]


# ----------------------------------------------------------------------------------------------------
# numba kernels (loops only).
# ----------------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _im2col(x_padded, ci_size, n0, n1, kh_size, kw_size, sh, sw, oh_size, ow_size, cols):
    """Fill cols (rows, KH*KW*CI) with the receptive fields of images n0..n1-1 of x_padded (N, HP, WP*CI).

    Row (n - n0, oh, ow), column (kh, kw, ci) holds x_padded[n, oh*SH + kh, (ow*SW + kw)*CI + ci]: for
    one (row, kh) that is one contiguous run of KW*CI values.
    """
    run = kw_size * ci_size
    row0 = 0
    for n in range(n0, n1):
        for oh in range(oh_size):
            for kh in range(kh_size):
                ih = oh * sh + kh
                start = kh * run
                for ow in range(ow_size):
                    source = ow * sw * ci_size
                    for t in range(run):
                        cols[row0 + ow, start + t] = x_padded[n, ih, source + t]
            row0 += ow_size


@njit(cache=True, nogil=True)
def _col2im_add(dcols, ci_size, n0, n1, kh_size, kw_size, sh, sw, oh_size, ow_size, dx_padded):
    """Scatter-add dcols (rows, KH*KW*CI) onto images n0..n1-1 of dx_padded (N, HP, WP*CI): im2col's adjoint.

    Pixels shared by overlapping windows accumulate; the caller cuts the padding off afterwards.
    """
    run = kw_size * ci_size
    row0 = 0
    for n in range(n0, n1):
        for oh in range(oh_size):
            for kh in range(kh_size):
                ih = oh * sh + kh
                start = kh * run
                for ow in range(ow_size):
                    target = ow * sw * ci_size
                    for t in range(run):
                        dx_padded[n, ih, target + t] += dcols[row0 + ow, start + t]
            row0 += ow_size
