"""The float32 convolution path: one nogil numba call per thread, copying windows and calling sgemm from numba.

The batch is cut into `scratchnet.runtime.threads.PARTS` parts of equal images whatever the thread count,
and each thread runs ONE piece (`scratchnet.runtime.threads.run_pieces`): one nogil numba call
(`_forward_piece`, `_backward_piece`) that claims parts from a counter the pieces share
(`scratchnet.runtime.team.claim`) until none is left, and, part by part and chunk after chunk of
images, copies the windows (`scratchnet.kernels.im2col`) and multiplies them with NumPy's own OpenBLAS
sgemm (`scratchnet.runtime.blas`). Holding no GIL from start to end is what lets the spinning workers of
`scratchnet.runtime.team` take a piece in microseconds, so even small convolutions use every core. Chunks
never straddle two parts and each part sums its own share of dkernel, so every product, and every sum,
is the same at any thread count: the results are bit-identical. A big forward of fewer images than parts
(one image, in predict) cuts the images into bands of output rows instead (`_forward_in_bands`), and with
8, 16 or 64 output channels (or 32 over short windows) the pieces sum the windows directly
(`scratchnet.kernels.conv_direct`) instead of copying them for sgemm.

Nothing is kept from the forward to the backward: chunks are small enough (PIECE_CHUNK_BYTES) that a
chunk's columns are rebuilt in a core's L2 cache, which costs less than reading a kept matrix back from
memory. `scratchnet.kernels.conv` validates, plans and allocates; this module only runs the pieces.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels import conv_direct
from scratchnet.kernels._common import span_bounds
from scratchnet.kernels.activations import _add_bias_relu_inplace, _bias_block
from scratchnet.kernels.conv_direct import _direct8, _direct16, _direct32, _dkernel16, _window_positions
from scratchnet.kernels.im2col import (
    DX_GATHER,
    DX_NONE,
    DX_SCATTER,
    DX_TRANSPOSED,
    ConvGeometry,
    _col2im_add,
    _col2im_gather,
    _im2col,
    _im2col_t,
    flipped_kernel,
    padded,
    transposed_geometry,
)
from scratchnet.runtime import blas, team, threads

__all__ = ["backward", "forward"]

DIRECT = True
"""Convolutions the direct loop can do (8, 16 or 64 output channels, or 32 over short windows; the transposed
dx of those with 16 input channels: `scratchnet.kernels.conv_direct.usable`) run the
direct loop of `scratchnet.kernels.conv_direct` instead of columns and sgemm; False always takes the
columns (for tests and comparisons)."""

PIECE_CHUNK_BYTES = 256 * 1024
"""The target size of a chunk's work matrices (columns, and dy's columns for the transposed dx).

Trades the cost of rebuilding columns (smaller chunks: more sgemm calls on thinner products) against
spilling out of a core's L2 cache (bigger chunks). Retune when the L2 cache per core changes."""

COLS_T_MAX_RUN = 7
"""Stride-1 convolutions whose windows' rows (KW*CI values) are this short or shorter build the
TRANSPOSE of the column matrix (`_im2col_t`), whose rows are runs of OW values.

Trades a slightly slower product (cols_t.T @ kernel) for a much faster copy; with strides the strided
reads lose more than the copy gains, so stride 1 only. Retune with the CPU's vector width: a row must be
too short to fill a vector move for the transpose to pay."""

TEAM_MIN_MACS = 1_000_000
"""Convolutions with at least this many multiply-adds (N*OH*OW*KH*KW*CI*CO) cut their batch into PARTS parts
for the threads; smaller ones run as one part on the calling thread.

Trades the team's hand-over (microseconds) against the work it shares. Retune if the hand-over's cost
changes (another thread team, another machine's wake-up latency)."""


BAND_MIN_MACS = 4_000_000
"""A convolution of fewer images than it has bands of this many multiply-adds (at most PARTS bands) cuts
its images into bands of output rows for the threads (`_forward_in_bands`); otherwise each image is one
part, and a lone image one thread's work.

Trades the threads' shares of a big image against thinner products and the hand-over: one 14x14x32 image
through deep_mnist's 5x5x64 conv (10M multiply-adds) takes 280 us whole on one thread, 186 us in 2 bands,
217 us in 8; a 1-2M one (notmnist_cnn's, emnist_cnn's second convs) gains nothing. Retune with the
hand-over's cost or the sgemm's efficiency on thin products."""


