"""Fast 2-D convolution, same API as scratchnet.ops: validate, plan, allocate, then hand the work to one path.

The arithmetic runs in matrix products over column matrices (`scratchnet.kernels.im2col`); numba only
moves data. Two paths do the work, both on the threads of `scratchnet.runtime.threads` with BLAS at one
thread per thread, and give the same results up to float32 rounding (tests/test_kernels.py):

* `scratchnet.kernels.conv_team`, for float32 (the zoo's dtype) when NumPy's OpenBLAS sgemm is found:
  one nogil numba call per thread that copies windows and calls sgemm, chunk after chunk.
* `scratchnet.kernels.conv_chunks` otherwise (float64, another BLAS, or TEAM_PIECES False): chunks of
  numba copies and ``np.matmul`` products shared out by `parallel_map`.

This module decides how dx is computed (DX_TRANSPOSED, DX_GATHER or DX_SCATTER of
`scratchnet.kernels.im2col`), allocates dx and crops it; the paths fill it.
"""
from __future__ import annotations

import numpy as np

from scratchnet.kernels import conv_chunks, conv_team
from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.kernels.im2col import (
    DX_GATHER,
    DX_NONE,
    DX_SCATTER,
    DX_TRANSPOSED,
    conv_geometry,
)
from scratchnet.ops import conv as reference
from scratchnet.ops._checks import check_dy, float_array, int_pair, padding_mode
from scratchnet.runtime import blas

__all__ = ["conv2d_backward", "conv2d_forward", "conv2d_forward_then_bias_relu"]

TEAM_PIECES = True
"""float32 convolutions take `scratchnet.kernels.conv_team` when NumPy's OpenBLAS offers its sgemm;
False sends every convolution to `scratchnet.kernels.conv_chunks` (for tests and comparisons)."""

GATHER_MIN_CHANNELS = 16
"""From this many input channels on, col2im gathers per pixel of dx; below, it scatter-adds windows.

Trades the gather's per-pixel window search against the scatter's zeroed padded buffer and crop copy:
the gather wins once a pixel's run of CI values is long enough to copy with vector moves. Retune with
the CPU's vector width."""

TRANSPOSED_DX = True
"""Compute dx as a convolution of dy with the flipped kernel when the stride is 1 and CO <= CI: one more
im2col over dy (its runs are KW*CO values) instead of a col2im. False always uses col2im."""


def conv2d_forward(x, kernel, strides=1, padding="valid"):
    """2-D cross-correlation of NHWC images with an HWIO kernel, TensorFlow padding, no bias.

    x: (N, H, W, CI); kernel: (KH, KW, CI, CO); strides: int or (SH, SW); padding: "same" or "valid"
    (case-insensitive). Returns y: (N, OH, OW, CO) in x's dtype, and a cache for `conv2d_backward`.

    Notes: SAME padding follows TensorFlow (out = ceil(in / stride), the extra row/column at the
    bottom/right), so results match `tf.nn.conv2d` and `scratchnet.ops.conv2d_forward`.
    """
    y, cache, _ = conv2d_forward_then_bias_relu(x, kernel, strides, padding, None)
    return y, cache


