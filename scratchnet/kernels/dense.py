"""Dense layers on BLAS under the thread policy: the reference's arithmetic, split over the worker threads.

The arithmetic is `scratchnet.ops.dense` (NumPy's matrix product is BLAS; nothing hand-written is
faster). What this twin adds is who runs it. OpenBLAS's own threads are never used during training:
after a multi-threaded product they keep spinning for a while, and the next convolution's worker
threads then fight them for the cores. So:

* a product below DENSE_PARALLEL_MIN_MACS runs on the calling thread with BLAS held at one thread (the
  reference's checks skipped when the operands need none, `_small_and_well_formed`), except two kinds,
  whose pieces add partial sums in part order (`_add_parts`): a float32 one of DEPTH_SPLIT_MIN_MACS or more
  with a long sum, cut in two along the sum (`_depth_forward`), and one row times a big float32 kernel, cut
  into sgemv pieces over the kernel's rows (`_one_row_forward`);
* a bigger one is cut into pieces, each a one-thread BLAS call, cutting the bigger operand so that each
  thread reads only its part of it: x's rows when the batch is the bigger, the kernel's columns or rows
  when the kernel is. The forward's pieces are `_forward_piece`, nogil numba calls of NumPy's OpenBLAS
  sgemm on the spinning `scratchnet.runtime.team` (float32; other dtypes go through `parallel_map`), in
  as many parts as the product is big (`_forward_parts`): every part packs its operands anew, so small
  products are cut in fewer. The backward's are NumPy products on `scratchnet.runtime.threads.parallel_map`,
  in `scratchnet.runtime.threads.PARTS` parts.

BLAS rounds a row of a product differently with the shape of the call, so the cut depends on the product
alone: the same pieces, and the same values, at any thread count (at one thread they run one by one).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from scratchnet.kernels._common import span_bounds
from scratchnet.ops import dense as reference
from scratchnet.ops._checks import check_dy, float_array
from scratchnet.runtime import blas, team, threads

__all__ = ["dense_backward", "dense_forward"]

DENSE_PARALLEL_MIN_MACS = 8_000_000
"""Dense products with at least this many multiply-adds (N*CI*CO) are cut into pieces for the worker threads;
a forward product into one part per this many (`_forward_parts`).

