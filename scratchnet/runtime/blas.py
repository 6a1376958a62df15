"""BLAS's sgemm (and sgemv), callable from numba code: NumPy's own OpenBLAS through ctypes, no SciPy needed.

A convolution chunk that copies its windows (numba) and then multiplies them (``np.matmul``) goes back to
Python between the two, and takes the GIL there. With sgemm called from inside the numba kernel, a whole
chunk is ONE call that holds no GIL from start to end, which is what lets `scratchnet.runtime.team` hand
chunks to a worker thread without the two threads queueing for the GIL.

NumPy's wheels ship OpenBLAS built for 64-bit integers with the symbols renamed
(``scipy_cblas_sgemm64_``); threadpoolctl tells us which library file NumPy loaded. A NumPy built against
another BLAS has no such symbol: `sgemm()` is then None and the kernels keep to ``np.matmul``.

The ctypes function is handed to the numba kernels as an ARGUMENT (numba types it as a function pointer).
Compiled into a kernel as a global it would be a fixed address, and numba refuses to cache such kernels.
"""
from __future__ import annotations

import ctypes

import numpy as np
from numba import njit

__all__ = ["AS_IS", "NO_TRANS", "ROW_MAJOR", "TRANS", "sgemm", "sgemm_columns", "sgemm_rows", "sgemv",
           "sgemv_rows"]

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
"""CBLAS's enum values (cblas.h): CblasRowMajor, CblasNoTrans, CblasTrans."""

AS_IS = np.False_
"""`sgemm_rows`'s trans_a for op(a) = a, in numba code. A NumPy bool, which numba types as a plain bool like a
flag computed at run time; the literal False has a type of its own, for which numba would compile (and
cache) sgemm_rows a second time."""

SYMBOLS = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")
"""cblas_sgemm of an OpenBLAS with 64-bit integers, as NumPy's wheels name it and as OpenBLAS does."""

GEMV_SYMBOLS = ("scipy_cblas_sgemv64_", "cblas_sgemv64_")
"""cblas_sgemv, named as SYMBOLS."""

_functions = {}  # "sgemm" / "sgemv" -> the ctypes function or None, once looked up


def sgemm():
    """cblas_sgemm of the OpenBLAS NumPy uses, as a ctypes function, or None if there is none to be had.

    Arguments: order, trans_a, trans_b (C ints), m, n, k (int64), alpha (float), a (pointer), lda (int64),
    b, ldb, beta, c, ldc. Looked up once per process.
    """
    if "sgemm" not in _functions:
        integer, pointer = ctypes.c_int64, ctypes.c_void_p
        _functions["sgemm"] = _find(SYMBOLS, [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer,
                                              ctypes.c_float, pointer, integer, pointer, integer,
                                              ctypes.c_float, pointer, integer])
    return _functions["sgemm"]


def sgemv():
    """cblas_sgemv of the OpenBLAS NumPy uses, as a ctypes function, or None (as `sgemm`).

    Arguments: order, trans (C ints), m, n (int64), alpha (float), a (pointer), lda (int64), x (pointer),
    incx (int64), beta (float), y (pointer), incy (int64).
    """
    if "sgemv" not in _functions:
        integer, pointer = ctypes.c_int64, ctypes.c_void_p
        _functions["sgemv"] = _find(GEMV_SYMBOLS, [ctypes.c_int, ctypes.c_int, integer, integer, ctypes.c_float,
                                                   pointer, integer, pointer, integer, ctypes.c_float, pointer,
                                                   integer])
    return _functions["sgemv"]


def _find(symbols, argtypes):
    """The first of `symbols` in the OpenBLAS NumPy loaded, typed with `argtypes`; None if none is there."""
    from threadpoolctl import ThreadpoolController

    np.ones((2, 2)) @ np.ones((2, 2))  # NumPy loads its BLAS lazily on some builds
    for library in ThreadpoolController().select(internal_api="openblas").lib_controllers:
        try:
            handle = ctypes.CDLL(library.filepath)
        except OSError:
            continue
        for symbol in symbols:
            function = getattr(handle, symbol, None)
            if function is not None:
                function.argtypes = argtypes
                function.restype = None
                return function
    return None


@njit(cache=True, nogil=True)
def sgemm_rows(sgemm, a, b, c, trans_a, beta):
    """c = op(a) @ b + beta * c for 2-D float32 arrays whose rows are contiguous (row strides may be larger).

    op(a) is a, or a.T when `trans_a`. The numba twin of ``np.matmul(a, b, out=c)`` (beta 0) and of
    ``c += a.T @ b`` (trans_a, beta 1), for use inside nogil kernels; `sgemm` is `sgemm()`.
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:  # BLAS would leave c alone; the product of empty matrices is zero
        for i in range(m):
            for j in range(n):
                c[i, j] = 0.0 if beta == 0.0 else beta * c[i, j]
        return
    # Leading dimensions: the row strides in elements (a one-row view may report any stride).
    sgemm(ROW_MAJOR, TRANS if trans_a else NO_TRANS, NO_TRANS, m, n, k, 1.0,
          a.ctypes, max(a.shape[1], a.strides[0] // 4), b.ctypes, max(b.shape[1], b.strides[0] // 4),
          beta, c.ctypes, max(n, c.strides[0] // 4))


@njit(cache=True, nogil=True)
def sgemm_columns(sgemm, a, b, c, start, stop):
    """c[:, start:stop] = a @ b[:, start:stop] for C-contiguous 2-D float32 a (M, K), b (K, N), c (M, N).

    `sgemm_rows` on column slices, which numba would type as arrays of another layout, compiling (and
    caching) sgemm_rows a second time; here the slices stay inside, and the callers pass whole arrays.
    """
    m, k = a.shape
    n = stop - start
    if m == 0 or n == 0:
        return
    b_part, c_part = b[:, start:stop], c[:, start:stop]
    if k == 0:
        c_part[:, :] = 0.0
        return
    sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, 1.0, a.ctypes, k, b_part.ctypes, b.shape[1], 0.0,
          c_part.ctypes, c.shape[1])


@njit(cache=True, nogil=True)
def sgemv_rows(sgemv, x, b, y, start, stop):
    """y = x[start:stop] @ b[start:stop] for C-contiguous float32 x (K,), b (K, N), y (N,): one row times rows
    start..stop-1 of a matrix, read front to back, with BLAS's matrix-vector product (sgemv, transposed)."""
    n = b.shape[1]
    if n == 0:
        return
    if stop == start:
        y[:] = 0.0
        return
    b_part, x_part = b[start:stop], x[start:stop]
    sgemv(ROW_MAJOR, TRANS, stop - start, n, 1.0, b_part.ctypes, n, x_part.ctypes, 1, 0.0, y.ctypes, 1)
