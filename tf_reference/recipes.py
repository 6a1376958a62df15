"""TensorFlow's own figure on a zoo recipe: train the TF twin with the MODELS.md recipe, on scratchnet's data.

When a scratchnet model lands below what its source reported, either scratchnet or the recipe is short.
The parity tests show scratchnet computes what TensorFlow computes step by step; this module settles the
rest by training TensorFlow ITSELF on the same recipe (`scratchnet.zoo.defaults`), the same images, splits
and scaling (`scratchnet.train.load_data` + `scratchnet.train.prepare`), and reporting the figure
``python -m scratchnet.reproduce`` reports (test accuracy; validation accuracy for kaggle_cnn). If
TensorFlow falls short too, the recipe is the limit, not scratchnet.

* "steps" recipes (softmax, notmnist_cnn, deep_mnist): the tf.nn twin (TensorFlow's own initialisers, seeded
  by ``keras.utils.set_random_seed``) trained by a ``tf.function`` step (GradientTape over ``twin.forward``
  in training mode and ``twin.loss``, the recipe's Keras optimizer), on the batches of scratchnet's
  ``train.batches`` generator with ``numpy.random.default_rng(seed)``: the same batch order as scratchnet.
* "epochs" recipes (mlp, kaggle_cnn, emnist_cnn): Keras on the recipe, nothing more: the twin's
  ``keras.Sequential`` compiled with ``Adam(learning_rate)`` and sparse categorical cross-entropy, then
  ``fit(x, y, batch_size, epochs, validation_data, shuffle=True)`` and ``evaluate``.

Models whose dataset is not on this machine (notMNIST, EMNIST) train on MNIST as a stand-in, as
``scratchnet.reproduce`` does. logreg (full-batch, float64, no random part) is not supported.

    python -m tf_reference.recipes --model softmax --model mlp --seeds 0 1 2 [--output results.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from scratchnet import reproduce, train, zoo
from scratchnet.datasets import DataError
from scratchnet.fileio import atomic_write
from tf_reference import models as twins
from tf_reference.config import describe, deterministic

tf = deterministic()  # TensorFlow as tf_reference set it up (oneDNN off, op determinism on)

NAMES = tuple(name for name in zoo.NAMES if name != "logreg")
"""The models this module trains (logreg's full-batch float64 recipe is not supported)."""

EVALUATION_BATCH = 1000


def metric(name: str) -> str:
    """The figure the source reported, as ``scratchnet.reproduce`` reads it: validation accuracy for
    kaggle_cnn, test accuracy for the others."""
    return "val_accuracy" if name == "kaggle_cnn" else "test_accuracy"


def recipe_for(name: str, data_dir=None) -> zoo.Recipe:
    """The zoo recipe of `name`, on MNIST when its own dataset cannot be loaded here (the reproduce rule)."""
    return zoo.defaults(name).replace(dataset=reproduce.dataset_for(name, data_dir))


def load(name: str, recipe: zoo.Recipe, data_dir=None) -> dict:
    """The recipe's data as scratchnet trains on it: x/y arrays for train, val and test (None where the
    dataset has none), prepared by ``scratchnet.train.prepare``, and the dataset's ``name``."""
    data = train.load_data(recipe, data_dir)
    prepared = {"name": data["name"]}
    for part in ("train", "val", "test"):
        images, labels = data.get(f"x_{part}"), data.get(f"y_{part}")
        if labels is None:
            images = None
        prepared[f"x_{part}"], prepared[f"y_{part}"] = train.prepare(images, labels, name, recipe)
    return prepared


def run(name: str, seed: int, *, recipe: zoo.Recipe | None = None, data: dict | None = None,
        data_dir=None) -> dict:
    """Train the TF twin of `name` with `recipe` (default: `recipe_for(name)`) on `data` (default: `load`)
    from TensorFlow's own initial weights for `seed`; return the run's summary.

    The summary holds the recipe's settings, the last recorded training loss (``train_loss``),
    ``val_loss``/``val_accuracy`` and ``test_loss``/``test_accuracy`` (None without that split), ``metric``
    (the key of the reported figure), ``train_seconds``, ``dataset`` and ``history`` (the training loss
    every ``report_every`` steps, or Keras's per-epoch history).
    """
    if name not in NAMES:
        raise ValueError(f"`name` must be one of {', '.join(NAMES)}. Received: name={name!r}")
    recipe = recipe_for(name, data_dir) if recipe is None else recipe
    data = load(name, recipe, data_dir) if data is None else data
    twin = twins.build(name, seed=seed, dtype="float32", compile=False)
    start = time.perf_counter()
    if recipe.schedule == "steps":
        history = _train_steps(twin, data, recipe, seed)
    elif recipe.schedule == "epochs":
        history = _train_epochs(twin, data, recipe)
    else:
        raise ValueError(f"{name}: schedule {recipe.schedule!r} is not supported (only 'steps' and 'epochs')")
    seconds = time.perf_counter() - start
    summary = {"model": name, "dataset": data["name"], "seed": seed, "schedule": recipe.schedule,
               "steps": recipe.steps, "epochs": recipe.epochs, "batch_size": recipe.batch_size,
               "optimizer": recipe.optimizer, "learning_rate": recipe.learning_rate,
               "train_loss": history["loss"][-1], "train_seconds": round(seconds, 2), "metric": metric(name)}
    for part in ("val", "test"):
        x, y = data[f"x_{part}"], data[f"y_{part}"]
        loss, accuracy = _evaluate(twin, x, y) if x is not None else (None, None)
        summary.update({f"{part}_loss": loss, f"{part}_accuracy": accuracy})
    summary["history"] = history
    return summary


def _train_steps(twin: twins.Twin, data: dict, recipe: zoo.Recipe, seed: int) -> dict:
    """The TF1 schedule: ``recipe.steps`` optimizer steps on scratchnet's batch order. Returns the batch loss
    every ``report_every`` steps and at the last (``{"step": [...], "loss": [...]}``); raises
    FloatingPointError when one of them is not finite."""
    x, y = data["x_train"], data["y_train"]
    optimizer = twins.make_optimizer(recipe.optimizer, recipe.learning_rate, twin.dtype)
    optimizer.build(twin.variables)  # its slots exist before the step is traced

    @tf.function
    def step(x_batch, y_batch):
        with tf.GradientTape() as tape:
            outputs, logits = twin.forward(x_batch, training=True)
            loss = twin.loss(y_batch, outputs, logits)
        optimizer.apply_gradients(zip(tape.gradient(loss, twin.variables), twin.variables))
        return loss

    batch_indices = train.batches(len(x), recipe.batch_size, recipe.batch_order, np.random.default_rng(seed))
    history = {"step": [], "loss": []}
    for number in range(recipe.steps):
        index = next(batch_indices)
        loss = step(x[index], y[index])
        if number % recipe.report_every == 0 or number == recipe.steps - 1:
            loss = float(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"{twin.name}: training diverged at step {number}: the loss is {loss}")
            history["step"].append(number)
            history["loss"].append(loss)
    return history


def _train_epochs(twin: twins.Twin, data: dict, recipe: zoo.Recipe) -> dict:
    """Keras's ``fit`` with the recipe's batch size and epochs, Adam, validation after each epoch. Returns
    Keras's history (loss, accuracy, val_loss, val_accuracy per epoch)."""
    if recipe.optimizer != "adam" or recipe.steps is not None:
        raise ValueError(f"{twin.name}: the epochs schedule here is Keras fit with Adam and no step cap; "
                         f"received optimizer={recipe.optimizer!r}, steps={recipe.steps!r}")
    model = twin.keras_model
    model.compile(optimizer=twins.make_optimizer("adam", recipe.learning_rate, twin.dtype),  # keras's Adam
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    validation = (data["x_val"], data["y_val"]) if data["x_val"] is not None else None
    history = model.fit(data["x_train"], data["y_train"], batch_size=recipe.batch_size, epochs=recipe.epochs,
                        validation_data=validation, shuffle=True, verbose=0)
    return {key: [float(value) for value in values] for key, values in history.history.items()}


def _evaluate(twin: twins.Twin, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean loss and accuracy of the twin on (x, y), dropout off, in batches of `EVALUATION_BATCH`."""
    total_loss = correct = 0.0
    for start in range(0, len(x), EVALUATION_BATCH):
        x_batch, y_batch = x[start:start + EVALUATION_BATCH], y[start:start + EVALUATION_BATCH]
        outputs, logits = twin.forward(tf.constant(x_batch), training=False)
        total_loss += float(twin.loss(y_batch, outputs, logits)) * len(x_batch)
        correct += float(np.sum(np.argmax(logits.numpy(), axis=1) == y_batch))
    return total_loss / len(x), correct / len(x)


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------


def summarize(runs: list[dict]) -> dict[str, dict]:
    """Per model: the reported metric's mean, min and max over the runs' seeds."""
    summary = {}
    for name in dict.fromkeys(run["model"] for run in runs):
        values = [run[run["metric"]] for run in runs if run["model"] == name]
        summary[name] = {"metric": metric(name), "seeds": len(values), "mean": float(np.mean(values)),
                         "min": min(values), "max": max(values), "reported": zoo.defaults(name).reported}
    return summary


def render(runs: list[dict]) -> str:
    """The markdown tables: one row per run, then one row per model (mean, min, max over seeds)."""
    lines = ["| model | dataset | seed | TF metric | TF value | train loss | time |",
             "|---|---|---:|---|---:|---:|---:|"]
    for run in runs:
        lines.append(f"| {run['model']} | {run['dataset']} | {run['seed']} | {run['metric']} | "
                     f"{100 * run[run['metric']]:.2f}% | {run['train_loss']:.4f} | {run['train_seconds']:.1f} s |")
    lines += ["", "| model | TF metric | seeds | mean | min | max | reported by the source |",
              "|---|---|---:|---:|---:|---:|---|"]
    for name, row in summarize(runs).items():
        lines.append(f"| {name} | {row['metric']} | {row['seeds']} | {100 * row['mean']:.2f}% | "
                     f"{100 * row['min']:.2f}% | {100 * row['max']:.2f}% | {row['reported']} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tf_reference.recipes",
        description="Train the TensorFlow twin of a zoo model with its MODELS.md recipe on scratchnet's data "
                    "and report the figure scratchnet's reproduce reports (test accuracy; validation accuracy "
                    "for kaggle_cnn). logreg is not supported. Models whose dataset is missing train on MNIST.")
    parser.add_argument("--model", action="append", required=True, choices=NAMES, metavar="NAME",
                        help=f"model to train, repeatable; one of: {', '.join(NAMES)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--data-dir", type=Path, help="directory with the datasets' files")
    parser.add_argument("--output", type=Path, metavar="FILE.json", help="also write the runs as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir is not None and not args.data_dir.is_dir():
        print(f"error: --data-dir {args.data_dir}: directory not found", file=sys.stderr)
        return 1
    if args.output is not None and not args.output.resolve().parent.is_dir():
        print(f"error: cannot write {args.output}: directory {args.output.resolve().parent} does not exist",
              file=sys.stderr)
        return 1
    runs = []
    try:
        for name in dict.fromkeys(args.model):
            recipe = recipe_for(name, args.data_dir)
            data = load(name, recipe, args.data_dir)
            for seed in args.seeds:
                print(f"training {name} on {data['name']} with seed {seed} ...", file=sys.stderr, flush=True)
                result = run(name, seed, recipe=recipe, data=data)
                print(f"  {result['metric']} {result[result['metric']]:.4f} ({result['train_seconds']:.1f} s)",
                      file=sys.stderr, flush=True)
                runs.append(result)
                if args.output:  # after every run, so a long run leaves a usable file (written atomically)
                    with atomic_write(args.output, "w") as file:
                        json.dump({"setup": describe(), "runs": runs, "summary": summarize(runs)}, file, indent=2)
                        file.write("\n")
    except (DataError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(render(runs), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
