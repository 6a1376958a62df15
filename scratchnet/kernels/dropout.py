"""Fast dropout: the keep-mask and the scaled output (or the gradient) in one numba pass each.

The reference (`scratchnet.ops.dropout`) draws ``rng.random(x.shape) >= rate`` and applies it with
``np.where``, a data-dependent choice per element that is several times slower than this one pass
(docs/performance.md). The uniforms are drawn exactly as the reference draws them, from
the same generator, so both backends drop the same units and give the same numbers; caches are the
reference's, so a forward from one engine and a backward from the other fit together.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops import dropout as reference
from scratchnet.ops._checks import check_dy

__all__ = ["dropout_backward", "dropout_forward"]

DRAW_CHUNK = 262_144
"""The float64 uniforms are drawn this many at a time (2 MB) rather than all at once: a generator's
stream does not depend on how its draws are split, so the mask is the reference's, without a float64
array twice the size of a float32 x in the step's peak memory.

Trades peak memory (smaller) against a Python round per draw (more of them). Retune only if draws
this size stop fitting in cache."""


def dropout_forward(x, rate, rng=None, mask=None, training=True):
    """Inverted dropout, Keras semantics: x (any shape) -> (y, cache), as `scratchnet.ops.dropout_forward`.

    In training with 0 < rate < 1 the keep-mask is ``rng.random(x.shape) >= rate`` (or the given
    boolean ``mask`` of x's shape) and ``y = x * (1 / (1 - rate))`` where kept, 0 where dropped.
    Anything else (inference, rate 0, a broadcast mask, bad arguments) is the reference's business.
    """
    x = np.asarray(x)
    is_rate = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool)
    fast = training and is_rate and 0 < rate < 1 and x.dtype in SUPPORTED_DTYPES
    if fast and mask is None:
        fast = isinstance(rng, np.random.Generator)
    elif fast:
        mask = np.asarray(mask)
        fast = mask.dtype == np.bool_ and mask.shape == x.shape
    if not fast:
        return reference.dropout_forward(x, rate, rng=rng, mask=mask, training=training)
    scale = np.asarray(1.0 / (1.0 - rate), dtype=x.dtype)
    source = np.ascontiguousarray(x).reshape(-1)
    y = np.empty(x.shape, dtype=x.dtype)
    if mask is None:
        mask = np.empty(x.shape, dtype=np.bool_)
        flat_mask, flat_y = mask.reshape(-1), y.reshape(-1)
        for start in range(0, x.size, DRAW_CHUNK):  # the reference's draw, in pieces: the same units drop
            stop = min(x.size, start + DRAW_CHUNK)
            _draw_mask_and_apply(rng.random(stop - start), float(rate), source[start:stop], scale[()],
                                 flat_mask[start:stop], flat_y[start:stop])
    else:
        _apply_mask(np.ascontiguousarray(mask).reshape(-1), source, scale[()], y.reshape(-1))
    return y, (mask, scale, x.shape, x.dtype)


def dropout_backward(dy, cache):
    """``dx = dy * (1 / (1 - rate))`` where kept, 0 where dropped (a new array); see the reference."""
    mask, scale, x_shape, dtype = cache
    if mask is None or mask.shape != tuple(x_shape) or np.dtype(dtype) not in SUPPORTED_DTYPES:
        return reference.dropout_backward(dy, cache)
    dy = np.ascontiguousarray(check_dy(dy, x_shape, dtype, "dropout_backward"))
    dx = np.empty(x_shape, dtype=dtype)
    _apply_mask(np.ascontiguousarray(mask).reshape(-1), dy.reshape(-1), scale[()], dx.reshape(-1))
    return dx


@njit(cache=True, nogil=True)
def _draw_mask_and_apply(uniforms, rate, x, scale, mask, y):
    """mask[i] = uniforms[i] >= rate; y[i] = x[i] * scale where kept, else 0 (flat arrays)."""
    for i in range(x.size):
        keep = uniforms[i] >= rate
        mask[i] = keep
        y[i] = x[i] * scale if keep else 0.0


@njit(cache=True, nogil=True)
def _apply_mask(mask, values, scale, out):
    """out[i] = values[i] * scale where mask[i], else 0 (flat arrays)."""
    for i in range(values.size):
        out[i] = values[i] * scale if mask[i] else 0.0
