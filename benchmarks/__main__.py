"""``python -m benchmarks``: run every suite, the memory probes and the profiles; print and write the report.

    python -m benchmarks             the full measurement -> docs/benchmarks.md (10-20 minutes; quiet machine!)
    python -m benchmarks --quick     smoke run of the harness (numbers meaningless) -> .benchmarks/
    python -m benchmarks --models mlp,deep_mnist --suites train,ops --no-memory

Steps: (1) pytest-benchmark suites in one child process (scratchnet, TensorFlow and PyTorch side by side; raw
JSON in .benchmarks/latest.json), or with --isolate one process per engine, the processes taking turns
burst by burst (`benchmarks.turns`); (2) one fresh process per engine and model for peak memory and first-step
time (scratchnet twice: the second run loads the kernels from numba's disk cache); (3) a layer-by-layer profile of
the slow models' scratchnet training step; (4) the report, printed and written to ``--output``.
Run it on a quiet machine: other load makes every number meaningless.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from benchmarks import ENGINES, installed, report, workloads
from benchmarks.turns import Referee

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITES = {"train": "bench_train.py", "infer": "bench_inference.py", "latency": "bench_latency.py",
          "ops": "bench_ops.py", "optimizer": "bench_optimizer.py", "peak": "bench_peak.py"}
ISOLATED_SUITES = {"scratchnet,numpy": tuple(SUITES),
                   "tensorflow": ("train", "infer", "latency", "ops", "optimizer"),
                   "pytorch": ("train", "infer", "latency", "optimizer")}
"""With --isolate: the pytest processes of one repeat (side by side, taking turns: `benchmarks.turns`) and the
suites each runs (PyTorch has no ops)."""


def _csv(value, allowed, what):
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown}; expected some of {', '.join(allowed)}")
    return items


def _positive(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {value!r}")
    return number


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2-3 rounds per benchmark, 3 probe steps, report to .benchmarks/")
    parser.add_argument("--models", type=lambda v: _csv(v, workloads.MODELS, "model"), default=workloads.MODELS,
                        help="comma-separated zoo models (default: all seven)")
    parser.add_argument("--suites", type=lambda v: _csv(v, tuple(SUITES), "suite"), default=tuple(SUITES),
                        help="comma-separated: " + ",".join(SUITES) + " (default: all)")
    parser.add_argument("--bench-time", type=float, default=1.0, help="target seconds of timed rounds per benchmark")
    parser.add_argument("--isolate", action="store_true",
                        help="run the scratchnet, the TensorFlow and the PyTorch benchmarks in separate pytest "
                             "processes, side by side, taking turns a burst of rounds at a time (default: one "
                             "process, each model's engines back to back)")
    parser.add_argument("--repeat", type=_positive, default=1,
                        help="run the suites this many times; the report pools the rounds of all repeats and "
                             "lists each repeat's training-step and inference ratios")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory / first-step probes")
    parser.add_argument("--no-profile", action="store_true", help="skip the layer profiles")
    parser.add_argument("--probe-steps", type=int, default=None, help="training steps per memory probe (default 10)")
    parser.add_argument("--output", default=None,
                        help="report path (default docs/benchmarks.md; .benchmarks/benchmarks-quick.md with --quick)")
    parser.add_argument("--json", default=os.path.join(".benchmarks", "latest.json"),
                        help="where pytest-benchmark writes its JSON (default .benchmarks/latest.json)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: extra pytest arguments")
    args = parser.parse_args(argv)
    if args.pytest_args and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    if args.output is None:
        args.output = os.path.join(".benchmarks", "benchmarks-quick.md") if args.quick else os.path.join(
            "docs", "benchmarks.md")
    if args.probe_steps is None:
        args.probe_steps = 3 if args.quick else 10
    return args


def run_suites(args) -> dict:
    """Run the chosen pytest-benchmark suites (one child process, or one per engine with --isolate)."""
    json_path = os.path.join(ROOT, args.json)
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    files = [os.path.join("benchmarks", SUITES[suite]) for suite in args.suites]
    print(f"[1/4] pytest-benchmark suites: {' '.join(SUITES[s] for s in args.suites)} "
          f"(models: {','.join(args.models)})"
          + (" — engines in separate processes, taking turns" if args.isolate else ""), flush=True)
    groups = [(None, files)]
    if args.isolate:
        groups = [(engines, [os.path.join("benchmarks", SUITES[s]) for s in args.suites if s in suites])
                  for engines, suites in ISOLATED_SUITES.items()]
        missing = [engine for engine in ENGINES if not installed(engine)]
        if missing:
            print(f"warning: {', '.join(missing)} not installed: no {' or '.join(missing)} benchmarks "
                  "(pip install -e '.[tf,bench]')", file=sys.stderr, flush=True)
            groups = [(engines, group) for engines, group in groups if engines not in missing]
    merged = None
    for repeat in range(args.repeat):
        if args.repeat > 1:
            print(f"      repeat {repeat + 1} of {args.repeat}", flush=True)
        runs = [(engines, group_files, _json_path(json_path, engines, repeat, args.repeat))
                for engines, group_files in groups if group_files]
        for part in _run_repeat(args, runs, first=repeat):
            for bench in part["benchmarks"]:
                bench.setdefault("extra_info", {})["repeat"] = repeat + 1
            if merged is None:
                merged = part
            else:
                merged["benchmarks"].extend(part["benchmarks"])
    if args.isolate or args.repeat > 1:
        with open(json_path, "w") as f:
            json.dump(merged, f)
    return merged


def _json_path(json_path, engines, repeat, repeats):
    path = json_path if engines is None else f"{json_path[:-5]}-{engines.split(',')[0]}.json"
    return f"{path[:-5]}-{repeat + 1}.json" if repeats > 1 else path


def _run_repeat(args, runs, first):
    """One repeat: a pytest process per entry of ``runs`` (engines, files, JSON path); their JSON, in order.

    Several processes (``--isolate``) run side by side and take turns, a burst of rounds each
    (`benchmarks.turns`); the engine that goes first at each benchmark rotates with ``first``.
    """
    referee = Referee([SUITES[suite][:-3] for suite in args.suites], first=first % len(runs)) if len(runs) > 1 \
        else None
    children = []
    for engines, group_files, path in runs:
        if os.path.exists(path):
            os.remove(path)
        command = [sys.executable, "-m", "pytest", *group_files, "-p", "no:cacheprovider", "-q",
                   "--benchmark-quiet", f"--benchmark-json={path}", f"--bench-models={','.join(args.models)}",
                   f"--bench-time={args.bench_time}", *(["--bench-quick"] if args.quick else []),
                   *([f"--bench-engines={engines}"] if engines else []), *args.pytest_args]
        print("      " + shlex.join(command[2:]), flush=True)
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=os.environ.get("SCRATCHNET_BENCH_TF_ONEDNN", "1"))
        env, pass_fds = referee.child_env(env) if referee else (env, ())
        children.append(subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=pass_fds))
    if referee:
        referee.started()
        referee.serve()
    parts = []
    for child, (_, _, path) in zip(children, runs):
        returncode = child.wait()
        if not os.path.exists(path):
            raise SystemExit(f"pytest-benchmark wrote no JSON (pytest exit code {returncode})")
        if returncode != 0:
            print(f"warning: pytest exit code {returncode}; the report shows what ran", file=sys.stderr)
        with open(path) as f:
            parts.append(json.load(f))
    return parts


def run_probes(args) -> dict:
    from benchmarks.memprobe import probe

    print(f"[2/4] memory and first-step probes ({args.probe_steps} steps, fresh process each)", flush=True)
    probes = {}
    for name in args.models:
        runs = {}
        runs_of = [("scratchnet_1", "scratchnet"), ("scratchnet_2", "scratchnet"), ("tensorflow", "tensorflow"),
                   ("pytorch", "pytorch")]
        for label, engine in ((label, engine) for label, engine in runs_of if installed(engine)):
            runs[label] = probe(engine, name, args.probe_steps)
            entry = runs[label]
            summary = entry.get("error") or (f"peak {entry['maxrss_mb']:.0f} MB, first step "
                                             f"{entry['first_step_s']:.3f} s")
            print(f"      {name:13s} {label:13s} {summary}", flush=True)
        probes[name] = runs
    return probes


def run_profiles(args) -> list:
    chosen = [name for name in workloads.SLOW_MODELS if name in args.models]
    if not chosen:
        return []
    print(f"[3/4] layer profiles of {', '.join(chosen)}", flush=True)
    steps = "1" if args.quick else "5"
    completed = subprocess.run([sys.executable, "-m", "benchmarks.stepprofile", *chosen, "--steps", steps, "--json"],
                               cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or [f"exit code {completed.returncode}"])[-1]
        print(f"warning: profile failed: {last}", file=sys.stderr)
        return []
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    info = report.machine()
    info["onednn"] = "off" if os.environ.get("SCRATCHNET_BENCH_TF_ONEDNN", "1") == "0" else "on"
    print(f"scratchnet benchmarks on {info['cpu']} ({info['usable_cpus']} usable CPUs, load "
          f"{info['loadavg'][0]:.2f}); OPENBLAS env: "
          + (", ".join(f"{k}={v}" for k, v in info["env"].items() if k.startswith("OPENBLAS")) or "none"), flush=True)
    if info["loadavg"][0] > 0.5 * (info["usable_cpus"] or 1):
        print(f"warning: load average {info['loadavg'][0]:.1f} on {info['usable_cpus']} CPUs: the machine is busy "
              "and the timings will be noisy (the report says so)", file=sys.stderr, flush=True)
    bench_json = run_suites(args)
    probes = {} if args.no_memory else run_probes(args)
    profiles = [] if args.no_profile else run_profiles(args)
    info["loadavg_end"] = os.getloadavg()
    command = "python -m benchmarks" + ("" if argv is None and len(sys.argv) == 1 else
                                        " " + shlex.join(sys.argv[1:] if argv is None else argv))
    text = report.render(report.index(bench_json), probes, profiles, info, quick=args.quick, command=command,
                         probe_steps=args.probe_steps)
    output = os.path.join(ROOT, args.output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output + ".tmp", "w") as f:
        f.write(text)
    os.replace(output + ".tmp", output)
    print("[4/4] report\n")
    print(text)
    print(f"\nwritten to {args.output} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
