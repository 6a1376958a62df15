"""One short training run in a fresh process, for peak memory and first-step time: ``python -m benchmarks.memprobe``.

    python -m benchmarks.memprobe --engine scratchnet --model deep_mnist --steps 20

The child builds the zoo model (or its TensorFlow or PyTorch twin), makes one synthetic batch at the model's batch
size, runs ``--steps`` training steps and prints one JSON line: import / build / first-step seconds, the
median of the later steps, and its own peak RSS. `probe` runs it as a child process and reads the child's
peak RSS from ``os.wait4`` (``ru_maxrss`` of exactly that child), so engines never share a process.

The first step includes numba's compile or disk-cache load (scratchnet) or tracing (TensorFlow); run the
scratchnet probe twice and the second run's first step is the "kernels cached" figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ENGINES = ("scratchnet", "tensorflow", "pytorch")


def _child(engine: str, model: str, steps: int) -> dict:
    t0 = time.perf_counter()
    if engine == "tensorflow":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("SCRATCHNET_BENCH_TF_ONEDNN", "1")
        from benchmarks import tf_side as side

        side.tensorflow()
    elif engine == "pytorch":
        from benchmarks import torch_side as side

        side.pytorch()
    else:
        import scratchnet  # noqa: F401
        from benchmarks import sn_side as side
    t1 = time.perf_counter()
    step = side.make_train_step(model)
    t2 = time.perf_counter()
    step()
    t3 = time.perf_counter()
    times = []
    for _ in range(max(0, steps - 1)):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "engine": engine,
        "model": model,
        "steps": steps,
        "import_s": t1 - t0,
        "build_s": t2 - t1,
        "first_step_s": t3 - t2,
        "later_step_median_s": statistics.median(times) if times else None,
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "tensorflow_imported": "tensorflow" in sys.modules,
        "torch_imported": "torch" in sys.modules,
    }


def probe(engine: str, model: str, steps: int = 10, timeout: float = 600.0) -> dict:
    """Run the child for (engine, model) and return its JSON plus ``maxrss_mb`` from ``os.wait4``."""
    if engine not in ENGINES:
        raise ValueError(f"`engine` must be one of {ENGINES}; received: {engine!r}")
    command = [sys.executable, "-m", "benchmarks.memprobe", "--child", "--engine", engine, "--model", model,
               "--steps", str(steps)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=root)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.02)
        child.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it is reaped
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            tail = err.read().strip().splitlines()[-5:]
            return {"engine": engine, "model": model, "error": f"exit {child.returncode}: " + " | ".join(tail)}
        result = json.loads(lines[-1])
    result["maxrss_mb"] = usage.ru_maxrss / 1024.0  # Linux reports kilobytes
    result["process_wall_s"] = wall
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memprobe", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child", action="store_true", help="run in this process (what `probe` launches)")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.engine, args.model, args.steps)), flush=True)
    else:
        print(json.dumps(probe(args.engine, args.model, args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
