"""How two engines' arrays are compared: one relative-difference measure and the tolerances, no TensorFlow.

The measure, used by every parity test and by the report:

    relative_difference(a, reference) = max |a - reference| / max |reference|

i.e. the infinity norm of the difference divided by the infinity norm of the reference (TensorFlow's
array). Dividing by the largest magnitude of the whole array, not element by element, keeps tiny
entries (a gradient that is 1e-17 in one engine and 0 in the other) from producing meaningless ratios.
An all-zero reference falls back to the absolute difference.
"""
from __future__ import annotations

import numpy as np

TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
"""The largest `relative_difference` a parity test accepts, per dtype (issue 4)."""


def relative_difference(actual, reference) -> float:
    """max|actual - reference| / max|reference| (infinity norms), as a Python float.

    Both arrays are compared in float64. Shapes must match exactly (no broadcasting).
    """
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        raise ValueError(
            f"shapes differ: actual.shape={actual.shape}, reference.shape={reference.shape}"
        )
    if actual.size == 0:
        return 0.0
    difference = float(np.max(np.abs(actual - reference)))
    scale = float(np.max(np.abs(reference)))
    return difference / scale if scale > 0 else difference


def relative_l2_difference(actual, reference) -> float:
    """||actual - reference||_2 / ||reference||_2 (2-norms of the whole array), as a Python float.

    The relative error of the array as a vector: used beside `relative_difference` where a few entries are
    ill-conditioned by nature (float32 Adam steps on near-zero gradients, see tf_reference.parity).
    """
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        raise ValueError(
            f"shapes differ: actual.shape={actual.shape}, reference.shape={reference.shape}"
        )
    difference = float(np.linalg.norm((actual - reference).ravel()))
    scale = float(np.linalg.norm(reference.ravel()))
    return difference / scale if scale > 0 else difference


def tolerance(dtype) -> float:
    """The parity tolerance for arrays of `dtype` (float32 or float64)."""
    name = np.dtype(dtype).name
    if name not in TOLERANCE:
        raise ValueError(f"no parity tolerance for dtype {name!r}; expected one of {sorted(TOLERANCE)}")
    return TOLERANCE[name]


def assert_close(actual, reference, dtype=None, what="array") -> float:
    """Assert `relative_difference(actual, reference)` is within the tolerance of `dtype`.

    `dtype` defaults to the dtype of `actual`. Returns the difference (for reports). The failure message
    names `what`, the difference, the tolerance and the norm.
    """
    dtype = np.asarray(actual).dtype if dtype is None else dtype
    assert np.asarray(actual).shape == np.asarray(reference).shape, (
        f"{what}: shape {np.asarray(actual).shape} != TensorFlow's {np.asarray(reference).shape}"
    )
    difference = relative_difference(actual, reference)
    limit = tolerance(dtype)
    assert difference <= limit, (
        f"{what}: max|scratchnet - tf| / max|tf| = {difference:.3e} > {limit:.0e} ({np.dtype(dtype).name})"
    )
    return difference
