"""The numba kernels equal their readable NumPy references (scratchnet.ops) and keep the op contract."""
import ast
import inspect
import itertools
import pathlib
import re

import numba
import numpy as np
import pytest

from scratchnet import engine, kernels, ops
from scratchnet.kernels import activations as kact
from scratchnet.kernels import conv as kconv
from scratchnet.kernels import conv_bias_relu as kcbr
from scratchnet.kernels import conv_chunks as kchunks
from scratchnet.kernels import conv_direct as kdirect
from scratchnet.kernels import conv_team as kteam
from scratchnet.kernels import dropout as kdrop
from scratchnet.kernels import fused as kfused
from scratchnet.kernels import im2col as kim2col
from scratchnet.kernels import optimizers as kopt
from scratchnet.kernels import pooling as kpool
from scratchnet.runtime import threads

DTYPES = [np.float32, np.float64]

# float32 convolutions take either path of scratchnet.kernels.conv (TEAM_PIECES: conv_team or conv_chunks);
# float64 takes conv_chunks (parallel_map).
CONV_PATHS = [(np.float32, True), (np.float32, False), (np.float64, False)]
CONV_PATH_IDS = ["float32-team", "float32-parallel_map", "float64"]


def assert_matches_reference(actual, expected):
    """Same shape and dtype; values equal to rtol 1e-5 (float32) / 1e-12 (float64) of the array's scale."""
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    rtol = 1e-5 if expected.dtype == np.float32 else 1e-12
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def at_thread_counts(compute, counts):
    """[compute() with the thread policy at each of `counts`], the policy restored afterwards."""
    previous = threads.num_threads()
    try:
        results = []
        for count in counts:
            threads.configure(num_threads=count)
            results.append(compute())
        return results
    finally:
        threads.configure(num_threads=previous)


# (N, H, W, CI, CO, KH, KW): odd/even sizes and kernels, 1..several channels, batch 1..3.
CONV_SHAPES = [
    (1, 5, 5, 1, 1, 3, 3),
    (2, 7, 6, 3, 4, 3, 2),
    (3, 8, 8, 2, 5, 5, 5),
    (2, 9, 7, 4, 3, 2, 2),
    (1, 6, 9, 5, 2, 4, 3),
    (2, 4, 4, 3, 2, 4, 4),
]


@pytest.mark.parametrize("col2im", ["scatter", "gather", "transposed"])
@pytest.mark.parametrize("keep_cols_bytes", [0, kchunks.KEEP_COLS_BYTES], ids=["recompute_cols", "keep_cols"])
@pytest.mark.parametrize(("dtype", "team"), CONV_PATHS, ids=CONV_PATH_IDS)
@pytest.mark.parametrize("padding", ["same", "valid", "SAME"])
@pytest.mark.parametrize("strides", [1, 2, (1, 2)])
@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv2d_kernel_matches_reference(shape, strides, padding, dtype, team, keep_cols_bytes, col2im, monkeypatch):
    """Every path to dx: scatter-add and gather col2im, and (stride 1, CO <= CI) the transposed convolution."""
    monkeypatch.setattr(kconv, "TEAM_PIECES", team)
    monkeypatch.setattr(kchunks, "KEEP_COLS_BYTES", keep_cols_bytes)
    monkeypatch.setattr(kconv, "GATHER_MIN_CHANNELS", 1 if col2im == "gather" else 10**9)
    monkeypatch.setattr(kconv, "TRANSPOSED_DX", col2im == "transposed")
    n, h, w, ci, co, kh, kw = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, h, w, ci)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, ci, co)).astype(dtype)

    y, cache = kernels.conv2d_forward(x, kernel, strides, padding)
    y_ref, cache_ref = ops.conv2d_forward(x, kernel, strides, padding)
    assert_matches_reference(y, y_ref)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dkernel = kernels.conv2d_backward(dy, cache)
    dx_ref, dkernel_ref = ops.conv2d_backward(dy, cache_ref)
    assert_matches_reference(dx, dx_ref)
    assert_matches_reference(dkernel, dkernel_ref)


@pytest.mark.parametrize(("dtype", "team"), CONV_PATHS, ids=CONV_PATH_IDS)
@pytest.mark.parametrize("col2im", ["scatter", "gather", "transposed"])
@pytest.mark.parametrize("chunk_bytes", [1, 10**9])
def test_conv2d_kernel_chunking_does_not_change_results(monkeypatch, chunk_bytes, col2im, dtype, team):
    """One image per chunk and the whole batch in one chunk give the reference's results."""
    monkeypatch.setattr(kconv, "TEAM_PIECES", team)
    monkeypatch.setattr(kchunks, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(kteam, "PIECE_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(kconv, "GATHER_MIN_CHANNELS", 1 if col2im == "gather" else 10**9)
    monkeypatch.setattr(kconv, "TRANSPOSED_DX", col2im == "transposed")
    monkeypatch.setattr(kchunks, "KEEP_COLS_BYTES", 0)  # rebuild the columns chunk by chunk
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 9, 9, 3)).astype(dtype)
    transposed = col2im == "transposed"  # needs stride 1 and CO <= CI
    kernel = rng.standard_normal((3, 3, 3, 2 if transposed else 4)).astype(dtype)
    strides = 1 if transposed else 2
    y, cache = kernels.conv2d_forward(x, kernel, strides, "same")
    y_ref, cache_ref = ops.conv2d_forward(x, kernel, strides, "same")
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_matches_reference(y, y_ref)
    for got, want in zip(kernels.conv2d_backward(dy, cache), ops.conv2d_backward(dy, cache_ref)):
        assert_matches_reference(got, want)


