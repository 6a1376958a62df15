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

# Each zoo model trains two steps on random images (enough that logreg's full batch takes the fused pass, and
# that each evaluation fills a batch of 1,000).
RUNS = COMPILES + textwrap.dedent("""
    import types
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
    for name in sys.argv[1:]:
        train.main(["--model", name, "--steps", "2", "--no-save", "--quiet"])
    print("compiled after a warm-up:", [entry for entry in compiled if entry[0].endswith("run")])
""")


@needs_jit
def test_a_run_compiles_nothing_after_its_warm_up(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), SCRATCHNET_HOME=str(tmp_path / "home"),
               PYTHONPATH=REPO)  # a cold cache: every kernel compiles, in a warm-up or after it
    done = subprocess.run([sys.executable, "-c", RUNS, *zoo.NAMES], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    report = [line for line in done.stdout.splitlines() if line.startswith(("compiled after", "compiled again"))]
    assert report == ["compiled after a warm-up: []"]