def conv2d_forward_then_bias_relu(x, kernel, strides, padding, bias):
    """`conv2d_forward`, and with a ``bias`` (CO,) in x's dtype ``relu(y + bias)`` written over y chunk by chunk
    on the team path, while each chunk's output is still in cache. Returns (y, cache, done): ``done`` says
    whether the bias and relu were applied (False: the caller applies them; only the team path does)."""
    x = float_array(x, "x", ndim=4)
    if x.dtype not in SUPPORTED_DTYPES:  # e.g. float16: numba has no arithmetic for it
        return (*reference.conv2d_forward(x, kernel, strides, padding), False)
    kernel = float_array(kernel, "kernel", ndim=4).astype(x.dtype, copy=False)
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(
            "The kernel's input channels (axis 2) must equal x's channels (axis 3). "
            f"Received: x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    strides = int_pair(strides, "strides")
    padding = padding_mode(padding)
    kernel = np.ascontiguousarray(kernel)
    geometry = conv_geometry(x.shape, kernel.shape, strides, padding)
    g = geometry
    y = np.empty((g.n, g.oh, g.ow, g.co), dtype=x.dtype)
    kept_cols, done = None, False
    if y.size and _team_path(x.dtype):
        conv_team.forward(x, kernel, y, geometry, bias)
        done = bias is not None
    elif y.size:
        kept_cols = conv_chunks.forward(x, kernel, y, geometry)
    cache = (x, kernel, geometry, kept_cols)
    return y, cache, done


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of `conv2d_forward`: dy (N, OH, OW, CO) -> (dx (N, H, W, CI), dkernel (KH, KW, CI, CO)).

    Neither `dy` nor the cache is modified; both outputs are new arrays in x's dtype. With
    ``need_dx=False`` dx is None and neither its matrix product nor the col2im runs.
    """
    if isinstance(cache[-1], str):  # the reference's cache ends with padding: a dtype left to ops
        return reference.conv2d_backward(dy, cache, need_dx)
    x, kernel, geometry, kept_cols = cache
    g = geometry
    dy = np.ascontiguousarray(check_dy(dy, (g.n, g.oh, g.ow, g.co), x.dtype, "conv2d_backward"))

    dx_mode = _dx_mode(geometry, need_dx)
    dx_buffer = _dx_buffer(geometry, dx_mode, x.dtype, zeroed=dy.size == 0)
    if not dy.size:
        dkernel2d = np.zeros((g.kh * g.kw * g.ci, g.co), dtype=x.dtype)
    elif _team_path(x.dtype):
        dkernel2d = conv_team.backward(x, kernel, dy, geometry, dx_mode, dx_buffer)
    else:
        dkernel2d = conv_chunks.backward(x, kernel, dy, geometry, dx_mode, dx_buffer, kept_cols)
    dkernel = dkernel2d.reshape(kernel.shape)
    if dx_mode == DX_NONE:
        return None, dkernel
    if dx_mode != DX_SCATTER:
        return dx_buffer.reshape(g.n, g.h, g.w, g.ci), dkernel
    dx = dx_buffer.reshape(g.n, g.h + g.pad_top + g.pad_bottom, g.w + g.pad_left + g.pad_right, g.ci)
    if g.pad_top or g.pad_bottom or g.pad_left or g.pad_right:
        dx = dx[:, g.pad_top : g.pad_top + g.h, g.pad_left : g.pad_left + g.w].copy()
    return dx, dkernel


def _team_path(dtype):
    """True if a convolution in `dtype` runs on `scratchnet.kernels.conv_team`: float32 with NumPy's OpenBLAS
    sgemm found (see TEAM_PIECES)."""
    return TEAM_PIECES and dtype == np.float32 and blas.sgemm() is not None


def _dx_mode(geometry, need_dx):
    """How the backward computes dx (see TRANSPOSED_DX and GATHER_MIN_CHANNELS)."""
    g = geometry
    if not need_dx:
        return DX_NONE
    if TRANSPOSED_DX and g.sh == 1 and g.sw == 1 and g.co <= g.ci:
        return DX_TRANSPOSED
    return DX_GATHER if g.ci >= GATHER_MIN_CHANNELS else DX_SCATTER


def _dx_buffer(geometry, dx_mode, dtype, zeroed):
    """What the paths write dx into: None for DX_NONE; (N, H, W*CI), every pixel written once, for
    DX_TRANSPOSED and DX_GATHER (`zeroed` when no pixel will be); zeroed and padded (N, HP, WP*CI) for
    DX_SCATTER's scatter-adds."""
    g = geometry
    if dx_mode == DX_NONE:
        return None
    if dx_mode == DX_SCATTER:
        return np.zeros((g.n, g.h + g.pad_top + g.pad_bottom, (g.w + g.pad_left + g.pad_right) * g.ci), dtype=dtype)
    return (np.zeros if zeroed else np.empty)((g.n, g.h, g.w * g.ci), dtype=dtype)