@pytest.mark.parametrize("col2im", ["scatter", "gather", "transposed"])
@pytest.mark.parametrize("keep_cols_bytes", [0, kchunks.KEEP_COLS_BYTES], ids=["recompute_cols", "keep_cols"])
@pytest.mark.parametrize(("dtype", "team"), CONV_PATHS, ids=CONV_PATH_IDS)
def test_conv2d_kernel_split_over_worker_threads_matches_reference(monkeypatch, dtype, team, keep_cols_bytes,
                                                                   col2im):
    """The parallel paths (chunks on two worker threads, BLAS at one thread each) give the same results."""
    monkeypatch.setattr(kconv, "TEAM_PIECES", team)
    monkeypatch.setattr(kchunks, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(kteam, "TEAM_MIN_MACS", 0)
    monkeypatch.setattr(kchunks, "KEEP_COLS_BYTES", keep_cols_bytes)
    monkeypatch.setattr(kconv, "GATHER_MIN_CHANNELS", 1 if col2im == "gather" else 10**9)
    monkeypatch.setattr(kconv, "TRANSPOSED_DX", col2im == "transposed")
    monkeypatch.setattr(kchunks, "CHUNK_BYTES", 1)  # one image per chunk: 5 chunks over 2 threads
    monkeypatch.setattr(kteam, "PIECE_CHUNK_BYTES", 1)
    pieces = []
    monkeypatch.setattr(threads, "run_pieces", lambda work, run=threads.run_pieces: (pieces.append(len(work)),
                                                                                   run(work)))
    previous = threads.num_threads()
    threads.configure(num_threads=2)
    try:
        rng = np.random.default_rng(11)
        x = rng.standard_normal((5, 8, 7, 3)).astype(dtype)
        kernel = rng.standard_normal((3, 3, 3, 3 if col2im == "transposed" else 4)).astype(dtype)  # CO <= CI
        y, cache = kernels.conv2d_forward(x, kernel, 1, "same")
        y_ref, cache_ref = ops.conv2d_forward(x, kernel, 1, "same")
        assert_matches_reference(y, y_ref)
        dy = rng.standard_normal(y.shape).astype(dtype)
        for got, want in zip(kernels.conv2d_backward(dy, cache), ops.conv2d_backward(dy, cache_ref)):
            assert_matches_reference(got, want)
    finally:
        threads.configure(num_threads=previous)
    assert pieces == ([2, 2] if team else [])  # the team path: forward and backward, one piece per thread


# (N, H, W, CI, CO, KH, KW, strides, padding) with 16 output channels: pixel counts a multiple of 4 and not, an
# image of exactly 4 pixels and one of fewer (which falls back to the columns), 16 input channels (the
# transposed dx runs the direct loop too), strides; then 32 output channels: windows of at most
# WIDE_MAX_WINDOW values (pixel counts a multiple of 3 and not, strides, 32 input channels over a short window)
# and one longer (which falls back to the columns); then 64 output channels, whatever the window (pixel counts a
# multiple of 3 and not, a stride); then 8 output channels (pixel counts a multiple of 8 and not, an image of
# exactly 8 pixels and one of fewer, which falls back to the columns, a stride, 8 input channels).
DIRECT_SHAPES = [
    (2, 28, 28, 1, 8, 5, 5, 1, "valid"),
    (2, 9, 7, 1, 8, 5, 5, 1, "same"),
    (2, 4, 2, 3, 8, 3, 3, 1, "same"),
    (2, 3, 2, 3, 8, 3, 3, 1, "same"),
    (3, 11, 9, 8, 8, 3, 3, 2, "valid"),
    (2, 12, 12, 32, 64, 3, 3, 1, "valid"),
    (2, 7, 7, 4, 64, 5, 5, 1, "same"),
    (2, 9, 9, 3, 64, 3, 3, 2, "valid"),
    (2, 9, 7, 1, 32, 5, 5, 1, "same"),
    (3, 28, 28, 1, 32, 5, 5, 2, "valid"),
    (2, 8, 8, 2, 32, 3, 3, 1, "same"),
    (2, 5, 6, 32, 32, 1, 1, 1, "valid"),
    (2, 6, 6, 8, 32, 3, 3, 1, "same"),
    (3, 14, 14, 16, 16, 5, 5, 1, "same"),
    (2, 9, 7, 1, 16, 5, 5, 1, "same"),
    (2, 12, 12, 8, 16, 5, 5, 1, "valid"),
    (3, 9, 8, 3, 16, 3, 3, 2, "same"),
    (2, 7, 9, 16, 16, 3, 2, (1, 2), "valid"),
    (2, 2, 2, 16, 16, 3, 3, 1, "same"),
    (2, 3, 3, 16, 16, 3, 3, 1, "valid"),
    (4, 6, 6, 16, 8, 3, 3, 1, "same"),
]


@pytest.mark.parametrize("spread", ["one thread", "two threads, one image a chunk"])
@pytest.mark.parametrize("shape", DIRECT_SHAPES)
def test_conv2d_direct_loop_matches_reference(monkeypatch, shape, spread):
    """The direct loop (kernels.conv_direct) for the forward of 8, 16 or 64 (or, over short windows, 32) output
    channels and the transposed dx of 16 input channels gives the reference's results, on one thread or cut into parts
    and chunks."""
    n, h, w, ci, co, kh, kw, strides, padding = shape
    used = []
    monkeypatch.setattr(kdirect, "usable",
                        lambda g, c, *wide, usable=kdirect.usable: used.append(usable(g, c, *wide)) or used[-1])
    previous = threads.num_threads()
    if spread != "one thread":
        monkeypatch.setattr(kteam, "TEAM_MIN_MACS", 0)
        monkeypatch.setattr(kteam, "PIECE_CHUNK_BYTES", 1)
        threads.configure(num_threads=2)
    try:
        rng = np.random.default_rng(sum(shape[:7]))
        x = rng.standard_normal((n, h, w, ci)).astype(np.float32)
        kernel = rng.standard_normal((kh, kw, ci, co)).astype(np.float32)
        y, cache = kernels.conv2d_forward(x, kernel, strides, padding)
        y_ref, cache_ref = ops.conv2d_forward(x, kernel, strides, padding)
        assert_matches_reference(y, y_ref)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        for got, want in zip(kernels.conv2d_backward(dy, cache), ops.conv2d_backward(dy, cache_ref)):
            assert_matches_reference(got, want)
    finally:
        threads.configure(num_threads=previous)
    pixels = y.shape[1] * y.shape[2]
    # the forward took the direct loop where it can
    assert used[0] == ((pixels >= 4 and (co in (16, 64) or (co == 32 and kh * kw * ci <= kdirect.WIDE_MAX_WINDOW)))
                       or (co == 8 and pixels >= 8))
    transposed = strides == 1 and co <= ci
    assert len(used) == 1 + transposed
    if transposed:  # the transposed dx takes the direct loop with 16 input channels only
        assert used[1] == (ci == 16 and h * w >= kdirect.PIXELS)


@pytest.mark.parametrize("offset", [0, 4, 16, 32])
@pytest.mark.parametrize("width", [32, 64])
def test_kernel_panels_start_on_a_cache_line(offset, width):
    """kernel_panels hands the direct loops a kernel (K, CO) as panels (CO // width, K, width) of its columns,
    starting on an ALIGNMENT_BYTES boundary: a view of the kernel when it is one panel so placed, else a
    copy."""
    buffer = np.empty(3 * 64 + 64, dtype=np.float32)
    start = (-buffer.ctypes.data % kdirect.ALIGNMENT_BYTES + offset) // 4
    kernel = buffer[start : start + 3 * 64].reshape(3, 64)
    kernel[...] = np.arange(3 * 64, dtype=np.float32).reshape(3, 64)
    panels = kdirect.kernel_panels(kernel, width)
    assert panels.shape == (64 // width, 3, width) and panels.flags.c_contiguous
    assert panels.ctypes.data % kdirect.ALIGNMENT_BYTES == 0
    for p in range(64 // width):
        np.testing.assert_array_equal(panels[p], kernel[:, p * width : (p + 1) * width])
    assert np.shares_memory(panels, kernel) == (offset == 0 and width == 64)


@pytest.mark.parametrize("shape", [(1, 14, 14, 32, 64, 5, 5, 1, "same"), (2, 13, 11, 4, 24, 3, 3, 2, "same"),
                                   (1, 10, 10, 16, 16, 3, 3, 1, "valid"), (3, 9, 9, 2, 5, 4, 4, 1, "valid")])
@pytest.mark.parametrize("threads_used", [1, 2])
def test_conv2d_in_bands_of_output_rows_matches_reference(monkeypatch, shape, threads_used):
    """A batch of fewer images than PARTS cut into bands of output rows (BAND_MIN_MACS lowered so that these
    small convolutions are cut; bands that do and do not cover the rows exactly, strides) gives the
    reference's results, and the same values at one and two threads."""
    n, h, w, ci, co, kh, kw, strides, padding = shape
    monkeypatch.setattr(kteam, "BAND_MIN_MACS", 1)
    cut = []
    monkeypatch.setattr(kteam, "_forward_in_bands", lambda *a, bands=kteam._forward_in_bands: (cut.append(a[4]),
                                                                                                 bands(*a)))
    rng = np.random.default_rng(sum(shape[:7]))
    x = rng.standard_normal((n, h, w, ci)).astype(np.float32)
    kernel = rng.standard_normal((kh, kw, ci, co)).astype(np.float32)
    results = at_thread_counts(lambda: kernels.conv2d_forward(x, kernel, strides, padding)[0], (1, threads_used))
    assert cut and all(per_image * n >= 2 for per_image in cut)
    assert_matches_reference(results[0], ops.conv2d_forward(x, kernel, strides, padding)[0])
    np.testing.assert_array_equal(results[0], results[1])


def test_conv2d_float32_takes_the_team_path_with_numpys_openblas():
    """NumPy's wheels ship OpenBLAS with cblas_sgemm under a name scratchnet finds; the fast path is in use."""
    from scratchnet.runtime import blas

    assert blas.sgemm() is not None
    assert kconv._team_path(np.dtype(np.float32)) and not kconv._team_path(np.dtype(np.float64))


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 4, 2), (6, 0, 3), (0, 3, 2), (4, 3, 0)])
def test_sgemm_rows_matches_matmul_on_views(shape, trans_a, beta):
    """blas.sgemm_rows, the numba-callable sgemm: c = op(a) @ b + beta c, also on row slices of bigger arrays."""
    from scratchnet.runtime import blas

    m, k, n = shape
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a_full = rng.standard_normal((k + 3, m + 2) if trans_a else (m + 3, k + 2)).astype(np.float32)
    a = a_full[1 : 1 + k, :m] if trans_a else a_full[1 : 1 + m, :k]
    b = rng.standard_normal((k + 2, n)).astype(np.float32)[2:]
    c_full = np.full((m + 2, n), np.nan if beta == 0 else 2.0, dtype=np.float32)
    c = c_full[1 : 1 + m]
    expected = (a.T if trans_a else a) @ b + (0 if beta == 0 else beta * c)
    blas.sgemm_rows(blas.sgemm(), a, b, c, trans_a, beta)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(c_full[0]).all() or beta == 1.0  # rows outside the view untouched


