"""Where one scratchnet training step spends its time, layer by layer: ``python -m benchmarks.stepprofile MODEL``.

Each layer's ``forward`` and ``backward`` (and the loss and the optimizer update) are wrapped with a timer
on the model instance; after one untimed warm-up step, ``--steps`` steps are timed and the median per step
is printed for every part, with its share of the step. The wrapped step is a few percent slower than the
plain one (one ``perf_counter`` pair per part).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict


def profile(name: str, steps: int = 5, seed: int = 0) -> dict:
    """Median seconds per training step of every part of zoo model ``name``'s step, in execution order."""
    from benchmarks import workloads
    from scratchnet import zoo

    model = zoo.build(name, seed=seed)
    x, y = workloads.make_data(name, workloads.batch_size(name), seed)
    current: dict[str, float] = defaultdict(float)
    order: list[str] = []

    def timed(label, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                current[label] += time.perf_counter() - start
                if label not in order:
                    order.append(label)
        return wrapper

    for layer in model.layers:
        shape = "x".join(map(str, layer.input_shape))
        label = f"{layer.name} ({type(layer).__name__}, in {shape}"
        if getattr(layer, "activation", None) not in (None, "linear"):
            label += f", {layer.activation}"
        label += ")"
        layer.forward = timed(f"forward  {label}", layer.forward)
        layer.backward = timed(f"backward {label}", layer.backward)
    model.loss.forward = timed("loss forward", model.loss.forward)
    model.loss.backward = timed("loss backward", model.loss.backward)
    model.optimizer.apply = timed(f"optimizer ({type(model.optimizer).__name__}) update", model.optimizer.apply)

    model.train_step(x, y)  # warm-up: kernels compiled / loaded, buffers allocated
    per_part = defaultdict(list)
    totals = []
    for _ in range(steps):
        current.clear()
        start = time.perf_counter()
        model.train_step(x, y)
        totals.append(time.perf_counter() - start)
        for label in order:
            per_part[label].append(current.get(label, 0.0))
    step = statistics.median(totals)
    parts = [{"part": label, "ms": 1e3 * statistics.median(per_part[label]),
              "share": statistics.median(per_part[label]) / step} for label in order]
    accounted = sum(part["ms"] for part in parts)
    parts.append({"part": "other (train_step glue, casts, label checks)", "ms": 1e3 * step - accounted,
                  "share": (1e3 * step - accounted) / (1e3 * step)})
    return {"model": name, "batch": workloads.batch_size(name), "step_ms": 1e3 * step, "steps": steps,
            "parts": parts}


def format_profile(result: dict) -> str:
    lines = [(f"{result['model']} (batch {result['batch']}): {result['step_ms']:.2f} ms per step "
              f"(median of {result['steps']}, instrumented)"), "",
             "| part | ms | share |", "|---|---:|---:|"]
    for part in sorted(result["parts"], key=lambda p: -p["ms"]):
        lines.append(f"| {part['part']} | {part['ms']:.2f} | {100 * part['share']:.0f}% |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stepprofile", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of tables")
    args = parser.parse_args(argv)
    results = [profile(name, args.steps) for name in args.models]
    if args.json:
        print(json.dumps(results))
    else:
        print("\n\n".join(format_profile(r) for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
