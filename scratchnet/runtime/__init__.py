"""What the fast path runs on: the thread policy, the worker team, the BLAS binding, the allocator.

Nothing here computes a layer. The numba kernels (`scratchnet.kernels`) import this package; it imports
nothing of scratchnet above it, so the readable path (ops, layers, models) never meets it.

* `threads`: one set of threads for the whole process (BLAS held at one thread inside the kernels,
  `parallel_map`, `run_pieces`, `serial_blas`).
* `team`: the spinning worker threads that run nogil numba pieces.
* `blas`: NumPy's own OpenBLAS sgemm, callable from numba code.
* `allocator`: glibc's mmap and trim thresholds for a training loop.
* `prepare()`: what the kernels package applies once when it is first imported.
"""
from __future__ import annotations

import sys

__all__ = ["prepare"]

_prepared = False


class _HideSciPyBlasFromNumbaStartup:
    """An import hook: while numba initialises its CPU target, ``scipy.linalg`` looks absent.

    numba imports ``scipy.linalg.cython_blas`` when it first compiles or loads a function, only to back
    ``np.dot`` & co. inside jitted code; that loads SciPy's own OpenBLAS (15 MB resident) into every
    training process, and no scratchnet kernel uses numba's ``np.dot`` (they call NumPy's OpenBLAS through
    `scratchnet.runtime.blas`). While that one module is being imported, this finder answers "not
    installed" for scipy.linalg; at any other moment it defers to the normal finders, so a user's own
    jitted ``np.dot`` imports SciPy as usual.
    """

    HIDDEN = ("scipy.linalg", "scipy.linalg.cython_blas")

    def find_spec(self, name, path=None, target=None):
        if name in self.HIDDEN:
            arraymath = sys.modules.get("numba.np.arraymath")
            if arraymath is not None and not hasattr(arraymath, "_HAVE_BLAS"):  # mid-import: its BLAS check
                raise ModuleNotFoundError(f"{name} is hidden while numba starts (scratchnet.runtime)", name=name)
        return None


def hide_scipy_blas_from_numba() -> None:
    """Install `_HideSciPyBlasFromNumbaStartup` unless numba has started already or it is installed."""
    if "numba.np.arraymath" not in sys.modules and not any(
            isinstance(finder, _HideSciPyBlasFromNumbaStartup) for finder in sys.meta_path):
        sys.meta_path.insert(0, _HideSciPyBlasFromNumbaStartup())


def prepare() -> None:
    """Once per process, before the first kernel runs: the import hook, the thread policy, the allocator."""
    global _prepared
    if _prepared:
        return
    from scratchnet.runtime import allocator, threads

    hide_scipy_blas_from_numba()
    threads.ensure_configured()
    allocator.fix_mmap_threshold()
    _prepared = True