@pytest.mark.parametrize("shape, columns", [((7, 5, 9), (2, 6)), ((1, 4, 3), (0, 3)), ((5, 0, 4), (1, 3)),
                                            ((3, 2, 4), (2, 2))])
def test_sgemm_columns_writes_those_columns_of_the_product_and_no_others(shape, columns):
    from scratchnet.runtime import blas

    m, k, n = shape
    start, stop = columns
    rng = np.random.default_rng(m + k + n)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, dtype=np.float32)
    blas.sgemm_columns(blas.sgemm(), a, b, c, start, stop)
    np.testing.assert_allclose(c[:, start:stop], (a @ b)[:, start:stop], rtol=1e-5, atol=1e-5)
    assert np.isnan(np.delete(c, np.s_[start:stop], axis=1)).all()


@pytest.mark.parametrize("threads_used", [1, 2])
def test_dense_forward_of_one_row_over_a_big_kernel_matches_reference_at_any_thread_count(monkeypatch,
                                                                                          threads_used):
    """One row times a big kernel (ONE_ROW_PARALLEL_MIN_WEIGHTS lowered): sgemv pieces over the kernel's rows,
    partial sums added in order: the reference's values, the same bits at one and two threads."""
    from scratchnet.kernels import dense as kdense
    from scratchnet.runtime import blas

    monkeypatch.setattr(kdense, "ONE_ROW_PARALLEL_MIN_WEIGHTS", 100)
    rng = np.random.default_rng(5)
    x, kernel = rng.standard_normal((1, 37)).astype(np.float32), rng.standard_normal((37, 19)).astype(np.float32)
    bias = rng.standard_normal(19).astype(np.float32)
    assert kdense._one_row_over_a_big_kernel(x, kernel) == (blas.sgemv() is not None)
    results = at_thread_counts(lambda: kernels.dense_forward(x, kernel, bias)[0], (1, threads_used))
    assert_matches_reference(results[0], ops.dense_forward(x, kernel, bias)[0])
    np.testing.assert_array_equal(results[0], results[1])
    with pytest.raises(ValueError, match="bias"):
        kernels.dense_forward(x, kernel, bias[:3])


@pytest.mark.parametrize("shape, columns", [((7, 9, 5), (2, 6)), ((1, 4, 3), (0, 4)), ((3, 5, 4), (2, 2))])
def test_sgemm_depth_sums_that_part_of_the_product(shape, columns):
    """blas.sgemm_depth: c = a[:, start:stop] @ b[start:stop], an empty part giving zeros."""
    from scratchnet.runtime import blas

    m, k, n = shape
    start, stop = columns
    rng = np.random.default_rng(m + k + n)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, dtype=np.float32)
    blas.sgemm_depth(blas.sgemm(), a, b, c, start, stop)
    np.testing.assert_allclose(c, a[:, start:stop] @ b[start:stop], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads_used", [1, 2])
@pytest.mark.parametrize("with_bias", [True, False])
def test_dense_forward_cut_along_its_sum_matches_reference_at_any_thread_count(monkeypatch, threads_used,
                                                                              with_bias):
    """A mid-sized product with a long sum (thresholds lowered): DEPTH_PARTS sgemm pieces along the sum, partial
    sums added in order, then the bias: the reference's values, the same bits at one and two threads."""
    from scratchnet.kernels import dense as kdense
    from scratchnet.runtime import blas

    monkeypatch.setattr(kdense, "DEPTH_SPLIT_MIN_MACS", 1000)
    monkeypatch.setattr(kdense, "DEPTH_SPLIT_MIN_ROWS", 40)
    rng = np.random.default_rng(6)
    x, kernel = rng.standard_normal((13, 57)).astype(np.float32), rng.standard_normal((57, 11)).astype(np.float32)
    bias = rng.standard_normal(11).astype(np.float32) if with_bias else None
    assert kdense._mid_sized_deep_product(x, kernel) == (blas.sgemm() is not None)
    assert not kdense._mid_sized_deep_product(x[:, :30], kernel[:30])  # a sum shorter than DEPTH_SPLIT_MIN_ROWS
    assert not kdense._mid_sized_deep_product(x.astype(np.float64), kernel.astype(np.float64))
    results = at_thread_counts(lambda: kernels.dense_forward(x, kernel, bias)[0], (1, threads_used))
    assert_matches_reference(results[0], ops.dense_forward(x, kernel, bias)[0])
    np.testing.assert_array_equal(results[0], results[1])
    if with_bias:
        with pytest.raises(ValueError, match="bias"):
            kernels.dense_forward(x, kernel, bias[:3])


@pytest.mark.parametrize("operands", ["float64", "kernel float64", "bias float64", "list x", "bias too short"])
def test_dense_forward_of_operands_that_need_casts_or_checks_matches_reference(operands):
    """Operands the small path does not take as they are (another dtype, a list, a wrong bias) go through the
    reference's casts and checks: the same values, the same errors."""
    from scratchnet.kernels import dense as kdense

    rng = np.random.default_rng(7)
    x, kernel = rng.standard_normal((5, 6)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    assert kdense._small_and_well_formed(x, kernel, bias)
    if operands == "float64":
        x, kernel, bias = x.astype(np.float64), kernel.astype(np.float64), bias.astype(np.float64)
        assert kdense._small_and_well_formed(x, kernel, bias)
    elif operands == "kernel float64":
        kernel = kernel.astype(np.float64)
    elif operands == "bias float64":
        bias = bias.astype(np.float64)
    elif operands == "list x":
        x = x.tolist()
    else:
        bias = bias[:3]
        assert not kdense._small_and_well_formed(x, kernel, bias)
        for dense_forward in (kernels.dense_forward, ops.dense_forward):
            with pytest.raises(ValueError, match="bias"):
                dense_forward(x, kernel, bias)
        return
    y = kernels.dense_forward(x, kernel, bias)[0]
    y_ref = ops.dense_forward(x, kernel, bias)[0]
    assert y.dtype == y_ref.dtype
    np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads_used", [1, 2])
@pytest.mark.parametrize("shape, kernel_shape, padding", [((5, 7, 6, 3), (3, 4, 3, 2), "same"),
                                                          ((3, 9, 9, 16), (5, 5, 16, 4), "same"),
                                                          ((2, 5, 5, 2), (2, 2, 2, 1), "valid")])
def test_padded_by_the_team_equals_numpys_padding(monkeypatch, shape, kernel_shape, padding, threads_used, dtype):
    """`im2col.padded` on the team (PAD_PARALLEL_MIN_SIZE lowered) writes every value: zeros around the images."""
    from scratchnet.kernels import im2col

    x = np.random.default_rng(8).standard_normal(shape).astype(dtype)
    geometry = im2col.conv_geometry(x.shape, kernel_shape, (1, 1), padding)
    g = geometry
    want = np.pad(x, ((0, 0), (g.pad_top, g.pad_bottom), (g.pad_left, g.pad_right), (0, 0)))
    want = want.reshape(want.shape[0], want.shape[1], want.shape[2] * want.shape[3])
    previous = threads.num_threads()
    try:
        threads.configure(num_threads=threads_used)
        for minimum in (10**12, 1):
            monkeypatch.setattr(im2col, "PAD_PARALLEL_MIN_SIZE", minimum)
            got = im2col.padded(x, geometry)
            assert got.dtype == x.dtype
            np.testing.assert_array_equal(got, want)
    finally:
        threads.configure(num_threads=previous)


def test_conv2d_kernel_outputs_survive_later_calls():
    """Work buffers are reused, but nothing handed out (outputs, caches) is overwritten by a later call."""
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 2, 8, 8, 3))
    kernel = rng.standard_normal((3, 3, 3, 4))
    y1, cache1 = kernels.conv2d_forward(x1, kernel, 1, "same")
    dy = rng.standard_normal(y1.shape)
    dx1, dkernel1 = kernels.conv2d_backward(dy, cache1)
    saved = [a.copy() for a in (y1, dx1, dkernel1)]

    y2, cache2 = kernels.conv2d_forward(x2, kernel, 1, "same")  # same shapes: same work buffers
    kernels.conv2d_backward(dy, cache2)
    for kept, now in zip(saved, (y1, dx1, dkernel1)):
        np.testing.assert_array_equal(kept, now)
    # and the first cache still gives the first gradients
    for got, want in zip(kernels.conv2d_backward(dy, cache1), (dx1, dkernel1)):
        np.testing.assert_array_equal(got, want)


