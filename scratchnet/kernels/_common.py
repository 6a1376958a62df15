"""What every kernel module shares: the dtypes the numba loops are compiled for, and how a cut is handed to
the pieces.

A module of its own so that kernel modules import it, never each other.
"""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["SUPPORTED_DTYPES", "GradientHandOver", "gradients_handed_over", "span_bounds"]

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes the kernels compile for; other floating dtypes are passed to scratchnet.ops."""


def span_bounds(spans):
    """Where consecutive (start, stop) spans from 0 start, and the last one ends: int64 (len(spans) + 1,), the
    form a cut (`scratchnet.runtime.threads.spans`) takes into the numba pieces."""
    return np.array([0] + [stop for _, stop in spans], dtype=np.int64)


_hand_over = threading.local()


class GradientHandOver:
    """Context manager: inside the block, this thread's gradients are handed over to the backward ops
    (`gradients_handed_over`); blocks nest. What `scratchnet.kernels.step` enters for a training step."""

    __slots__ = ()

    def __enter__(self):
        _hand_over.depth = getattr(_hand_over, "depth", 0) + 1
        return self

    def __exit__(self, *exc_info):
        _hand_over.depth -= 1
        return False


def gradients_handed_over():
    """True inside a `GradientHandOver` block of this thread: a step whose backward gives each layer's
    gradient to its ops and drops it once they return (see `scratchnet.engine.step`)."""
    return getattr(_hand_over, "depth", 0) > 0
