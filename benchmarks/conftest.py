"""pytest set-up for the benchmark suites: collects ``bench_*.py``, TensorFlow as users run it, the timing rule.

Run all suites with ``python -m benchmarks`` (which also writes the report), or directly:

    python -m pytest benchmarks --benchmark-json=out.json [--bench-models mlp,deep_mnist] [--bench-quick]

Timing rule (the ``measure`` fixture): after ``--bench-settle`` idle seconds (OpenBLAS worker threads
busy-wait for a while after a call, and would steal a core from the next engine's benchmark), the first
call of a body (numba compilation or disk-cache load, TensorFlow tracing) is timed on its own and stored as
``extra_info["first_call_s"]``; a second untimed call estimates the cost of one call; then pytest-benchmark's
``pedantic`` runs one warm-up round and as many timed rounds as fit in ``--bench-time`` seconds (between
``--bench-min-rounds`` and ``--bench-max-rounds``, or the suite's own cap). Under ``python -m benchmarks
--isolate`` all of this waits for the process's turn (`benchmarks.turns`), so the engines take turns.

An engine whose package is not installed (TensorFlow, torch) has its benchmarks skipped, with the reason.
"""
from __future__ import annotations

import math
import os
import sys
import time

import pytest

# TensorFlow as users run it: oneDNN on. Must be decided before TensorFlow is first imported.
if "tensorflow" not in sys.modules:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("SCRATCHNET_BENCH_TF_ONEDNN", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from benchmarks import ENGINES, installed, side
from benchmarks.turns import Player

OP_ENGINES = ("scratchnet", "numpy", "tensorflow")  # "numpy": scratchnet's readable reference ops


def pytest_addoption(parser):
    group = parser.getgroup("scratchnet benchmarks")
    group.addoption("--bench-models", default="", help="comma-separated zoo models (default: all)")
    group.addoption("--bench-engines", default="", help="comma-separated engines: scratchnet,tensorflow,pytorch,numpy")
    group.addoption("--bench-time", type=float, default=1.0, help="target seconds of timed rounds per benchmark")
    group.addoption("--bench-min-rounds", type=int, default=5)
    group.addoption("--bench-max-rounds", type=int, default=200)
    group.addoption("--bench-settle", type=float, default=0.25,
                    help="seconds to idle before each benchmark, so the previous engine's spinning BLAS/Eigen "
                         "threads go to sleep first")
    group.addoption("--bench-quick", action="store_true",
                    help="smoke run: 2 rounds each, 0.05 s target (numbers meaningless)")


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` (pytest's default pattern is ``test_*.py``; files named on the command line
    are collected by pytest itself)."""
    named = parent.session.isinitpath(file_path)
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not named:
        return pytest.Module.from_parent(parent, path=file_path)
    return None


BURSTS = 5
"""Under a referee (``--isolate``) a benchmark's timed rounds come in this many bursts, each engine at the same
benchmark running a burst in turn (`benchmarks.turns`)."""

BURST_SETTLE = 0.12
"""Idle seconds before a burst, after another engine's: OpenBLAS's idle threads spin for about 2**28 cycles
(0.1 s at 2.7 GHz) before they sleep. A benchmark's first burst waits ``--bench-settle`` instead."""


def _bursts(player, slot, body, rounds, settle):
    """(pytest-benchmark's ``setup``, the number of bursts). The setup is called before each round, untimed:
    at the start of every burst but the first it passes the turn; when the turn comes back it idles
    ``settle`` seconds and makes one untimed call, which wakes this engine's threads and fills its caches
    again, as the warm-up round did before the first burst."""
    size = math.ceil(rounds / min(BURSTS, rounds))
    calls = iter(range(-1, rounds))  # -1: the warm-up round

    def setup():
        index = next(calls)
        if index > 0 and index % size == 0:
            player.pass_turn(*slot)
            time.sleep(settle)
            body()

    return setup, math.ceil(rounds / size)


ENGINE_PARAMS = ("engine_name", "op_engine")
"""The parameters that name the engine: a benchmark's slot is what is left (its model, or op case and direction)."""


def pytest_configure(config):
    config.bench_player = Player.from_env()  # None unless ``python -m benchmarks --isolate`` referees the turns


def pytest_collection_modifyitems(session, config, items):
    """Number each benchmark's slot within its suite: the same model (or op case) gets the same number in
    every engine's process, whichever engines that process runs."""
    slots = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = {k: v for k, v in (callspec.params if callspec else {}).items() if k not in ENGINE_PARAMS}
        key = tuple(sorted((k, getattr(v, "id", v)) for k, v in params.items()))
        suite = slots.setdefault(item.path.stem, {})
        item.bench_slot = (item.path.stem, suite.setdefault(key, len(suite)))


def _selected(config, option, default):
    raw = config.getoption(option)
    if not raw:
        return tuple(default)
    chosen = tuple(item.strip() for item in raw.split(",") if item.strip())
    return tuple(item for item in default if item in chosen)


def selected_models(config):
    from benchmarks.workloads import MODELS

    unknown = set(filter(None, config.getoption("--bench-models").split(","))) - set(MODELS)
    if unknown:
        raise pytest.UsageError(f"--bench-models: unknown model(s) {sorted(unknown)}; expected {MODELS}")
    return _selected(config, "--bench-models", MODELS)


def pytest_generate_tests(metafunc):
    """Parametrise ``model_name``, ``engine_name``, ``op_case``, ``direction``, ``op_engine`` from the command line."""
    config = metafunc.config
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", selected_models(config))
    if "engine_name" in metafunc.fixturenames:
        metafunc.parametrize("engine_name", _selected(config, "--bench-engines", ENGINES))
    # ops: case, then direction, then engine, so the engines' runs of one op follow each other
    if "op_case" in metafunc.fixturenames:
        from benchmarks.workloads import op_cases

        cases = op_cases(selected_models(config))
        metafunc.parametrize("op_case", cases, ids=[case.id for case in cases])
    if "direction" in metafunc.fixturenames:
        metafunc.parametrize("direction", ("forward", "backward"))
    if "op_engine" in metafunc.fixturenames:
        metafunc.parametrize("op_engine", _selected(config, "--bench-engines", OP_ENGINES))


@pytest.fixture(autouse=True)
def _skip_engines_not_installed(request):
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec else {}
    for key in ("engine_name", "op_engine"):
        engine = params.get(key)
        if engine in ENGINES and not installed(engine):
            pytest.skip(f"{engine} is not installed (pip install -e '.[tf,bench]')")


@pytest.fixture
def engine_info(engine_name):
    """``engine_info(model)``: what the report should know of how ``engine_name`` ran (PyTorch: threads, settings)."""
    def info(model_name):
        if engine_name != "pytorch":
            return {}
        torch_side = side("pytorch")
        return {"threads": torch_side.thread_count(), "settings": torch_side.SETTINGS[model_name].describe()}

    return info


@pytest.fixture
def measure(benchmark, request):
    """``measure(body, group=..., flops=..., max_rounds=None, **info)``: first call timed apart, then the rounds."""
    config = request.config
    quick = config.getoption("--bench-quick")
    target = 0.05 if quick else config.getoption("--bench-time")
    min_rounds = 2 if quick else config.getoption("--bench-min-rounds")
    default_cap = 3 if quick else config.getoption("--bench-max-rounds")
    settle = min(0.05, config.getoption("--bench-settle")) if quick else config.getoption("--bench-settle")

    player = config.bench_player
    slot = getattr(request.node, "bench_slot", ("", 0))

    def run(body, *, group, flops=None, max_rounds=None, **info):
        if player is None:
            return timed(body, group=group, flops=flops, max_rounds=max_rounds, **info)
        with player.turn(*slot):
            return timed(body, group=group, flops=flops, max_rounds=max_rounds, **info)

    def timed(body, *, group, flops, max_rounds, **info):
        cap = max_rounds if max_rounds is not None and not quick else default_cap
        time.sleep(settle)
        start = time.perf_counter()
        body()
        first_call = time.perf_counter() - start
        start = time.perf_counter()
        body()
        estimate = max(time.perf_counter() - start, 1e-6)
        rounds = max(min_rounds, min(cap, math.ceil(target / estimate)))
        benchmark.group = group
        benchmark.extra_info.update(info)
        benchmark.extra_info["first_call_s"] = first_call
        benchmark.extra_info["flops"] = flops
        benchmark.extra_info["rounds_planned"] = rounds
        setup = None
        if player is not None:
            setup, benchmark.extra_info["bursts"] = _bursts(player, slot, body, rounds, min(settle, BURST_SETTLE))
        return benchmark.pedantic(body, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)

    return run
