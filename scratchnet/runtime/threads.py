"""The thread policy: numba's kernels and OpenBLAS share the cores instead of fighting over them.

Policy: ONE set of `num_threads` threads (default: every core this process may use) does the work at
any moment.

* NumPy's BLAS is left at `num_threads` threads for the user's own NumPy code, but the engine never
  uses BLAS's own threads: small products run with BLAS held at one thread (`serial_blas`) and big
  dense products are cut into pieces for the worker threads (`scratchnet.kernels.dense`); a model's
  training step or forward pass holds BLAS at one thread once for all its ops. OpenBLAS's threads
  wait for work by spinning, so on a busy machine, or right after a multi-threaded product, they take
  the cores from the work that follows (figures: docs/performance.md).
* The worker threads are ONE team (`team()`, `scratchnet.runtime.team`) of `num_threads - 1` threads
  that spin without the GIL between pieces of work. float32 convolutions and max-pooling give each
  thread one piece of the batch, each piece ONE nogil numba call (a convolution piece copies its
  windows and calls BLAS's sgemm from numba, at one thread) started through `run_pieces` in
  microseconds; other parallel work (big dense products, Adam, big elementwise kernels) goes through
  `parallel_map`, on the same threads. No BLAS thread spins while numba works, and no second pool
  spins against the team.
* Work whose result depends on where it is cut (sums over rows, matrix products) is cut into PARTS
  parts whatever the thread count (`part_spans`), the threads share the parts out, and the parts'
  results are combined in part order: results are bit-identical at any thread count.
* numba's own thread pool is never started (no kernel uses ``parallel=True``): two pools that each spin
  on every core slow small shapes several times over.

`configure()` is applied once, lazily, by `scratchnet.engine` the first time an op is looked up, so
importing scratchnet starts no threads. Override with ``threads.configure(num_threads=1)`` or the
environment variable SCRATCHNET_NUM_THREADS (1 is the safer choice when other busy processes share the
cores: the team's workers, like OpenBLAS's threads, wait for work by spinning for a few milliseconds).
"""
from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["PARTS", "available_cores", "configure", "ensure_configured", "info", "num_threads", "parallel_map",
           "part_spans", "release_pieces", "run_pieces", "serial_blas", "spans", "team"]

PARTS = 8
"""Work whose result depends on where it is cut is cut into this many parts (fewer only when it has fewer
rows), whatever the thread count; the threads share the parts out and their results are combined in part
order, so a training run is bit-identical at any thread count. Such work is any sum split over rows (a
gradient over the batch) and any split matrix product (BLAS rounds a row differently with the number of
rows in the call).

Trades the per-part costs (a partial sum each, thinner products, one more item for `parallel_map`)
against how many threads share the work (at most PARTS) and how evenly (8 parts go evenly to 1, 2, 4 or
8 threads). Retune for machines with more cores than PARTS; a new value changes the rounding of every
run (reruns stay identical to each other)."""

_configured: dict[str, Any] | None = None
_team = None  # the worker threads of run_pieces and parallel_map (scratchnet.runtime.team.Team), made on first use
_blas = None  # threadpoolctl's handles on the BLAS libraries (one per library), created on first use
_serial = threading.local()  # .depth: how many serial_blas blocks this thread has open (they nest)