def test_conv2d_kernel_casts_kernel_to_x_dtype_and_accepts_non_contiguous_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    x_view = np.asfortranarray(x)[:, ::-1]  # neither C-contiguous nor in order
    kernel = rng.standard_normal((3, 3, 3, 2))  # float64
    y, cache = kernels.conv2d_forward(x_view, kernel, 1, "valid")
    y_ref, _ = ops.conv2d_forward(x_view, kernel, 1, "valid")
    assert y.dtype == np.float32
    assert_matches_reference(y, y_ref)
    dx, dkernel = kernels.conv2d_backward(np.ones(y.shape, np.float64), cache)
    assert dx.dtype == dkernel.dtype == np.float32


def test_conv2d_kernel_backward_does_not_modify_dy_or_cache():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 5, 2))
    kernel = rng.standard_normal((3, 3, 2, 3))
    y, cache = kernels.conv2d_forward(x, kernel, 1, "same")
    dy = rng.standard_normal(y.shape)
    assert cache[-1] is not None  # small: the forward's column matrix is kept for the backward
    before = (dy.copy(), x.copy(), kernel.copy(), cache[-1].copy())
    kernels.conv2d_backward(dy, cache)
    for kept, now in zip(before, (dy, cache[0], cache[1], cache[-1])):
        np.testing.assert_array_equal(kept, now)


def test_conv2d_kernel_rejects_bad_arguments_like_the_reference():
    x = np.zeros((1, 5, 5, 2))
    with pytest.raises(ValueError, match="input channels"):
        kernels.conv2d_forward(x, np.zeros((3, 3, 3, 1)))
    with pytest.raises(ValueError, match="padding"):
        kernels.conv2d_forward(x, np.zeros((3, 3, 2, 1)), padding="full")
    with pytest.raises(ValueError, match="strides"):
        kernels.conv2d_forward(x, np.zeros((3, 3, 2, 1)), strides=0)
    with pytest.raises(ValueError, match="floating"):
        kernels.conv2d_forward(x.astype(int), np.zeros((3, 3, 2, 1)))
    y, cache = kernels.conv2d_forward(x, np.zeros((3, 3, 2, 1)))
    with pytest.raises(ValueError, match="shape"):
        kernels.conv2d_backward(np.zeros((1, 2, 2, 1)), cache)


def test_conv2d_kernel_hands_unsupported_float_dtypes_to_the_reference():
    x = np.ones((1, 4, 4, 1), np.float16)
    y, cache = kernels.conv2d_forward(x, np.ones((2, 2, 1, 1)), 1, "valid")
    assert y.dtype == np.float16
    dx, dkernel = kernels.conv2d_backward(np.ones_like(y), cache)
    assert dx.dtype == dkernel.dtype == np.float16


# (N, H, W, C), pool_size, strides
POOL_CASES = [
    ((2, 6, 6, 3), 2, None),
    ((1, 7, 5, 2), 2, None),
    ((3, 7, 7, 1), 3, 2),
    ((2, 8, 9, 4), 3, 2),
    ((1, 5, 6, 2), (2, 3), (1, 2)),
    ((2, 4, 4, 1), 2, 1),
]


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "sliced_over_threads"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("shape, pool_size, strides", POOL_CASES)
def test_max_pool2d_kernel_matches_reference(shape, pool_size, strides, padding, dtype, sliced, monkeypatch):
    if sliced:  # one slice of images per worker thread
        monkeypatch.setattr(kpool, "PARALLEL_MIN_SIZE", 1)
        previous = threads.num_threads()
        threads.configure(num_threads=2)
    try:
        _check_max_pool2d_against_reference(shape, pool_size, strides, padding, dtype)
    finally:
        if sliced:
            threads.configure(num_threads=previous)


def _check_max_pool2d_against_reference(shape, pool_size, strides, padding, dtype):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    y, cache = kernels.max_pool2d_forward(x, pool_size, strides, padding)
    y_ref, cache_ref = ops.max_pool2d_forward(x, pool_size, strides, padding)
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == dtype

    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_matches_reference(kernels.max_pool2d_backward(dy, cache), ops.max_pool2d_backward(dy, cache_ref))


def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum_in_row_major_order():
    # Every 2x2 window holds its maximum twice: the gradient goes to the first in row-major order.
    image = np.array(
        [
            [1.0, 5.0, 7.0, 7.0],
            [5.0, 2.0, 0.0, 3.0],
            [4.0, 0.0, 9.0, 1.0],
            [1.0, 4.0, 2.0, 9.0],
        ]
    )
    expected_dx = np.array(
        [
            [0.0, 1.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [3.0, 0.0, 4.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    x = image.reshape(1, 4, 4, 1)
    dy = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    for forward, backward in [
        (kernels.max_pool2d_forward, kernels.max_pool2d_backward),
        (ops.max_pool2d_forward, ops.max_pool2d_backward),
    ]:
        y, cache = forward(x, 2)
        np.testing.assert_array_equal(y[0, :, :, 0], [[5.0, 7.0], [4.0, 9.0]])
        np.testing.assert_array_equal(backward(dy, cache)[0, :, :, 0], expected_dx)


def test_max_pool2d_overlapping_windows_with_a_shared_tied_maximum_accumulate():
    # 3x3 windows, stride 2, SAME on 5x5 (pads 1 before): ties everywhere (all ones), so each window
    # picks its first in-image cell; windows that start at the same cell add their gradients.
    x = np.ones((1, 5, 5, 1))
    dy = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y, cache = kernels.max_pool2d_forward(x, 3, 2, "same")
    np.testing.assert_array_equal(y, np.ones((1, 3, 3, 1)))
    dx = kernels.max_pool2d_backward(dy, cache)[0, :, :, 0]
    # window (oh, ow) covers rows 2*oh-1 .. 2*oh+1 clipped to 0..4: its first cell is (max(2*oh-1, 0), ...)
    expected = np.zeros((5, 5))
    for oh, ow in itertools.product(range(3), range(3)):
        expected[max(2 * oh - 1, 0), max(2 * ow - 1, 0)] += dy[0, oh, ow, 0]
    np.testing.assert_array_equal(dx, expected)
    y_ref, cache_ref = ops.max_pool2d_forward(x, 3, 2, "same")
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, cache_ref)[0, :, :, 0], expected)


def test_max_pool2d_same_padding_is_never_the_maximum():
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # all negative: a zero pad would win
    y, cache = kernels.max_pool2d_forward(x, 2, 2, "same")
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1.0, -3.0], [-7.0, -9.0]])


def test_max_pool2d_kernel_backward_does_not_modify_dy_or_cache():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    y, cache = kernels.max_pool2d_forward(x, 3, 2, "same")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy_before, argmax_before = dy.copy(), cache[2].copy()
    dx = kernels.max_pool2d_backward(dy, cache)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dy, dy_before)
    np.testing.assert_array_equal(cache[2], argmax_before)


def test_max_pool2d_kernel_rejects_bad_arguments():
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match="pool_size"):
        kernels.max_pool2d_forward(x, 0)
    with pytest.raises(ValueError, match="padding"):
        kernels.max_pool2d_forward(x, 2, padding="full")
    with pytest.raises(ValueError, match="dimensions"):
        kernels.max_pool2d_forward(np.zeros((4, 4)), 2)
    y, cache = kernels.max_pool2d_forward(x, 2)
    with pytest.raises(ValueError, match="shape"):
        kernels.max_pool2d_backward(np.zeros((1, 1, 1, 1)), cache)


# The zoo's pool (2x2, stride 2) at every channel count its loop must vectorise or not: even and odd sizes,
# VALID (an odd last row/column left out) and SAME (clipped to one cell: the general loop's windows).
ZOO_POOL_SHAPES = [(2, 6, 8), (3, 7, 5), (1, 5, 6), (2, 3, 2)]


