"""The C allocator's settings for training: big arrays mapped and unmapped, the heap kept between steps.

A training step allocates and frees the same big activations every step. glibc's defaults let its mmap
threshold drift upwards (to the biggest block freed so far), so from the second step on the activations
come from the heap, whose holes only shrink from the top: the process's peak grows well above its live
arrays. Fixing the mmap threshold gives big arrays their own mappings, freed at once. Fixing it also
freezes the trim threshold at 128 kB, which would hand the top of the heap back after every step and fault
it in again on the next one, so the trim threshold is fixed too. Measurements: docs/performance.md.
"""
from __future__ import annotations

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "fix_mmap_threshold", "is_fixed"]

MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
"""Arrays at least this big get their own memory map, unmapped when freed.

Trades peak memory (lower threshold: fewer heap holes) against page faults (every mapped array is faulted
in afresh on each step). Retune when a model's per-step arrays straddle it."""

TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
"""Free memory glibc keeps at the top of its heap instead of handing it back to the OS.

Trades resident memory (higher) against page faults every step (lower): arrays between this and
MMAP_THRESHOLD_BYTES come from the heap top, and with a lower threshold each is handed back when freed and
faulted in again by the next step or batch (deep_mnist's 5-13 MB activations and gradients). It costs
emnist_cnn's peak 7 MB (the free heap kept while its big activations are live). Retune when a step's
heap arrays together outgrow it."""

_fixed = False


def fix_mmap_threshold(num_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `num_bytes` and its trim threshold at TRIM_THRESHOLD_BYTES; True if
    the allocator took both. A no-op returning False where the C library is not glibc."""
    global _fixed
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's <malloc.h>
    _fixed = mallopt(m_mmap_threshold, int(num_bytes)) == 1
    _fixed = _fixed and mallopt(m_trim_threshold, TRIM_THRESHOLD_BYTES) == 1
    return _fixed


def is_fixed() -> bool:
    """True once `fix_mmap_threshold` has taken effect in this process."""
    return _fixed