def available_cores() -> int:
    """The number of CPU cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return os.cpu_count() or 1


def _requested_threads(num_threads: int | None) -> int:
    if num_threads is None:
        from_env = os.environ.get("SCRATCHNET_NUM_THREADS")
        if from_env:
            try:
                num_threads = int(from_env)
            except ValueError:
                raise ValueError(
                    f"SCRATCHNET_NUM_THREADS must be a positive integer; received: {from_env!r}"
                ) from None
        else:
            num_threads = available_cores()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"`num_threads` must be a positive integer or None; received: {num_threads!r}")
    return num_threads


def configure(num_threads: int | None = None) -> dict[str, Any]:
    """Apply the thread policy: BLAS gets `num_threads` threads, the numba kernels run serially.

    num_threads: threads for BLAS; None means SCRATCHNET_NUM_THREADS if set, else every available core.
    Returns `info()`. Calling it again re-applies the policy with the new count.

    Notes: numba's own pool is capped at the same count only if something already started it (no
    scratchnet kernel does); starting it just to cap it would create the threads this policy avoids.
    """
    global _configured
    from threadpoolctl import threadpool_limits

    global _team
    count = _requested_threads(num_threads)
    threadpool_limits(limits=count, user_api="blas")  # a plain call sets the limit for the process
    _limit_numba_threads(count)
    if _team is not None and _team.workers != count - 1:
        _team.stop()
        _team = None
    _configured = {"num_threads": count}
    return info()


def num_threads() -> int:
    """The number of threads the policy gives the work (applying the default policy if needed)."""
    ensure_configured()
    return _configured["num_threads"]


def spans(size: int, parts: int) -> list[tuple[int, int]]:
    """(start, stop) pairs cutting range(size) into `parts` consecutive pieces (at least one, at most `size`)
    whose lengths differ by at most one: one thread's share each."""
    parts = max(1, min(parts, size))
    return [(size * p // parts, size * (p + 1) // parts) for p in range(parts)]


def part_spans(size: int, split: bool = True) -> list[tuple[int, int]]:
    """(start, stop) pairs cutting range(size) into PARTS parts (at most `size`), or into one part when not
    `split`: a cut that depends on the work alone, never on the thread count (see PARTS)."""
    return spans(size, PARTS if split else 1)


def parallel_map(function: Callable[[T], R], items: Sequence[T], *, parallel: bool = True) -> list[R]:
    """[function(item) for item in items] with BLAS held at one thread; results in order.

    With `parallel` (and more than one thread and item) the calling thread and the `num_threads() - 1`
    workers of `team()` take items one at a time until none is left (so a thread slowed by another
    process takes fewer); otherwise the items run on the calling thread. `function` must release the GIL
    for most of its time (numba ``nogil=True`` kernels, NumPy matrix products) to run in parallel, and
    different items must not write to the same memory.

    Notes: holding BLAS at one thread (a few microseconds) is what keeps OpenBLAS from spinning its
    second thread against the numba kernels (or against another process's work). The items run on the
    same worker threads as `run_pieces`: a second pool would spin against them for the cores. Unlike
    `run_pieces`, a worker here needs the GIL to start, which costs a thread wake-up whenever the caller
    holds it.
    """
    count = num_threads()
    if count == 1:
        return [function(item) for item in items]
    with serial_blas():
        if not parallel or len(items) < 2:
            return [function(item) for item in items]
        results = [None] * len(items)
        next_index = itertools.count().__next__  # atomic under the GIL: each item is taken once

        def take_items(state, post_slot, done_slot, job):  # a piece of `scratchnet.runtime.team`, in Python
            if post_slot >= 0:
                state[post_slot] = job
            index = next_index()
            while index < len(items):
                results[index] = function(items[index])
                index = next_index()
            if done_slot >= 0:
                state[done_slot] = job

        team().run([(take_items, ())] * min(count, len(items)))  # re-raises an item's exception
        return results


def _forget_team_after_fork() -> None:
    """In a forked child the team's threads do not exist (only the forking thread survives a fork): drop
    the team, so the child makes its own on first use instead of waiting for workers that are not there."""
    global _team
    _team = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_team_after_fork)


def team():
    """The `scratchnet.runtime.team.Team` of `num_threads() - 1` spinning workers, or None with one thread."""
    global _team
    count = num_threads()
    if count == 1:
        return None
    if _team is None:
        from scratchnet.runtime.team import Team

        _team = Team(count - 1)
    return _team


def release_pieces() -> None:
    """Have the worker threads drop the arrays of their last pieces now (`scratchnet.runtime.team.Team.release`),
    so that a reference count tells who else holds an array; nothing to do without a team."""
    if _team is not None:
        _team.release()


def run_pieces(pieces) -> None:
    """Run pieces of work that are each one nogil numba call, one per thread, with BLAS held at one thread.

    pieces: ``(kernel, args)`` pairs, called as ``kernel(*args, state, post_slot, done_slot, job)``; see
    `scratchnet.runtime.team` for the four last parameters. The calling thread runs the first piece and
    the team's workers the others, so a call costs microseconds where `parallel_map` costs a wake-up.
    """
    workers = team() if len(pieces) > 1 else None
    with serial_blas():
        if workers is None:
            from scratchnet.runtime.team import run_here

            run_here(pieces)
        else:
            workers.run(pieces)


class serial_blas:
    """Context manager: BLAS runs one thread inside the block, `num_threads()` again after it.

    For matrix products too small to gain from a second BLAS thread. Cheap (two direct calls into the
    BLAS library); blocks nest. The BLAS thread count is process-wide and threadpoolctl lets
    only one Python thread (the one that configured it, normally the main thread) change it; inside
    `parallel_map` the workers find BLAS already at one thread.
    """

    __slots__ = ()

    def __enter__(self):
        ensure_configured()
        depth = getattr(_serial, "depth", 0)
        _serial.depth = depth + 1
        if depth == 0 and _configured["num_threads"] > 1:
            for library in _blas_libraries():
                library.set_num_threads(1)
        return self

    def __exit__(self, *exc_info):
        _serial.depth -= 1
        if _serial.depth == 0 and _configured["num_threads"] > 1:
            for library in _blas_libraries():
                library.set_num_threads(_configured["num_threads"])
        return False


def _blas_libraries():
    """threadpoolctl's controllers of the loaded BLAS libraries (looked up once)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas


def ensure_configured() -> None:
    """Apply `configure()` with its defaults unless the policy was already applied in this process."""
    if _configured is None:
        configure()


def _limit_numba_threads(count: int) -> None:
    """Cap numba's parallel thread pool at `count` if something started it; never start it ourselves."""
    import numba
    from numba.np.ufunc import parallel

    if parallel._is_initialized:  # noqa: SLF001 - numba's only record of whether its pool started
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))


def info() -> dict[str, Any]:
    """Report the policy in force: cores, BLAS libraries and their threads, numba's thread pool."""
    import numba
    from numba.np.ufunc import parallel
    from threadpoolctl import threadpool_info

    blas = [
        {key: entry.get(key) for key in ("internal_api", "version", "num_threads", "filepath")}
        for entry in threadpool_info()
        if entry.get("user_api") == "blas"
    ]
    started = bool(parallel._is_initialized)  # noqa: SLF001 - see _limit_numba_threads
    return {
        "policy": "one thread per core: BLAS threads outside the kernels, worker threads inside",
        "configured": _configured is not None,
        "available_cores": available_cores(),
        "num_threads": None if _configured is None else _configured["num_threads"],
        "blas": blas,
        "numba_pool_started": started,
        "numba_num_threads": numba.get_num_threads() if started else numba.config.NUMBA_NUM_THREADS,
    }
