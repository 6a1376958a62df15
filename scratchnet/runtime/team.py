"""A team of worker threads for pieces of work that are each ONE nogil numba call, handed over in microseconds.

`scratchnet.runtime.threads.parallel_map` hands Python functions to a thread pool. A sleeping thread
takes a long time to wake (tens to hundreds of microseconds on a cloud VM), and a thread that wants the
GIL while another holds it sleeps until it is released, and then takes as long again to wake. For
convolutions of a fraction of a millisecond that overhead eats much of what a second core brings
(figures: docs/performance.md). The team is built around the two costs:

* **No sleeping between calls.** Between pieces a worker spins, without the GIL, on a shared int64
  array (`state`), first inside its finished piece (`mark_done`), then in a numba loop that lets other
  threads run between looks (``sched_yield``). After SPIN_ROUNDS looks without work (a few
  milliseconds) it sleeps on a condition variable, and the next caller wakes it.
* **No waiting for the GIL.** A thread needs the GIL only to go from one piece to the next, in Python.
  The caller's own piece is a nogil numba call whose FIRST store posts the job's number into
  ``state[0]`` (`post_done`), and a worker's finished piece waits inside itself for that post, so a
  worker goes to Python, takes its next piece and calls it while the caller is busy in its own piece:
  the GIL is free. The caller's piece, in turn, ends by waiting (in nogil code) for the workers' pieces
  to be done, so that it takes the GIL back only when no worker needs it.

A piece is a tuple ``(function, args)``: `function` is an ``@njit(nogil=True)`` kernel whose last four
parameters are ``state, post_slot, done_slot, job``; it must start with
``team.post_done(state, post_slot, job)`` and end with ``team.mark_done(state, post_slot, done_slot, job)``.
Pieces of one call must not write the same memory, but for a counter they `claim` parts of the work from:
pieces that take the parts as they go, instead of a fixed run each, do not wait for a thread the OS holds
up (the convolutions' pieces do).

Layout of `state` (int64): [0] the last job posted; [1 + w] the last job worker w finished.

Safety nets, because a worker that never answers would hang the caller: the waits inside pieces are
bounded (SPIN_ROUNDS pauses); after them the caller waits in rounds and, between rounds, checks that
every worker thread is alive and wakes sleeping workers again; a worker whose piece raises marks its
slot from Python and the caller re-raises the exception. A call from a second Python thread while the
team works runs its pieces on its own thread.
"""
from __future__ import annotations

import atexit
import ctypes
import platform
import threading

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["NO_STATE", "SPIN_ROUNDS", "Team", "claim", "mark_done", "post_done", "run_here"]

PIECE_WAIT_PAUSES = 20_000
"""How many CPU pauses (tens of nanoseconds each) a finished piece waits inside itself: a worker's for the
next job, the caller's for its workers (then Python takes over the wait). A constant of the compiled kernels.

Trades a core spinning after its piece against the GIL hand-over the wait avoids. Retune if the gaps
between the pieces of a step change (longer waits only help if the next job comes within them)."""

SPIN_ROUNDS = 20_000
"""How many more times an idle worker looks for work, one sched_yield apart, before it sleeps: a few
milliseconds in all, longer than the gaps between the convolutions of a step.

Trades CPU time burnt while idle (other processes see a busy core) against a wake-up on the next call.
Retune if a step's gaps between parallel ops grow, or lower it on machines shared with other work."""

NO_STATE = np.zeros(1, dtype=np.int64)
"""The `state` argument of a piece run outside a team (its post and done slots are -1: nothing touches it)."""

WAIT_ROUNDS = 2_000_000
"""How many looks the caller makes for its workers' answers before checking that they are alive."""


