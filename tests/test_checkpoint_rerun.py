"""Reruns are bit-identical: the same training, started twice with the same seed, ends with the same weights,
for every zoo model in float32 and float64 (each run in its own process, as two commands would be), at the
same thread count and at 1 against 2 threads (tests/test_determinism.py cuts every kernel's work too)."""

import functools
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A few steps of each zoo model on fixed random images (no dataset files needed); prints one JSON object,
# {"model/dtype": sha256 of the weights}.
TRAIN_EVERY_MODEL = r"""
import hashlib, json
import numpy as np
from scratchnet import zoo

digests = {}
for name in zoo.NAMES:
    for dtype in ("float32", "float64"):
        model = zoo.build(name, seed=7, dtype=dtype, num_classes=10, learning_rate=zoo.defaults(name).learning_rate)
        data = np.random.default_rng(3)
        shape = model.input_shape[1:]
        x = data.random((64, *shape)).astype(dtype)
        y = (data.random((64, 1)) > 0.5).astype(dtype) if name == "logreg" else data.integers(0, 10, 64)
        model.fit(x, y, batch_size=16, epochs=1, steps=3, verbose=0, seed=11)
        digest = hashlib.sha256()
        for array in model.get_weights():
            digest.update(np.ascontiguousarray(array).tobytes())
        digests[f"{name}/{dtype}"] = digest.hexdigest()
print(json.dumps(digests))
"""


@functools.cache
def train_every_model(threads, run=0):
    """The digests of run number `run` at `threads` threads (each run once per test session)."""
    env = dict(os.environ, PYTHONPATH=REPO, SCRATCHNET_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-c", TRAIN_EVERY_MODEL], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("threads", [1, 2])
def test_the_same_run_twice_gives_identical_weights_for_every_zoo_model(threads):
    first, second = train_every_model(threads, run=0), train_every_model(threads, run=1)
    from scratchnet import zoo

    assert set(first) == {f"{name}/{dtype}" for name in zoo.NAMES for dtype in ("float32", "float64")}
    differ = sorted(key for key in first if first[key] != second[key])
    assert differ == [], f"reruns differ for {differ}"
    assert len(set(first.values())) == len(first)  # each model and dtype trained to weights of its own


def test_one_and_two_threads_give_identical_weights_for_every_zoo_model():
    one, two = train_every_model(1), train_every_model(2)
    differ = sorted(key for key in one if one[key] != two[key])
    assert differ == [], f"1 and 2 threads give different weights for {differ}"
