"""The column matrices of a convolution and their adjoints: the numba loops both convolution paths share.

A convolution becomes one matrix product once its windows are laid out as rows. For a chunk of images,
with K = KH*KW*CI and rows = images*OH*OW:

    cols (rows, K)     = im2col(x_padded chunk)     row (n, oh, ow), column (kh, kw, ci)
    y    (rows, CO)    = cols @ kernel.reshape(K, CO)
    dkernel (K, CO)   += cols.T @ dy2d
    dcols (rows, K)    = dy2d @ kernel.reshape(K, CO).T
    dx_chunk           = col2im(dcols)               (overlapping windows accumulate)

x_padded is x with TensorFlow's zero padding applied once per call (`padded`), so the loops copy
contiguous runs of KW*CI values without bounds checks. The loops take the sizes as one tuple
(`ConvGeometry.loop_sizes`).

col2im has two forms. With many input channels each pixel of dx GATHERS the window gradients that cover
it and is written once: no zeroed padded buffer, no crop copy. With few channels the runs are too short
for that, and the windows are SCATTER-added into a zeroed padded buffer. With stride 1 and no more
output than input channels, dx is instead a forward convolution of dy with the kernel flipped and its
channel axes swapped (`transposed_geometry`, `flipped_kernel`): one more im2col, which copies faster
than col2im gathers. `scratchnet.kernels.conv` chooses among them (DX_GATHER, DX_SCATTER, DX_TRANSPOSED).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops.conv import padding_amounts
from scratchnet.runtime import team, threads

__all__ = ["DX_GATHER", "DX_NONE", "DX_SCATTER", "DX_TRANSPOSED", "ConvGeometry", "conv_geometry",
           "flipped_kernel", "padded", "transposed_geometry"]

DX_NONE, DX_TRANSPOSED, DX_GATHER, DX_SCATTER = 0, 1, 2, 3
"""How a backward computes dx: not at all, as a convolution of dy, or by col2im gather / scatter-add."""


class ConvGeometry(NamedTuple):
    """The sizes of one convolution, built once per call: the plan both paths and the backward work from.

    x (N, H, W, CI) * kernel (KH, KW, CI, CO) with strides (SH, SW) and TensorFlow's zero padding (rows
    on top and bottom, columns on the left and right) -> y (N, OH, OW, CO). All Python ints, so numba
    compiles one version of each loop for every convolution; the loops take `loop_sizes()`.
    """

    n: int
    h: int
    w: int
    ci: int
    co: int
    kh: int
    kw: int
    sh: int
    sw: int
    oh: int
    ow: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int

    def loop_sizes(self):
        """What the numba loops take: (CI, KH, KW, SH, SW, OH, OW, pad_top, pad_left) as a PLAIN tuple, which
        numba types from its values in well under a microsecond (a named tuple costs it more per call)."""
        return self.ci, self.kh, self.kw, self.sh, self.sw, self.oh, self.ow, self.pad_top, self.pad_left


@functools.lru_cache(maxsize=256)  # a training loop convolves the same few shapes over and over
def conv_geometry(x_shape, kernel_shape, strides, padding):
    """The `ConvGeometry` of x_shape (N, H, W, CI) * kernel_shape (KH, KW, CI, CO) (array shapes: ints);
    strides (SH, SW) ints; padding "same" or "valid" (already checked)."""
    n, h, w, ci = x_shape
    kh, kw, _, co = kernel_shape
    sh, sw = strides
    oh, pad_top, pad_bottom = padding_amounts(h, kh, sh, padding)
    ow, pad_left, pad_right = padding_amounts(w, kw, sw, padding)
    return ConvGeometry(n, h, w, ci, co, kh, kw, sh, sw, oh, ow, pad_top, pad_bottom, pad_left, pad_right)


@functools.lru_cache(maxsize=256)
def transposed_geometry(geometry):
    """The geometry of dx as a stride-1 convolution of dy: dy (N, OH, OW, CO) padded by KH-1-pad_top
    (and so on) * `flipped_kernel` (KH, KW, CO, CI) -> dx (N, H, W, CI). Only for stride-1 geometries."""
    g = geometry
    return ConvGeometry(g.n, g.oh, g.ow, g.co, g.ci, g.kh, g.kw, 1, 1, g.h, g.w, g.kh - 1 - g.pad_top,
                        g.kh - 1 - g.pad_bottom, g.kw - 1 - g.pad_left, g.kw - 1 - g.pad_right)


def flipped_kernel(kernel):
    """The kernel of `transposed_geometry`'s convolution as a matrix: kernel (KH, KW, CI, CO) turned by 180
    degrees, its channel axes swapped, viewed as (KH*KW*CO, CI)."""
    kh, kw, ci, co = kernel.shape
    return np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(kh * kw * co, ci)


PAD_PARALLEL_MIN_SIZE = 200_000
"""Padded arrays of at least this many values are written by the threads of the team, a slice of images each
(`_pad_piece`); smaller ones by NumPy on the calling thread.

