"""Dense layers on BLAS under the thread policy: the reference's arithmetic, split over the worker threads.

The arithmetic is `scratchnet.ops.dense` (NumPy's matrix product is BLAS; nothing hand-written is
faster). What this twin adds is who runs it. OpenBLAS's own threads are never used during training:
after a multi-threaded product they keep spinning for a while, and the next convolution's worker
threads then fight them for the cores. So:

* a product below DENSE_PARALLEL_MIN_MACS runs on the calling thread with BLAS held at one thread;
* a bigger one is cut into `scratchnet.runtime.threads.PARTS` pieces that the worker threads of
  `scratchnet.runtime.threads.parallel_map` run, each a one-thread BLAS call, cutting the bigger operand
  so that each thread reads only its part of it: x's rows when the batch is the bigger, the kernel's
  columns or rows when the kernel is.

BLAS rounds a row of a product differently with the shape of the call, so the cut depends on the product
alone: the same pieces, and the same values, at any thread count (at one thread they run one by one).
"""
from __future__ import annotations

import numpy as np

from scratchnet.ops import dense as reference
from scratchnet.ops._checks import check_dy, float_array
from scratchnet.runtime import threads

__all__ = ["dense_backward", "dense_forward"]

DENSE_PARALLEL_MIN_MACS = 8_000_000
"""Dense products with at least this many multiply-adds (N*CI*CO) are cut into pieces for the worker threads.

Trades `parallel_map`'s hand-over (a thread wake-up and the GIL) against the product it shares: the
CNNs' big hidden layers are split, the MLPs' small products are not. Retune if the hand-over gets
cheaper or the zoo's dense layers change size."""


def dense_forward(x, kernel, bias=None):
    """``y = x @ kernel + bias``: x (N, CI), kernel (CI, CO), bias (CO,) or None -> y (N, CO), cache."""
    if not _split(x, kernel):
        with threads.serial_blas():
            return reference.dense_forward(x, kernel, bias)
    x = float_array(x, "x", ndim=2)
    kernel = float_array(kernel, "kernel", ndim=2).astype(x.dtype, copy=False)
    n, ci = x.shape
    co = kernel.shape[1]
    if n * ci >= ci * co:  # x is the bigger operand: each thread takes rows of the batch
        def piece(span):
            return reference.dense_forward(x[span[0]:span[1]], kernel, bias)[0]

        y = np.concatenate(threads.parallel_map(piece, _spans(n)))
    else:  # the kernel is: each thread takes output columns
        def piece(span):
            part_bias = None if bias is None else np.asarray(bias)[span[0]:span[1]]
            return reference.dense_forward(x, kernel[:, span[0]:span[1]], part_bias)[0]

        if bias is not None:
            reference.dense_forward(x[:0], kernel, bias)  # the reference's checks of the bias, on no rows
        y = np.concatenate(threads.parallel_map(piece, _spans(co)), axis=1)
    return y, (x, kernel, bias is not None)


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
