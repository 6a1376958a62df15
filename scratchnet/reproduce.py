"""``python -m scratchnet.reproduce``: train every zoo model with its source's recipe and tabulate the results.

For each model and seed it runs the train CLI's ``run`` (same data, same defaults, nothing special-cased) on
the real data it can find, then writes a markdown table: model, dataset, what the source reported, what we
got (mean and each seed), and the training time. Models whose own dataset is missing (EMNIST, notMNIST
offline) train on MNIST as a stand-in, and the table says so.

Under ``mpirun -n N`` (or ``srun``) the (model, seed) runs are spread over the processes with
``mpi4py.futures`` (``scratchnet.distributed.task_pool``): rank 0 hands the next run to whichever process is
free and writes the same report; each run trains in one process. Runs differ in length by a factor of a
thousand (logreg takes seconds, emnist_cnn hours), so a queue keeps the processes busy where a fixed split
by rank would leave most of them idle behind the one that drew emnist_cnn.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

from scratchnet import distributed, train, zoo
from scratchnet.fileio import atomic_write

# The dataset each model falls back to when its own is not on this machine.
STAND_IN = "mnist"


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m scratchnet.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=zoo.NAMES, default=list(zoo.NAMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-dir", type=Path, help="directory with the datasets' files")
    parser.add_argument("--out", type=Path, default=Path("docs/reproduction.md"), help="markdown file to write")
    parser.add_argument("--results", type=Path, help="JSON lines file to append each run's summary to")
    parser.add_argument("--from-results", type=Path, metavar="FILE",
                        help="write the table from a --results file of earlier runs, without training")
    parser.add_argument("--steps", type=_positive_int,
                        help="cap every run at this many steps: a quick check of the sweep, not a reproduction")
    return parser


def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:
        return exit.code
    if args.from_results:
        return _table_from_results(args)
    try:
        comm = distributed.world()
    except distributed.LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with distributed.task_pool(comm) as pool:
        if pool is None:
            return 0  # a worker process: its runs are done and rank 0 has written the report
        return _sweep(args, pool)


def _sweep(args, pool):
    """Submit every (model, seed) run to ``pool``, then tabulate them model by model as they finish."""
    datasets = {name: dataset_for(name, args.data_dir) for name in args.models}
    futures = {name: [pool.submit(_run_one, name, datasets[name], seed, args.data_dir, args.steps)
                      for seed in args.seeds] for name in args.models}
    rows = []
    for name in args.models:
        runs = []
        for index, future in enumerate(futures[name]):
            summary = future.result()
            if summary is None:
                for later in futures[name][index + 1:]:
                    later.cancel()  # as one process would: a model that fails is not run again
                break
            runs.append(summary)
            if args.results:
                with open(args.results, "a") as results:
                    results.write(json.dumps(summary) + "\n")
        rows.append((name, datasets[name], runs))
        _write_table(args.out, rows, args.seeds)  # after every model, so a long run leaves a usable file
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _table_from_results(args):
    """Tabulate the runs recorded in a --results file (e.g. several reproduce processes run side by side)."""
    try:
        runs = [json.loads(line) for line in args.from_results.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        print(f"error: {args.from_results}: cannot read the results ({error})", file=sys.stderr)
        return 1
    rows = []
    for name in args.models:
        mine = [run for run in runs if run["model"] == name and run["seed"] in args.seeds]
        if mine:
            rows.append((name, mine[0]["dataset"], mine))
    _write_table(args.out, rows, args.seeds)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def dataset_for(name, data_dir=None):
    """The model's own dataset when it can be loaded here, else MNIST as a stand-in (``STAND_IN``)."""
    own = zoo.defaults(name).dataset
    if own in ("mnist", "kaggle"):
        return own
    from scratchnet import datasets

    try:
        datasets.load(own, data_dir=data_dir, download=False)
    except (datasets.DataError, OSError):
        return STAND_IN
    return own


def _run_one(name, dataset, seed, data_dir, steps=None):
    """One quiet training run through the CLI's own code path, in this process alone; returns its JSON summary
    (None on failure)."""
    print(f"training {name} on {dataset} with seed {seed} ...", file=sys.stderr, flush=True)
    argv = ["--model", name, "--dataset", dataset, "--seed", str(seed), "--json", "--quiet", "--no-save"]
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    if steps:
        argv += ["--steps", str(steps)]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = train.main(argv, single_process=True)
    if code != 0:
        print(f"  {name} seed {seed} failed with exit code {code}", file=sys.stderr)
        return None
    return json.loads(output.getvalue().strip().splitlines()[-1])


def _metric(name):
    """Which figure the source reported: validation accuracy for the Kaggle notebook, test accuracy else."""
    return "val_accuracy" if name == "kaggle_cnn" else "test_accuracy"


def _write_table(path, rows, seeds):
    lines = [
        "# Reproduction report",
        "",
        ("Every model of MODELS.md trained with its source's recipe (`scratchnet.zoo.defaults`) by "
         "`python -m scratchnet.reproduce`, on real data, one run per seed. Accuracy is the figure the source "
         "reported: test accuracy, except kaggle_cnn (validation accuracy on its 80/20 split) and logreg "
         "(binary \"is it a 4?\" test accuracy). Time is training time per run, without data loading."),
        "",
        (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
         f"{platform.python_version()}; written {time.strftime('%Y-%m-%d')}."),
        "",
        "| model | dataset | reported by the source | ours: mean (seeds " + ", ".join(map(str, seeds)) +
        ") | per seed | loss (mean) | training time (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, dataset, runs in rows:
        recipe = zoo.defaults(name)
        shown = dataset if dataset.startswith(recipe.dataset) else f"{dataset} (stand-in for {recipe.dataset})"
        if not runs:
            lines.append(f"| {name} | {shown} | {recipe.reported} | failed | | | |")
            continue
        metric = _metric(name)
        values = [run[metric] for run in runs]
        losses = [run[metric.replace("accuracy", "loss")] for run in runs]
        seconds = [run["train_seconds"] for run in runs]
        lines.append(
            f"| {name} | {shown} | {recipe.reported} | {100 * sum(values) / len(values):.2f}% | "
            + ", ".join(f"{100 * v:.2f}%" for v in values)
            + f" | {sum(losses) / len(losses):.4f} | {sum(seconds) / len(seconds):.1f} s |")
    with atomic_write(path, "w") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
