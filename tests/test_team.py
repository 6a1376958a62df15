"""scratchnet.runtime.team: pieces of nogil work handed to spinning worker threads, and their safety nets."""
import threading

import numba
import numpy as np
import pytest
from numba import njit

from scratchnet.runtime import team as team_module
from scratchnet.runtime import threads
from scratchnet.runtime.team import Team, mark_done, post_done


@njit(nogil=True)
def _fill(out, n0, n1, value, state, post_slot, done_slot, job):
    """A piece: out[n0:n1] = value + index, plus which thread's job number it ran under (for the tests)."""
    post_done(state, post_slot, job)
    for i in range(n0, n1):
        out[i] = value + i
    mark_done(state, post_slot, done_slot, job)


def _fail(message, state, post_slot, done_slot, job):
    """A piece that raises (a plain Python function: the team calls it the same way)."""
    raise ValueError(message)


def _pieces(out, parts, value=0.0):
    n = out.size
    return [(_fill, (out, n * p // parts, n * (p + 1) // parts, value)) for p in range(parts)]


@pytest.fixture
def team():
    workers = Team(2)
    yield workers
    workers.stop()


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_team_runs_every_piece_once_with_one_or_more_pieces_per_thread(team, parts):
    out = np.full(101, -1.0)
    team.run(_pieces(out, parts, value=0.5))
    np.testing.assert_array_equal(out, 0.5 + np.arange(101))


def test_team_runs_many_jobs_in_a_row_and_every_worker_takes_part(team):
    out = np.zeros(30)
    for call in range(300):
        team.run(_pieces(out, 3, value=float(call)))
        np.testing.assert_array_equal(out, call + np.arange(30))
    assert team.state[0] == team._job
    assert team._job == 300
    assert all(thread.is_alive() for thread in team._threads)


def test_team_wakes_workers_that_went_to_sleep(team, monkeypatch):
    monkeypatch.setattr(team_module, "SPIN_ROUNDS", 1)  # idle workers sleep soon after their piece's wait
    out = np.zeros(40)
    team.run(_pieces(out, 3))
    for call in range(5):
        for _ in range(1000):  # until both workers sleep (a few ms)
            if team._sleepers == team.workers:
                break
            threading.Event().wait(0.001)
        assert team._sleepers == team.workers
        team.run(_pieces(out, 3, value=call))
        np.testing.assert_array_equal(out, call + np.arange(40))


def test_a_pieces_waits_are_bounded_and_report_through_state():
    """mark_done: a worker's piece stores its job, waits a bounded time for the next; the caller's piece
    returns once every worker's slot holds the job; outside a team (slots -1) nothing is stored."""
    state = np.array([5, 4, 4], dtype=np.int64)
    mark_done(state, -1, 2, 5)  # a worker whose next job never comes: returns after its pauses
    np.testing.assert_array_equal(state, [5, 4, 5])
    mark_done(state, 0, -1, 5)  # the caller: worker 1 still on job 4, so it gives up after its pauses
    mark_done(state, -1, 1, 5)
    mark_done(state, 0, -1, 5)
    assert team_module._finished(state, 5)
    post_done(state, 0, 6)
    mark_done(state, -1, -1, 6)
    np.testing.assert_array_equal(state, [6, 5, 5])


def test_team_reraises_a_workers_error_and_keeps_working(team):
    out = np.zeros(10)
    pieces = _pieces(out, 3)
    pieces[2] = (_fail, ("piece 2 failed",))
    with pytest.raises(ValueError, match="piece 2 failed"):
        team.run(pieces)
    team.run(_pieces(out, 3, value=1.0))
    np.testing.assert_array_equal(out, 1.0 + np.arange(10))


def test_team_reraises_the_callers_error_after_the_workers_finished(team):
    out = np.zeros(10)
    pieces = _pieces(out, 3, value=2.0)
    pieces[0] = (_fail, ("piece 0 failed",))
    with pytest.raises(ValueError, match="piece 0 failed"):
        team.run(pieces)
    np.testing.assert_array_equal(out[3:], 2.0 + np.arange(3, 10))  # the workers' pieces still ran
    team.run(_pieces(out, 3, value=1.0))
    np.testing.assert_array_equal(out, 1.0 + np.arange(10))


def test_an_error_of_a_failed_job_is_not_raised_by_the_next_one(team):
    out = np.zeros(9)
    pieces = [(_fail, ("caller failed",)), (_fail, ("worker 0 failed",)), (_fail, ("worker 1 failed",))]
    with pytest.raises(ValueError, match="caller failed"):
        team.run(pieces)
    team.run(_pieces(out, 3, value=5.0))  # the workers' errors went with their job
    np.testing.assert_array_equal(out, 5.0 + np.arange(9))


def test_a_busy_or_stopped_team_runs_the_pieces_on_the_calling_thread(team):
    out = np.zeros(12)
    team._busy.acquire()
    try:
        team.run(_pieces(out, 3, value=3.0))
    finally:
        team._busy.release()
    np.testing.assert_array_equal(out, 3.0 + np.arange(12))
    assert team._job == 0 and not team._threads
    team.run(_pieces(out, 3))
    team.stop()
    assert not any(thread.is_alive() for thread in team._threads)
    team.run(_pieces(out, 3, value=4.0))
    np.testing.assert_array_equal(out, 4.0 + np.arange(12))


def test_team_calls_from_two_python_threads_at_once_all_complete(team):
    outs = [np.zeros(50) for _ in range(2)]
    errors = []

    def caller(index):
        try:
            for call in range(100):
                team.run(_pieces(outs[index], 3, value=float(call + index)))
                np.testing.assert_array_equal(outs[index], call + index + np.arange(50))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    callers = [threading.Thread(target=caller, args=(index,)) for index in range(2)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(timeout=60)
    assert not errors and not any(thread.is_alive() for thread in callers)


def test_release_makes_the_workers_let_go_of_the_last_jobs_arrays(team):
    """A worker's finished piece holds its arrays until the next job; `release` posts one, of empty pieces."""
    import sys

    out = np.zeros(64)
    team.run(_pieces(out, 3))  # the workers' pieces wait inside themselves (up to ~1 ms), still holding `out`
    team.release()
    fresh = np.zeros(1)
    assert sys.getrefcount(out) == sys.getrefcount(fresh)  # only this test's name holds it now
    np.testing.assert_array_equal(out, np.arange(64))


def test_team_rejects_a_bad_worker_count():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="`workers` must be a positive integer"):
            Team(bad)


def test_run_pieces_uses_the_policys_team_or_the_calling_thread(monkeypatch):
    out = np.zeros(9)
    threads.run_pieces(_pieces(out, 2, value=1.0))
    np.testing.assert_array_equal(out, 1.0 + np.arange(9))
    try:
        threads.configure(num_threads=1)
        assert threads.team() is None
        threads.run_pieces(_pieces(out, 3, value=2.0))
        np.testing.assert_array_equal(out, 2.0 + np.arange(9))
    finally:
        threads.configure()
    if threads.num_threads() > 1:
        assert threads.team().workers == threads.num_threads() - 1


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_makes_its_own_team():
    """After a fork only the forking thread exists: the child must not wait for the parent's workers."""
    import os

    if threads.num_threads() < 2:
        threads.configure(num_threads=2)
    out = np.zeros(9)
    threads.run_pieces(_pieces(out, 2, value=1.0))  # the parent's team is running
    parent_team = threads.team()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run pieces on a team of its own, report, exit without cleanup
        code = 1
        try:
            child_out = np.zeros(9)
            threads.run_pieces(_pieces(child_out, 2, value=2.0))
            ok = threads.team() is not parent_team and np.array_equal(child_out, 2.0 + np.arange(9))
            code = 0 if ok else 1
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    try:
        import select

        ready, _, _ = select.select([read], [], [], 60)
        assert ready, "the forked child did not answer within 60 s"
        assert os.read(read, 1) == bytes([0])
    finally:
        os.close(read)
        os.waitpid(pid, 0)


@pytest.mark.parametrize(("size", "parts"), [(10, 3), (7, 2), (3, 5), (0, 2), (5, 1), (4, 0)])
def test_spans_cut_a_range_into_consecutive_nearly_equal_pieces(size, parts):
    spans = threads.spans(size, parts)
    assert len(spans) == max(1, min(parts, size))
    assert spans[0][0] == 0 and spans[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    lengths = [stop - start for start, stop in spans]
    assert max(lengths) - min(lengths) <= 1


@njit(nogil=True)
def _claim_parts(claims, owners, delay, state, post_slot, done_slot, job):
    """A piece that claims parts (team.claim) until none is left and counts each claim in owners[part, 0],
    recording in owners[part, 1] which slot it ran in (0: the caller). A worker first looks `delay` times at
    the team's state (a wait the compiler cannot remove), standing in for a thread the OS holds up."""
    post_done(state, post_slot, job)
    if done_slot >= 1:
        for _ in range(delay):
            team_module._load(state, 0)
    part = team_module.claim(claims)
    while part < owners.shape[0]:
        owners[part, 0] += 1
        owners[part, 1] = max(done_slot, 0)
        part = team_module.claim(claims)
    mark_done(state, post_slot, done_slot, job)


@pytest.mark.parametrize("delay", [0, 1_000 if numba.config.DISABLE_JIT else 50_000_000])  # 0, or >= 15 ms
def test_pieces_that_claim_parts_take_each_once_and_a_held_up_worker_leaves_them_to_the_others(team, delay):
    """Parts handed out by team.claim: every part is claimed exactly once, whatever the timing; a worker that
    starts late (held up by the OS) finds the parts taken by the caller's piece instead of holding it up."""
    for _ in range(20 if delay == 0 else 1):
        claims, owners = np.zeros(1, dtype=np.int64), np.zeros((64, 2), dtype=np.int64)
        team.run([(_claim_parts, (claims, owners, delay))] * 3)
        np.testing.assert_array_equal(owners[:, 0], 1)
        assert claims[0] >= 64 + 3  # each piece's last claim came back past the end
    if delay:  # the caller took them all (most, if the OS held the caller up too)
        assert np.count_nonzero(owners[:, 1] == 0) >= 48