def _sched_yield():
    """libc's sched_yield as a ctypes function (handed to the numba loops as an argument, as in blas.py)."""
    function = ctypes.CDLL(None).sched_yield
    function.argtypes = []
    function.restype = ctypes.c_int
    return function


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _cpu_relax(typingctx):
    """A spin-wait hint to the CPU (x86's ``pause``; nothing elsewhere), between two looks at `state`."""

    def codegen(context, builder, signature, args):
        if _X86:
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _load(typingctx, state, slot):
    """state[slot] read with acquire ordering: read afresh on every round of a wait loop (a plain read
    could be hoisted out of the loop, which would then spin forever), and what the writer stored before
    its `_store` is visible after this read."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, signature.args[0], array, [args[1]])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(state, slot), codegen


@intrinsic
def _store(typingctx, state, slot, value):
    """state[slot] = value with release ordering: every store made before it is visible to a thread that
    `_load`s this value."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, signature.args[0], array, [args[1]])
        builder.store_atomic(args[2], pointer, "release", 8)
        return context.get_dummy_value()

    return types.void(state, slot, types.int64), codegen


@intrinsic
def _fetch_add_one(typingctx, counter):
    """counter[0] += 1 as one atomic step (no other thread's step can come between its read and its write);
    returns the value before. Relaxed ordering: it hands out numbers, and publishes nothing."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, signature.args[0], array,
                                           [context.get_constant(types.intp, 0)])
        return builder.atomic_rmw("add", pointer, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(counter), codegen


if config.DISABLE_JIT:  # the pieces run as Python, where an intrinsic cannot: plain twins under the GIL,
    # which already makes each element read and write whole and ordered

    def _fetch_add_one(counter):
        """counter[0] += 1 under the GIL; the value before."""
        value = int(counter[0])
        counter[0] = value + 1
        return value

    def _cpu_relax():
        """Nothing to hint in Python."""

    def _load(state, slot):
        """state[slot], read under the GIL."""
        return state[slot]

    def _store(state, slot, value):
        """state[slot] = value, written under the GIL."""
        state[slot] = value


@njit(cache=True, nogil=True, inline="always")
def post_done(state, post_slot, job):
    """A piece's first statement: the caller's piece posts the job (`post_slot` 0); workers' pieces pass -1."""
    if post_slot >= 0:
        _store(state, post_slot, job)


@njit(cache=True, nogil=True, inline="always")
def claim(claims):
    """The next unclaimed number of a job's parts, for pieces that share the parts as they go: claims is an int64
    array of one element, zero when the job starts, shared by the job's pieces; each call returns another
    number, 0, 1, 2, ... in the order of the calls, whichever thread makes them. A piece takes parts until the
    number it gets is past the last part, so a thread that the OS (or the hypervisor) stops for a while holds
    up only the part it is in: the others take the rest."""
    return _fetch_add_one(claims)


@njit(cache=True, nogil=True)
def mark_done(state, post_slot, done_slot, job):
    """A piece's last statement: report and wait, without the GIL, so the next step in Python finds it free.

    A worker's piece (`done_slot` >= 1) stores `job` into its slot, then waits up to PIECE_WAIT_PAUSES
    pauses for the next job to be posted. The caller's piece (`post_slot` 0) waits as long for every
    worker's slot to hold `job`. A piece run outside a team (both -1) does nothing.
    """
    if done_slot >= 0:
        _store(state, done_slot, job)
        for _ in range(PIECE_WAIT_PAUSES):
            if _load(state, 0) != job:
                return
            _cpu_relax()
    elif post_slot >= 0:
        for _ in range(PIECE_WAIT_PAUSES):
            if _finished(state, job):
                return
            _cpu_relax()


@njit(cache=True, nogil=True)
def _finished(state, job):
    """True if every worker's slot holds `job`."""
    for slot in range(1, state.size):  # noqa: SIM110 - a loop numba compiles, no generator
        if _load(state, slot) != job:
            return False
    return True


@njit(cache=True, nogil=True)
def _spin(state, seen, rounds, yield_):
    """A worker's idle loop: look for a job newer than `seen`; its number, or `seen` if none came in `rounds` looks."""
    for _ in range(rounds):
        job = _load(state, 0)
        if job != seen:
            return job
        yield_()
    return seen


@njit(cache=True, nogil=True)
def _wait_all(state, job, rounds, yield_):
    """The caller's long wait: True once every worker's slot holds `job`, False after `rounds` looks."""
    for _ in range(rounds):
        if _finished(state, job):
            return True
        yield_()
    return False