def _piece_plan(geometry, dy_sizes, dx_mode, per_chunk, direct, row_length):
    """What every piece of one call shares, built once per call, as the plain tuple the pieces unpack:
    (sizes, dy_sizes, per_chunk, cols_t, direct, dx_mode, positions, bounds). sizes are the convolution's
    `loop_sizes()`, dy_sizes those of dy's convolution for DX_TRANSPOSED (else sizes again, when None);
    per_chunk images per chunk; cols_t whether the column matrix is built transposed (COLS_T_MAX_RUN);
    direct whether the forward (in a backward: the transposed dx) runs `conv_direct`'s loop instead of
    columns and sgemm; dx_mode one of `scratchnet.kernels.im2col`'s DX_*; positions the direct loop's
    `_window_positions` in the padded images it reads, whose rows hold `row_length` values (empty without
    the loop); bounds the batch's parts (`_part_bounds`)."""
    sizes = geometry.loop_sizes()
    cols_t = geometry.sw == 1 and geometry.kw * geometry.ci <= COLS_T_MAX_RUN
    dy_sizes = sizes if dy_sizes is None else dy_sizes
    positions = _window_positions(dy_sizes if dx_mode == DX_TRANSPOSED else sizes, row_length, direct)
    return sizes, dy_sizes, per_chunk, cols_t, direct, dx_mode, positions, _part_bounds(geometry)


def _part_bounds(geometry):
    """Where the batch's parts start, and the last one ends: int64 (parts + 1,), from 0 to N.

    PARTS parts (`scratchnet.runtime.threads.part_spans`) from TEAM_MIN_MACS on, else one: a cut that
    depends on the convolution's size only.
    """
    g = geometry
    spans = threads.part_spans(g.n, _macs(g) >= TEAM_MIN_MACS)
    return span_bounds(spans)


