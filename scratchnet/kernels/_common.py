"""What every kernel module shares: the dtypes the numba loops are compiled for.

A module of its own so that kernel modules import it, never each other.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes the kernels compile for; other floating dtypes are passed to scratchnet.ops."""