def _pool_input_with_ties_and_infinities(rng, shape, dtype):
    """Values on a coarse grid (many ties within a window), with -inf and +inf sprinkled in."""
    x = np.round(rng.standard_normal(shape) * 2) / 2
    cells = x.reshape(-1)
    cells[rng.choice(cells.size, size=max(1, cells.size // 10), replace=False)] = -np.inf
    cells[rng.choice(cells.size, size=max(1, cells.size // 40), replace=False)] = np.inf
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("channels", [1, 3, 8, 16, 32, 64])
@pytest.mark.parametrize("n_h_w", ZOO_POOL_SHAPES)
def test_max_pool2d_2x2_kernel_equals_reference_with_ties_and_infinities(n_h_w, channels, padding, dtype):
    rng = np.random.default_rng(channels + sum(n_h_w))
    x = _pool_input_with_ties_and_infinities(rng, (*n_h_w, channels), dtype)
    y, cache = kernels.max_pool2d_forward(x, 2, 2, padding)
    y_ref, cache_ref = ops.max_pool2d_forward(x, 2, 2, padding)
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == dtype
    y_inference, no_cache = kernels.max_pool2d_forward(x, 2, 2, padding, training=False)
    np.testing.assert_array_equal(y_inference, y)
    assert no_cache is None and y_inference.dtype == dtype
    # integer gradients: the sums are exact, so the routing must match cell for cell
    dy = rng.integers(-9, 10, y.shape).astype(dtype)
    np.testing.assert_array_equal(kernels.max_pool2d_backward(dy, cache), ops.max_pool2d_backward(dy, cache_ref))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 8, 16, 64])
def test_max_pool2d_2x2_loop_treats_nan_as_the_general_loop_does(channels, dtype):
    """The kernels' NaN rule, in both loops and both modes: no value compares greater than a NaN or a NaN
    greater than a value, so a NaN in a window's first cell is the window's maximum and a later one is
    passed over. (The reference's argmax takes a NaN anywhere; TF leaves NaN unspecified.)"""
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((3, 9, 8, channels)).astype(dtype)
    x.reshape(-1)[rng.choice(x.size, size=x.size // 5, replace=False)] = np.nan
    window = (2, 2, 2, 2, 0, 0)  # SAME on 9 rows: a last row of clipped windows
    y_general, argmax_general = np.empty((3, 5, 4, channels), dtype), np.empty((3, 5, 4, channels), np.int32)
    kpool._max_pool_windows_forward(x, window, y_general, argmax_general, (0, 3), 0, 0)  # every window
    y, cache = kernels.max_pool2d_forward(x, 2, 2, "same")
    np.testing.assert_array_equal(y, y_general)  # NaN in the same places (assert_array_equal matches NaNs)
    np.testing.assert_array_equal(cache[2], argmax_general)
    np.testing.assert_array_equal(kernels.max_pool2d_forward(x, 2, 2, "same", training=False)[0], y)
    image = np.array([[np.nan, 1.0, 1.0, np.nan], [2.0, 3.0, 3.0, 2.0]], dtype).reshape(1, 2, 4, 1)
    y, cache = kernels.max_pool2d_forward(image, 2)
    assert np.isnan(y[0, 0, 0, 0]) and cache[2][0, 0, 0, 0] == 0  # a NaN first: the NaN
    assert y[0, 0, 1, 0] == 3.0 and cache[2][0, 0, 1, 0] == 6  # a NaN later: passed over, the first 3 wins


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "sliced_over_threads"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, pool_size, strides", POOL_CASES)
def test_max_pool2d_inference_gives_the_training_maxima_and_keeps_no_cache(shape, pool_size, strides, dtype,
                                                                            sliced, monkeypatch):
    if sliced:
        monkeypatch.setattr(kpool, "PARALLEL_MIN_SIZE", 1)
        previous = threads.num_threads()
        threads.configure(num_threads=2)
    try:
        x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
        for padding in ("same", "valid"):
            for module in (kernels, ops):
                y, no_cache = module.max_pool2d_forward(x, pool_size, strides, padding, training=False)
                np.testing.assert_array_equal(y, module.max_pool2d_forward(x, pool_size, strides, padding)[0])
                assert no_cache is None and y.dtype == dtype
    finally:
        if sliced:
            threads.configure(num_threads=previous)


@pytest.mark.parametrize("module", [kernels, ops], ids=["kernels", "ops"])
def test_max_pool2d_backward_after_an_inference_forward_names_the_problem(module):
    y, cache = module.max_pool2d_forward(np.ones((1, 4, 4, 2)), 2, training=False)
    with pytest.raises(ValueError, match=r"max_pool2d_backward needs the cache of a forward run with training=True"):
        module.max_pool2d_backward(np.ones_like(y), cache)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 3, 6)])
def test_relu_kernels_equal_reference_with_zeros_and_nan(shape, dtype, elementwise_slicing):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[0], flat[1], flat[-1] = 0.0, -0.0, np.nan  # the kink, a signed zero, a NaN
    y, cache = kernels.relu_forward(x)
    y_ref, cache_ref = ops.relu_forward(x)
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == dtype
    dy = rng.standard_normal(shape).astype(dtype)
    dy_before = dy.copy()
    dx = kernels.relu_backward(dy, cache)
    np.testing.assert_array_equal(dx, ops.relu_backward(dy, cache_ref))
    assert dx.dtype == dtype and dx.reshape(-1)[0] == 0.0  # gradient 0 at exactly x == 0
    np.testing.assert_array_equal(dy, dy_before)
    # caches are the reference's: forward and backward from different engines fit together
    np.testing.assert_array_equal(kernels.relu_backward(dy, cache_ref), ops.relu_backward(dy, cache))


@pytest.fixture(params=["whole", "sliced_over_threads"])
def elementwise_slicing(request, monkeypatch):
    """Run the elementwise kernels whole, then cut into slices on two worker threads (the team's pieces and
    `parallel_map`'s)."""
    if request.param == "whole":
        yield
        return
    monkeypatch.setattr(kact, "PARALLEL_MIN_SIZE", 1)
    monkeypatch.setattr(kact, "TEAM_MIN_SIZE", 1)
    previous = threads.num_threads()
    threads.configure(num_threads=2)
    yield
    threads.configure(num_threads=previous)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 6, 5, 4), (1, 1), (3, 5, 5, 8), (2, 3, 100)])