def forward(x, kernel, y, geometry, bias=None):
    """y (N, OH, OW, CO) = x * kernel, written in place by the pieces (x, kernel float32, kernel contiguous);
    with a ``bias`` (CO,) float32, ``relu(y + bias)`` instead, each chunk's as soon as it is computed.

    A big convolution of fewer images than PARTS (one image: what predict and serve send) is cut into
    bands of output rows instead (`_forward_in_bands`, see BAND_MIN_MACS), so that it too has parts for the
    threads to share.
    """
    g = geometry
    bands = min(threads.PARTS, _macs(g) // BAND_MIN_MACS)
    bias_block = np.empty(0, dtype=y.dtype) if bias is None else _bias_block(bias)
    if g.n < bands:
        _forward_in_bands(x, kernel, y, g, -(-bands // g.n), bias_block)
    else:
        _forward(padded(x, g), kernel, y, g, bias_block)


def _forward(x_padded, kernel, y, geometry, bias_block):
    """`forward` of images cut into parts, x already padded (`padded`); bias_block the bias repeated
    (`scratchnet.kernels.activations._bias_block`), or empty for no bias and relu."""
    g = geometry
    k = g.kh * g.kw * g.ci
    direct = DIRECT and conv_direct.usable(g, g.co)
    per_chunk = _images_per_chunk(g.oh * g.ow * k, x_padded.itemsize)
    plan = _piece_plan(g, None, DX_NONE, per_chunk, direct, x_padded.shape[2])
    kernel2d, y2d = kernel.reshape(k, g.co), y.reshape(g.n * g.oh * g.ow, g.co)
    if direct and g.co != conv_direct.CHANNELS:
        panels = conv_direct.kernel_panels(kernel2d, min(g.co, conv_direct.WIDE_CHANNELS))
        _run(_panels_direct_piece, plan, (x_padded, panels, y2d, bias_block))
    else:
        kernel2d = conv_direct.kernel_panels(kernel2d, g.co)[0] if direct else kernel2d
        _run(_forward_piece, plan, (x_padded, kernel2d, y2d, bias_block))


def _forward_in_bands(x, kernel, y, geometry, per_image, bias_block):
    """`forward` with each image's output rows cut into `per_image` bands (fewer if OH is small).

    The band of output rows r0..r1-1 is a VALID convolution of the padded input rows it reads,
    r0*SH .. (r1-1)*SH + KH - 1, so the bands, copied out as images of their own, make one convolution of
    the usual kind (`_forward`): (N*bands, band_rows_in, WP, CI) -> (N*bands, band, OW, CO), which is y when
    the bands cover OH exactly. The cut depends on the convolution alone, as every cut here.
    """
    g = geometry
    band = -(-g.oh // per_image)  # output rows per band
    bands = -(-g.oh // band)
    rows_in = (band - 1) * g.sh + g.kh
    x_padded = padded(x, g)
    needed = (bands * band - 1) * g.sh + g.kh  # padded rows the last band reads (it may run past OH)
    if needed > x_padded.shape[1]:
        x_padded = np.concatenate([x_padded, np.zeros((g.n, needed - x_padded.shape[1], x_padded.shape[2]),
                                                      dtype=x.dtype)], axis=1)
    x_bands = np.empty((g.n, bands, rows_in, x_padded.shape[2]), dtype=x.dtype)
    for b in range(bands):
        x_bands[:, b] = x_padded[:, b * band * g.sh : b * band * g.sh + rows_in]
    band_geometry = ConvGeometry(g.n * bands, rows_in, x_padded.shape[2] // g.ci, g.ci, g.co, g.kh, g.kw, g.sh,
                                 g.sw, band, g.ow, 0, 0, 0, 0)
    exact = bands * band == g.oh
    y_bands = y if exact else np.empty((g.n, bands * band, g.ow, g.co), dtype=y.dtype)
    _forward(x_bands.reshape(g.n * bands, rows_in, -1), kernel, y_bands, band_geometry, bias_block)
    if not exact:
        y[...] = y_bands[:, : g.oh]


def _macs(geometry):
    """The convolution's multiply-adds, N*OH*OW*KH*KW*CI*CO."""
    g = geometry
    return g.n * g.oh * g.ow * g.kh * g.kw * g.ci * g.co


def backward(x, kernel, dy, geometry, dx_mode, dx_buffer):
    """dkernel (KH*KW*CI, CO) of a non-empty dy (N, OH, OW, CO, contiguous); dx written into dx_buffer.

    dx_buffer is (N, H, W*CI) for DX_GATHER and DX_TRANSPOSED, zeroed and padded (N, HP, WP*CI) for
    DX_SCATTER, None for DX_NONE. Each part of the batch sums its images' share of dkernel; the shares are
    added here, in part order.
    """
    g = geometry
    k = g.kh * g.kw * g.ci
    none2d, none3d = np.empty((0, 0), dtype=x.dtype), np.empty((0, 0, 0), dtype=x.dtype)
    dy_sizes, dy_padded, flipped, direct = None, none3d, none2d, False
    if dx_mode == DX_TRANSPOSED:
        dy_geometry = transposed_geometry(g)
        dy_sizes, dy_padded, flipped = dy_geometry.loop_sizes(), padded(dy, dy_geometry), flipped_kernel(kernel)
        direct = DIRECT and conv_direct.usable(dy_geometry, dy_geometry.co, False)
        flipped = conv_direct.kernel_panels(flipped, g.ci)[0] if direct else flipped
    kernel2d = kernel.reshape(k, g.co)
    kernel_t = np.ascontiguousarray(kernel2d.T) if dx_mode in (DX_GATHER, DX_SCATTER) else none2d
    dx_values = g.h * g.w * g.kh * g.kw * g.co if dx_mode == DX_TRANSPOSED else 0
    per_chunk = _images_per_chunk(g.oh * g.ow * k + dx_values, x.itemsize)
    plan = _piece_plan(g, dy_sizes, dx_mode, per_chunk, direct, dy_padded.shape[2])
    x_padded, dy2d = padded(x, g), dy.reshape(g.n * g.oh * g.ow, g.co)
    sizes, bounds = plan[0], plan[-1]
    dkernel_positions = _window_positions(sizes, x_padded.shape[2],  # empty: dkernel from columns
                                          DIRECT and conv_direct.dkernel_usable(g))
    dx_buffer = none3d if dx_buffer is None else dx_buffer
    dkernel_parts = np.empty((bounds.size - 1, k, g.co), dtype=x.dtype)  # each written whole by its part
    _run(_backward_piece, plan, (x_padded, dy2d, dkernel_parts, kernel_t, dx_buffer, dy_padded, flipped,
                                 dkernel_positions))
    return dkernel_parts[0] if bounds.size == 2 else dkernel_parts.sum(axis=0, dtype=x.dtype)


def _images_per_chunk(values_per_image, itemsize):
    """Images per chunk so that a chunk's work matrices hold about PIECE_CHUNK_BYTES (at least one image)."""
    return max(1, PIECE_CHUNK_BYTES // max(1, values_per_image * itemsize))


def _run(piece, plan, operands):
    """Run `piece` over the parts of the batch (plan's bounds): one call per thread (at most one per part), the
    calls claiming the parts as they go (`scratchnet.runtime.team.claim`), so that a thread held up by the
    OS leaves its share to the others. Which thread computes a part changes nothing in the results."""
    parts = plan[-1].size - 1
    claims = np.zeros(1, dtype=np.int64)  # the next part to claim
    piece_args = (blas.sgemm(), plan, claims, operands)
    threads.run_pieces([(piece, piece_args)] * min(parts, threads.num_threads()))


# ----------------------------------------------------------------------------------------------------
# The pieces: one nogil call each, called as piece(*args, state, post_slot, done_slot, job) by
# scratchnet.runtime.team. Each claims parts (team.claim(claims)) until the number it gets is past the last.
# ----------------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _forward_piece(sgemm, plan, claims, operands, state, post_slot, done_slot, job):
    """y rows of the images of the parts it claims = im2col(x_padded) @ kernel2d, part by part, per_chunk
    images at a time.

    operands: (x_padded (N, HP, WP*CI), kernel2d (K, CO), y2d (N*OH*OW, CO), bias_block (the bias repeated,
    or empty)). The windows go into one chunk-sized column matrix, reused chunk after chunk, that dies with
    the piece. With a bias, each chunk's rows get ``relu(rows + bias)`` right after their product.
    """
    team.post_done(state, post_slot, job)
    x_padded, kernel2d, y2d, bias_block = operands
    sizes, _, per_chunk, cols_t, direct, _, positions, bounds = plan
    _, _, _, _, _, oh, ow, _, _ = sizes
    rows = oh * ow
    k = kernel2d.shape[0]
    chunk_rows = 0 if direct else min(per_chunk, _longest_part(bounds)) * rows
    buffer = np.empty(k * chunk_rows, dtype=y2d.dtype)
    part = team.claim(claims)
    while part < bounds.size - 1:
        n0, n1 = bounds[part], bounds[part + 1]
        for c0 in range(n0, n1, per_chunk):  # chunks start afresh in each part: their sizes, and so the
            c1 = min(n1, c0 + per_chunk)    # products' rounding, never depend on the threads
            if direct:
                _direct16(x_padded, kernel2d, y2d, positions, c0, c1)
            else:
                columns = _columns(sizes, cols_t, x_padded, (c0, c1), buffer)
                blas.sgemm_rows(sgemm, columns, kernel2d, y2d[c0 * rows : c1 * rows], cols_t, 0.0)
            if bias_block.size:
                _add_bias_relu_inplace(y2d[c0 * rows : c1 * rows].ravel(), bias_block)
        part = team.claim(claims)
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True)
def _panels_direct_piece(sgemm, plan, claims, operands, state, post_slot, done_slot, job):
    """`_forward_piece` for a convolution with 8, 32 or 64 output channels that the direct loop does
    (`_direct8`, `_direct32`; the operands' kernel as their `kernel_panels`, of 8 or 32 columns): a piece of
    its own, so that models without one do not compile those loops into `_forward_piece` (nor those with
    one `_forward_piece`'s columns into this). sgemm is unused."""
    team.post_done(state, post_slot, job)
    x_padded, panels, y2d, bias_block = operands
    sizes, _, per_chunk, _, _, _, positions, bounds = plan
    _, _, _, _, _, oh, ow, _, _ = sizes
    rows = oh * ow
    part = team.claim(claims)
    while part < bounds.size - 1:
        for c0 in range(bounds[part], bounds[part + 1], per_chunk):
            c1 = min(bounds[part + 1], c0 + per_chunk)
            if panels.shape[2] == conv_direct.NARROW_CHANNELS:
                _direct8(x_padded, panels[0], y2d, positions, c0, c1)
            else:
                _direct32(x_padded, panels, y2d, positions, c0, c1)
            if bias_block.size:
                _add_bias_relu_inplace(y2d[c0 * rows : c1 * rows].ravel(), bias_block)
        part = team.claim(claims)
    team.mark_done(state, post_slot, done_slot, job)


@njit(cache=True, nogil=True, inline="always")
def _longest_part(bounds):
    """The most images in one of the parts (bounds as in `_part_bounds`)."""
    longest = 0
    for part in range(bounds.size - 1):
        longest = max(longest, bounds[part + 1] - bounds[part])
    return longest


@njit(cache=True, nogil=True, inline="always")
def _columns(sizes, cols_t, x_padded, chunk, buffer):
    """The column matrix of the chunk's images c0..c1-1 built in the 1-D `buffer`: cols (rows, K), or with
    `cols_t` its transpose (K, rows), a C-contiguous view either way (the loops' copies stay vector moves,
    and sgemm_rows meets one array type). The caller multiplies it transposed or not accordingly."""
    c0, c1 = chunk
    ci, kh, kw, _, _, oh, ow, _, _ = sizes
    rows = (c1 - c0) * oh * ow
    k = kh * kw * ci
    if cols_t:
        columns = buffer[: k * rows].reshape((k, rows))
        _im2col_t(x_padded, sizes, c0, c1, columns)
    else:
        columns = buffer[: rows * k].reshape((rows, k))
        _im2col(x_padded, sizes, c0, c1, columns)
    return columns


@njit(cache=True, nogil=True)
def _backward_piece(sgemm, plan, claims, operands, state, post_slot, done_slot, job):
    """The backward of the images of the parts it claims: for each part p, dkernel_parts[p] = the sum over its
    chunks of cols.T @ dy rows (or, given dkernel_positions, `_dkernel16` over the part's images in one
    call); and their dx.

    operands: (x_padded, dy2d (N*OH*OW, CO), dkernel_parts (parts, K, CO), kernel_t (CO, K), dx_buffer,
    dy_padded, flipped (KH*KW*CO, CI), dkernel_positions (the forward's `_window_positions`, or empty));
    the arrays a dx mode does not use are empty. cols are rebuilt
    chunk by chunk; dx as in `scratchnet.kernels.conv.conv2d_backward`: DX_TRANSPOSED writes
    im2col(dy_padded) @ flipped into dx_buffer's rows, DX_GATHER and DX_SCATTER turn
    dcols = dy rows @ kernel_t into dx with `_col2im_gather` / `_col2im_add`.
    """
    team.post_done(state, post_slot, job)
    x_padded, dy2d, dkernel_parts, kernel_t, dx_buffer, dy_padded, flipped, dkernel_positions = operands
    sizes, dy_sizes, per_chunk, cols_t, direct, mode, positions, bounds = plan
    ci, _, _, _, _, oh, ow, _, _ = sizes
    rows = oh * ow
    k = dkernel_parts.shape[1]
    chunk = min(per_chunk, _longest_part(bounds))
    dkernel_direct = dkernel_positions[0].size > 0
    cols_buffer = np.empty(0 if dkernel_direct else k * chunk * rows, dtype=dy2d.dtype)
    cols_dx = mode in (DX_GATHER, DX_SCATTER)
    dcols_buffer = np.empty((chunk * rows if cols_dx else 0, k), dtype=dy2d.dtype)
    h = dx_buffer.shape[1]
    w = dx_buffer.shape[2] // ci if mode == DX_TRANSPOSED else 0
    dy_cols_buffer = np.empty((0 if direct else chunk * h * w, flipped.shape[0]), dtype=dy2d.dtype)  # (dx rows,
    # KH*KW*CO)
    dx_all_rows = dx_buffer.reshape((dx_buffer.shape[0] * h * w, ci)) if mode == DX_TRANSPOSED else dcols_buffer
    part = team.claim(claims)
    while part < bounds.size - 1:
        n0, n1 = bounds[part], bounds[part + 1]
        if dkernel_direct:  # the part's dkernel in one call, from the windows where they lie
            _dkernel16(x_padded, dy2d, dkernel_parts[part], dkernel_positions, n0, n1)
        chunked = n1 if mode != DX_NONE or not dkernel_direct else n0  # no dx and no columns: no chunks
        for c0 in range(n0, chunked, per_chunk):
            c1 = min(n1, c0 + per_chunk)
            dy_rows = dy2d[c0 * rows : c1 * rows]
            if not dkernel_direct:
                columns = _columns(sizes, cols_t, x_padded, (c0, c1), cols_buffer)
                beta = 0.0 if c0 == n0 else 1.0  # the part's first chunk writes its share, the others add to it
                blas.sgemm_rows(sgemm, columns, dy_rows, dkernel_parts[part], not cols_t, beta)
            if mode == DX_TRANSPOSED and direct:
                _direct16(dy_padded, flipped, dx_all_rows, positions, c0, c1)
            elif mode == DX_TRANSPOSED:
                dy_cols = dy_cols_buffer[: (c1 - c0) * h * w]
                _im2col(dy_padded, dy_sizes, c0, c1, dy_cols)
                blas.sgemm_rows(sgemm, dy_cols, flipped, dx_all_rows[c0 * h * w : c1 * h * w], blas.AS_IS, 0.0)
            elif cols_dx:
                dcols = dcols_buffer[: (c1 - c0) * rows]
                blas.sgemm_rows(sgemm, dy_rows, kernel_t, dcols, blas.AS_IS, 0.0)
                if mode == DX_GATHER:
                    _col2im_gather(dcols, sizes, c0, c1, dx_buffer)
                else:
                    _col2im_add(dcols, sizes, c0, c1, dx_buffer)
        part = team.claim(claims)
    team.mark_done(state, post_slot, done_slot, job)
