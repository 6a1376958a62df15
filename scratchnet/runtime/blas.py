"""BLAS's sgemm (and sgemv), callable from numba code: NumPy's own OpenBLAS, no SciPy needed.

A convolution chunk that copies its windows (numba) and then multiplies them (``np.matmul``) goes back to
Python between the two, and takes the GIL there. With sgemm called from inside the numba kernel, a whole
chunk is ONE call that holds no GIL from start to end, which is what lets `scratchnet.runtime.team` hand
chunks to a worker thread without the two threads queueing for the GIL.

NumPy's wheels ship OpenBLAS built for 64-bit integers with the symbols renamed
(``scipy_cblas_sgemm64_``); threadpoolctl tells us which library file NumPy loaded, and ctypes finds the
function's address in it. A NumPy built against another BLAS has no such symbol: `sgemm()` is then None and
the kernels keep to ``np.matmul``.

The address is handed to the numba kernels as an ARGUMENT, a plain integer, and called through
`_call_sgemm` / `_call_sgemv`, intrinsics that turn it into a function pointer of cblas's signature. Compiled into a
kernel as a constant it would be a fixed address, and numba refuses to cache such kernels; handed over as a
ctypes function, numba would convert it (``ctypes.cast``) on every call, a microsecond or more each time a
piece starts.
"""
from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.extending import intrinsic

__all__ = ["AS_IS", "NO_TRANS", "ROW_MAJOR", "TRANS", "sgemm", "sgemm_columns", "sgemm_depth", "sgemm_rows",
           "sgemv", "sgemv_rows"]

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

_functions = {}  # "sgemm" / "sgemv" -> the address or None, once looked up


def sgemm():
    """The address of cblas_sgemm in the OpenBLAS NumPy uses (an int, for `sgemm_rows` and its kin), or None if
    there is none to be had. Looked up once per process.

    cblas_sgemm's arguments: order, trans_a, trans_b (C ints), m, n, k (int64), alpha (float), a (pointer),
    lda (int64), b, ldb, beta, c, ldc.
    """
    if "sgemm" not in _functions:
        _functions["sgemm"] = _find(SYMBOLS)
    return _functions["sgemm"]


def sgemv():
    """The address of cblas_sgemv in the OpenBLAS NumPy uses, or None (as `sgemm`).

    cblas_sgemv's arguments: order, trans (C ints), m, n (int64), alpha (float), a (pointer), lda (int64),
    x (pointer), incx (int64), beta (float), y (pointer), incy (int64).
    """
    if "sgemv" not in _functions:
        _functions["sgemv"] = _find(GEMV_SYMBOLS)
    return _functions["sgemv"]


def _find(symbols):
    """The address of the first of `symbols` in the OpenBLAS NumPy loaded; None if none is there."""
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
                return ctypes.cast(function, ctypes.c_void_p).value
    return None


def _function_pointer(builder, address, argument_types):
    """LLVM IR: the int64 `address` as a pointer to a C function of `argument_types` that returns nothing."""
    return builder.inttoptr(address, ir.FunctionType(ir.VoidType(), argument_types).as_pointer())


def _c_arguments(builder, integers, scalars, kinds):
    """LLVM IR values for a C call: `kinds` is a string with one letter per argument, "i" a C int (the next of
    the int64 tuple `integers`, truncated), "l" an int64 (the next of them), "p" a pointer (the next of them,
    an address), "f" a float (the next of the float32 tuple `scalars`). Returns (types, values)."""
    i32, i64, f32, pointer = ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.IntType(8).as_pointer()
    argument_types, values, next_integer, next_scalar = [], [], 0, 0
    for kind in kinds:
        if kind == "f":
            argument_types.append(f32)
            values.append(builder.extract_value(scalars, next_scalar))
            next_scalar += 1
            continue
        value = builder.extract_value(integers, next_integer)
        next_integer += 1
        if kind == "i":
            argument_types.append(i32)
            values.append(builder.trunc(value, i32))
        elif kind == "p":
            argument_types.append(pointer)
            values.append(builder.inttoptr(value, pointer))
        else:
            argument_types.append(i64)
            values.append(value)
    return argument_types, values


SGEMM_ARGUMENTS = "iiilllfplplfpl"
"""cblas_sgemm's arguments for `_c_arguments`: order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
ldc (64-bit integers: the OpenBLAS of SYMBOLS)."""

