"""The benchmark harness imports and its bodies run, for scratchnet, TensorFlow and PyTorch. No timing is asserted.

The benchmarks themselves run only through ``python -m benchmarks`` (pytest's testpaths is ``tests/``);
these tests run each piece once on tiny inputs so a broken harness is caught by CI, not by the lead on
benchmark day.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the benchmarks package lives at the repository root, next to scratchnet
    sys.path.insert(0, ROOT)

from benchmarks import report, sn_side, workloads  # noqa: E402
from benchmarks.__main__ import parse_args  # noqa: E402


def require_torch():
    """torch, or a skip on a developer's machine without the bench extra (CI installs it: there, a failure)."""
    try:
        import torch
    except ImportError:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("torch is not installed (the bench extra)")
    return torch


def test_importing_the_harness_does_not_import_tensorflow_or_torch():
    code = ("import sys; import benchmarks, benchmarks.workloads, benchmarks.sn_side, benchmarks.tf_side, "
            "benchmarks.torch_side, benchmarks.report, benchmarks.memprobe, benchmarks.stepprofile, "
            "benchmarks.__main__; assert 'tensorflow' not in sys.modules; assert 'torch' not in sys.modules")
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_workloads_describe_every_zoo_model_with_its_parameter_count():
    from scratchnet import zoo

    assert tuple(zoo.NAMES) == workloads.MODELS
    for name in workloads.MODELS:
        assert workloads.num_params(name) == zoo.build(name).count_params()
        assert workloads.train_flops(name) == 3 * workloads.forward_flops(name, workloads.batch_size(name)) > 0
    assert workloads.batch_size("logreg") == 60000
    assert workloads.batch_size("deep_mnist") == 50


def test_op_cases_cover_every_conv_and_pool_of_the_zoo_once():
    cases = workloads.op_cases()
    assert len({case.id for case in cases}) == len(cases)
    layers = sum(len(case.models) for case in cases)
    expected = sum(1 for name in workloads.MODELS for layer in workloads.plan(name)
                   if layer.kind in ("Conv2D", "MaxPooling2D"))
    assert layers == expected
    # deep_mnist's second conv: 50 x 14 x 14 x 64 outputs, 5 x 5 x 32 multiply-adds each
    conv = next(c for c in cases if c.models == ("deep_mnist/conv2d_1",))
    assert conv.forward_flops() == 2 * 50 * 14 * 14 * 64 * 5 * 5 * 32


def test_synthetic_data_has_each_models_dtype_and_label_format():
    x, y = workloads.make_data("logreg", 5)
    assert x.dtype == np.float64 and x.shape == (5, 785) and np.all(x[:, 0] == 1) and y.shape == (5, 1)
    x, y = workloads.make_data("deep_mnist", 3)
    assert x.dtype == np.float32 and x.shape == (3, 28, 28, 1) and y.dtype == np.int64


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_scratchnet_bodies_run(backend):
    from scratchnet import engine

    previous = engine.get_backend()
    try:
        loss = sn_side.make_train_step("kaggle_cnn", n=4, backend=backend)()
        assert math.isfinite(loss)
        assert sn_side.make_inference("softmax", n=6, batch=4, backend=backend)().shape == (6, 10)
        sn_side.make_optimizer_update("mlp")()
        one = sn_side.make_latency("notmnist_cnn", backend=backend)()
        assert one.shape == (1, 10) and abs(float(one.sum()) - 1.0) < 1e-5
        case = next(c for c in workloads.op_cases(["kaggle_cnn"]) if c.op == "conv2d")
        y, _ = sn_side.make_op(case, "forward", backend=backend)()
        assert y.shape == case.y_shape
        dx, dkernel = sn_side.make_op(case, "backward", backend=backend)()
        assert dx.shape == case.x_shape and dkernel.shape == case.kernel_shape
    finally:
        engine.set_backend(previous)


@pytest.mark.tf
def test_tensorflow_bodies_run():
    pytest.importorskip("tf_reference")  # import first: keeps the parity tests' TensorFlow set-up intact
    pytest.importorskip("tensorflow")
    from benchmarks import tf_side

    for name in ("softmax", "notmnist_cnn"):
        assert tf_side.build_twin(name).count_params() == workloads.num_params(name)
    assert math.isfinite(float(tf_side.make_train_step("notmnist_cnn", n=4)()))
    assert tf_side.make_inference("logreg", n=6, batch=4)().shape == (6, 1)
    one = tf_side.make_latency("kaggle_cnn")()
    assert one.shape == (1, 10) and abs(float(one.sum()) - 1.0) < 1e-5
    assert tf_side.make_optimizer_update("mlp")() >= 1
    case = next(c for c in workloads.op_cases(["kaggle_cnn"]) if c.op == "max_pool2d")
    assert tf_side.make_op(case, "backward")().shape == case.x_shape


