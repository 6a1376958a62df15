"""The general convolution path (float64, or a NumPy without OpenBLAS's sgemm): numba copies, np.matmul products.

The batch is processed in chunks of images so that a chunk's column matrix stays in cache: each chunk
copies its windows with the numba loops of `scratchnet.kernels.im2col` and multiplies them with
``np.matmul``; `scratchnet.runtime.threads.parallel_map` shares the chunks out over the worker threads,
BLAS at one thread each. Each chunk's matrices are new arrays that die with the chunk, so nothing is held
between convolutions; only a small convolution keeps its whole column matrix from the forward for the
backward (KEEP_COLS_BYTES). The chunks, and the order their shares of dkernel are added in, depend on the
convolution alone, never on the thread count, so the results are bit-identical at any thread count.
`scratchnet.kernels.conv` validates, plans and allocates.
"""
from __future__ import annotations

import numpy as np

from scratchnet.kernels.im2col import (
    DX_GATHER,
    DX_NONE,
    DX_TRANSPOSED,
    _col2im_add,
    _col2im_gather,
    _im2col,
    flipped_kernel,
    padded,
    transposed_geometry,
)
from scratchnet.runtime import threads

__all__ = ["backward", "forward"]

CHUNK_BYTES = 2 * 1024 * 1024
"""The target size of one chunk's column matrix; a chunk holds at least one image.

While a chunk runs, its thread holds a column and a column-gradient matrix of about this size. Trades
cache misses (bigger) against per-chunk overhead and thinner products (smaller). Retune with the cache
size per core."""

PARALLEL_MIN_MACS = 10_000_000
"""Convolutions with at least this many multiply-adds (N*OH*OW*KH*KW*CI*CO) are cut into at least
`scratchnet.runtime.threads.PARTS` chunks for the worker threads; smaller ones run on the calling thread.

Trades `parallel_map`'s hand-over (a thread waking and taking the GIL) against the work it shares.
Retune if that hand-over gets cheaper or the machine has more cores."""

KEEP_COLS_BYTES = 6 * 1024 * 1024
"""Convolutions whose whole column matrix is at most this big keep it from the forward for the backward.

Trades memory held through the whole training step against rebuilding the columns (a pass as long as the
forward's product). Retune if the peak-memory budget changes or the small CNNs' columns outgrow it."""


def forward(x, kernel, y, geometry):
    """y (N, OH, OW, CO) = x * kernel, written chunk by chunk; returns the kept column matrix or None."""
    g = geometry
    k = g.kh * g.kw * g.ci
    parallel = g.n * g.oh * g.ow * k * g.co >= PARALLEL_MIN_MACS
    kept_cols = None
    if g.n * g.oh * g.ow * k * x.itemsize <= KEEP_COLS_BYTES:
        kept_cols = np.empty((g.n * g.oh * g.ow, k), dtype=x.dtype)  # a new array: it goes into the cache
    x_padded, kernel2d, y2d = padded(x, g), kernel.reshape(k, g.co), y.reshape(g.n * g.oh * g.ow, g.co)
    rows, sizes = g.oh * g.ow, g.loop_sizes()

    def forward_chunk(images):
        n0, n1 = images
        if kept_cols is not None:
            cols = kept_cols[n0 * rows : n1 * rows]
        else:
            cols = np.empty(((n1 - n0) * rows, k), dtype=x.dtype)
        _im2col(x_padded, sizes, n0, n1, cols)
        np.matmul(cols, kernel2d, out=y2d[n0 * rows : n1 * rows])

    threads.parallel_map(forward_chunk, _chunks(g, x.itemsize, parallel, kept_cols), parallel=parallel)
    return kept_cols


def backward(x, kernel, dy, geometry, dx_mode, dx_buffer, kept_cols):
    """dkernel (KH*KW*CI, CO) of a non-empty dy (N, OH, OW, CO, contiguous); dx written into dx_buffer.

    dx_buffer as in `scratchnet.kernels.conv_team.backward`; kept_cols is `forward`'s result.
    """
    g = geometry
    k = g.kh * g.kw * g.ci
    rows, sizes = g.oh * g.ow, g.loop_sizes()
    kernel2d = kernel.reshape(k, g.co)
    if dx_mode == DX_TRANSPOSED:  # dx = conv(dy padded by KH-1-pad, flipped kernel), stride 1
        dy_geometry = transposed_geometry(g)
        dy_padded, flipped, dy_sizes = padded(dy, dy_geometry), flipped_kernel(kernel), dy_geometry.loop_sizes()
        dx_rows, pixels = dx_buffer.reshape(g.n * g.h * g.w, g.ci), g.h * g.w
    x_padded = padded(x, g) if kept_cols is None else None
    dy2d = dy.reshape(g.n * rows, g.co)

    def backward_chunk(images):  # chunks hold different images: their dx rows never overlap
        n0, n1 = images
        dy_rows = dy2d[n0 * rows : n1 * rows]
        if kept_cols is not None:  # the forward's column matrix
            cols = kept_cols[n0 * rows : n1 * rows]
        else:
            cols = np.empty(((n1 - n0) * rows, k), dtype=x.dtype)
            _im2col(x_padded, sizes, n0, n1, cols)
        dkernel_part = cols.T @ dy_rows
        if dx_mode == DX_NONE:
            return dkernel_part
        if dx_mode == DX_TRANSPOSED:
            dy_cols = np.empty(((n1 - n0) * pixels, flipped.shape[0]), dtype=x.dtype)  # (dx rows, KH*KW*CO)
            _im2col(dy_padded, dy_sizes, n0, n1, dy_cols)
            np.matmul(dy_cols, flipped, out=dx_rows[n0 * pixels : n1 * pixels])
            return dkernel_part
        dcols = np.empty(cols.shape, dtype=x.dtype)
        np.matmul(dy_rows, kernel2d.T, out=dcols)
        if dx_mode == DX_GATHER:
            _col2im_gather(dcols, sizes, n0, n1, dx_buffer)
        else:
            _col2im_add(dcols, sizes, n0, n1, dx_buffer)
        return dkernel_part

    parallel = g.n * rows * k * g.co >= PARALLEL_MIN_MACS
    parts = threads.parallel_map(backward_chunk, _chunks(g, x.itemsize, parallel, kept_cols), parallel=parallel)
    return np.sum(parts, axis=0, dtype=x.dtype) if len(parts) > 1 else parts[0]


def _chunks(geometry, itemsize, parallel, kept_cols):
    """(n0, n1) image ranges, one per chunk; they depend on the convolution alone, never on the thread count.

    Without kept columns, chunks whose column matrices hold about CHUNK_BYTES (at least one image each),
    and with `parallel` at least PARTS chunks (if the batch allows). A kept column matrix is already
    whole, so there is no cache-sized chunking: the batch goes in one piece, or with `parallel` in PARTS
    equal pieces (`scratchnet.runtime.threads.part_spans`).
    """
    g = geometry
    if kept_cols is not None:
        return threads.part_spans(g.n, parallel)
    per_chunk = max(1, CHUNK_BYTES // max(1, g.oh * g.ow * g.kh * g.kw * g.ci * itemsize))
    if parallel:
        per_chunk = min(per_chunk, -(-g.n // threads.PARTS))
    return [(n0, min(g.n, n0 + per_chunk)) for n0 in range(0, g.n, per_chunk)]
