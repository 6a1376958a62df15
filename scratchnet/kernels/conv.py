"""Fast 2-D convolution: numba im2col/col2im kernels feeding BLAS matrix products, same API as scratchnet.ops.

The arithmetic runs in matrix products (BLAS sgemm/dgemm on 2-D arrays); numba only moves data. The
batch is processed in chunks of images so the column matrix of one chunk stays in cache. Two paths run
the chunks on the threads of `scratchnet.runtime.threads`, both with BLAS at one thread per thread:

* float32 (the zoo's dtype), the TEAM PATH: the batch is cut into one piece of equal images per thread,
  and each piece is ONE nogil numba call (`_forward_piece`, `_backward_piece`) that copies windows and
  calls NumPy's own OpenBLAS sgemm from numba (`scratchnet.runtime.blas`), chunk after chunk. The pieces
  run on the spinning workers of `scratchnet.runtime.team`, so handing a piece over costs ~10 us instead
  of ~100, and convolutions from 1M multiply-adds (TEAM_MIN_MACS) use every core.
* float64, or a NumPy without that sgemm: each chunk copies its windows with a numba kernel and
  multiplies them with ``np.matmul``, and `scratchnet.runtime.threads.parallel_map` shares the chunks out.

Each chunk's column matrices are new arrays that die with the chunk: with the
allocator's trim threshold fixed (`scratchnet.engine`) they come back from the heap without page faults,
and, unlike per-thread buffers kept from call to call, they hold no memory between convolutions
(emnist_cnn's peak: 255 MB instead of 273, and no step is slower).

For a chunk of images, with K = KH*KW*CI and rows = images*OH*OW:

    cols (rows, K)     = im2col(x_padded chunk)     row (n, oh, ow), column (kh, kw, ci)
    y    (rows, CO)    = cols @ kernel.reshape(K, CO)
    dkernel (K, CO)   += cols.T @ dy2d               (cols recomputed, or kept from the forward: see below)
    dcols (rows, K)    = dy2d @ kernel.reshape(K, CO).T
    dx_chunk           = col2im(dcols)               (overlapping windows accumulate)

x_padded is x with TensorFlow's zero padding applied once per call, so the kernels copy
contiguous runs of KW*CI values without bounds checks.

col2im has two forms: with at least GATHER_MIN_CHANNELS input channels each pixel of dx GATHERS the
window gradients that cover it and is written once (no zeroed padded buffer, no crop copy: 3.6x faster
on deep_mnist's second conv); with fewer channels the runs are too short for that and the windows are
SCATTER-added into a zeroed padded buffer. The gather kernel uses ``error_model="numpy"`` (no Python
ZeroDivisionError checks on its integer divisions by the strides, which are never zero): with the checks
it was 1.25x slower.

With stride 1 and no more output than input channels (notmnist_cnn's 16 -> 16), dx is computed instead
as a FORWARD convolution of dy (padded by KH-1-pad_top, ...) with the kernel flipped and its channel
axes swapped: im2col over dy then one product, which copies faster than col2im gathers
(``TRANSPOSED_DX``; that layer's backward measured 1.52 ms instead of 1.64 on one thread).

On the parallel_map path a small convolution (column matrix up to KEEP_COLS_BYTES) keeps its whole
column matrix, a new array, in the cache, so the backward skips rebuilding it. The team path keeps none:
its chunks are small enough (PIECE_CHUNK_BYTES) that the columns are rebuilt in a core's L2 cache, which
costs less than reading a kept matrix back from memory.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.runtime import threads
from scratchnet.runtime import blas, team
from scratchnet.ops import conv as reference
from scratchnet.ops._checks import check_dy, float_array, int_pair, padding_mode
from scratchnet.ops.conv import padding_amounts

__all__ = ["conv2d_forward", "conv2d_backward"]

CHUNK_BYTES = 2 * 1024 * 1024
"""On the parallel_map path, the target size of one chunk's column matrix; a chunk holds at least one
image. While a chunk runs, its thread holds a column and a column-gradient matrix of about this size
(2 MB: 8 MB on two threads; 1 MB made deep_mnist's step 10% slower)."""

PARALLEL_MIN_MACS = 10_000_000
"""On the parallel_map path, convolutions with at least this many multiply-adds (N*OH*OW*KH*KW*CI*CO)
split their chunks over the worker threads; smaller ones run on the calling thread (handing work over
costs more than it saves).
Measured on 2 idle cores: deep_mnist's and emnist_cnn's convs gain, and so does notmnist_cnn's second
conv (20M: forward 0.71 ms instead of 1.19, backward 1.13 instead of 1.78); kaggle_cnn's convs (4M, 7M)
and notmnist_cnn's first (5M) do not."""

KEEP_COLS_BYTES = 6 * 1024 * 1024
"""On the parallel_map path (measured before the team path existed, on an Intel Xeon), convolutions whose
whole column matrix is at most this big keep it for the backward (allocating it each call is cheap;
rebuilding it costs a pass as long as the forward's product). Kept columns stay alive from
the forward to the backward, through the whole step: emnist_cnn's first conv (14.7 MB of columns) kept
them at 16 MB (backward 5.7 ms instead of 8.4, 1% of its step) but that was 5% of the step's peak memory
(issue 5 caps it at a third of TensorFlow's), so only the small CNNs' layers keep them now (the biggest,
notmnist_cnn's second conv with 5 MB, saves 0.22 ms of its 3.4 ms step); deep_mnist's second (31 MB, 32
input channels, cheap to rebuild) gained nothing from keeping them."""

GATHER_MIN_CHANNELS = 16
"""Input-gradient col2im gathers per pixel from this many input channels on, else scatter-adds windows
(measured: gather 1.4-3.6x faster at 16 and 32 channels, 1.7x slower at 8)."""

TRANSPOSED_DX = True
"""Compute dx as a convolution of dy with the flipped kernel when the stride is 1 and CO <= CI (see above)."""

TEAM_PIECES = True
"""float32 convolutions run as pieces that are one nogil numba call each (im2col plus sgemm called from
numba, `scratchnet.runtime.blas`), one piece per thread of `scratchnet.runtime.threads.team()`, when NumPy's
OpenBLAS offers its sgemm; otherwise (float64, another BLAS, or False here) chunks of numba copies and
``np.matmul`` run on `scratchnet.runtime.threads.parallel_map`. The two paths give the same results up to
float32 rounding (tests/test_kernels.py)."""

PIECE_CHUNK_BYTES = 256 * 1024
"""On the team path, the target size of a chunk's work matrices (columns, and dy's columns for the
transposed dx), well inside a core's L2 cache; the team path never keeps columns for the backward (it
rebuilds them chunk by chunk). Measured on 2 cores of an AMD EPYC (2 MB L2 each), notmnist_cnn's step in
one process, settings interleaved: 2.19 ms with 256 KB chunks, 2.24 with 128 KB or 400 KB, 2.67 with
2 MB, and 3.4-4.5 with 2 MB chunks and its second conv's 5 MB of columns kept; kaggle_cnn 1.75 ms
instead of 1.83; deep_mnist and emnist_cnn no slower (33.8 ms instead of 34.3, 125 instead of 129)."""

COLS_T_MAX_RUN = 7
"""On the team path, a stride-1 convolution whose windows' rows are this short or shorter (KW*CI values:
the small CNNs' first convs, with one input channel) builds the TRANSPOSE of the column matrix
(`_im2col_t`) and multiplies cols_t.T @ kernel: a run of 5 values cannot be copied with vector moves,
but cols_t's rows are runs of OW values. notmnist_cnn's first conv on one thread: im2col 0.058 ms
instead of 0.144, its product 0.145 instead of 0.139. With stride 2 (emnist_cnn's first conv) the strided
reads made it slower (0.30 ms instead of 0.21)."""

TEAM_MIN_MACS = 1_000_000
"""On the team path, convolutions with at least this many multiply-adds split their batch over the
threads. A hand-over to the spinning team costs ~10 us instead of ~100: kaggle_cnn's convs (4M, 7M) and
notmnist_cnn's first (5M) gain from two threads there, where they lost on `parallel_map`."""

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes the kernels compile for; other floating dtypes are passed to scratchnet.ops."""


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
    k = kh * kw * ci
    parallel = n * oh * ow * k * co >= PARALLEL_MIN_MACS
    kept_cols = None
    if y.size:
        x_padded = _padded(x, pads)
        kernel2d = kernel.reshape(k, co)
        y2d = y.reshape(n * oh * ow, co)
        if _team_path(x.dtype):  # one nogil call per thread: im2col and sgemm, chunk by chunk
            per_chunk = _images_per_chunk(oh * ow * k, x.itemsize, PIECE_CHUNK_BYTES)
            cols_t = _transposed_columns(kw, ci, sw)
            _run_pieces(_forward_piece, n, n * oh * ow * k * co,
                        lambda n0, n1: (blas.sgemm(), x_padded, ci, n0, n1, per_chunk, geometry, cols_t, kernel2d, y2d))
            return y, (x, kernel, geometry, pads, None)
        if n * oh * ow * k * x.itemsize <= KEEP_COLS_BYTES:
            kept_cols = np.empty((n * oh * ow, k), dtype=x.dtype)  # a new array: it goes into the cache

        def forward_chunk(images):
            n0, n1 = images
            if kept_cols is not None:
                cols = kept_cols[n0 * oh * ow : n1 * oh * ow]
            else:
                cols = np.empty(((n1 - n0) * oh * ow, k), dtype=x.dtype)
            _im2col(x_padded, ci, n0, n1, *geometry, cols)
            np.matmul(cols, kernel2d, out=y2d[n0 * oh * ow : n1 * oh * ow])

        threads.parallel_map(forward_chunk, _plan(n, oh * ow * k, x.itemsize, parallel, kept_cols),
                             parallel=parallel)
    cache = (x, kernel, geometry, pads, kept_cols)
    return y, cache


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of `conv2d_forward`: dy (N, OH, OW, CO) -> (dx (N, H, W, CI), dkernel (KH, KW, CI, CO)).

    Neither `dy` nor the cache is modified; both outputs are new arrays in x's dtype. With
    ``need_dx=False`` dx is None and neither its matrix product nor the col2im runs.
    """
    if isinstance(cache[-1], str):  # the reference's cache ends with padding: a dtype left to ops
        return reference.conv2d_backward(dy, cache, need_dx)
    x, kernel, geometry, pads, kept_cols = cache
    kh, kw, sh, sw, oh, ow = geometry
    n, h, w, ci = x.shape
    co = kernel.shape[3]
    dy = np.ascontiguousarray(check_dy(dy, (n, oh, ow, co), x.dtype, "conv2d_backward"))

    k = kh * kw * ci
    kernel2d = kernel.reshape(k, co)
    (pad_top, pad_bottom), (pad_left, pad_right) = pads
    transposed = need_dx and TRANSPOSED_DX and sh == 1 and sw == 1 and co <= ci
    gather = ci >= GATHER_MIN_CHANNELS or transposed
    dx_buffer = None  # scatter: padded (N, HP, WP*CI), zeroed; gather: (N, H, W*CI), every pixel written once
    if need_dx and gather:
        dx_buffer = (np.empty if dy.size else np.zeros)((n, h, w * ci), dtype=x.dtype)
    elif need_dx:
        dx_buffer = np.zeros((n, h + pad_top + pad_bottom, (w + pad_left + pad_right) * ci), dtype=x.dtype)
    if transposed:  # dx = conv(dy padded by KH-1-pad, flipped kernel with CI and CO swapped), stride 1
        flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(kh * kw * co, ci)
        dy_padded = _padded(dy, ((kh - 1 - pad_top, kh - 1 - pad_bottom), (kw - 1 - pad_left, kw - 1 - pad_right)))
        dx_rows = dx_buffer.reshape(n * h * w, ci)
    if dy.size and _team_path(x.dtype):  # one nogil call per thread, as in the forward
        x_padded = _padded(x, pads)
        mode = _NO_DX if not need_dx else _TRANSPOSED if transposed else _GATHER if gather else _SCATTER
        none2d, none3d = np.empty((0, 0), dtype=x.dtype), np.empty((0, 0, 0), dtype=x.dtype)
        dx_arrays = (
            np.ascontiguousarray(kernel2d.T) if mode in (_GATHER, _SCATTER) else none2d,
            dx_buffer if dx_buffer is not None else none3d,
            dy_padded if transposed else none3d,
            flipped if transposed else none2d,
        )
        per_chunk = _images_per_chunk(oh * ow * k + (h * w * kh * kw * co if transposed else 0), x.itemsize,
                                      PIECE_CHUNK_BYTES)
        parts = []

        def piece(n0, n1):
            parts.append(np.zeros((k, co), dtype=x.dtype))
            return (blas.sgemm(), x_padded, ci, n0, n1, per_chunk, geometry, _transposed_columns(kw, ci, sw),
                    dy.reshape(n * oh * ow, co),
                    parts[-1], mode, pad_top, pad_left, *dx_arrays)

        _run_pieces(_backward_piece, n, n * oh * ow * k * co, piece)
        dkernel2d = parts[0] if len(parts) == 1 else np.sum(parts, axis=0, dtype=x.dtype)
    elif dy.size:
        x_padded = _padded(x, pads) if kept_cols is None else None
        dy2d = dy.reshape(n * oh * ow, co)

        def backward_chunk(images):  # chunks hold different images: their dx rows never overlap
            n0, n1 = images
            dy_rows = dy2d[n0 * oh * ow : n1 * oh * ow]
            if kept_cols is not None:  # the forward's column matrix
                cols = kept_cols[n0 * oh * ow : n1 * oh * ow]
            else:
                cols = np.empty(((n1 - n0) * oh * ow, k), dtype=x.dtype)
                _im2col(x_padded, ci, n0, n1, *geometry, cols)
            dkernel_part = cols.T @ dy_rows
            if not need_dx:
                return dkernel_part
            if transposed:
                dy_cols = np.empty(((n1 - n0) * h * w, kh * kw * co), dtype=x.dtype)
                _im2col(dy_padded, co, n0, n1, kh, kw, 1, 1, h, w, dy_cols)
                np.matmul(dy_cols, flipped, out=dx_rows[n0 * h * w : n1 * h * w])
                return dkernel_part
            dcols = np.empty(cols.shape, dtype=x.dtype)
            np.matmul(dy_rows, kernel2d.T, out=dcols)
            if gather:
                _col2im_gather(dcols, ci, n0, n1, *geometry, pad_top, pad_left, dx_buffer)
            else:
                _col2im_add(dcols, ci, n0, n1, *geometry, dx_buffer)
            return dkernel_part

        parallel = n * oh * ow * k * co >= PARALLEL_MIN_MACS
        chunks = _plan(n, oh * ow * k, x.itemsize, parallel, kept_cols)
        parts = threads.parallel_map(backward_chunk, chunks, parallel=parallel)
        dkernel2d = np.sum(parts, axis=0, dtype=x.dtype) if len(parts) > 1 else parts[0]
    else:
        dkernel2d = np.zeros((k, co), dtype=x.dtype)
    if not need_dx:
        return None, dkernel2d.reshape(kernel.shape)
    if gather:
        return dx_buffer.reshape(n, h, w, ci), dkernel2d.reshape(kernel.shape)
    dx = dx_buffer.reshape(n, h + pad_top + pad_bottom, w + pad_left + pad_right, ci)
    if pad_top or pad_bottom or pad_left or pad_right:
        dx = dx[:, pad_top : pad_top + h, pad_left : pad_left + w].copy()
    return dx, dkernel2d.reshape(kernel.shape)


def _team_path(dtype):
    """True if a convolution in `dtype` runs as nogil pieces on the team (see TEAM_PIECES)."""
    return TEAM_PIECES and dtype == np.float32 and blas.sgemm() is not None


def _transposed_columns(kw, ci, sw):
    """True if the team path's pieces build the transposed column matrix (see COLS_T_MAX_RUN)."""
    return sw == 1 and kw * ci <= COLS_T_MAX_RUN


def _images_per_chunk(values_per_image, itemsize, chunk_bytes):
    """Images per chunk so that a chunk's work matrices hold about `chunk_bytes` (at least one image)."""
    return max(1, chunk_bytes // max(1, values_per_image * itemsize))


def _run_pieces(kernel, n, macs, piece_args):
    """Run `kernel` over the batch: one piece of equal images per thread (one piece below TEAM_MIN_MACS).

    piece_args(n0, n1) gives the arguments of the piece for images n0..n1-1.
    """
    parts = threads.num_threads() if macs >= TEAM_MIN_MACS else 1
    threads.run_pieces([(kernel, piece_args(n0, n1)) for n0, n1 in threads.spans(n, parts)])


def _padded(x, pads):
    """x (N, H, W, CI) zero-padded and viewed as (N, H + pads, (W + pads) * CI); x itself when no pads."""
    (pad_top, pad_bottom), (pad_left, pad_right) = pads
    if pad_top or pad_bottom or pad_left or pad_right:  # np.pad's result, without its ~25 us of set-up
        n, h, w, ci = x.shape
        padded = np.zeros((n, h + pad_top + pad_bottom, w + pad_left + pad_right, ci), dtype=x.dtype)
        padded[:, pad_top : pad_top + h, pad_left : pad_left + w] = x
        x = padded
    else:
        x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


def _plan(n, cols_per_image, itemsize, parallel, kept_cols):
    """The chunks of a call. A kept column matrix is already whole, so there is no cache-sized chunking:
    the batch goes in one piece, or in one equal piece per thread (notmnist_cnn's second conv forward:
    0.55 ms in two pieces of 8 images, 0.63 ms in cache-sized pieces of 6, 6 and 4)."""
    if kept_cols is not None:
        return threads.spans(n, threads.num_threads() if parallel else 1)
    return _chunks(n, cols_per_image, itemsize, parallel)


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
    one (row, kh) that is one contiguous run of KW*CI values. The run is copied between two 1-D slices
    indexed from 0, which LLVM turns into vector moves (indexing the 2-D arrays directly, it could not
    rule out negative indices and copied value by value: 1.5-2.6x slower from 8 channels on). With one
    input channel the run is KW values, too short for that: those are copied one by one.
    """
    run = kw_size * ci_size
    row0 = 0
    for n in range(n0, n1):
        for oh in range(oh_size):
            for kh in range(kh_size):
                source_row = x_padded[n, oh * sh + kh]
                start = kh * run
                for ow in range(ow_size):
                    source = ow * sw * ci_size
                    if run < 8:
                        for t in range(run):
                            cols[row0 + ow, start + t] = source_row[source + t]
                    else:
                        _copy(source_row[source : source + run], cols[row0 + ow, start : start + run])
            row0 += ow_size


@njit(cache=True, nogil=True)
def _im2col_t(x_padded, ci_size, n0, n1, kh_size, kw_size, sh, sw, oh_size, ow_size, cols_t):
    """Fill cols_t (KH*KW*CI, rows) with the TRANSPOSE of `_im2col`'s column matrix (see COLS_T_MAX_RUN).

    Row (kh, kw, ci), column (n - n0, oh, ow) holds x_padded[n, oh*SH + kh, (ow*SW + kw)*CI + ci]: for one
    (n, oh, kh, kw, ci) that is a run of OW values taken every SW*CI values, written contiguously. With one
    input channel and stride 1 the run is read contiguously too, and LLVM copies it with vector moves.
    """
    step = sw * ci_size
    column0 = 0
    for n in range(n0, n1):
        for oh in range(oh_size):
            for kh in range(kh_size):
                source_row = x_padded[n, oh * sh + kh]
                for kw in range(kw_size):
                    for c in range(ci_size):
                        target = cols_t[(kh * kw_size + kw) * ci_size + c, column0 : column0 + ow_size]
                        start = kw * ci_size + c
                        if step == 1:
                            _copy(source_row[start : start + ow_size], target)
                        else:
                            for ow in range(ow_size):
                                target[ow] = source_row[start + ow * step]
            column0 += ow_size


@njit(cache=True, nogil=True, inline="always")
def _copy(source, target):
    """target[:] = source, for two 1-D slices of the same length."""
    for t in range(target.size):
        target[t] = source[t]


@njit(cache=True, nogil=True, inline="always")
def _add(source, target):
    """target[:] += source, for two 1-D slices of the same length."""
    for t in range(target.size):
        target[t] += source[t]


@njit(cache=True, nogil=True)
def _col2im_add(dcols, ci_size, n0, n1, kh_size, kw_size, sh, sw, oh_size, ow_size, dx_padded):
    """Scatter-add dcols (rows, KH*KW*CI) onto images n0..n1-1 of dx_padded (N, HP, WP*CI): im2col's adjoint.

    Pixels shared by overlapping windows accumulate; the caller cuts the padding off afterwards. Runs are
    added slice to slice as in `_im2col` (one by one below 8 values).
    """
    run = kw_size * ci_size
    row0 = 0
    for n in range(n0, n1):
        for oh in range(oh_size):
            for kh in range(kh_size):
                target_row = dx_padded[n, oh * sh + kh]
                start = kh * run
                for ow in range(ow_size):
                    target = ow * sw * ci_size
                    if run < 8:
                        for t in range(run):
                            target_row[target + t] += dcols[row0 + ow, start + t]
                    else:
                        _add(dcols[row0 + ow, start : start + run], target_row[target : target + run])
            row0 += ow_size


@njit(cache=True, nogil=True, error_model="numpy")
def _col2im_gather(dcols, ci_size, n0, n1, kh_size, kw_size, sh, sw, oh_size, ow_size, pad_top, pad_left, dx):
    """Write images n0..n1-1 of dx (N, H, W*CI): each pixel the sum of the dcols entries of the windows covering it.

    im2col's adjoint, as `_col2im_add`, but per input pixel: window (oh, ow) covers pixel (ih, iw) at kernel
    offset (kh, kw) = (ih + pad_top - oh*SH, iw + pad_left - ow*SW). dx needs no zeroing and no padding.
    """
    h_size = dx.shape[1]
    w_size = dx.shape[2] // ci_size
    for n in range(n0, n1):
        base = (n - n0) * oh_size * ow_size
        for ih in range(h_size):
            for iw in range(w_size):
                out = iw * ci_size
                for c in range(ci_size):
                    dx[n, ih, out + c] = 0.0
                for kh in range(kh_size):
                    t = ih + pad_top - kh
                    if t < 0 or t % sh != 0 or t // sh >= oh_size:
                        continue
                    row_h = base + (t // sh) * ow_size
                    for kw in range(kw_size):
                        u = iw + pad_left - kw
                        if u < 0 or u % sw != 0 or u // sw >= ow_size:
                            continue
                        row = row_h + u // sw
                        col = (kh * kw_size + kw) * ci_size
                        _add(dcols[row, col : col + ci_size], dx[n, ih, out : out + ci_size])


# ----------------------------------------------------------------------------------------------------
# The team path's pieces: one nogil call each (see TEAM_PIECES and scratchnet.runtime.team).
# ----------------------------------------------------------------------------------------------------
_NO_DX, _TRANSPOSED, _GATHER, _SCATTER = 0, 1, 2, 3
"""How a backward piece computes dx: not at all, as a convolution of dy, or by col2im gather / scatter."""


@njit(cache=True, nogil=True)
def _forward_piece(sgemm, x_padded, ci, n0, n1, per_chunk, geometry, cols_t, kernel2d, y2d, state, post_slot,
                   done_slot, job):
    """y rows of images n0..n1-1 = im2col(x_padded) @ kernel2d, `per_chunk` images at a time.

    The windows go into one chunk-sized column matrix, reused chunk after chunk, that dies with the piece;
    with `cols_t` into its transpose (`_im2col_t`), and the product is cols_t.T @ kernel2d.
    """
    team.post_done(state, post_slot, job)
    kh, kw, sh, sw, oh, ow = geometry
    rows = oh * ow
    k = kernel2d.shape[0]
    chunk_rows = min(per_chunk, n1 - n0) * rows
    buffer = np.empty((k, chunk_rows) if cols_t else (chunk_rows, k), dtype=y2d.dtype)
    for c0 in range(n0, n1, per_chunk):
        c1 = min(n1, c0 + per_chunk)
        _columns_product(sgemm, x_padded, ci, c0, c1, geometry, cols_t, buffer, kernel2d, y2d[c0 * rows : c1 * rows],
                         False)
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True, inline="always")
def _columns_product(sgemm, x_padded, ci, c0, c1, geometry, cols_t, buffer, b, c, backward):
    """Fill the column matrix of images c0..c1-1 into `buffer` (transposed with `cols_t`) and multiply:
    the forward's c = cols @ b, or with `backward` the kernel gradient's c += cols.T @ b."""
    kh, kw, sh, sw, oh, ow = geometry
    rows = (c1 - c0) * oh * ow
    beta = 1.0 if backward else 0.0
    if cols_t:
        columns = buffer[:, :rows]
        _im2col_t(x_padded, ci, c0, c1, kh, kw, sh, sw, oh, ow, columns)
        blas.sgemm_rows(sgemm, columns, b, c, not backward, beta)
    else:
        cols = buffer[:rows]
        _im2col(x_padded, ci, c0, c1, kh, kw, sh, sw, oh, ow, cols)
        blas.sgemm_rows(sgemm, cols, b, c, backward, beta)


@njit(cache=True, nogil=True)
def _backward_piece(sgemm, x_padded, ci, n0, n1, per_chunk, geometry, cols_t, dy2d, dkernel2d, mode,
                    pad_top, pad_left, kernel_t, dx_buffer, dy_padded, flipped, state, post_slot, done_slot, job):
    """Images n0..n1-1's share of the backward: dkernel2d += cols.T @ dy rows, and their dx (per `mode`).

    cols are rebuilt chunk by chunk (`per_chunk` images), transposed with `cols_t`; dx as in
    `conv2d_backward`: _TRANSPOSED writes im2col(dy_padded) @ flipped into dx_buffer's rows, _GATHER and
    _SCATTER turn dcols = dy rows @ kernel_t into dx with `_col2im_gather` / `_col2im_add`.
    """
    team.post_done(state, post_slot, job)
    kh, kw, sh, sw, oh, ow = geometry
    rows = oh * ow
    k = dkernel2d.shape[0]
    chunk = min(per_chunk, n1 - n0)
    cols_buffer = np.empty((k, chunk * rows) if cols_t else (chunk * rows, k), dtype=dy2d.dtype)
    dcols_buffer = np.empty((chunk * rows if mode == _GATHER or mode == _SCATTER else 0, k), dtype=dy2d.dtype)
    h = dx_buffer.shape[1]
    w = dx_buffer.shape[2] // ci if mode == _TRANSPOSED else 0
    co = dy2d.shape[1]
    dy_cols_buffer = np.empty((chunk * h * w, kh * kw * co), dtype=dy2d.dtype)
    dx_all_rows = dx_buffer.reshape((dx_buffer.shape[0] * h * w, ci)) if mode == _TRANSPOSED else dcols_buffer
    for c0 in range(n0, n1, per_chunk):
        c1 = min(n1, c0 + per_chunk)
        dy_rows = dy2d[c0 * rows : c1 * rows]
        _columns_product(sgemm, x_padded, ci, c0, c1, geometry, cols_t, cols_buffer, dy_rows, dkernel2d, True)
        if mode == _TRANSPOSED:
            dy_cols = dy_cols_buffer[: (c1 - c0) * h * w]
            _im2col(dy_padded, co, c0, c1, kh, kw, 1, 1, h, w, dy_cols)
            blas.sgemm_rows(sgemm, dy_cols, flipped, dx_all_rows[c0 * h * w : c1 * h * w], False, 0.0)
        elif mode == _GATHER or mode == _SCATTER:
            dcols = dcols_buffer[: (c1 - c0) * rows]
            blas.sgemm_rows(sgemm, dy_rows, kernel_t, dcols, False, 0.0)
            if mode == _GATHER:
                _col2im_gather(dcols, ci, c0, c1, kh, kw, sh, sw, oh, ow, pad_top, pad_left, dx_buffer)
            else:
                _col2im_add(dcols, ci, c0, c1, kh, kw, sh, sw, oh, ow, dx_buffer)
    team.mark_done(state, post_slot, done_slot, job)