def _random_weights(model, seed):
    """Give a zoo model random weights (its zero biases and all-zero logreg/softmax kernels would hide bugs)."""
    rng = np.random.default_rng(seed)
    model.set_weights([(0.1 * rng.standard_normal(w.shape)).astype(w.dtype) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_pytorch_twins_compute_the_zoo_models_function(channels_last):
    """Weights copied from scratchnet, every twin predicts what scratchnet predicts: same layers, same order."""
    torch = require_torch()
    from benchmarks import torch_side
    from scratchnet import zoo

    for name in workloads.MODELS:
        model = _random_weights(zoo.build(name, seed=1), seed=2)
        twin = torch_side.build_twin(name, channels_last=channels_last)
        assert sum(p.numel() for p in twin.parameters()) == workloads.num_params(name)
        torch_side.copy_weights(twin, model)
        x, _ = workloads.make_data(name, 3, seed=4)
        with torch.inference_mode():
            out = torch_side._output_activation(twin)(twin.eval()(torch_side.to_input(x, channels_last))).numpy()
        expected = model.predict(x)
        assert out.dtype == expected.dtype and out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5, err_msg=name)


def test_pytorch_bodies_run_with_the_benchmark_settings():
    torch = require_torch()
    from benchmarks import torch_side

    assert torch_side.thread_count() == torch.get_num_threads() >= 1
    assert torch_side.SETTINGS["deep_mnist"].channels_last and not torch_side.SETTINGS["deep_mnist"].compile
    for name in ("logreg", "notmnist_cnn", "deep_mnist"):
        step = torch_side.make_train_step(name, n=4)
        first, second = step(), step()
        assert math.isfinite(first) and math.isfinite(second) and first != second  # the weights moved
    assert torch_side.make_inference("emnist_cnn", n=6, batch=4)().shape == (6, 62)
    one = torch_side.make_latency("mlp")()
    assert one.shape == (1, 10) and abs(float(one.sum()) - 1.0) < 1e-5
    twin_update = torch_side.make_optimizer_update("kaggle_cnn")
    twin_update()
    for impl in ("default", "foreach", "fused"):
        settings = torch_side.Settings(channels_last=True, optimizer_impl=impl)
        assert math.isfinite(torch_side.make_train_step("kaggle_cnn", n=4, settings=settings)())


def test_suites_collect_and_run_once_through_pytest():
    """One benchmark of the real suite, run once by pytest-benchmark with timing disabled."""
    command = [sys.executable, "-m", "pytest", "benchmarks/bench_train.py", "-p", "no:cacheprovider", "-q",
               "--bench-models=softmax", "--bench-engines=scratchnet", "--bench-quick", "--bench-settle=0",
               "--benchmark-disable"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "1 passed" in completed.stdout


def test_latency_suite_runs_scratchnet_and_pytorch_through_pytest():
    require_torch()
    command = [sys.executable, "-m", "pytest", "benchmarks/bench_latency.py", "-p", "no:cacheprovider", "-q",
               "--bench-models=softmax", "--bench-engines=scratchnet,pytorch", "--bench-quick", "--bench-settle=0",
               "--benchmark-disable"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "2 passed" in completed.stdout


def test_memory_probe_reports_the_childs_peak_rss():
    from benchmarks.memprobe import probe

    result = probe("scratchnet", "softmax", steps=2, timeout=240)
    assert "error" not in result, result
    assert result["maxrss_mb"] > 10 and result["first_step_s"] > 0 and result["model"] == "softmax"


def test_report_renders_the_tables_from_pytest_benchmark_json():
    def bench(suite, engine, median, **info):
        return {"extra_info": {"suite": suite, "engine": engine, "first_call_s": 0.5, **info},
                "stats": {"median": median, "iqr": 0.0, "rounds": 5, "min": median}}

    flops = workloads.train_flops("mlp")
    torch_info = {"threads": 2, "settings": "contiguous (NCHW), eager, optimizer foreach"}
    data = {"benchmarks": [
        bench("train", "scratchnet", 0.001, model="mlp", flops=flops, batch=100),
        bench("train", "tensorflow", 0.002, model="mlp", flops=flops, batch=100),
        bench("train", "pytorch", 0.004, model="mlp", flops=flops, batch=100, **torch_info),
        bench("train", "scratchnet", 0.03, model="deep_mnist", flops=flops, batch=50),
        bench("train", "tensorflow", 0.04, model="deep_mnist", flops=flops, batch=50),
        bench("train", "pytorch", 0.02, model="deep_mnist", flops=flops, batch=50, **torch_info),
        bench("latency", "scratchnet", 40e-6, model="mlp", flops=1e5, batch=1),
        bench("latency", "tensorflow", 200e-6, model="mlp", flops=1e5, batch=1),
        bench("latency", "pytorch", 50e-6, model="mlp", flops=1e5, batch=1, **torch_info),
        bench("latency", "scratchnet", 150e-6, model="softmax", flops=1e5, batch=1),
        bench("latency", "tensorflow", 200e-6, model="softmax", flops=1e5, batch=1),
        bench("peak", "numpy", 1.0, flops=100e9),
    ]}
    probes = {"mlp": {"scratchnet_1": {"maxrss_mb": 100.0, "first_step_s": 0.4, "import_s": 0.2},
                      "scratchnet_2": {"maxrss_mb": 100.0, "first_step_s": 0.3, "import_s": 0.2},
                      "tensorflow": {"maxrss_mb": 700.0, "first_step_s": 0.5, "import_s": 5.0},
                      "pytorch": {"maxrss_mb": 400.0, "first_step_s": 0.1, "import_s": 3.0}}}
    info = report.machine()
    text = report.render(report.index(data), probes, [], info, quick=False, command="python -m benchmarks",
                         probe_steps=10)
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| mlp | 100 |"))
    # scratchnet, TF, PyTorch, the best peer (TF), sn ÷ TF and its goal, sn ÷ best peer
    assert "| 1.00 | 2.00 | 4.00 | 2.00 (TF) | 0.50 | ≤ 1.0 ✓ | 0.50 |" in row
    row = next(line for line in lines if line.startswith("| deep_mnist | 50 |"))
    assert "| 30.00 | 40.00 | 20.00 | 20.00 (PyTorch) | 0.75 | ≤ 2.0 ✓ | 1.50 |" in row
    latency = lines.index("## Single-image latency (one 28x28 image through a loaded model)")
    row = next(line for line in lines[latency:] if line.startswith("| mlp |"))
    assert row == "| mlp | 40 | 200 | 50 | 0.20 | ≤ 0.5 ✓ | 50 (PyTorch) | 0.80 |"
    row = next(line for line in lines[latency:] if line.startswith("| softmax |"))
    assert row == "| softmax | 150 | 200 | — | 0.75 | ≤ 0.5 ✗ | 200 (TF) | 0.75 |"
    assert "torch.set_num_threads(2)" in text
    assert "contiguous (NCHW), eager, optimizer foreach (mlp, deep_mnist)" in text  # the settings, model by model
    assert "100.0 GFLOP/s" in text  # the measured peak
    assert "| mlp | 100 | 700 | 400 | 0.14 |" in text  # the memory table
    assert info["cpu"] and "torch" in info
    json.dumps(info)


def test_command_line_defaults_write_docs_benchmarks_md():
    args = parse_args([])
    assert args.output == os.path.join("docs", "benchmarks.md")
    assert set(args.suites) == {"train", "infer", "latency", "ops", "optimizer", "peak"}
    assert parse_args(["--quick"]).output.startswith(".benchmarks")
    with pytest.raises(SystemExit):
        parse_args(["--models", "nope"])


def test_repeated_runs_pool_their_rounds_and_report_each_repeats_ratio():
    def bench(engine, data, repeat):
        return {"extra_info": {"suite": "train", "engine": engine, "model": "kaggle_cnn", "first_call_s": 0.5,
                               "flops": 1e6, "batch": 32, "repeat": repeat},
                "stats": {"median": float(np.median(data)), "iqr": 0.0, "rounds": len(data), "min": min(data),
                          "data": data}}

    data = {"benchmarks": [bench("scratchnet", [1.0, 1.0, 5.0], 1), bench("tensorflow", [2.0, 2.0, 2.0], 1),
                           bench("scratchnet", [3.0, 3.0, 3.0], 2), bench("tensorflow", [2.0, 4.0, 4.0], 2)]}
    results = report.index(data)
    sn = results[("train", "kaggle_cnn", "scratchnet")]
    assert sn["median"] == 3.0 and sn["rounds"] == 6 and sn["min"] == 1.0  # pooled: 1, 1, 3, 3, 3, 5
    assert sn["repeat_medians"] == [1.0, 3.0]
    assert report.repeat_ratios(results) == ["- kaggle_cnn: ÷ TF 0.50, 0.75 (median 0.62)"]
    # with PyTorch too, each repeat's best peer is the faster of the two in that repeat
    data["benchmarks"] += [bench("pytorch", [4.0, 4.0, 4.0], 1), bench("pytorch", [1.5, 1.5, 1.5], 2)]
    assert report.repeat_ratios(report.index(data)) == [
        "- kaggle_cnn: ÷ TF 0.50, 0.75 (median 0.62); ÷ best peer 0.50, 2.00 (median 1.25)"]
    assert parse_args(["--repeat", "3"]).repeat == 3
    for bad in ("0", "x"):
        with pytest.raises(SystemExit):
            parse_args(["--repeat", bad])


def test_isolated_engines_take_turns_benchmark_by_benchmark():
    """The referee lets one process measure at a time, each slot's engines back to back, the first one rotating,
    their bursts alternating; a process that ends (or crashes) early is no longer waited for."""
    import threading
    import time

    from benchmarks.turns import Player, Referee

    referee = Referee(["bench_train", "bench_inference", "bench_ops"], first=1)
    plans = {0: [("bench_train", 0), ("bench_train", 1), ("bench_inference", 0), ("bench_ops", 0)],
             1: [("bench_train", 0), ("bench_train", 1), ("bench_inference", 0), ("bench_ops", 0)],
             2: [("bench_train", 0), ("bench_train", 1), ("bench_inference", 0)],
             3: [("bench_train", 0)]}  # crashes inside its first turn
    for _ in plans:
        referee.child_env({})
    # each player owns its end of the socket pair (as a child process would); the socket object lets go of it
    players = {index: Player(child.detach()) for index, (_, child) in enumerate(referee.children)}
    inside, seen, overlaps = [], [], []

    def child(index):
        player = players[index]
        time.sleep(0.01 * (3 - index))  # the children reach their first benchmark in a different order
        for suite, slot in plans[index]:
            if index == 3:
                player.connection.send_bytes(f"ready {suite} {slot}".encode())
                player.connection.recv_bytes()
                break  # "crashes": closes its socket without saying done
            with player.turn(suite, slot):
                for burst in range(2 if suite == "bench_ops" else 1):
                    if burst:
                        player.pass_turn(suite, slot)
                    inside.append(index)
                    overlaps.append(len(inside) > 1)
                    seen.append((index, suite, slot))
                    time.sleep(0.002)
                    inside.remove(index)
        player.close()

    threads = [threading.Thread(target=child, args=(index,)) for index in plans]
    for thread in threads:
        thread.start()
    server = threading.Thread(target=referee.serve)
    server.start()
    server.join(timeout=30)
    assert not server.is_alive(), "the referee did not finish"
    for thread in threads:
        thread.join(timeout=5)
    assert not any(overlaps)
    order = referee.log
    assert order == [(1, "bench_train", 0), (2, "bench_train", 0), (3, "bench_train", 0), (0, "bench_train", 0),
                     (1, "bench_train", 1), (2, "bench_train", 1), (0, "bench_train", 1),
                     (1, "bench_inference", 0), (2, "bench_inference", 0), (0, "bench_inference", 0),
                     (1, "bench_ops", 0), (0, "bench_ops", 0), (1, "bench_ops", 0), (0, "bench_ops", 0)]
    assert seen == [entry for entry in order if entry[0] != 3]


def test_isolated_run_writes_every_engines_json(tmp_path):
    """``--isolate --quick``: the engines' processes run side by side under the referee and all finish."""
    require_torch()
    output = tmp_path / "report.md"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--isolate", "--models", "mlp", "--suites",
               "train,infer", "--no-memory", "--no-profile", "--output", str(output),
               "--json", os.path.relpath(tmp_path / "bench.json", ROOT)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    benchmarks = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]
    engines = {b["extra_info"]["engine"] for b in benchmarks}
    assert all(b["extra_info"]["bursts"] >= 2 for b in benchmarks)  # --quick: 2-3 rounds, a burst each
    from benchmarks import ENGINES, installed

    assert engines == {engine for engine in ENGINES if installed(engine)}
    assert "| mlp |" in output.read_text()


@pytest.mark.parametrize("rounds, bursts", [(2, 2), (5, 5), (7, 4), (12, 4), (200, 5)])
def test_timed_rounds_come_in_bursts_with_a_hand_over_and_a_warm_call_between(rounds, bursts):
    """The untimed setup before each round passes the turn (then calls the body once) at the start of every
    burst but the first; the warm-up round never does."""
    from benchmarks.conftest import _bursts

    class FakePlayer:
        def __init__(self):
            self.passes = []

        def pass_turn(self, suite, slot):
            self.passes.append((suite, slot))

    calls = []
    player = FakePlayer()
    setup, count = _bursts(player, ("bench_train", 3), lambda: calls.append(1), rounds, 0.0)
    handed_over_before = []
    for _ in range(-1, rounds):  # the warm-up round, then the timed rounds
        before = len(player.passes)
        setup()
        handed_over_before.append(len(player.passes) > before)
    assert count == bursts
    assert len(player.passes) == len(calls) == bursts - 1
    assert set(player.passes) <= {("bench_train", 3)}
    assert not handed_over_before[0] and not handed_over_before[1]  # neither the warm-up nor the first round