Trades the hand-over and the operands each part packs anew against the product it shares: the CNNs' big
hidden layers are split, the MLPs' small products are not; emnist_cnn's 100x1600x128 inference product
takes 413 us in 8 parts, 274 in 2 (deep_mnist's 100x3136x1024, 8 parts: 3.9 ms either way). Retune if
the hand-over gets cheaper or the zoo's dense layers change size."""


ONE_ROW_PARALLEL_MIN_WEIGHTS = 1_000_000
"""A single row (one image: predict, serve) times a float32 kernel of at least this many values is cut by
the kernel's rows into PARTS sgemv pieces for the team (`_one_row_forward`).

Such a product reads the whole kernel to do two flops per value read: memory-bound, and one core reads
only so fast. deep_mnist's 3136x1024 dense layer on one image: 263 us as one call, 147 us in pieces on
two threads. Retune with the memory bandwidth one core can draw."""


DEPTH_SPLIT_MIN_MACS = 2_000_000
"""A float32 forward product of at least this many multiply-adds (and fewer than DENSE_PARALLEL_MIN_MACS), whose
kernel has at least DEPTH_SPLIT_MIN_ROWS rows, is cut in DEPTH_PARTS along its sum (`_depth_forward`).

mlp's 100x784x50 product: 100-108 us as one sgemm; cut by rows, each piece packs the whole kernel (92 us); cut
along the sum, each packs half of each operand (82-90 us in all, 60-65 of it the two sgemm pieces). Retune
with the hand-over's cost."""

DEPTH_SPLIT_MIN_ROWS = 512
"""See DEPTH_SPLIT_MIN_MACS: a shorter sum cut in two leaves BLAS too little to do per piece (100x256x128:
86 us whole, 92 in two)."""

DEPTH_PARTS = 2
"""The parts of a product cut along its sum: fixed, so that the sums, and their rounding, are the same at any
thread count."""


def dense_forward(x, kernel, bias=None):
    """``y = x @ kernel + bias``: x (N, CI), kernel (CI, CO), bias (CO,) or None -> y (N, CO), cache."""
    if _small_and_well_formed(x, kernel, bias):  # the reference's arithmetic, without its checks' microseconds
        with threads.serial_blas():
            y = x @ kernel
            if bias is not None:
                y += bias
        return y, (x, kernel, bias is not None)
    if _one_row_over_a_big_kernel(x, kernel):
        return _one_row_forward(x, kernel, bias)
    if _mid_sized_deep_product(x, kernel):
        return _depth_forward(x, kernel, bias)
    if not _split(x, kernel):
        with threads.serial_blas():
            return reference.dense_forward(x, kernel, bias)
    x = float_array(x, "x", ndim=2)
    kernel = float_array(kernel, "kernel", ndim=2).astype(x.dtype, copy=False)
    n, ci = x.shape
    co = kernel.shape[1]
    by_rows = n * ci >= ci * co  # x is the bigger operand: each part takes rows of the batch; else columns
    parts = _forward_parts(n * ci * co)
    _check_bias(x, kernel, bias)
    if x.dtype == np.float32 and blas.sgemm() is not None:
        y = np.empty((n, co), dtype=x.dtype)
        x, kernel = np.ascontiguousarray(x), np.ascontiguousarray(kernel)
        bounds, shares = _cut(n if by_rows else co, parts, threads.num_threads())
        threads.run_pieces([(_forward_piece, (blas.sgemm(), (x, kernel, y), (bounds, by_rows), share))
                            for share in shares])
        if bias is not None:
            y += np.asarray(bias, dtype=x.dtype)  # as the reference: the bias added to the finished product
    elif by_rows:
        def piece(span):
            return reference.dense_forward(x[span[0]:span[1]], kernel, bias)[0]

        y = np.concatenate(threads.parallel_map(piece, threads.spans(n, parts)))
    else:
        def piece(span):
            part_bias = None if bias is None else np.asarray(bias)[span[0]:span[1]]
            return reference.dense_forward(x, kernel[:, span[0]:span[1]], part_bias)[0]

        y = np.concatenate(threads.parallel_map(piece, threads.spans(co, parts)), axis=1)
    return y, (x, kernel, bias is not None)


@njit(cache=True, nogil=True)
def _forward_piece(sgemm, operands, plan, share, state, post_slot, done_slot, job):
    """Parts share[0]..share[1]-1 of y = x @ kernel, each one sgemm: operands (x, kernel, y), plan (bounds,
    by_rows): rows bounds[p]..bounds[p+1]-1 of x and y when by_rows, else those columns of the kernel and y.
    A piece of `scratchnet.runtime.team`."""
    team.post_done(state, post_slot, job)
    x, kernel, y = operands
    bounds, by_rows = plan
    for part in range(share[0], share[1]):
        start, stop = bounds[part], bounds[part + 1]
        if by_rows:
            blas.sgemm_rows(sgemm, x[start:stop], kernel, y[start:stop], blas.AS_IS, 0.0)
        else:
            blas.sgemm_columns(sgemm, x, kernel, y, start, stop)
    team.mark_done(state, post_slot, done_slot, job)


def _small_and_well_formed(x, kernel, bias):
    """True for a product that no other path of `dense_forward` takes (fewer than DEPTH_SPLIT_MIN_MACS
    multiply-adds, not one row over a big kernel) whose operands need no check and no cast: NumPy arrays of
    one float dtype, x (N, CI), kernel (CI, CO), bias (CO,) or None."""
    if type(x) is not np.ndarray or type(kernel) is not np.ndarray or x.ndim != 2 or kernel.ndim != 2:
        return False
    n, ci = x.shape
    co = kernel.shape[1]
    if kernel.shape[0] != ci or x.dtype != kernel.dtype or x.dtype.kind != "f" or n * ci * co >= DEPTH_SPLIT_MIN_MACS:
        return False
    if n == 1 and ci * co >= ONE_ROW_PARALLEL_MIN_WEIGHTS:
        return False
    return bias is None or (type(bias) is np.ndarray and bias.shape == (co,) and bias.dtype == x.dtype)


def _one_row_over_a_big_kernel(x, kernel):
    """True for one float32 row times a float32 kernel of ONE_ROW_PARALLEL_MIN_WEIGHTS values or more, when
    NumPy's OpenBLAS offers its sgemv."""
    shape_x, shape_k = getattr(x, "shape", ()), getattr(kernel, "shape", ())
    return (len(shape_x) == 2 and len(shape_k) == 2 and shape_x[0] == 1 and shape_x[1] == shape_k[0]
            and shape_k[0] * shape_k[1] >= ONE_ROW_PARALLEL_MIN_WEIGHTS
            and getattr(x, "dtype", None) == np.float32 and getattr(kernel, "dtype", None) == np.float32
            and blas.sgemv() is not None)


def _one_row_forward(x, kernel, bias):
    """`dense_forward` of one row: the kernel's rows (and x's values) cut into PARTS parts, each read front to
    back by one sgemv into a partial sum of its own; the threads share the parts, and the partial sums are
    added in part order, so the cut and the sums are the same at any thread count."""
    _check_bias(x, kernel, bias)
    x, kernel = np.ascontiguousarray(x), np.ascontiguousarray(kernel)
    bounds, shares = _cut(kernel.shape[0], threads.PARTS, threads.num_threads())
    partial = np.empty((bounds.size - 1, kernel.shape[1]), dtype=x.dtype)
    threads.run_pieces([(_one_row_piece, (blas.sgemv(), (x[0], kernel, partial), bounds, share))
                        for share in shares])
    y = np.empty((1, kernel.shape[1]), dtype=x.dtype)
    _add_parts(partial.reshape(bounds.size - 1, 1, -1), _bias_or_empty(bias, x.dtype), y)
    return y, (x, kernel, bias is not None)


def _check_bias(x, kernel, bias):
    """Raise the reference's error for a bias that is not a float vector of CO values (None passes)."""
    if bias is None:
        return
    shape, kind = getattr(bias, "shape", None), getattr(getattr(bias, "dtype", None), "kind", "")
    if shape != (kernel.shape[1],) or kind != "f":
        reference.dense_forward(x[:0], kernel, bias)  # the reference's checks, on no rows: it raises


def _bias_or_empty(bias, dtype):
    """The bias in `dtype` for `_add_parts`, or an empty array for none."""
    return np.empty(0, dtype=dtype) if bias is None else np.asarray(bias, dtype=dtype)


@njit(cache=True, nogil=True)
def _add_parts(partial, bias, y):
    """y = partial[0] + partial[1] + ... in part order, then + bias (when not empty): partial (parts, N, CO),
    y (N, CO). One call, where as many NumPy additions would cost a microsecond or two each."""
    flat_y = y.reshape(-1)  # whole-array loops, which LLVM vectorises (rows of CO values are too short)
    flat_partial = partial.reshape(partial.shape[0], -1)
    for i in range(flat_y.size):
        flat_y[i] = flat_partial[0, i]
    for part in range(1, partial.shape[0]):
        for i in range(flat_y.size):
            flat_y[i] += flat_partial[part, i]
    if bias.size:
        for r in range(y.shape[0]):
            for c in range(y.shape[1]):
                y[r, c] += bias[c]


def _mid_sized_deep_product(x, kernel):
    """True for a float32 product that `_depth_forward` serves (DEPTH_SPLIT_MIN_MACS), when NumPy's OpenBLAS
    offers its sgemm."""
    shape_x, shape_k = getattr(x, "shape", ()), getattr(kernel, "shape", ())
    if len(shape_x) != 2 or len(shape_k) != 2 or shape_x[1] != shape_k[0] or shape_k[0] < DEPTH_SPLIT_MIN_ROWS:
        return False
    macs = shape_x[0] * shape_x[1] * shape_k[1]
    return (DEPTH_SPLIT_MIN_MACS <= macs < DENSE_PARALLEL_MIN_MACS and getattr(x, "dtype", None) == np.float32
            and getattr(kernel, "dtype", None) == np.float32 and blas.sgemm() is not None)


def _depth_forward(x, kernel, bias):
    """`dense_forward` cut along the sum: x's columns and the kernel's rows in DEPTH_PARTS parts, each part's
    product one sgemm into a partial sum of its own (`_depth_piece`); the threads share the parts, and the
    partial sums are added in part order, then the bias, so the cut and the sums are the same at any thread
    count."""
    _check_bias(x, kernel, bias)
    x, kernel = np.ascontiguousarray(x), np.ascontiguousarray(kernel)
    bounds, shares = _cut(kernel.shape[0], DEPTH_PARTS, threads.num_threads())
    partial = np.empty((bounds.size - 1, x.shape[0], kernel.shape[1]), dtype=x.dtype)
    threads.run_pieces([(_depth_piece, (blas.sgemm(), (x, kernel, partial), bounds, share)) for share in shares])
    y = np.empty((x.shape[0], kernel.shape[1]), dtype=x.dtype)
    _add_parts(partial, _bias_or_empty(bias, x.dtype), y)
    return y, (x, kernel, bias is not None)


@functools.lru_cache(maxsize=64)  # a model's few layers, called batch after batch
def _cut(size, parts, thread_count):
    """(bounds, shares) of a product's pieces: range(size) cut into `parts` parts (fewer if size is smaller),
    where each starts (an int64 array that nothing writes to), and each thread's (first, stop) parts."""
    spans = threads.spans(size, parts)
    return span_bounds(spans), tuple(threads.spans(len(spans), thread_count))


@njit(cache=True, nogil=True)
def _depth_piece(sgemm, operands, bounds, share, state, post_slot, done_slot, job):
    """Parts share[0]..share[1]-1 of x @ kernel cut along the sum: operands (x (N, CI), kernel (CI, CO), partial
    (parts, N, CO)); partial[p] = x[:, rows] @ kernel[rows] for the rows bounds[p]..bounds[p+1]-1, one sgemm.
    A piece of `scratchnet.runtime.team`."""
    team.post_done(state, post_slot, job)
    x, kernel, partial = operands
    for part in range(share[0], share[1]):
        blas.sgemm_depth(sgemm, x, kernel, partial[part], bounds[part], bounds[part + 1])
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True)
def _one_row_piece(sgemv, operands, bounds, share, state, post_slot, done_slot, job):
    """Parts share[0]..share[1]-1 of one row times a kernel: operands (x (CI,), kernel (CI, CO), partial
    (parts, CO)); partial[p] = x[rows] @ kernel[rows] for the rows bounds[p]..bounds[p+1]-1, one sgemv. A
    piece of `scratchnet.runtime.team`."""
    team.post_done(state, post_slot, job)
    x, kernel, partial = operands
    for part in range(share[0], share[1]):
        blas.sgemv_rows(sgemv, x, kernel, partial[part], bounds[part], bounds[part + 1])
    team.mark_done(state, post_slot, done_slot, job)


