"""What every kernel module shares: the dtypes the numba loops are compiled for, and how a cut is handed to
the pieces.

A module of its own so that kernel modules import it, never each other.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SUPPORTED_DTYPES", "span_bounds"]

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes the kernels compile for; other floating dtypes are passed to scratchnet.ops."""


def span_bounds(spans):
    """Where consecutive (start, stop) spans from 0 start, and the last one ends: int64 (len(spans) + 1,), the
    form a cut (`scratchnet.runtime.threads.spans`) takes into the numba pieces."""
    return np.array([0] + [stop for _, stop in spans], dtype=np.int64)