def test_bias_add_kernels_equal_reference(shape, dtype, elementwise_slicing):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[-1])
    y, cache = kernels.bias_add_forward(x, bias)
    y_ref, cache_ref = ops.bias_add_forward(x, bias)
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(shape).astype(dtype)
    dy_before = dy.copy()
    dx, dbias = kernels.bias_add_backward(dy, cache)
    dx_ref, dbias_ref = ops.bias_add_backward(dy, cache_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    assert_matches_reference(dbias, dbias_ref)
    assert dx.dtype == dbias.dtype == dtype
    assert not np.shares_memory(dx, dy)
    np.testing.assert_array_equal(dy, dy_before)


def test_activation_kernels_reject_a_wrong_dy_shape():
    y, cache = kernels.relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        kernels.relu_backward(np.ones((3, 2)), cache)
    y, cache = kernels.bias_add_forward(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        kernels.bias_add_backward(np.ones((2, 4)), cache)


def _jitted_functions():
    for module in (kconv, kteam, kchunks, kim2col, kpool, kact, kopt, kdrop, kfused):
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher):
                yield f"{module.__name__}.{name}", value


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1 leaves plain functions")
def test_every_kernel_module_has_jitted_functions():
    names = {name.rsplit(".", 1)[1] for name, _ in _jitted_functions()}
    assert {"_im2col", "_col2im_add", "_max_pool_forward", "_max_pool_backward", "_relu_forward",
            "_relu_backward", "_copy_and_sum_rows", "_add_bias", "_add_bias_relu", "_add_bias_relu_inplace",
            "_relu_backward_and_sum_rows", "_adam_update", "_col2im_gather", "_draw_mask_and_apply", "_apply_mask",
            "_sigmoid_dense_rows"} <= names


@pytest.mark.parametrize("name, function", list(_jitted_functions()))
def test_jitted_functions_are_private_nopython_and_cached_on_disk(name, function):
    assert function.__name__.startswith("_"), f"{name}: a jitted kernel is private; wrap it"
    assert function.targetoptions.get("nopython") is True, name
    assert type(function._cache).__name__ == "FunctionCache", f"{name} is not @njit(cache=True)"


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1 leaves plain functions")
def test_threaded_kernels_release_the_gil_for_the_worker_threads():
    for function in (kim2col._im2col, kim2col._im2col_t, kim2col._col2im_add, kim2col._col2im_gather,
                     kpool._max_pool_forward, kpool._max_pool_backward, kteam._forward_piece, kteam._backward_piece,
                     kpool._forward_piece, kpool._backward_piece):
        assert function.targetoptions.get("nogil") is True


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1 leaves plain functions")
def test_the_team_and_blas_helpers_are_nogil_and_cached_for_the_pieces_that_call_them():
    from scratchnet.runtime import blas, team

    for function in (blas.sgemm_rows, team.post_done, team.mark_done, team._spin, team._wait_all):
        assert function.targetoptions.get("nopython") is True and function.targetoptions.get("nogil") is True
        assert type(function._cache).__name__ == "FunctionCache"


MAX_PARAMETERS = 8
"""The style guide's limit: a function that needs more takes one small plan (a tuple of the geometry)."""

OVER_THE_LIMIT = set()
"""Functions still over MAX_PARAMETERS, each awaiting its rewrite; the test fails once one is fixed, so
that the entry is removed with it."""


def _functions_below_the_engine():
    root = pathlib.Path(kernels.__file__).parents[1]
    for path in sorted([*root.glob("kernels/*.py"), *root.glob("runtime/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                args = node.args
                count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
                count += (args.vararg is not None) + (args.kwarg is not None)
                name = getattr(node, "name", "<lambda>")
                yield f"scratchnet/{path.parent.name}/{path.name}:{name}", count


def test_no_function_in_kernels_or_runtime_takes_more_than_eight_parameters():
    too_many = {name: count for name, count in _functions_below_the_engine() if count > MAX_PARAMETERS}
    assert set(too_many) == OVER_THE_LIMIT, too_many


def test_team_pieces_keep_the_calling_convention_of_the_team():
    """Every piece ends with the four parameters `scratchnet.runtime.team` passes: state, post_slot, done_slot, job."""
    pieces = [kteam._forward_piece, kteam._backward_piece, kpool._forward_piece, kpool._backward_piece]
    for piece in pieces:
        parameters = list(inspect.signature(getattr(piece, "py_func", piece)).parameters)
        assert parameters[-4:] == ["state", "post_slot", "done_slot", "job"], piece.__name__


def test_kernels_have_the_reference_signatures():
    for name in kernels.__all__:
        assert inspect.signature(getattr(kernels, name)) == inspect.signature(getattr(ops, name)), name


@pytest.mark.parametrize("backward", [kernels.conv2d_backward, ops.conv2d_backward], ids=["kernels", "ops"])
def test_conv2d_backward_without_dx_skips_it_and_keeps_the_kernel_gradient(backward):
    """need_dx=False (a model's first layer) returns dx None and the very same dkernel."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 9, 8, 2))
    kernel = rng.standard_normal((3, 3, 2, 4))
    forward = kernels.conv2d_forward if backward is kernels.conv2d_backward else ops.conv2d_forward
    y, cache = forward(x, kernel, 2, "same")
    dy = rng.standard_normal(y.shape)
    dx, dkernel = backward(dy, cache, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dkernel, backward(dy, cache)[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernels_equal_reference_with_the_same_generator(dtype):
    """Same seed: the same units dropped, the same outputs and gradients, bit for bit; caches interchange."""
    x = np.random.default_rng(1).standard_normal((4, 3, 5)).astype(dtype)
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
    y, cache = kernels.dropout_forward(x, 0.3, rng=np.random.default_rng(9))
    y_ref, cache_ref = ops.dropout_forward(x, 0.3, rng=np.random.default_rng(9))
    assert y.dtype == y_ref.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache[0], cache_ref[0])
    np.testing.assert_array_equal(kernels.dropout_backward(dy, cache), ops.dropout_backward(dy, cache_ref))
    np.testing.assert_array_equal(kernels.dropout_backward(dy, cache_ref), ops.dropout_backward(dy, cache))


def test_dropout_kernels_follow_the_reference_for_masks_inference_and_bad_arguments():
    x = np.random.default_rng(1).standard_normal((2, 3))
    mask = np.array([[True, False, True], [False, True, True]])
    for kwargs in ({"mask": mask}, {"mask": mask[:1]}, {"rng": np.random.default_rng(0), "training": False},
                   {"rng": np.random.default_rng(0), "rate": 0.0}):
        rate = kwargs.pop("rate", 0.5)
        y, cache = kernels.dropout_forward(x, rate, **kwargs)
        y_ref, cache_ref = ops.dropout_forward(x, rate, **kwargs)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(kernels.dropout_backward(x, cache), ops.dropout_backward(x, cache_ref))
    for rate, kwargs in ((1.0, {"rng": np.random.default_rng(0)}), (0.5, {}), (True, {"mask": mask})):
        with pytest.raises(ValueError):
            kernels.dropout_forward(x, rate, **kwargs)
    x32 = x.astype(np.float32)
    _, cache = kernels.dropout_forward(x32, 0.5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="dy"):
        kernels.dropout_backward(np.ones((3, 2), np.float32), cache)


@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (0, 0), (2, 0, 4, 3)])
def test_bias_kernels_take_empty_inputs_as_the_reference_does(shape):
    x, bias = np.ones(shape, np.float32), np.ones(shape[-1], np.float32)
    for name in ("bias_add_forward", "bias_add_relu_forward"):
        y, _ = getattr(kernels, name)(x.copy(), bias)
        np.testing.assert_array_equal(y, getattr(ops, name)(x.copy(), bias)[0])
    for name, cache in (("bias_add_relu_backward", x), ("bias_add_backward", (x.shape, x.dtype))):
        dx, dbias = getattr(kernels, name)(x, cache)
        dx_ref, dbias_ref = getattr(ops, name)(x, cache)
        np.testing.assert_array_equal(dx, dx_ref)
        np.testing.assert_array_equal(dbias, dbias_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid_forward", "softmax_forward"])
@pytest.mark.parametrize("shape", [(100, 1), (100, 10), (3, 62), (2, 3, 5), (1, 1), (7,)])
def test_sigmoid_and_softmax_kernels_equal_reference(name, shape, dtype):
    """Moderate, huge (+-1000: no overflow) and NaN inputs, any number of leading axes."""
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    flat = x.reshape(-1)
    flat[:3] = [1000.0, -1000.0, 0.0][: flat.size]
    y, cache = getattr(kernels, name)(x)
    y_ref, cache_ref = getattr(ops, name)(x)
    assert_matches_reference(y, y_ref)
    assert cache is y and y.dtype == dtype and np.all(np.isfinite(y))
    for position in (0, -1):  # a NaN first in its row and last
        x_nan = x.copy()
        x_nan.reshape(-1)[position] = np.nan
        np.testing.assert_array_equal(np.isnan(getattr(kernels, name)(x_nan)[0]),
                                      np.isnan(getattr(ops, name)(x_nan)[0]))


@pytest.mark.parametrize("x", [np.zeros((0, 10), np.float32), np.ones((4, 0)), np.float32(2.0),
                               np.ones((2, 3), np.float16)])
def test_sigmoid_and_softmax_kernels_hand_odd_inputs_to_the_reference(x):
    for name in ("sigmoid_forward", "softmax_forward"):
        try:
            want = getattr(ops, name)(x)[0]
        except Exception as error:  # noqa: BLE001 - the kernel must fail the same way
            with pytest.raises(type(error)):
                getattr(kernels, name)(x)
            continue
        got = getattr(kernels, name)(x)[0]
        np.testing.assert_array_equal(got, want)
        assert np.asarray(got).dtype == np.asarray(want).dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 6, 5, 4), (1, 1), (3, 5, 5, 8), (2, 3, 100)])
def test_bias_add_relu_kernels_equal_reference_and_the_two_ops_in_a_row(shape, dtype, elementwise_slicing):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[-1])
    flat = x.reshape(-1)
    flat[0], flat[-1] = -bias[0], np.nan  # exactly 0 after the bias (the kink), and a NaN
    y, cache = kernels.bias_add_relu_forward(x, bias)
    y_ref, cache_ref = ops.bias_add_relu_forward(x, bias)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache, cache_ref)
    np.testing.assert_array_equal(y, ops.relu_forward(ops.bias_add_forward(x, bias)[0])[0])
    assert y.dtype == cache.dtype == dtype
    dy = rng.standard_normal(shape).astype(dtype)
    dy_before = dy.copy()
    dx, dbias = kernels.bias_add_relu_backward(dy, cache)
    dx_ref, dbias_ref = ops.bias_add_relu_backward(dy, cache_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    assert_matches_reference(dbias, dbias_ref)
    assert dx.dtype == dbias.dtype == dtype
    np.testing.assert_array_equal(dy, dy_before)
    with pytest.raises(ValueError, match="bias"):
        kernels.bias_add_relu_forward(x, bias[:0])
    with pytest.raises(ValueError, match="dy"):
        kernels.bias_add_relu_backward(dy[..., :0], cache)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 6, 5, 4), (1, 1), (3, 5, 5, 8), (2, 3, 100)])
def test_bias_add_relu_over_writes_the_reference_forward_over_its_input(shape, dtype, elementwise_slicing):
    """The in-place kernel that conv2d_bias_relu runs on its own convolution output."""
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[-1])
    flat = x.reshape(-1)
    flat[0], flat[-1] = -bias[0], np.nan  # exactly 0 after the bias (the kink), and a NaN
    y_ref, _ = ops.bias_add_relu_forward(x, bias)
    x_owned = x.copy()
    y = kact.bias_add_relu_over(x_owned, bias)
    assert y is x_owned and y.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    with pytest.raises(ValueError, match="bias"):
        kact.bias_add_relu_over(x.copy(), bias[:0])


@pytest.mark.parametrize("over", ["y", "dy"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 6, 5, 4), (1, 1), (3, 5, 5, 8), (2, 3, 100)])
def test_bias_add_relu_backward_in_place_writes_the_gradient_over_one_operand(shape, dtype, over,
                                                                              elementwise_slicing):
    """The in-place backwards that conv2d_bias_relu runs: over its cache y (an output nobody else holds), or
    over dy (a gradient handed over), the other operand left as it was."""
    rng = np.random.default_rng(len(shape))
    y = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    dx_ref, dbias_ref = kernels.bias_add_relu_backward(dy, y)
    target, other = (y, dy) if over == "y" else (dy, y)
    other_before = other.copy()
    in_place = kact.bias_add_relu_backward_over if over == "y" else kact.bias_add_relu_backward_into_dy
    dx, dbias = in_place(dy, y)
    assert dx is target
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(dbias, dbias_ref)  # the same loops' sums, in the same order
    np.testing.assert_array_equal(other, other_before)


def _backward_with_spy(monkeypatch, dy, make_cache):
    """conv2d_bias_relu_backward(dy, make_cache()) with the cache handed over; how often it wrote over y."""
    calls = []
    over = kcbr.bias_add_relu_backward_over
    monkeypatch.setattr(kcbr, "bias_add_relu_backward_over", lambda d, y: (calls.append(1), over(d, y))[1])
    result = kernels.conv2d_bias_relu_backward(dy, make_cache())
    return result, len(calls)


@pytest.mark.parametrize("hold", [None, "name", "view", "a worker's last piece"])
def test_conv2d_bias_relu_backward_writes_over_its_output_only_when_nobody_else_holds_it(monkeypatch, hold):
    """Inside a training step the output is only the cache's, so relu's gradient takes its memory; an output
    still held by a name or through a view is never written, and the gradients are the same either way."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    dy = rng.standard_normal((3, 8, 8, 4)).astype(np.float32)
    outputs = []

    def make_cache():
        y, cache = kernels.conv2d_bias_relu_forward(x, kernel, bias, 1, "same")
        if hold == "name":
            outputs.append((y, y.copy()))
        elif hold == "view":
            outputs.append((y[:, 1:], y[:, 1:].copy()))
        elif hold == "a worker's last piece":  # a next VALID conv on two threads: its pieces read y unpadded
            threads.configure(num_threads=2)
            monkeypatch.setattr(kteam, "TEAM_MIN_MACS", 0)
            kernels.conv2d_backward(dy[:, 1:-1, 1:-1], kernels.conv2d_forward(y, kernel[:, :, :1].repeat(4, 2),
                                                                               1, "valid")[1])
        return cache

    previous = threads.num_threads()
    try:
        got, writes = _backward_with_spy(monkeypatch, dy, make_cache)
    finally:
        threads.configure(num_threads=previous)
    assert writes == (0 if hold in ("name", "view") else 1)
    for held, before in outputs:
        np.testing.assert_array_equal(held, before)
    _, cache_ref = ops.conv2d_bias_relu_forward(x, kernel, bias, 1, "same")
    for g, w in zip(got, ops.conv2d_bias_relu_backward(dy, cache_ref)):
        assert_matches_reference(g, w)


def _conv_relu_case(seed=4):
    """A float32 conv2d_bias_relu and a gradient for it: (x, kernel, bias, dy)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    return x, kernel, rng.standard_normal(4).astype(np.float32), rng.standard_normal((3, 8, 8, 4)).astype(np.float32)


class _Layer:
    """A layer's backward as Conv2D's calls the op: dy passed on once, the forward's cache handed over."""

    def __init__(self, cache):
        self.cache = cache

    def backward(self, dy, need_dx=True):
        cache, self.cache = self.cache, None
        return kernels.conv2d_bias_relu_backward(dy, cache, need_dx)


def _model_loop(layer, dy, options):
    """A model's backward loop over one layer, as Sequential's: ``dy = layer.backward(dy, **options)``."""
    dy = layer.backward(dy, **options)
    return dy


@pytest.mark.parametrize("hands_over, held", [(True, True), (False, False)])
def test_conv2d_bias_relu_backward_leaves_dy_alone_when_it_is_not_handed_over(monkeypatch, hands_over, held):
    """Held by one more name inside a step that hands its gradients over, or passed as a model's loop passes
    it outside such a step, dy stays as it was; the gradients are the reference's. (That a model's step does
    hand dy over is the next test's.)"""
    x, kernel, bias, dy_values = _conv_relu_case()
    calls = []
    into_dy = kcbr.bias_add_relu_backward_into_dy
    monkeypatch.setattr(kcbr, "bias_add_relu_backward_into_dy", lambda d, y: (calls.append(1), into_dy(d, y))[1])
    _, cache = kernels.conv2d_bias_relu_forward(x, kernel, bias, 1, "same")
    kept = []

    def gradient():  # a sole view, as the ops return their dx; held by `kept` too when `held`
        dy = dy_values.reshape(-1).copy().reshape(dy_values.shape)
        kept.extend([dy] if held else [])
        return dy

    with engine.step(hands_over_gradients=hands_over):
        got = _model_loop(_Layer(cache), gradient(), {})
    assert calls == []
    for dy in kept:
        np.testing.assert_array_equal(dy, dy_values)
    _, cache_ref = ops.conv2d_bias_relu_forward(x, kernel, bias, 1, "same")
    for g, w in zip(got, ops.conv2d_bias_relu_backward(dy_values, cache_ref)):
        assert_matches_reference(g, w)


def test_a_models_training_step_hands_the_gradient_of_a_conv_after_a_pooling_over(monkeypatch):
    """Sequential's training step keeps the promise of `engine.step(hands_over_gradients=True)` as
    `_HANDED_OVER_COUNT` counts it: the conv under a pooling layer gets relu's gradient over its dy."""
    from scratchnet import layers
    from scratchnet.models import Sequential

    calls = []
    into_dy = kcbr.bias_add_relu_backward_into_dy
    monkeypatch.setattr(kcbr, "bias_add_relu_backward_into_dy", lambda d, y: (calls.append(d.shape), into_dy(d, y))[1])
    model = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                        layers.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 10, 10, 1)).astype(np.float32), rng.integers(0, 3, 6)
    for _ in range(2):
        model.train_step(x, y)
    assert calls == [(6, 6, 6, 8)] * 2  # the second conv's, every step (the first's dy comes with need_dx)


def test_handing_gradients_over_changes_no_value_a_model_computes(monkeypatch):
    """Two steps of a model whose second conv gets relu's gradient over its dy, and of the same model with the
    hand-over off: the same losses and weights, to the bit."""
    from scratchnet import layers
    from scratchnet.models import Sequential

    def trained():
        model = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                            layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                            layers.Dense(3, activation="softmax")], seed=0)
        model.compile("adam", "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((6, 10, 10, 1)).astype(np.float32), rng.integers(0, 3, 6)
        losses = [model.train_step(x, y) for _ in range(3)]
        return losses, [w.numpy() for w in model.weights]

    handed = trained()
    monkeypatch.setattr(kcbr, "gradients_handed_over", lambda: False)
    kept = trained()
    assert handed[0] == kept[0]
    for a, b in zip(handed[1], kept[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel_shape, strides, padding", [
    ((3, 8, 9, 1), (5, 5, 1, 8), 1, "same"),
    ((2, 9, 8, 4), (3, 3, 4, 6), 2, "valid"),
])
def test_conv2d_bias_relu_kernels_equal_reference(shape, kernel_shape, strides, padding, dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(dtype)
    kernel = rng.standard_normal(kernel_shape).astype(dtype)
    bias = rng.standard_normal(kernel_shape[-1]).astype(dtype)
    y, cache = kernels.conv2d_bias_relu_forward(x, kernel, bias, strides, padding)
    y_ref, cache_ref = ops.conv2d_bias_relu_forward(x, kernel, bias, strides, padding)
    assert_matches_reference(y, y_ref)
    assert y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy_before = dy.copy()
    for need_dx in (True, False):
        got = kernels.conv2d_bias_relu_backward(dy, cache, need_dx)
        want = ops.conv2d_bias_relu_backward(dy, cache_ref, need_dx)
        for g, w in zip(got, want):
            if w is None:
                assert g is None
            else:
                assert_matches_reference(g, w)
                assert g.dtype == dtype
    np.testing.assert_array_equal(dy, dy_before)  # dy is never written


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1 initialises no numba target")
def test_running_a_kernel_does_not_load_scipy_blas_and_jitted_dot_still_works():
    """numba's start-up would load scipy.linalg (and SciPy's OpenBLAS) for nothing: the kernels hide it."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, numba\n"
        "from scratchnet import kernels\n"
        "kernels.relu_forward(np.ones(3, np.float32))\n"
        "assert 'scipy.linalg' not in sys.modules, 'scipy.linalg was loaded'\n"
        "f = numba.njit(lambda a, b: np.dot(a, b))\n"
        "assert f(np.ones(3), np.ones(3)) == 3.0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("draw_chunk", [1, 7, 60, 10_000])
def test_dropout_kernel_drawing_in_chunks_drops_the_reference_units(draw_chunk, monkeypatch):
    """The uniforms drawn piece by piece are the reference's one draw: same mask, same generator state after."""
    monkeypatch.setattr(kdrop, "DRAW_CHUNK", draw_chunk)
    x = np.random.default_rng(1).standard_normal((4, 3, 5)).astype(np.float32)
    rng, rng_ref = np.random.default_rng(9), np.random.default_rng(9)
    y, cache = kernels.dropout_forward(x, 0.3, rng=rng)
    y_ref, cache_ref = ops.dropout_forward(x, 0.3, rng=rng_ref)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache[0], cache_ref[0])
    assert rng.random() == rng_ref.random()


@pytest.mark.parametrize("shape", [(1, 14, 14, 16), (2, 7, 7, 3), (5, 10)])
def test_bias_add_forward_below_the_small_size_is_the_loop_s_values(monkeypatch, shape):
    """Small arrays take NumPy's broadcast (SMALL_BIAS_ADD_SIZE), big ones the loop: the same values, bit for bit."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(shape[-1]).astype(np.float32)
    assert x.size < kact.SMALL_BIAS_ADD_SIZE
    small, small_cache = kernels.bias_add_forward(x, bias)
    monkeypatch.setattr(kact, "SMALL_BIAS_ADD_SIZE", 0)
    looped, looped_cache = kernels.bias_add_forward(x, bias)
    assert small.dtype == np.float32 and np.array_equal(small, looped) and small_cache == looped_cache


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels_kind", ["ids", "ids (N, 1)", "one-hot", "soft rows"])
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_softmax_cross_entropy_kernel_matches_reference(dtype, labels_kind, scale):
    """The one-pass loss gives the reference's loss and cache (probabilities, label rows), so the reference's
    backward gives the same gradient; logits of +-1000 stay finite in both."""
    rng = np.random.default_rng(7)
    logits = (scale * rng.standard_normal((16, 10))).astype(dtype)
    ids = rng.integers(0, 10, 16)
    labels = {"ids": ids, "ids (N, 1)": ids.reshape(16, 1).astype(np.int32),
              "one-hot": np.eye(10, dtype=dtype)[ids],
              "soft rows": rng.dirichlet(np.ones(10), 16).astype(dtype)}[labels_kind]
    loss, (probs, rows) = kernels.softmax_cross_entropy_forward(logits, labels)
    want_loss, (want_probs, want_rows) = ops.softmax_cross_entropy_forward(logits, labels)
    assert np.isfinite(loss) and type(loss) is type(want_loss)
    assert_matches_reference(np.asarray(loss), np.asarray(want_loss))
    assert_matches_reference(probs, want_probs)
    np.testing.assert_array_equal(rows, want_rows)
    dloss = dtype(0.7)
    assert_matches_reference(ops.softmax_cross_entropy_backward(dloss, (probs, rows)),
                             ops.softmax_cross_entropy_backward(dloss, (want_probs, want_rows)))


@pytest.mark.parametrize("logits, labels", [
    (np.zeros((3, 4), np.float32), np.array([0, 4, 1])),
    (np.zeros((3, 4), np.float32), np.zeros((3, 5), np.float32)),
    (np.zeros((3, 4), np.float32), np.array([0.5, 1, 2])),
    (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)),
    (np.zeros((3, 4), np.int32), np.array([0, 1, 2])),
])
def test_softmax_cross_entropy_kernel_refuses_what_the_reference_refuses(logits, labels):
    with pytest.raises(ValueError) as want:
        ops.softmax_cross_entropy_forward(logits, labels)
    with pytest.raises(ValueError, match=re.escape(str(want.value))):
        kernels.softmax_cross_entropy_forward(logits, labels)


@pytest.mark.parametrize("need_dx", [False, True], ids=["without dx", "with dx"])
@pytest.mark.parametrize("shape", [(3, 28, 28, 1, 16, 5, 5, 1, "same"), (2, 9, 7, 1, 16, 3, 3, 2, "valid"),
                                   (2, 8, 8, 3, 16, 3, 3, 1, "same"), (2, 6, 6, 1, 16, 2, 2, 1, "valid"),
                                   (3, 14, 14, 16, 16, 5, 5, 1, "same"), (2, 12, 12, 8, 16, 5, 5, 1, "valid"),
                                   (2, 6, 6, 17, 16, 5, 5, 1, "same"), (2, 8, 8, 1, 8, 5, 5, 1, "same")])
def test_kernel_gradient_of_the_direct_loop_matches_reference(monkeypatch, shape, need_dx):
    """16 output channels over windows of DKERNEL_VALUES to DKERNEL_MAX_WINDOW values take `_dkernel16` (others
    the columns), with or without dx: the reference's gradients, on one thread and cut into parts and chunks,
    bit-identical at one and two threads."""
    n, h, w, ci, co, kh, kw, strides, padding = shape
    used = []
    monkeypatch.setattr(kdirect, "dkernel_usable", lambda g, usable=kdirect.dkernel_usable: used.append(usable(g))
                        or used[-1])
    monkeypatch.setattr(kteam, "TEAM_MIN_MACS", 0)
    monkeypatch.setattr(kteam, "PIECE_CHUNK_BYTES", 1)
    rng = np.random.default_rng(sum(shape[:7]))
    x = rng.standard_normal((n, h, w, ci)).astype(np.float32)
    kernel = rng.standard_normal((kh, kw, ci, co)).astype(np.float32)
    y, cache = kernels.conv2d_forward(x, kernel, strides, padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    results = at_thread_counts(lambda: kernels.conv2d_backward(dy, cache, need_dx=need_dx), (1, 2))
    want = ops.conv2d_backward(dy, ops.conv2d_forward(x, kernel, strides, padding)[1])
    for result in results:
        assert (result[0] is None) == (not need_dx)
        assert_matches_reference(result[1], want[1])
        if need_dx:
            assert_matches_reference(result[0], want[0])
    for got, again in zip(*results):
        if got is not None:
            np.testing.assert_array_equal(got, again)
    assert used and all(u == (co == 16 and 5 <= kh * kw * ci <= kdirect.DKERNEL_MAX_WINDOW) for u in used)