def _forward_parts(macs):
    """How many parts a forward product of `macs` multiply-adds is cut into: one per DENSE_PARALLEL_MIN_MACS,
    rounded down to a power of two (so that 1, 2, 4 or 8 threads share them evenly), at most PARTS."""
    parts = min(threads.PARTS, macs // max(1, DENSE_PARALLEL_MIN_MACS))
    return 1 << (max(1, parts).bit_length() - 1)


def dense_backward(dy, cache, need_dx=True):
    """Gradients of `dense_forward`: dy (N, CO) -> (dx (N, CI) or None when not need_dx, dkernel, dbias)."""
    x, kernel, has_bias = cache
    if not _split(x, kernel):
        with threads.serial_blas():
            return reference.dense_backward(dy, cache, need_dx)
    n, ci = x.shape
    co = kernel.shape[1]
    dy = check_dy(dy, (n, co), x.dtype, "dense_backward")
    dkernel = np.empty(kernel.shape, dtype=x.dtype)
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    # dkernel = x.T @ dy by rows of dkernel (x's columns) or by its columns (dy's), whichever is bigger
    by_kernel_rows = ci >= co
    tasks = [("dkernel_rows" if by_kernel_rows else "dkernel_cols", span)
             for span in _spans(ci if by_kernel_rows else co)]
    if need_dx:  # dx = dy @ kernel.T by rows of the batch when x is the bigger, else by the kernel's rows
        by_batch_rows = n * ci >= ci * co
        tasks += [("dx_rows" if by_batch_rows else "dx_cols", span) for span in _spans(n if by_batch_rows else ci)]

    def run(task):
        part, (start, stop) = task
        if part == "dkernel_rows":
            np.matmul(x[:, start:stop].T, dy, out=dkernel[start:stop])
        elif part == "dkernel_cols":
            dkernel[:, start:stop] = x.T @ dy[:, start:stop]
        elif part == "dx_rows":
            np.matmul(dy[start:stop], kernel.T, out=dx[start:stop])
        else:  # (kernel rows @ dy.T).T: OpenBLAS is slower on dy @ kernel_rows.T (docs/performance.md)
            dx[:, start:stop] = (kernel[start:stop] @ dy.T).T

    threads.parallel_map(run, tasks)
    dbias = dy.sum(axis=0) if has_bias else None
    return dx, dkernel, dbias


def _split(x, kernel):
    """True when the product is big enough to cut into pieces (and well formed); never a matter of the thread
    count, which would change the rounding."""
    shape_x, shape_k = getattr(x, "shape", ()), getattr(kernel, "shape", ())
    if len(shape_x) != 2 or len(shape_k) != 2 or shape_x[1] != shape_k[0]:
        return False  # the reference raises its error message
    if getattr(getattr(x, "dtype", None), "kind", "") != "f":
        return False
    return shape_x[0] * shape_x[1] * shape_k[1] >= DENSE_PARALLEL_MIN_MACS


def _spans(size):
    """(start, stop) spans cutting range(size) into PARTS pieces (fewer if size is smaller), at any thread count."""
    return threads.part_spans(size)
