"""The C allocator's settings for training: big arrays mapped and unmapped, the heap kept between steps.

A training step allocates and frees the same big activations every step. glibc's defaults let its mmap
threshold drift upwards (to the biggest block freed so far), so from the second step on the activations
come from the heap, whose holes only shrink from the top: the process's peak grows well above its live
arrays. Fixing the mmap threshold gives big arrays their own mappings, freed at once. Fixing it also
freezes the trim threshold at 128 kB, which would hand the top of the heap back after every step and fault
it in again on the next one, so the trim threshold is fixed too. Measurements: docs/performance.md.
"""
from __future__ import annotations

__all__ = ["MMAP_THRESHOLD_BYTES", "TRAINING_TRIM_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "fix_mmap_threshold",
           "is_fixed", "trim_threshold"]

MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
"""Arrays at least this big get their own memory map, unmapped when freed.

Trades peak memory (lower threshold: fewer heap holes) against page faults (every mapped array is faulted
in afresh on each step). Retune when a model's per-step arrays straddle it."""

TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
"""Free memory glibc keeps at the top of its heap instead of handing it back to the OS (outside training
steps: predict, evaluate).

Trades resident memory (higher) against page faults every batch (lower): arrays between this and
MMAP_THRESHOLD_BYTES come from the heap top, and with a lower threshold each is handed back when freed and
faulted in again by the next batch (deep_mnist's predict in batches of 100: 225 ms for 1,000 images with
12 MB, 200 with 32 MB). Retune when a batch's heap arrays together outgrow it."""

TRAINING_TRIM_THRESHOLD_BYTES = 12 * 1024 * 1024
"""TRIM_THRESHOLD_BYTES inside a training step (`trim_threshold`): the peak of a step counts, and free heap
kept at its top while the big activations (mapped on their own) are live adds to the peak.

Trades the peak (lower) against page faults: emnist_cnn's peak 257 MB with 12 MB, 264 with 32; deep_mnist's
step 34.5 ms with 12 MB, 38.1 with 8 (its 5 MB activations). Retune when a step's heap arrays change."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters, from glibc's <malloc.h>
_mallopt = None  # glibc's mallopt, once `fix_mmap_threshold` found it
_fixed = False
_trim_depth = 0  # how many `trim_threshold` blocks are open (the outermost one sets the threshold)


def fix_mmap_threshold(num_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `num_bytes` and its trim threshold at TRIM_THRESHOLD_BYTES; True if
    the allocator took both. A no-op returning False where the C library is not glibc."""
    global _fixed, _mallopt
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        return False
    _mallopt = mallopt
    _fixed = mallopt(_M_MMAP_THRESHOLD, int(num_bytes)) == 1
    _fixed = _fixed and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return _fixed


class trim_threshold:
    """Context manager: glibc keeps at most `num_bytes` of free heap top inside the block, TRIM_THRESHOLD_BYTES
    again after it. Blocks nest (the outermost one sets it); nothing happens unless `fix_mmap_threshold` took
    effect. For the main thread's steps (one at a time)."""

    __slots__ = ("num_bytes",)

    def __init__(self, num_bytes: int):
        self.num_bytes = int(num_bytes)

    def __enter__(self):
        global _trim_depth
        _trim_depth += 1
        if _trim_depth == 1 and _fixed:
            _mallopt(_M_TRIM_THRESHOLD, self.num_bytes)
        return self

    def __exit__(self, *exc_info):
        global _trim_depth
        _trim_depth -= 1
        if _trim_depth == 0 and _fixed:
            _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        return False


def is_fixed() -> bool:
    """True once `fix_mmap_threshold` has taken effect in this process."""
    return _fixed
