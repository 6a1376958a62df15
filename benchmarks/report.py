"""The report of ``python -m benchmarks``: tables from pytest-benchmark's JSON, the memory probes and the profiles.

Ratios are scratchnet time / a yardstick's time in the same run (below 1.0: scratchnet is faster): against
TensorFlow (issue 5's goals), and against the best peer, the faster of TensorFlow and PyTorch for that model
and measurement. Times are medians. GFLOP/s use the analytic FLOP counts of `benchmarks.workloads`;
"% peak" divides by the 4096^2 float32 NumPy matmul measured in the same run.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform

import numpy as np

from benchmarks import workloads

GOALS = {name: (2.0 if name in workloads.SLOW_MODELS else 1.0) for name in workloads.MODELS}
"""Issue 5's bar for the training-step ratio (scratchnet / TF); emnist_cnn and deep_mnist aim for 1.0 later."""

LATENCY_GOAL = 0.5
"""The bar for single-image latency: scratchnet's at most half of TensorFlow's tf.function forward."""

PEERS = (("tensorflow", "TF"), ("pytorch", "PyTorch"))
"""The yardsticks, with the short names the tables use."""


# ------------------------------------------------------------------------------------------------------
# Machine
# ------------------------------------------------------------------------------------------------------
def machine() -> dict:
    """CPU, cores, load, library versions, BLAS threads and the environment switches that matter."""
    cpu, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]

    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    blas = []
    try:
        import numpy  # noqa: F401  (loads numpy's BLAS so threadpoolctl sees it)
        from threadpoolctl import threadpool_info

        blas = [f"{e.get('internal_api')} {e.get('version')} ({e.get('architecture')}, {e.get('num_threads')} threads)"
                for e in threadpool_info() if e.get("user_api") == "blas"]
    except Exception:  # noqa: BLE001 - reporting only: a missing figure must not stop the report
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        affinity = os.cpu_count()
    env = {key: value for key, value in sorted(os.environ.items())
           if key.startswith(("OPENBLAS", "OMP_", "MKL_", "NUMBA_", "SCRATCHNET_", "TF_ENABLE_ONEDNN"))}
    return {
        "commit": _commit(),
        "cpu": cpu,
        "simd": simd,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "numba": version("numba"),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "torch": version("torch"),
        "pytest-benchmark": version("pytest-benchmark"),
        "blas": blas,
        "env": env,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _commit() -> str:
    """The repository's HEAD (short hash), with "+ local changes" when the tree is dirty; "unknown" without git."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")  # read-only: never touch the index (a commit may be running)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, env=env).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, env=env).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" + local changes" if dirty else "")


# ------------------------------------------------------------------------------------------------------
# Reading pytest-benchmark's JSON
# ------------------------------------------------------------------------------------------------------
def index(bench_json: dict) -> dict:
    """{(suite, key, engine): {"median": s, "first_call_s": s, "flops": f, "rounds": r, ...}}.

    A benchmark run several times (``--repeat``) pools the rounds of all its runs: the median, IQR and
    minimum are those of the pooled rounds; "repeat_medians" lists each run's median, in order.
    """
    runs = {}
    for bench in bench_json.get("benchmarks", []):
        info = bench.get("extra_info", {})
        suite = info.get("suite")
        if suite in ("train", "infer", "latency", "optimizer"):
            key = info["model"]
        elif suite == "ops":
            key = (info["case"], info["direction"])
        else:
            key = suite
        runs.setdefault((suite, key, info.get("engine")), []).append((info, bench["stats"]))
    results = {}
    for where, entries in runs.items():
        info, stats = entries[0]
        if len(entries) == 1 or not all(s.get("data") for _, s in entries):
            results[where] = {**info, "median": stats["median"], "iqr": stats["iqr"], "rounds": stats["rounds"],
                              "min": stats["min"], "repeat_medians": [s["median"] for _, s in entries]}
            continue
        pooled = np.sort(np.concatenate([np.asarray(s["data"], dtype=float) for _, s in entries]))
        q1, q3 = np.percentile(pooled, [25, 75])
        results[where] = {**info, "median": float(np.median(pooled)), "iqr": float(q3 - q1),
                          "rounds": int(pooled.size), "min": float(pooled[0]),
                          "repeat_medians": [s["median"] for _, s in entries]}
    return results


def best_peer(results: dict, suite: str, key) -> tuple[str, dict] | tuple[None, None]:
    """(short name, entry) of the faster yardstick (lower median) for one benchmark, or (None, None)."""
    found = [(results[(suite, key, engine)]["median"], label, results[(suite, key, engine)])
             for engine, label in PEERS if (suite, key, engine) in results]
    if not found:
        return None, None
    _, label, entry = min(found, key=lambda item: item[0])
    return label, entry


def repeat_ratios(results: dict, suite: str = "train") -> list[str]:
    """One line per model: scratchnet ÷ TF and ÷ the best peer for each repeat (runs paired in order)."""
    lines = []
    for name in workloads.MODELS:
        sn = results.get((suite, name, "scratchnet"))
        peers = [(label, results[(suite, name, engine)]) for engine, label in PEERS if (suite, name, engine) in results]
        if not sn or not peers or len(sn["repeat_medians"]) < 2:
            continue
        parts = []
        tf = results.get((suite, name, "tensorflow"))
        if tf:
            parts.append(("TF", [a / b for a, b in zip(sn["repeat_medians"], tf["repeat_medians"])]))
        if len(peers) > 1:
            best = [min(times) for times in zip(*(entry["repeat_medians"] for _, entry in peers))]
            parts.append(("best peer", [a / b for a, b in zip(sn["repeat_medians"], best)]))
        elif not tf:
            label, entry = peers[0]
            parts.append((label, [a / b for a, b in zip(sn["repeat_medians"], entry["repeat_medians"])]))
        lines.append(f"- {name}: " + "; ".join(
            f"÷ {label} " + ", ".join(f"{r:.2f}" for r in ratios) + f" (median {float(np.median(ratios)):.2f})"
            for label, ratios in parts))
    return lines


def _policy(results: dict) -> str:
    policy = (results.get(("peak", "peak", "numpy")) or {}).get("thread_policy")
    if not policy:
        return "not recorded (peak suite not run)"
    return f"{policy.get('policy')} ({policy.get('num_threads')} threads of {policy.get('available_cores')} cores)"


def peak_gflops(results: dict) -> float | None:
    peak = results.get(("peak", "peak", "numpy"))
    return peak["flops"] / peak["median"] / 1e9 if peak else None


# ------------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------------
def _ms(seconds):
    if seconds is None:
        return "—"
    ms = 1e3 * seconds
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _ratio(a, b):
    return f"{a / b:.2f}" if a and b else "—"


def _gflops(flops, seconds):
    return f"{flops / seconds / 1e9:.1f}" if flops and seconds else "—"


def _pct(flops, seconds, peak):
    return f"{100 * flops / seconds / 1e9 / peak:.0f}%" if flops and seconds and peak else "—"


def _median(entry):
    return entry["median"] if entry else None


def _us(seconds):
    return "—" if seconds is None else f"{1e6 * seconds:.0f}" if seconds >= 1e-5 else f"{1e6 * seconds:.1f}"


def _peer_cell(label, entry, fmt=_ms):
    return f"{fmt(entry['median'])} ({label})" if entry else "—"


def model_table(results: dict, suite: str, peak: float | None, goals: bool) -> list[str]:
    head = "| model | batch | scratchnet ms | TF ms | PyTorch ms | best peer ms | sn ÷ TF | "
    head += "goal | " if goals else ""
    head += "sn ÷ best peer | GFLOP | sn GFLOP/s | TF GFLOP/s | PyTorch GFLOP/s | sn % peak | best peer % peak |"
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for name in workloads.MODELS:
        sn = results.get((suite, name, "scratchnet"))
        tf = results.get((suite, name, "tensorflow"))
        pt = results.get((suite, name, "pytorch"))
        if not (sn or tf or pt):
            continue
        entry = sn or tf or pt
        flops = entry["flops"]
        sn_t, tf_t, pt_t = _median(sn), _median(tf), _median(pt)
        label, best = best_peer(results, suite, name)
        best_t = _median(best)
        row = (f"| {name} | {entry.get('batch', '—')} | {_ms(sn_t)} | {_ms(tf_t)} | {_ms(pt_t)} | "
               f"{_peer_cell(label, best)} | {_ratio(sn_t, tf_t)} | ")
        if goals:
            verdict = ""
            if sn_t and tf_t:
                verdict = " ✓" if sn_t / tf_t <= GOALS[name] else " ✗"
            row += f"≤ {GOALS[name]:.1f}{verdict} | "
        row += (f"{_ratio(sn_t, best_t)} | {flops / 1e9:.3g} | {_gflops(flops, sn_t)} | {_gflops(flops, tf_t)} | "
                f"{_gflops(flops, pt_t)} | {_pct(flops, sn_t, peak)} | {_pct(flops, best_t, peak)} |")
        lines.append(row)
    return lines


def latency_table(results: dict) -> list[str]:
    """One image through each engine: microseconds, the ratio to TF against its goal, the ratio to the best."""
    lines = ["| model | scratchnet µs | TF µs | PyTorch µs | sn ÷ TF | goal | best peer µs | sn ÷ best peer |",
             "|---|" + "---:|" * 7]
    for name in workloads.MODELS:
        sn = results.get(("latency", name, "scratchnet"))
        tf = results.get(("latency", name, "tensorflow"))
        pt = results.get(("latency", name, "pytorch"))
        if not (sn or tf or pt):
            continue
        sn_t, tf_t = _median(sn), _median(tf)
        label, best = best_peer(results, "latency", name)
        verdict = (" ✓" if sn_t / tf_t <= LATENCY_GOAL else " ✗") if sn_t and tf_t else ""
        lines.append(f"| {name} | {_us(sn_t)} | {_us(tf_t)} | {_us(_median(pt))} | {_ratio(sn_t, tf_t)} | "
                     f"≤ {LATENCY_GOAL}{verdict} | {_peer_cell(label, best, _us)} | {_ratio(sn_t, _median(best))} |")
    return lines


def op_table(results: dict, peak: float | None) -> list[str]:
    head = ("| op (where) | shape | dir | scratchnet ms | numpy ref ms | TF ms | sn / TF | sn GFLOP/s | TF GFLOP/s "
            "| sn % peak |")
    lines = [head, "|---|---|---|" + "---:|" * 7]
    for case in workloads.op_cases():
        for direction in ("forward", "backward"):
            key = (case.id, direction)
            sn = results.get(("ops", key, "scratchnet"))
            ref = results.get(("ops", key, "numpy"))
            tf = results.get(("ops", key, "tensorflow"))
            if not (sn or ref or tf):
                continue
            flops = (sn or ref or tf)["flops"]
            sn_t, tf_t = _median(sn), _median(tf)
            lines.append(
                f"| {case.op} ({case.where}) | {case.id} | {direction[:3]} | {_ms(sn_t)} | {_ms(_median(ref))} | "
                f"{_ms(tf_t)} | {_ratio(sn_t, tf_t)} | {_gflops(flops, sn_t)} | {_gflops(flops, tf_t)} | "
                f"{_pct(flops, sn_t, peak)} |")
    return lines


def op_breakdown(results: dict, name: str) -> list[str]:
    """Per layer of one model: conv/pool forward+backward, scratchnet vs TF (from the hot-op suite)."""
    lines = ["| layer | op | sn fwd+bwd ms | TF fwd+bwd ms | sn − TF ms |", "|---|---|---:|---:|---:|"]
    total_sn = total_tf = 0.0
    complete = True
    for case in workloads.op_cases():
        layers = [where.split("/", 1)[1] for where in case.models if where.startswith(name + "/")]
        if not layers:
            continue
        sn = [results.get(("ops", (case.id, d), "scratchnet")) for d in ("forward", "backward")]
        tf = [results.get(("ops", (case.id, d), "tensorflow")) for d in ("forward", "backward")]
        if not all(sn) or not all(tf):
            complete = False
            continue
        sn_t = sum(e["median"] for e in sn)
        tf_t = sum(e["median"] for e in tf)
        total_sn += sn_t
        total_tf += tf_t
        lines.append(f"| {', '.join(layers)} | {case.id} | {_ms(sn_t)} | {_ms(tf_t)} | {1e3 * (sn_t - tf_t):+.2f} |")
    if len(lines) == 2:
        return []
    lines.append(f"| **all conv/pool** | | {_ms(total_sn)} | {_ms(total_tf)} | {1e3 * (total_sn - total_tf):+.2f} |")
    if not complete:
        lines.append("| (some ops missing from this run) | | | | |")
    return lines


def optimizer_table(results: dict) -> list[str]:
    lines = ["| model | optimizer | weights | scratchnet ms | TF ms | PyTorch ms | sn ÷ TF | sn ÷ best peer |",
             "|---|---|---:|" + "---:|" * 5]
    for name in workloads.MODELS:
        sn = results.get(("optimizer", name, "scratchnet"))
        tf = results.get(("optimizer", name, "tensorflow"))
        pt = results.get(("optimizer", name, "pytorch"))
        if not (sn or tf or pt):
            continue
        entry = sn or tf or pt
        _, best = best_peer(results, "optimizer", name)
        lines.append(f"| {name} | {entry.get('optimizer')} | {entry.get('params'):,} | {_ms(_median(sn))} | "
                     f"{_ms(_median(tf))} | {_ms(_median(pt))} | {_ratio(_median(sn), _median(tf))} | "
                     f"{_ratio(_median(sn), _median(best))} |")
    return lines


def warmup_table(results: dict) -> list[str]:
    engines = (("scratchnet", "sn"), ("tensorflow", "TF"), ("pytorch", "PyTorch"))
    suites = (("train", "train"), ("infer", "infer"), ("latency", "one image"))
    head = "| model | " + " | ".join(f"{short} {what} s" for _, what in suites for _, short in engines) + " |"
    lines = [head, "|---|" + "---:|" * (len(engines) * len(suites))]
    for name in workloads.MODELS:
        cells = []
        for suite, _ in suites:
            for engine, _ in engines:
                entry = results.get((suite, name, engine))
                cells.append(f"{entry['first_call_s']:.3f}" if entry else "—")
        if any(c != "—" for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def memory_table(probes: dict) -> list[str]:
    lines = ["| model | sn peak RSS MB | TF peak RSS MB | PyTorch peak RSS MB | sn / TF | goal | "
             "sn first step s (run 1) | sn first step s (run 2, cached) | TF first step s | PyTorch first step s | "
             "sn import s | TF import s | PyTorch import s |",
             "|---|" + "---:|" * 12]
    for name in workloads.MODELS:
        runs = probes.get(name)
        if not runs:
            continue
        sn1, sn2, tf, pt = (runs.get(label) for label in ("scratchnet_1", "scratchnet_2", "tensorflow", "pytorch"))

        def get(entry, key, fmt):
            if not entry or "error" in entry or entry.get(key) is None:
                return "error" if entry and "error" in entry else "—"
            return fmt.format(entry[key])

        sn_mem = sn2 if sn2 and "error" not in sn2 else sn1
        ratio, verdict = "—", ""
        if sn_mem and tf and "error" not in sn_mem and "error" not in tf:
            ratio = f"{sn_mem['maxrss_mb'] / tf['maxrss_mb']:.2f}"
            verdict = " ✓" if sn_mem["maxrss_mb"] * 3 <= tf["maxrss_mb"] else " ✗"
        first2 = get(sn2, "first_step_s", "{:.3f}")
        if sn2 and sn2.get("first_step_s") is not None:
            first2 += " ✓" if sn2["first_step_s"] < 1.0 else " ✗"
        lines.append(
            f"| {name} | {get(sn_mem, 'maxrss_mb', '{:.0f}')} | {get(tf, 'maxrss_mb', '{:.0f}')} | "
            f"{get(pt, 'maxrss_mb', '{:.0f}')} | {ratio} | ≤ 0.33{verdict} | {get(sn1, 'first_step_s', '{:.3f}')} | "
            f"{first2} | {get(tf, 'first_step_s', '{:.3f}')} | {get(pt, 'first_step_s', '{:.3f}')} | "
            f"{get(sn_mem, 'import_s', '{:.2f}')} | {get(tf, 'import_s', '{:.2f}')} | "
            f"{get(pt, 'import_s', '{:.2f}')} |")
    errors = [f"- {name} {which}: {entry['error']}" for name, runs in probes.items()
              for which, entry in runs.items() if entry and "error" in entry]
    return lines + ([""] + errors if errors else [])


def _pytorch_setup(results: dict) -> str:
    """One sentence on how PyTorch ran, from what its benchmarks recorded."""
    entries = [entry for (_, _, engine), entry in sorted(results.items(), key=str) if engine == "pytorch"]
    if not entries:
        return "PyTorch did not run."
    threads = sorted({entry.get("threads") for entry in entries if entry.get("threads")})
    settings = {}
    for entry in entries:
        if entry.get("settings"):
            settings.setdefault(entry["settings"], set()).add(entry.get("model"))
    described = "; ".join(f"{text} ({', '.join(m for m in workloads.MODELS if m in models)})"
                          for text, models in settings.items())
    return (f"PyTorch runs its CPU build with `torch.set_num_threads({'/'.join(map(str, threads)) or '?'})`, "
            "scratchnet's thread count, its fastest set-up measured here (`python -m benchmarks.torch_side`; "
            "`torch.compile` was slower): " + (described or "settings not recorded") + "; twins start from "
            "scratchnet's initial weights, inputs already tensors, fused cross-entropy losses from logits.")


def render(results: dict, probes: dict, profiles: list, info: dict, *, quick: bool, command: str,
           probe_steps: int) -> str:
    peak = peak_gflops(results)
    out = ["# scratchnet vs TensorFlow and PyTorch: benchmarks", ""]
    if quick:
        out += ["> **SMOKE RUN (`--quick`): 2-3 rounds per benchmark on a possibly busy machine. These numbers "
                "say the harness works, nothing about speed.**", ""]
    # The load at the start says whether other work shared the machine; the load at the end is mostly the
    # benchmark's own (it keeps both cores busy for minutes), so it is reported in the machine line only.
    busy = info["loadavg"][0] > 0.5 * (info["usable_cpus"] or 1)
    if busy and not quick:
        out += [f"> **Warning: the machine was busy (load average {info['loadavg'][0]:.1f} at start on "
                f"{info['usable_cpus']} CPUs).** Multi-threaded BLAS and OpenMP calls degrade badly under load "
                "(a thread that waits for a descheduled partner), so the scratchnet and PyTorch numbers are "
                "pessimistic and noisy. Re-run on a quiet machine.", ""]
    out += [f"Written by `{command}` on {info['date']}. Times are medians of pytest-benchmark rounds, in "
            "milliseconds; **sn ÷ TF = scratchnet ÷ TensorFlow in the same run** (below 1: scratchnet is faster; "
            "the goals are set against it), and **sn ÷ best peer = scratchnet ÷ the faster of TensorFlow and "
            "PyTorch** for that model and measurement. "
            "TensorFlow runs as users run it: oneDNN on, `@tf.function(jit_compile=False)` train steps "
            "(GradientTape + `optimizer.apply_gradients`), inputs already tensors. " + _pytorch_setup(results)
            + " Warm-up (numba compile or cache load, TF tracing) is outside the timed rounds and reported apart. "
            "Data are synthetic, at the MODELS.md batch sizes. FLOPs are analytic: 2 per multiply-add of the "
            "convs and dense layers; a training step counts 3x the forward pass.", ""]
    out += ["## Machine", ""]
    out += [f"- CPU: {info['cpu']} ({', '.join(info['simd']) or 'no AVX'}); {info['logical_cpus']} logical CPUs, "
            f"{info['usable_cpus']} usable by this process; load average at start "
            f"{' / '.join(f'{x:.2f}' for x in info['loadavg'])}"
            + (f", at end {' / '.join(f'{x:.2f}' for x in info['loadavg_end'])}" if "loadavg_end" in info else ""),
            f"- scratchnet commit: {info.get('commit', 'unknown')}",
            f"- Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, TensorFlow "
            f"{info['tensorflow']} (Keras {info['keras']}, oneDNN {info.get('onednn', 'on')}), PyTorch "
            f"{info.get('torch', 'not recorded')}, pytest-benchmark {info['pytest-benchmark']}",
            f"- BLAS: {'; '.join(info['blas']) or 'unknown'}",
            f"- scratchnet thread policy in the benchmark process: {_policy(results)}",
            "- Environment: " + (", ".join(f"`{k}={v}`" for k, v in info["env"].items()) or "none of OPENBLAS_*, "
                                 "OMP_*, MKL_*, NUMBA_*, SCRATCHNET_*, TF_ENABLE_ONEDNN_OPTS set")
            + (" (**OPENBLAS_CORETYPE is set**: OpenBLAS uses that kernel family instead of detecting the CPU)"
               if "OPENBLAS_CORETYPE" in info["env"] else " (OPENBLAS_CORETYPE not set: OpenBLAS detects the CPU)"),
            "- Measured sgemm peak (NumPy 4096² float32 matmul, this run): "
            + (f"**{peak:.1f} GFLOP/s**" if peak else "not measured"), ""]
    table = model_table(results, "train", peak, goals=True)
    if len(table) > 2:
        out += ["## Training step (one optimizer update at the MODELS.md batch)", ""] + table + [""]
        per_repeat = repeat_ratios(results)
        if per_repeat:
            how = ("each engine in its own process, the processes taking turns a burst of rounds at a time "
                   "(each model's engines measured one after the other, their rounds in bursts that alternate, "
                   "the engine that goes first rotating)" if "--isolate" in command
                   else "the engines' runs alternating")
            out += [f"The suites ran several times (`--repeat`), {how}; the table pools the rounds of all "
                    "repeats. The ratios of each repeat:", ""] + per_repeat + [""]
    table = model_table(results, "infer", peak, goals=False)
    if len(table) > 2:
        out += [f"## Inference ({workloads.INFERENCE_IMAGES} images, batches of {workloads.INFERENCE_BATCH})", ""]
        out += table + [""]
        per_repeat = repeat_ratios(results, "infer")
        if per_repeat:
            out += ["The ratios of each repeat:", ""] + per_repeat + [""]
    table = latency_table(results)
    if len(table) > 2:
        out += ["## Single-image latency (one 28x28 image through a loaded model)", "",
                "What `python -m scratchnet.predict` does with one prepared image: a NumPy array in, the "
                "probabilities out as NumPy. scratchnet: `model.predict` on a model saved and loaded back; "
                "TF: its fastest way, a `@tf.function` forward of `tf.constant(image)`; PyTorch: the forward under "
                f"`torch.inference_mode()`. Medians of single calls, in microseconds. Goal: scratchnet ≤ "
                f"{LATENCY_GOAL} of TF.", ""] + table + [""]
    table = op_table(results, peak)
    if len(table) > 2:
        out += ["## Hot ops at the zoo's shapes (batch = the model's training batch)", "",
                "scratchnet = the numba kernels (the default backend); numpy ref = the readable `scratchnet.ops`; "
                "TF = `tf.nn.conv2d` / `Conv2DBackpropInput` + `Conv2DBackpropFilter` / `max_pool2d` / "
                "`MaxPoolGrad` in a `tf.function`. Backward = dx and dkernel (conv) or dx (pool).", ""]
        out += table + [""]
    for name in workloads.SLOW_MODELS:
        breakdown = op_breakdown(results, name)
        if breakdown:
            out += [f"### {name}: conv/pool time per training step, scratchnet vs TF", ""] + breakdown + [""]
    table = optimizer_table(results)
    if len(table) > 2:
        out += ["## Optimizer update alone (all weights, one step)", ""] + table + [""]
    table = warmup_table(results)
    if len(table) > 2:
        out += ["## Warm-up (first call, outside the timed rounds)", "",
                "scratchnet: numba compile or disk-cache load plus first-touch allocation; TF: tracing the "
                "tf.function; PyTorch: first-touch allocation and oneDNN's primitive set-up.", ""] + table + [""]
    if probes:
        out += [f"## Peak memory and first step (fresh processes, {probe_steps} training steps each)", "",
                "Peak RSS = `ru_maxrss` of the child process from `os.wait4` (imports, model, one synthetic "
                "batch, optimizer state, the steps). scratchnet runs twice: run 1 may compile kernels, run 2 "
                "loads them from numba's disk cache (the 'second run' figure; goal < 1 s). Goal for memory: "
                "scratchnet ≤ 1/3 of TF.", ""]
        out += memory_table(probes) + [""]
    if profiles:
        out += ["## Where a scratchnet training step goes (instrumented, `python -m benchmarks.stepprofile`)", ""]
        from benchmarks.stepprofile import format_profile

        for result in profiles:
            out += [format_profile(result), ""]
    out += ["## Reproduce", "", "```", command, "```", "",
            "Raw pytest-benchmark JSON: `.benchmarks/latest.json` (not committed). One suite by hand: "
            "`python -m pytest benchmarks/bench_ops.py --bench-models deep_mnist`.", ""]
    return "\n".join(out)
