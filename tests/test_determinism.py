"""Results do not depend on the thread count: every kernel that cuts its work gives bit-identical results at
1, 2 and 3 threads, and every zoo model trains to bit-identical weights at 1 and 2 threads."""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchnet import kernels, zoo
from scratchnet.kernels import activations as kact
from scratchnet.kernels import conv as kconv
from scratchnet.kernels import conv_chunks as kchunks
from scratchnet.kernels import conv_team as kteam
from scratchnet.kernels import dense as kdense
from scratchnet.kernels import fused as kfused
from scratchnet.runtime import threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_COUNTS = (1, 2, 3)  # 3 shares PARTS = 8 parts unevenly (3, 3, 2)


@contextlib.contextmanager
def thread_count(count):
    """Run a block under the thread policy with `count` threads, then restore the previous count."""
    previous = threads.num_threads()
    threads.configure(num_threads=count)
    try:
        yield
    finally:
        threads.configure(num_threads=previous)


def results_at_every_thread_count(compute):
    """compute() -> a tuple of arrays, run at each of THREAD_COUNTS; asserts they are equal bit for bit."""
    results = {}
    for count in THREAD_COUNTS:
        with thread_count(count):
            results[count] = compute()
    for count in THREAD_COUNTS[1:]:
        for index, (got, want) in enumerate(zip(results[count], results[THREAD_COUNTS[0]])):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes(), f"output {index} differs at {count} threads"
    return results[THREAD_COUNTS[0]]


def test_part_spans_cut_the_work_the_same_at_any_thread_count():
    cuts = {}
    for count in THREAD_COUNTS:
        with thread_count(count):
            cuts[count] = (threads.part_spans(50), threads.part_spans(5), threads.part_spans(50, split=False))
    assert cuts[1] == cuts[2] == cuts[3]
    spans, few, whole = cuts[1]
    assert len(spans) == threads.PARTS and spans[0][0] == 0 and spans[-1][1] == 50
    assert all(stop == start for (_, stop), (start, _) in zip(spans, spans[1:]))
    assert few == [(n, n + 1) for n in range(5)] and whole == [(0, 50)]


@pytest.mark.parametrize("col2im", ["scatter", "gather", "transposed"])
@pytest.mark.parametrize(("dtype", "team", "keep_cols_bytes"),
                         [(np.float32, True, 0), (np.float32, False, 0), (np.float64, False, 0),
                          (np.float64, False, 10**9)],
                         ids=["float32-team", "float32-parallel_map", "float64", "float64-keep_cols"])
def test_conv2d_is_bit_identical_at_any_thread_count(monkeypatch, dtype, team, keep_cols_bytes, col2im):
    """A batch big enough for the parallel paths (above TEAM_MIN_MACS and PARALLEL_MIN_MACS). The team's
    chunks hold two images, so that its parts hold several chunks; `parallel_map`'s chunks would hold the
    whole batch but for the cut into parts."""
    monkeypatch.setattr(kconv, "TEAM_PIECES", team)
    monkeypatch.setattr(kchunks, "KEEP_COLS_BYTES", keep_cols_bytes)
    monkeypatch.setattr(kchunks, "CHUNK_BYTES", 10**9)
    monkeypatch.setattr(kteam, "PIECE_CHUNK_BYTES", 250_000)
    monkeypatch.setattr(kconv, "GATHER_MIN_CHANNELS", 1 if col2im == "gather" else 10**9)
    monkeypatch.setattr(kconv, "TRANSPOSED_DX", col2im == "transposed")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((37, 14, 14, 16)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 16, 16 if col2im == "transposed" else 32)).astype(dtype)
    macs = 37 * 14 * 14 * 3 * 3 * 16 * kernel.shape[-1]
    assert macs >= max(kteam.TEAM_MIN_MACS, kchunks.PARALLEL_MIN_MACS)
    y_shape = (37, 14, 14, kernel.shape[-1])
    dy = rng.standard_normal(y_shape).astype(dtype)

    def compute():
        y, cache = kernels.conv2d_forward(x, kernel, 1, "same")
        dx, dkernel = kernels.conv2d_backward(dy, cache)
        return y, dx, dkernel

    results_at_every_thread_count(compute)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradients_are_bit_identical_at_any_thread_count(dtype):
    """Above PARALLEL_MIN_SIZE the bias gradients sum PARTS slices of rows; the same slices at any count."""
    rows = kact.PARALLEL_MIN_SIZE // 16 + 3
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((rows, 16)).astype(dtype)
    z = rng.standard_normal((rows, 16)).astype(dtype)

    def compute():
        dx, dbias = kernels.bias_add_backward(dy, (dy.shape, dy.dtype))
        dz, dbias_relu = kernels.bias_add_relu_backward(dy, z)
        return dx, dbias, dz, dbias_relu

    results_at_every_thread_count(compute)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((512, 256), (256, 64)), ((32, 512), (512, 512)), ((32, 1024), (1024, 256))],
                         ids=["batch_biggest", "kernel_biggest_wide", "kernel_biggest_tall"])
