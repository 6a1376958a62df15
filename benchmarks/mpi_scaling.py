"""Data-parallel scaling of emnist_cnn on this machine, and a model of it on a cluster:
``python -m benchmarks.mpi_scaling`` (needs the ``mpi`` extra; run it on a quiet machine).

It measures, with global batches of 1,024 (emnist_cnn's recipe) and synthetic 28x28 images:

1. one process, one thread, at local batches of 1,024 down to 16: the compute time of a step as a function
   of the rows a process trains on, fitted as ``a + b * rows`` (a: the per-step cost that does not shrink
   with the batch: Python, per-layer dispatch, the optimizer update);
2. one process with two threads at 1,024;
3. ``mpirun -n 2``, one thread each: step time, images/s, the time each step spends in (and waiting at)
   the Allreduce, and the time of the bare Allreduce of the gradient buffer after a barrier.

From these and an assumed network (``--bandwidth`` GB/s per link, ``--latency`` microseconds per message) it
predicts the speed-up at ``--ranks`` processes with a ring Allreduce, ``2 (P - 1) latency + 2 (P - 1) / P *
bytes / bandwidth``, each process on its own cores training 1,024 / P rows. The load average is printed
with the figures: other work on the machine makes them pessimistic.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_BATCH = 1024
LOCAL_BATCHES = (1024, 512, 256, 128, 64, 16)


def worker(batches, steps, warmup):
    """Time ``steps`` fit steps of emnist_cnn at each global batch (after ``warmup``); print JSON lines (rank 0)."""
    import numpy as np

    from benchmarks import workloads
    from scratchnet import distributed, zoo

    comm = distributed.world()
    for batch in batches:
        model = zoo.build("emnist_cnn", seed=0)
        distribution = distributed.data_parallel(model, comm)
        x, y = workloads.make_data("emnist_cnn", batch * (steps + warmup), seed=0)
        model.fit(x[:batch * warmup], y[:batch * warmup], batch_size=batch, epochs=1, verbose=0, shuffle=False)
        distribution.allreduce_seconds, distribution.steps = 0.0, 0
        if comm is not None:
            comm.Barrier()
        start = time.perf_counter()
        model.fit(x[batch * warmup:], y[batch * warmup:], batch_size=batch, epochs=1, verbose=0, shuffle=False)
        seconds = (time.perf_counter() - start) / steps
        result = {"processes": distribution.size, "threads": int(os.environ.get("SCRATCHNET_NUM_THREADS", "0")),
                  "global_batch": batch, "step_seconds": seconds, "images_per_second": batch / seconds,
                  "parameters": model.count_params()}
        if comm is not None:
            from mpi4py import MPI

            result["allreduce_in_step_seconds"] = distribution.allreduce_seconds / distribution.steps
            buffer = np.zeros(model.count_params() + 1, np.float32)
            comm.Barrier()
            start = time.perf_counter()
            for _ in range(50):
                comm.Allreduce(MPI.IN_PLACE, buffer)
            result["bare_allreduce_seconds"] = (time.perf_counter() - start) / 50
        if distribution.is_chief:
            print(json.dumps(result), flush=True)


def launch(threads, processes=None, batches=(GLOBAL_BATCH,), steps=10, warmup=2):
    env = dict(os.environ, SCRATCHNET_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [sys.executable, "-m", "benchmarks.mpi_scaling", "--worker", "--batches", *map(str, batches),
               "--steps", str(steps), "--warmup", str(warmup)]
    if processes:
        mpirun = Path(sys.executable).with_name("mpirun")
        command = [str(mpirun) if mpirun.exists() else shutil.which("mpirun"), "-n", str(processes), *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def ring_allreduce_seconds(processes, size_bytes, bandwidth, latency):
    """A ring Allreduce: 2 (P - 1) messages of size / P each way round the ring (reduce-scatter, allgather)."""
    return 2 * (processes - 1) * latency + 2 * (processes - 1) / processes * size_bytes / bandwidth


def model_speedup(compute, size_bytes, processes, bandwidth, latency):
    """Speed-up over one process of P processes training 1,024 / P rows each, then one ring Allreduce."""
    a, b = compute
    one = a + b * GLOBAL_BATCH
    step = a + b * GLOBAL_BATCH / processes + ring_allreduce_seconds(processes, size_bytes, bandwidth, latency)
    return one / step, step


def load():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mpi_scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, nargs="+", default=[GLOBAL_BATCH], help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (numba's cache load)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 64], help="process counts to predict")
    parser.add_argument("--bandwidth", type=float, default=[1.25, 12.5], nargs="+",
                        help="GB/s per link to assume (default: 10 Gb Ethernet and 100 Gb InfiniBand)")
    parser.add_argument("--latency", type=float, default=[30.0, 2.0], nargs="+",
                        help="microseconds per message, one per --bandwidth (default: 30 for TCP, 2 for RDMA)")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batches, args.steps, args.warmup)
        return 0
    if len(args.latency) != len(args.bandwidth):
        parser.error("give one --latency per --bandwidth")

    print(f"load average before: {load()} ({os.cpu_count()} cores)")
    rows = launch(1, batches=LOCAL_BATCHES, steps=args.steps, warmup=args.warmup)
    two_threads = launch(2, steps=args.steps, warmup=args.warmup)[0]
    two_processes = launch(1, processes=2, steps=args.steps, warmup=args.warmup)[0]
    print(f"load average after: {load()}")

    import numpy as np

    sizes = np.array([row["global_batch"] for row in rows], float)
    times = np.array([row["step_seconds"] for row in rows])
    b, a = np.polyfit(sizes, times, 1, w=1 / times)  # relative errors: the small batches pin down a
    one = rows[0]
    print("\nemnist_cnn, global batch 1,024, synthetic images, float32")
    print("| run | step (ms) | images/s | Allreduce in the step (ms) | bare Allreduce (ms) |")
    print("|---|---|---|---|---|")
    print(f"| 1 process, 1 thread | {1e3 * one['step_seconds']:.0f} | {one['images_per_second']:.0f} | | |")
    print(f"| 1 process, 2 threads | {1e3 * two_threads['step_seconds']:.0f} | "
          f"{two_threads['images_per_second']:.0f} | | |")
    print(f"| 2 processes, 1 thread each | {1e3 * two_processes['step_seconds']:.0f} | "
          f"{two_processes['images_per_second']:.0f} | {1e3 * two_processes['allreduce_in_step_seconds']:.1f} | "
          f"{1e3 * two_processes['bare_allreduce_seconds']:.2f} |")
    print("\none process, one thread, by rows per step: " + ", ".join(
        f"{row['global_batch']}: {1e3 * row['step_seconds']:.1f} ms" for row in rows))
    print(f"fit: step = {1e3 * a:.1f} ms + {1e6 * b:.1f} us x rows")
    size_bytes = 4 * (one["parameters"] + 1)
    print(f"\nmodelled speed-up ({one['parameters']:,} float32 gradients = {size_bytes / 1e6:.2f} MB per Allreduce)")
    print("| network | " + " | ".join(f"{p} processes" for p in args.ranks) + " |")
    print("|---|" + "---|" * len(args.ranks))
    for bandwidth, latency in zip(args.bandwidth, args.latency):
        cells = []
        for processes in args.ranks:
            speedup, step = model_speedup((a, b), size_bytes, processes, bandwidth * 1e9, latency * 1e-6)
            allreduce = ring_allreduce_seconds(processes, size_bytes, bandwidth * 1e9, latency * 1e-6)
            cells.append(f"{speedup:.1f}x (step {1e3 * step:.0f} ms, Allreduce {1e3 * allreduce:.1f} ms)")
        print(f"| {bandwidth:g} GB/s, {latency:g} us | " + " | ".join(cells) + " |")
    print(json.dumps({"load": load(), "one_thread": rows, "two_threads": two_threads,
                      "two_processes": two_processes, "fit_ms": [1e3 * a, 1e3 * b]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