A convolution pads its input before its pieces start, while the workers wait: notmnist_cnn's second conv
(100x14x14x16 to 18x18) spent 92 us of its 1.6 ms there, NumPy zeroing the whole array and then copying the
images in. Retune if the hand-over's cost changes."""


def padded(x, geometry):
    """x (N, H, W, C) zero-padded by the geometry's pads and viewed as (N, H + pads, (W + pads) * C); x
    itself (made contiguous) when there are no pads."""
    top, bottom, left, right = geometry.pad_top, geometry.pad_bottom, geometry.pad_left, geometry.pad_right
    n, h, w, c = x.shape
    if not (top or bottom or left or right):
        return np.ascontiguousarray(x).reshape(n, h, w * c)
    shape = (n, h + top + bottom, (w + left + right) * c)
    if x.dtype in SUPPORTED_DTYPES and shape[0] * shape[1] * shape[2] >= PAD_PARALLEL_MIN_SIZE:
        result = np.empty(shape, dtype=x.dtype)  # every value written once, by the pieces
        source = np.ascontiguousarray(x).reshape(n, h, w * c)
        threads.run_pieces([(_pad_piece, (source, result, (top, left * c), span))
                            for span in threads.spans(n, threads.num_threads())])
        return result
    result = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)  # np.pad's result, without
    result[:, top : top + h, left : left + w] = x  # its set-up cost
    return result.reshape(shape)


@njit(cache=True, nogil=True)
def _pad_piece(source, result, offsets, span, state, post_slot, done_slot, job):
    """Images span[0]..span[1]-1 of `padded`'s result: source (N, H, W*C) written at rows offsets[0] and values
    offsets[1] of each row of result (N, HP, WP*C), zeros around. A piece of `scratchnet.runtime.team`."""
    team.post_done(state, post_slot, job)
    top, left = offsets
    h, run = source.shape[1], source.shape[2]
    for n in range(span[0], span[1]):
        image = result[n]
        for r in range(image.shape[0]):
            row = image[r]
            if top <= r < top + h:
                row[:left] = 0.0
                row[left : left + run] = source[n, r - top]
                row[left + run :] = 0.0
            else:
                row[:] = 0.0
    team.mark_done(state, post_slot, done_slot, job)


# ----------------------------------------------------------------------------------------------------
# numba loops (copies only; the arithmetic is BLAS's).
# ----------------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _im2col(x_padded, sizes, n0, n1, cols):
    """Fill cols (rows, KH*KW*CI) with the receptive fields of images n0..n1-1 of x_padded (N, HP, WP*CI).

    sizes is `ConvGeometry.loop_sizes()`, as for every loop here. Row (n - n0, oh, ow), column (kh, kw,
    ci) holds x_padded[n, oh*SH + kh, (ow*SW + kw)*CI + ci]: for one (row, kh) that is one contiguous run
    of KW*CI values. The run is copied between two 1-D slices indexed from 0, which LLVM turns into
    vector moves (indexing the 2-D arrays directly, it cannot rule out negative indices and copies value
    by value). Runs shorter than 8 values are too short for vector moves and are copied one by one.
    """
    ci_size, kh_size, kw_size, sh, sw, oh_size, ow_size, _, _ = sizes
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
def _im2col_t(x_padded, sizes, n0, n1, cols_t):
    """Fill cols_t (KH*KW*CI, rows) with the TRANSPOSE of `_im2col`'s column matrix.

    Row (kh, kw, ci), column (n - n0, oh, ow) holds x_padded[n, oh*SH + kh, (ow*SW + kw)*CI + ci]: for one
    (n, oh, kh, kw, ci) that is a run of OW values taken every SW*CI values, written contiguously. With one
    input channel and stride 1 the run is read contiguously too, and LLVM copies it with vector moves:
    the way to copy windows whose rows (KW*CI values) are too short for `_im2col`'s vector moves.
    """
    ci_size, kh_size, kw_size, sh, sw, oh_size, ow_size, _, _ = sizes
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
def _col2im_add(dcols, sizes, n0, n1, dx_padded):
    """Scatter-add dcols (rows, KH*KW*CI) onto images n0..n1-1 of dx_padded (N, HP, WP*CI): im2col's adjoint.

    Pixels shared by overlapping windows accumulate; the caller cuts the padding off afterwards. Runs are
    added slice to slice as in `_im2col` (one by one below 8 values).
    """
    ci_size, kh_size, kw_size, sh, sw, oh_size, ow_size, _, _ = sizes
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
def _col2im_gather(dcols, sizes, n0, n1, dx):
    """Write images n0..n1-1 of dx (N, H, W*CI): each pixel the sum of the dcols entries of the windows covering it.

    im2col's adjoint, as `_col2im_add`, but per input pixel: window (oh, ow) covers pixel (ih, iw) at kernel
    offset (kh, kw) = (ih + pad_top - oh*SH, iw + pad_left - ow*SW). dx needs no zeroing and no padding.
    ``error_model="numpy"`` drops the ZeroDivisionError checks on the divisions by the strides (never
    zero), which would otherwise sit in the innermost loop.
    """
    ci_size, kh_size, kw_size, sh, sw, oh_size, ow_size, pad_top, pad_left = sizes
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