@njit(cache=True, nogil=True)
def _empty_piece(state, post_slot, done_slot, job):
    """A piece that does nothing (`Team.release`)."""
    post_done(state, post_slot, job)
    mark_done(state, post_slot, done_slot, job)


def run_here(pieces) -> None:
    """Run the pieces one after the other on the calling thread, outside any team."""
    for function, args in pieces:
        function(*args, NO_STATE, -1, -1, 0)


class Team:
    """`workers` threads that run the pieces of `run` calls beside the calling thread.

    Threads start on the first `run` and stop with `stop()` (or at interpreter exit).
    """

    def __init__(self, workers: int):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"`workers` must be a positive integer; received: {workers!r}")
        self.workers = workers
        self.state = np.zeros(1 + workers, dtype=np.int64)
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
            run_here(pieces)  # one piece, a busy team or a stopped one
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
        self._errors = [None] * self.workers  # this job's (a failed job's errors must not outlive it)
        function, args = pieces[0]
        if self._sleepers:  # post from here and wake them, so they start while this thread works
            self.state[0] = job
            self._wake_sleepers()
        try:
            function(*args, self.state, 0, -1, job)  # posts the job as its first store, waits at its end
        finally:
            if self.state[0] != job:  # it failed before posting (a typing error): post here
                self.state[0] = job
            if not _finished(self.state, job):
                self._wait(job)
            self._pieces = []  # the pieces' arrays must not outlive the job (they count in the step's peak)
        for error in self._errors:  # (if the caller's piece raised, its error is the one that propagates)
            if error is not None:
                raise error

    def _wait(self, job) -> None:
        """Wait for every worker to finish `job`, waking sleepers and checking that the workers live."""
        self._wake_sleepers()
        while not _wait_all(self.state, job, WAIT_ROUNDS, self._yield):
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
        # numba compiles (or loads) the waits here, looking zero times, and release's piece: otherwise a cold
        # cache would compile them whenever first needed, maybe in the middle of a training run.
        _spin(self.state, self._job, 0, self._yield)
        _wait_all(self.state, self._job, 0, self._yield)
        _finished(self.state, self._job)
        _empty_piece(self.state, -1, -1, self._job)  # `release`'s piece, which does nothing outside a team
        for w in range(self.workers):
            thread = threading.Thread(target=self._work, args=(w,), name=f"scratchnet-team-{w}", daemon=True)
            thread.start()
            self._threads.append(thread)
        atexit.register(self.stop)

    def _work(self, w: int) -> None:
        """Worker w's loop: spin, else sleep; run piece w of each job; report it done."""
        state, done_slot = self.state, 1 + w
        seen = int(state[0])
        while True:
            job = int(state[0])  # a piece returns once it sees the next job posted: then no spin is needed
            if job == seen:  # (a call of _spin costs microseconds: its yield argument is a ctypes function)
                job = _spin(state, seen, SPIN_ROUNDS, self._yield)
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
                return
            seen = job
            try:
                self._run_piece(w, job)
            except BaseException as error:  # noqa: BLE001 - handed to the caller, who re-raises it
                self._errors[w] = error
                state[done_slot] = job

    def _run_piece(self, w: int, job: int) -> None:
        """Worker w's piece of `job` (a function of its own, so that no reference to the piece's arrays
        outlives it in the worker's loop). A numba piece returns once the next job is posted, or after
        PIECE_WAIT_PAUSES: its arrays live that long after the job (at most ~1 ms)."""
        pieces = self._pieces
        if w < len(pieces):
            function, args = pieces[w]
            function(*args, self.state, -1, 1 + w, job)
        else:
            self.state[1 + w] = job

    def release(self) -> None:
        """Make the workers let go of the last job's arrays now: a worker's piece holds its arguments until the
        next job is posted or its wait inside runs out (up to ~1 ms), so post one, of empty pieces. Costs a
        round of the team (microseconds); does nothing before the threads have started."""
        if self._threads:
            self.run([(_empty_piece, ())] * (self.workers + 1))

    def stop(self) -> None:
        """Stop the workers (waking sleeping ones) and wait for them; later calls run on the caller."""
        self._stopping = True
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
