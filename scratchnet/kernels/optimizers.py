"""Fast optimizer updates: Adam's three in-place updates (m, v, the weights) fused into one numba pass.

The readable update is `scratchnet.ops.updates.adam_update` (three NumPy statements, each several passes
over memory with temporaries), a noticeable share of a big model's training step.
This kernel reads g, m, v, w once and writes m, v, w once, doing the same float operations in the same
order (no fast-math, no fused multiply-add), so its results equal the reference bit for bit.
``error_model="numpy"`` lets a division by zero give inf as NumPy does instead of raising; it is also
what lets LLVM vectorise the loop (figures: docs/performance.md).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.kernels._common import SUPPORTED_DTYPES
from scratchnet.ops import updates as reference
from scratchnet.runtime import threads

__all__ = ["adam_update"]

PARALLEL_MIN_SIZE = 1_000_000
"""Parameters with at least this many values are updated in slices by the worker threads of
`scratchnet.runtime.threads` (the update is bound by memory bandwidth, which one core does not saturate).

Trades `parallel_map`'s hand-over against the pass it shares. Retune with the machine's bandwidth per
core."""


def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """Keras's Adam update of `param` in place, with its moments `m` and `v` (in place too).

    ``m += (grad - m) * one_minus_beta_1``, ``v += (grad * grad - v) * one_minus_beta_2``,
    ``param -= m * alpha / (sqrt(v) + epsilon)``; the scalars are in param's dtype (see
    `scratchnet.optimizers.Adam`). param, m, v: C-contiguous arrays of one shape and dtype; grad: same
    shape (cast to param's dtype by the caller).

    Arrays that do not suit the kernel (a dtype numba cannot do, or a non-contiguous parameter or moment)
    get the reference's NumPy update. Returns None, as the reference.
    """
    dtype = param.dtype
    suits = dtype in SUPPORTED_DTYPES and grad.dtype == dtype and m.dtype == dtype and v.dtype == dtype
    if not (suits and param.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
        return reference.adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon)
    flat = [a.reshape(-1) for a in (param, np.ascontiguousarray(grad), m, v)]
    scalars = [dtype.type(s) for s in (alpha, one_minus_beta_1, one_minus_beta_2, epsilon)]
    size = param.size
    parts = threads.num_threads() if size >= PARALLEL_MIN_SIZE else 1
    if parts == 1:
        _adam_update(*flat, *scalars)
        return None
    threads.parallel_map(lambda span: _adam_update(*(a[span[0]:span[1]] for a in flat), *scalars),
                         threads.spans(size, parts))
    return None


@njit(cache=True, nogil=True, error_model="numpy")
def _adam_update(w, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """One pass over flat arrays: m, v and w updated in place with the reference's operation order."""
    for i in range(w.size):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * one_minus_beta_1
        vi = v[i] + (gi * gi - v[i]) * one_minus_beta_2
        m[i] = mi
        v[i] = vi
        w[i] = w[i] - mi * alpha / (np.sqrt(vi) + epsilon)
