"""The training warm-up compiles every kernel a run needs, so that the run itself compiles nothing."""

import os
import subprocess
import sys
import textwrap

import numba
import pytest

from scratchnet import zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1 compiles nothing")

# numba's "compile" events for scratchnet's functions, each with the phase it happens in.
COMPILES = textwrap.dedent("""
    import sys
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, compile_event):
            function = compile_event.data["dispatcher"].py_func
            if function.__module__.startswith("scratchnet"):  # numba's own helpers are not cached on disk
                compiled.append((phase, f"{function.__module__}.{function.__qualname__}"))

        def on_end(self, compile_event):
            pass

    phase, compiled = "import", []
    event.register("numba:compile", Listener())
""")

# The process that compiles the backward kernels (convolution, max-pooling) during a warm-up, here alone.
BACKWARD_IN_ANOTHER_PROCESS = COMPILES + textwrap.dedent("""
    from scratchnet.kernels import precompile

    precompile.compile_backward()
    print(sorted({name for _, name in compiled}))
""")

# Each zoo model trains two steps on random images (enough that logreg's full batch takes the fused pass, and
# that each evaluation fills a batch of 1,000).
RUNS = COMPILES + textwrap.dedent("""
    import ast, types
    import numpy as np
    from scratchnet import datasets, train

    def random_dataset(name, data_dir=None):
        rng = np.random.default_rng(0)
        images = lambda n: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = lambda n: rng.integers(0, 10, n)
        return types.SimpleNamespace(name=name, x_train=images(12_000), y_train=labels(12_000), x_val=images(1000),
                                     y_val=labels(1000), x_test=images(1000), y_test=labels(1000), num_classes=10,
                                     classes=[str(digit) for digit in range(10)])

    def watched_warm_up(name, *args):
        global phase
        phase = "warm-up"
        warm_up(name, *args)
        phase = f"{name}'s run"

    datasets.load, warm_up, train._warm_up = random_dataset, train._warm_up, watched_warm_up
    for name in sys.argv[2:]:
        train.main(["--model", name, "--steps", "2", "--no-save", "--quiet"])
    print("compiled after a warm-up:", [entry for entry in compiled if entry[0].endswith("run")])
    print("compiled again:", sorted({name for _, name in compiled} & set(ast.literal_eval(sys.argv[1]))))
""")


@needs_jit
def test_a_run_compiles_nothing_after_its_warm_up(tmp_path):
    # A cold cache, where the process that compiles the backward kernels runs first: the warm-ups must then
    # load what it compiled (the same signatures, the same cache), and compile the rest of what the runs need.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), SCRATCHNET_HOME=str(tmp_path / "home"),
               PYTHONPATH=REPO)
    helper = subprocess.run([sys.executable, "-c", BACKWARD_IN_ANOTHER_PROCESS], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert helper.returncode == 0, helper.stderr
    backward = helper.stdout.strip().splitlines()[-1]
    assert "scratchnet.kernels.conv_team._backward_piece" in backward
    assert "scratchnet.kernels.pooling._backward_piece" in backward
    done = subprocess.run([sys.executable, "-c", RUNS, backward, *zoo.NAMES], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    report = [line for line in done.stdout.splitlines() if line.startswith(("compiled after", "compiled again"))]
    assert report == ["compiled after a warm-up: []", "compiled again: []"]


class FakeHelper:
    """Stands in for the helper process: still running until killed."""

    def __init__(self):
        self.killed = self.reaped = False

    def poll(self):
        return 0 if self.killed else None

    def kill(self):
        self.killed = True

    def wait(self):
        self.reaped = True


def compiling(dispatcher):
    """numba's "compile" event for `dispatcher`, as numba sends it when the cache does not have it."""
    from numba.core import event

    event.start_event("numba:compile", data={"dispatcher": dispatcher})
    event.end_event("numba:compile", data={"dispatcher": dispatcher})


@needs_jit
@pytest.mark.parametrize("piece", ["_forward_piece", "_panels_direct_piece"])
@pytest.mark.parametrize(("idle_cores", "threads", "started"), [(1.0, 2, 1), (0.2, 2, 0), (1.0, 1, 0)])
def test_the_helper_starts_once_on_the_forward_piece_with_a_core_idle_and_stops_with_the_warm_up(
        monkeypatch, idle_cores, threads, started, piece):
    """Either forward piece of the convolutions (models whose convs all take the 32- and 64-channel direct
    loop never compile `_forward_piece`) starts the helper once."""
    from scratchnet.kernels import conv_team, im2col, precompile
    from scratchnet.runtime import threads as thread_policy

    helpers = []
    monkeypatch.setattr(precompile, "_start", lambda: helpers.append(FakeHelper()) or helpers[-1])
    monkeypatch.setattr(precompile, "_idle_cores", lambda since: idle_cores)
    monkeypatch.setattr(thread_policy, "num_threads", lambda: threads)
    with precompile.backward_in_background():
        compiling(im2col._im2col)  # another kernel: no helper
        assert not helpers
        compiling(getattr(conv_team, piece))
        compiling(conv_team._forward_piece)  # (a second signature, or the other piece, compiles again)
        compiling(conv_team._panels_direct_piece)
        assert len(helpers) == started
    assert all(helper.killed and helper.reaped for helper in helpers)