def test_dense_is_bit_identical_at_any_thread_count(dtype, shapes):
    """Products above DENSE_PARALLEL_MIN_MACS are cut into the same pieces at any thread count (at one thread
    too: a whole product would round differently from the cut one)."""
    (n, ci), (_, co) = shapes
    assert n * ci * co >= kdense.DENSE_PARALLEL_MIN_MACS
    rng = np.random.default_rng(3)
    x, kernel = rng.standard_normal((n, ci)).astype(dtype), rng.standard_normal((ci, co)).astype(dtype)
    bias, dy = rng.standard_normal(co).astype(dtype), rng.standard_normal((n, co)).astype(dtype)

    def compute():
        y, cache = kernels.dense_forward(x, kernel, bias)
        return (y, *kernels.dense_backward(dy, cache))

    results_at_every_thread_count(compute)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_logistic_regression_is_bit_identical_at_any_thread_count(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1001, 37)).astype(dtype)
    kernel = rng.standard_normal((37, 1)).astype(dtype)
    bias = np.array([0.3], dtype=dtype)
    labels = (rng.random((1001, 1)) > 0.5).astype(dtype)

    results_at_every_thread_count(lambda: kfused.sigmoid_dense_gradients(x, kernel, bias, labels))


# A few steps of every zoo model on fixed random images, with every threshold of the kernels lowered so that
# each one cuts its work (convolutions, bias gradients, dense products, the fused logistic regression, Adam,
# pooling) even at this small batch; prints one JSON object: the thread count and {"model/dtype": sha256}.
TRAIN_EVERY_MODEL_CUT = r"""
import hashlib, json
import numpy as np
from scratchnet import zoo
from scratchnet.kernels import activations, conv_chunks, conv_team, dense, fused, optimizers, pooling
from scratchnet.runtime import threads

conv_team.TEAM_MIN_MACS = conv_chunks.PARALLEL_MIN_MACS = dense.DENSE_PARALLEL_MIN_MACS = 0
activations.PARALLEL_MIN_SIZE = optimizers.PARALLEL_MIN_SIZE = pooling.PARALLEL_MIN_SIZE = 0
fused.FUSED_MIN_BYTES = 0
digests = {}
for name in zoo.NAMES:
    for dtype in ("float32", "float64"):
        model = zoo.build(name, seed=5, dtype=dtype, num_classes=10, learning_rate=zoo.defaults(name).learning_rate)
        data = np.random.default_rng(2)
        x = data.random((48, *model.input_shape[1:])).astype(dtype)
        y = (data.random((48, 1)) > 0.5).astype(dtype) if name == "logreg" else data.integers(0, 10, 48)
        model.fit(x, y, batch_size=16, epochs=1, steps=3, verbose=0, seed=13)
        digest = hashlib.sha256()
        for array in model.get_weights():
            digest.update(np.ascontiguousarray(array).tobytes())
        digests[f"{name}/{dtype}"] = digest.hexdigest()
print(json.dumps({"threads": threads.num_threads(), "digests": digests}))
"""


def train_every_model_cut(count):
    env = dict(os.environ, PYTHONPATH=REPO, SCRATCHNET_NUM_THREADS=str(count))
    done = subprocess.run([sys.executable, "-c", TRAIN_EVERY_MODEL_CUT], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["threads"] == count
    return report["digests"]


def test_every_zoo_model_trains_to_identical_weights_at_one_and_two_threads():
    """Each run in its own process, as `SCRATCHNET_NUM_THREADS=1` and `=2` commands would be."""
    one, two = train_every_model_cut(1), train_every_model_cut(2)
    assert set(one) == {f"{name}/{dtype}" for name in zoo.NAMES for dtype in ("float32", "float64")}
    differ = sorted(key for key in one if one[key] != two[key])
    assert differ == [], f"1 and 2 threads give different weights for {differ}"
    assert len(set(one.values())) == len(one)  # each model and dtype trained to weights of its own