SGEMV_ARGUMENTS = "iillfplplfpl"
"""cblas_sgemv's: order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy."""


def _blas_intrinsic(kinds, integer_count):
    """An intrinsic ``call(address, integers, scalars)`` that calls the C function at `address` (int64) with the
    arguments `kinds` (`_c_arguments`) taken from `integers` (a tuple of `integer_count` int64) and `scalars`
    (a tuple of two float32)."""

    @intrinsic
    def call(typingctx, address, integers, scalars):
        def codegen(context, builder, signature, args):
            address, integers, scalars = args
            argument_types, values = _c_arguments(builder, integers, scalars, kinds)
            builder.call(_function_pointer(builder, address, argument_types), values)
            return context.get_dummy_value()

        signature = types.none(types.int64, types.UniTuple(types.int64, integer_count),
                               types.UniTuple(types.float32, 2))
        return signature, codegen

    return call


def _ctypes_call(kinds):
    """The same call as `_blas_intrinsic`'s, through ctypes, for plain Python (NUMBA_DISABLE_JIT=1)."""
    c_types = {"i": ctypes.c_int, "l": ctypes.c_int64, "p": ctypes.c_void_p, "f": ctypes.c_float}
    prototype = ctypes.CFUNCTYPE(None, *(c_types[kind] for kind in kinds))

    def call(address, integers, scalars):
        integers, scalars = iter(integers), iter(scalars)
        prototype(int(address))(*(float(next(scalars)) if kind == "f" else int(next(integers)) for kind in kinds))

    return call


if config.DISABLE_JIT:  # no intrinsics in plain Python
    _call_sgemm, _call_sgemv = _ctypes_call(SGEMM_ARGUMENTS), _ctypes_call(SGEMV_ARGUMENTS)
else:
    _call_sgemm, _call_sgemv = _blas_intrinsic(SGEMM_ARGUMENTS, 12), _blas_intrinsic(SGEMV_ARGUMENTS, 10)


@njit(cache=True, nogil=True, inline="always")
def _sgemm_call(sgemm, trans_a, sizes, a, b, c, leading, beta):
    """cblas_sgemm(row-major, trans_a or not, no trans, m, n, k, 1, a, lda, b, ldb, beta, c, ldc) at the address
    `sgemm`: sizes (m, n, k), leading (lda, ldb, ldc), the arrays passed by their data addresses."""
    m, n, k = sizes
    lda, ldb, ldc = leading
    integers = (np.int64(ROW_MAJOR), np.int64(TRANS if trans_a else NO_TRANS), np.int64(NO_TRANS), np.int64(m),
                np.int64(n), np.int64(k), np.int64(a.ctypes.data), np.int64(lda), np.int64(b.ctypes.data),
                np.int64(ldb), np.int64(c.ctypes.data), np.int64(ldc))
    _call_sgemm(np.int64(sgemm), integers, (np.float32(1.0), np.float32(beta)))


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
    leading = (max(a.shape[1], a.strides[0] // 4), max(b.shape[1], b.strides[0] // 4), max(n, c.strides[0] // 4))
    _sgemm_call(sgemm, trans_a, (m, n, k), a, b, c, leading, beta)


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
    _sgemm_call(sgemm, False, (m, n, k), a, b_part, c_part, (k, b.shape[1], c.shape[1]), 0.0)


@njit(cache=True, nogil=True)
def sgemm_depth(sgemm, a, b, c, start, stop):
    """c = a[:, start:stop] @ b[start:stop] for C-contiguous 2-D float32 a (M, K), b (K, N), c (M, N): the part
    start..stop-1 of the sum over K (as `sgemm_columns`, the slices stay inside)."""
    m, n = c.shape
    if m == 0 or n == 0:
        return
    if stop == start:
        c[:, :] = 0.0
        return
    a_part, b_part = a[:, start:stop], b[start:stop]
    _sgemm_call(sgemm, False, (m, n, stop - start), a_part, b_part, c, (a.shape[1], n, n), 0.0)


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
    integers = (np.int64(ROW_MAJOR), np.int64(TRANS), np.int64(stop - start), np.int64(n), np.int64(b_part.ctypes.data),
                np.int64(n), np.int64(x_part.ctypes.data), np.int64(1), np.int64(y.ctypes.data), np.int64(1))
    _call_sgemv(np.int64(sgemv), integers, (np.float32(1.0), np.float32(0.0)))
