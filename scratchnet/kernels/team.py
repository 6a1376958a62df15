"""A team of worker threads for pieces of work that are each ONE nogil numba call, handed over in microseconds.

`scratchnet.threads.parallel_map` hands Python functions to a thread pool. On this kind of machine a
sleeping thread takes about 100 us to wake, and a convolution chunk that goes back and forth between
Python and numba queues for the GIL each time. On notmnist_cnn's 20M-multiply-add convolutions (0.3-0.6
ms of work per call) that overhead ate a third of what the second core brought. The team is built
around the two costs:

* **No sleeping between calls.** A worker that finished a piece spins, without the GIL, in a numba loop
  that looks at a shared int64 array (`state`) and lets other threads run (``sched_yield``) between looks.
  After SPIN_ROUNDS looks without work (a few milliseconds) it sleeps on a condition variable, and the
  next caller wakes it.
* **No GIL at the hand-over.** The caller's own piece is a nogil numba call too, and its FIRST store is
  the job's number into ``state[0]`` (the post). So when a spinning worker sees the post and goes to
  Python to take its piece, the GIL is free: the caller is busy in its own piece. The worker's piece
  ends by storing the job's number into the worker's slot of `state`; the caller waits for those in a
  nogil loop, then for each worker to be back in its nogil spin (so that neither waits for the GIL
  the other holds).

A piece is a tuple ``(function, args)``: `function` is an ``@njit(nogil=True)`` kernel whose last four
parameters are ``state, post_slot, done_slot, job``; it must start with
``if post_slot >= 0: state[post_slot] = job`` and end with ``if done_slot >= 0: state[done_slot] = job``
(`post_done` and `mark_done` below do exactly that). Pieces of one call must not write the same memory.

Layout of `state` (int64): [0] the last job posted; [1 + w] the last job worker w finished; [1 + W + w]
the last job after which worker w was back in its spin loop; W = number of workers.

Safety nets, because a worker that never answers would hang the caller: the caller waits in rounds and,
between rounds, checks that every worker thread is alive and wakes sleeping workers again; a worker
whose piece raises marks its slot from Python and the caller re-raises the exception. A call from a
second Python thread while the team works, or from inside a piece, runs its pieces on its own thread.
"""
from __future__ import annotations

import atexit
import ctypes
import threading

import numpy as np
from numba import njit

__all__ = ["NO_STATE", "SPIN_ROUNDS", "Team", "mark_done", "post_done"]

SPIN_ROUNDS = 20_000
"""How many times an idle worker looks for work (one sched_yield apart, ~0.2 us each on an idle core)
before it sleeps: a few milliseconds, longer than the gaps between the convolutions of a training step."""

NO_STATE = np.zeros(1, dtype=np.int64)
"""The `state` argument of a piece run outside a team (its slots are -1: it stores nothing)."""

WAIT_ROUNDS = 2_000_000
"""How many looks the caller makes for its workers' answers before checking that they are alive."""


def _sched_yield():
    """libc's sched_yield as a ctypes function (handed to the numba loops as an argument, as in blas.py)."""
    function = ctypes.CDLL(None).sched_yield
    function.argtypes = []
    function.restype = ctypes.c_int
    return function


@njit(cache=True, nogil=True, inline="always")
def post_done(state, post_slot, job):
    """A piece's first statement: the caller's piece posts the job (`post_slot` 0); workers' pieces pass -1."""
    if post_slot >= 0:
        state[post_slot] = job


@njit(cache=True, nogil=True, inline="always")
def mark_done(state, done_slot, job):
    """A piece's last statement: a worker's piece reports the job done; the caller's piece passes -1."""
    if done_slot >= 0:
        state[done_slot] = job


@njit(cache=True, nogil=True)
def _spin(state, seen, back_slot, rounds, yield_):
    """A worker's idle loop: report being back (no GIL held), then look for a job newer than `seen`.

    Returns the new job's number, or `seen` if none came within `rounds` looks.
    """
    state[back_slot] = seen
    for _ in range(rounds):
        job = state[0]
        if job != seen:
            return job
        yield_()
    return seen


@njit(cache=True, nogil=True)
def _wait_all(state, job, first_slot, last_slot, rounds, yield_):
    """The caller's wait: True once state[first_slot:last_slot] all hold `job`, False after `rounds` looks."""
    for _ in range(rounds):
        done = True
        for slot in range(first_slot, last_slot):
            if state[slot] != job:
                done = False
                break
        if done:
            return True
        yield_()
    return False


class Team:
    """`workers` threads that run the pieces of `run` calls beside the calling thread.

    Threads start on the first `run` and stop with `stop()` (or at interpreter exit).
    """

    def __init__(self, workers: int):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"`workers` must be a positive integer; received: {workers!r}")
        self.workers = workers
        self.state = np.zeros(1 + 2 * workers, dtype=np.int64)
        self._job = 0
        self._pieces: list = []
        self._errors: list = [None] * workers
        self._threads: list[threading.Thread] = []
        self._busy = threading.Lock()  # held by the thread whose call the team is working on
        self._wake = threading.Condition()
        self._sleepers = 0
        self._stopping = False
        self._yield = _sched_yield()

    # ------------------------------------------------------------------------------------------------
    def run(self, pieces) -> None:
        """Run ``function(*args, state, post_slot, done_slot, job)`` for each ``(function, args)`` in pieces.

        The calling thread runs pieces[0]; worker w runs pieces[1 + w]. With more pieces than threads,
        the pieces run in rounds of one per thread. Returns when all are done; re-raises a piece's error.
        """
        pieces = list(pieces)
        if not pieces:
            return
        if len(pieces) == 1 or self._stopping or not self._busy.acquire(blocking=False):
            for function, args in pieces:  # one piece, a busy team or a stopped one: run them here
                function(*args, NO_STATE, -1, -1, 0)
            return
        try:
            self._start()
            step = self.workers + 1
            for first in range(0, len(pieces), step):
                self._run_round(pieces[first : first + step])
        finally:
            self._busy.release()

    def _run_round(self, pieces) -> None:
        self._job += 1
        job = self._job
        self._pieces = pieces[1:]
        function, args = pieces[0]
        try:
            function(*args, self.state, 0, -1, job)  # posts the job as its first store
        finally:
            if self.state[0] != job:  # it failed before posting (a typing error): post here
                self.state[0] = job
            self._wake_sleepers()
            self._wait(job)
        for w, error in enumerate(self._errors):
            if error is not None:
                self._errors[w] = None
                raise error

    def _wait(self, job) -> None:
        """Wait for every worker to finish `job` and be back in its spin loop (so it holds no GIL)."""
        while not _wait_all(self.state, job, 1, 1 + 2 * self.workers, WAIT_ROUNDS, self._yield):
            dead = [thread.name for thread in self._threads if not thread.is_alive()]
            if dead:
                raise RuntimeError(f"scratchnet worker thread(s) {', '.join(dead)} stopped unexpectedly")
            self._wake_sleepers()

    def _wake_sleepers(self) -> None:
        with self._wake:
            if self._sleepers:
                self._wake.notify_all()

    # ------------------------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._threads:
            return
        self.state[:] = self._job
        for w in range(self.workers):
            thread = threading.Thread(target=self._work, args=(w,), name=f"scratchnet-team-{w}", daemon=True)
            thread.start()
            self._threads.append(thread)
        atexit.register(self.stop)

    def _work(self, w: int) -> None:
        """Worker w's loop: spin, else sleep; run piece w of each job; report it done."""
        state, done_slot, back_slot = self.state, 1 + w, 1 + self.workers + w
        seen = int(state[0])
        while True:
            job = _spin(state, seen, back_slot, SPIN_ROUNDS, self._yield)
            if job == seen:
                with self._wake:
                    self._sleepers += 1
                    try:
                        while state[0] == seen and not self._stopping:
                            self._wake.wait()
                    finally:
                        self._sleepers -= 1
                job = int(state[0])
            if self._stopping:
                state[back_slot] = job
                return
            seen = job
            pieces = self._pieces
            try:
                if w < len(pieces):
                    function, args = pieces[w]
                    function(*args, state, -1, done_slot, job)
            except BaseException as error:  # noqa: BLE001 - handed to the caller, who re-raises it
                self._errors[w] = error
            state[done_slot] = job  # (a piece that ran already did this in nogil code)

    def stop(self) -> None:
        """Stop the workers (waking sleeping ones) and wait for them; later calls run on the caller."""
        self._stopping = True
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
