"""``python -m scratchnet.train``: train a model of the zoo on real data, evaluate it on the test set, save it.

With no arguments it trains the default convolutional model on MNIST (see ``DEFAULT_MODEL``) and saves it
where ``python -m scratchnet.predict`` looks for it. ``--model NAME`` trains one of the seven models of
MODELS.md with its source's recipe (``scratchnet.zoo.defaults``); every part of the recipe can be overridden
by a flag. ``--init-from MODEL`` fine-tunes a saved model instead of building a new one; with ``--dataset
folder:DIR`` it learns the drawings filed in DIR's class sub-folders (the corrections ``python -m
scratchnet.serve`` saves), mixed with images of the model's own dataset so it keeps what it knew, and writes
the result back over MODEL. Exit codes: 0 success, 1 bad data or a diverging run (one line on stderr), 2 usage
errors.

Under ``mpirun -n N`` (or ``srun``) the N processes train one model data-parallel (``scratchnet.distributed``):
each takes its rows of every batch, and only rank 0 prints, saves and draws plots. An error in any process
ends them all with exit code 1.
"""

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

from scratchnet import datasets, distributed, paths, zoo

# The default run: the Kaggle CNN's architecture on the full MNIST training set. It reaches >= 98.5% test
# accuracy in a few epochs (see docs/reproduction.md for measured figures).
DEFAULT_MODEL = "kaggle_cnn"
DEFAULT_RECIPE = dict(dataset="mnist", epochs=4, validation="split")

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))
"""The signals on which a run with --checkpoint-dir saves at the end of the step and stops. SIGUSR1 is the one
Open MPI's mpirun passes on to every process without killing them a moment later (as it does after SIGTERM)."""


# Fine-tuning on a folder of drawings: a handful of drawings, each shown REPEAT times per epoch, among MIX
# random images of the model's own dataset. More repeats learn the drawings faster and forget more of the rest.
FINETUNE_REPEAT = 20
FINETUNE_MIX = 3000
FINETUNE_EPOCHS = 2


class TrainingError(Exception):
    """A run that cannot go on (bad data, divergence); the CLI prints its message and exits 1."""


class UsageError(Exception):
    """Options that contradict each other or the model file; the CLI prints its message and exits 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.train",
        description="Train a handwriting model of the scratchnet zoo on real data, evaluate and save it. "
                    "With no arguments: the default CNN on MNIST, saved for `python -m scratchnet.predict`.")
    parser.add_argument("--model", choices=zoo.NAMES, help=f"model to train (default: {DEFAULT_MODEL} on MNIST)")
    parser.add_argument("--dataset", type=_dataset_name, metavar="NAME",
                        help=f"dataset: {', '.join(datasets.NAMES)}, or folder:DIR (with --init-from) for drawings "
                             "filed in DIR/<class>/ (default: the model's own)")
    parser.add_argument("--data-dir", type=Path,
                        help="directory holding the dataset's files (default: $SCRATCHNET_DATA, the cache, "
                             "a download, or the packaged copy)")
    parser.add_argument("--epochs", type=_positive_int, help="epochs (epoch-scheduled models)")
    parser.add_argument("--steps", type=_positive_int, help="training steps (caps epochs for epoch models)")
    parser.add_argument("--batch-size", type=_positive_int, help="mini-batch size")
    parser.add_argument("--learning-rate", type=_positive_float, help="optimizer learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling, dropout")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="floating-point type")
    parser.add_argument("--backend", choices=("numba", "numpy"),
                        help="conv/pool implementation: numba kernels (default) or the readable NumPy ops")
    parser.add_argument("--save", type=Path, metavar="PATH", help="where to save the model (.npz)")
    parser.add_argument("--no-save", action="store_true", help="do not save the trained model")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write curves, confusion matrix, samples")
    parser.add_argument("--tsne", action="store_true", help="with --plots, also the (slow) t-SNE picture")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars: a line per epoch, as when the output is not a terminal")
    tuning = parser.add_argument_group(
        "fine-tuning", "Start from a saved model instead of a new one. With --dataset folder:DIR (e.g. the "
                       "corrections python -m scratchnet.serve saves in ~/.cache/scratchnet/handwriting) it learns "
                       "those drawings mixed with its own dataset, and by default writes the model back over "
                       "MODEL (the server's Reload button then picks it up).")
    tuning.add_argument("--init-from", type=Path, metavar="MODEL",
                        help="saved model (.npz or .keras) to fine-tune; its name gives the recipe")
    tuning.add_argument("--repeat", type=_positive_int, metavar="N",
                        help=f"folder: show each drawing N times per epoch (default {FINETUNE_REPEAT})")
    tuning.add_argument("--mix", type=_non_negative_int, metavar="N",
                        help=f"folder: add N random training images of the mix dataset (default {FINETUNE_MIX})")
    tuning.add_argument("--mix-dataset", choices=datasets.NAMES, metavar="NAME",
                        help="folder: the dataset mixed in and tested before and after (default: the model's "
                             "own; mnist for the default model)")
    tuning.add_argument("--classes", metavar="NAMES",
                        help="folder: the model's class names, as python -m scratchnet.serve --classes takes them "
                             "(a dataset name or a comma-separated list; default: from the model's name and width)")
    by_epochs = ", ".join(name for name in zoo.NAMES if zoo.defaults(name).schedule == "epochs")
    by_steps = ", ".join(name for name in zoo.NAMES if zoo.defaults(name).schedule != "epochs")
    long_run = parser.add_argument_group(
        "checkpoints (every model)",
        f"A checkpoint holds the weights, the optimizer's state, every random generator, the position and the "
        f"history: a run resumed from it ends with the weights of the run never stopped, bit for bit. Models "
        f"trained by epochs ({by_epochs}) write one at every epoch's end, models trained by steps ({by_steps}) "
        f"every {zoo.Recipe.report_every} steps, and every run at its end. Under mpirun only rank 0 writes, and "
        "every process reads DIR on --resume: it must be on one machine or a shared file system.")
    long_run.add_argument("--checkpoint-dir", type=Path, metavar="DIR",
                          help="write checkpoints to DIR; SIGINT, SIGTERM or SIGUSR1 saves one at the end of the step "
                               "and prints the command that resumes (a second Ctrl-C stops at once; under "
                               "mpirun, send SIGUSR1: mpirun passes it on without killing the processes)")
    long_run.add_argument("--checkpoint-every", type=_positive_int, metavar="N",
                          help="write a checkpoint every N training steps (epoch models: as well as at every "
                               f"epoch's end; step models: instead of every {zoo.Recipe.report_every})")
    long_run.add_argument("--resume", action="store_true",
                          help="continue from the newest checkpoint in --checkpoint-dir (if there is one)")
    long_run.add_argument("--keep-checkpoints", type=_positive_int, default=2, metavar="K",
                          help="keep the newest K checkpoints (default: 2)")
    return parser


def _positive(convert, kind):
    """An argparse type: ``convert(text)``, accepted only if finite and > 0, else "expected a positive <kind>"."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive {kind}, got {text!r}")
        return value
    return parse


_positive_int = _positive(int, "integer")
_positive_float = _positive(float, "number")


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _dataset_name(text):
    """An argparse type: a dataset of ``datasets.NAMES`` or ``folder:DIR``."""
    if text in datasets.NAMES:
        return text
    if text.startswith(datasets.folder.PREFIX) and len(text) > len(datasets.folder.PREFIX):
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(datasets.NAMES)} or folder:DIR, got {text!r}")


def main(argv=None, *, single_process=False):
    """Run the CLI; returns the exit code (0 success, 1 bad data or divergence, 2 usage).

    Started by an MPI launcher, the processes train together (an error in one ends them all), unless
    ``single_process``: then this process trains alone (the reproduction sweep runs one training per process).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if (args.resume or args.checkpoint_every) and args.checkpoint_dir is None:
            parser.error("--resume and --checkpoint-every need --checkpoint-dir")
    except SystemExit as exit:  # argparse has printed the usage line (or --help)
        return exit.code
    from scratchnet import checkpoint
    from scratchnet.models import DivergenceError

    comm = None
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        comm = None if single_process else distributed.world()
        summary = run(args, comm)
    except checkpoint.Interrupted as stop:  # every process stops after the same step; rank 0 has saved
        if comm is None or comm.Get_rank() == 0:
            print(f"{stop.signal}: saved a checkpoint to {stop.path}\nresume with: {_resume_command(args)}",
                  file=sys.stderr, flush=True)
        return 128 + signal.Signals[stop.signal].value  # the shell's code of a process the signal ended
    except UsageError as error:
        build_parser().print_usage(sys.stderr)
        print(f"python -m scratchnet.train: error: {error}", file=sys.stderr)
        return distributed.abort(comm, 2)
    except (datasets.DataError, DivergenceError, TrainingError, checkpoint.CheckpointError,
            distributed.LaunchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return distributed.abort(comm, 1)
    except OSError as error:
        print(f"error: {error.strerror or error}: {error.filename}" if error.filename else f"error: {error}",
              file=sys.stderr)
        return distributed.abort(comm, 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return distributed.abort(comm, 130)
    if args.json and (comm is None or comm.Get_rank() == 0):
        print(json.dumps(summary))
    return 0


def run(args, comm=None):
    """Train as ``args`` say; returns the summary dictionary the ``--json`` line prints.

    ``comm``: an mpi4py communicator of several processes to train with, data-parallel (None: this one alone).
    """
    from scratchnet import engine

    if args.backend:
        engine.set_backend(args.backend)
    if args.init_from is not None:
        return finetune(args)
    if args.dataset and args.dataset.startswith(datasets.folder.PREFIX):
        raise UsageError("--dataset folder:DIR needs --init-from MODEL: the model's classes name the folders")
    given = _folder_options(args)
    if given:
        raise UsageError(f"{given[0]} is a fine-tuning option: it needs --init-from MODEL --dataset folder:DIR")
    default_run = args.model is None
    name = DEFAULT_MODEL if default_run else args.model
    recipe = zoo.defaults(name)
    if default_run:
        recipe = recipe.replace(**DEFAULT_RECIPE)
    recipe = recipe.replace(dataset=args.dataset, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size,
                            learning_rate=args.learning_rate, dtype=args.dtype)

    data = load_data(recipe, args.data_dir)
    num_classes = data["num_classes"]
    model = zoo.build(name, seed=args.seed, dtype=recipe.dtype, num_classes=num_classes,
                      learning_rate=recipe.learning_rate)
    if comm is not None:
        distributed.data_parallel(model, comm)  # the processes train it together, each on its rows of a batch
    chief = model.distribution.is_chief  # with several processes, only rank 0 prints, saves and plots
    say = _printer(args, chief)
    x_train, y_train = prepare(data["x_train"], data["y_train"], name, recipe)
    x_val, y_val = (prepare(data["x_val"], data["y_val"], name, recipe)
                    if data.get("x_val") is not None else (None, None))
    x_test, y_test = (prepare(data["x_test"], data["y_test"], name, recipe)
                      if data.get("y_test") is not None else (None, None))
    _check_split(recipe, len(x_train), model.distribution.size)
    say(f"model {name} ({model.count_params():,} parameters) on {data['name']}: "
        f"{len(x_train):,} training, {0 if x_val is None else len(x_val):,} validation, "
        f"{0 if x_test is None else len(x_test):,} test images; {_describe(recipe)}")

    backup = _checkpointing(name, recipe, args, say, model.distribution) if args.checkpoint_dir else None
    _warm_up(name, recipe, args, num_classes, x_train, y_train, say)
    start = time.perf_counter()
    history, steps, images = _train(model, (x_train, y_train, x_val, y_val), recipe, args, say, backup)
    train_seconds = time.perf_counter() - start

    summary = {"model": name, "dataset": data["name"], "epochs": history.get("epochs"), "steps": steps,
               "batch_size": recipe.batch_size, "learning_rate": recipe.learning_rate, "seed": args.seed,
               "train_seconds": round(train_seconds, 3),
               "images_per_second": round(images / train_seconds, 1) if train_seconds > 0 else None}
    if x_val is not None:
        val_loss, val_accuracy = model.evaluate(x_val, y_val, batch_size=1000, verbose=0)
        summary.update(val_loss=float(val_loss), val_accuracy=float(val_accuracy))
        say(f"validation: loss {val_loss:.4f}, accuracy {val_accuracy:.2%}")
    if x_test is not None:
        test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
        summary.update(test_loss=float(test_loss), test_accuracy=float(test_accuracy))
        say(f"test: loss {test_loss:.4f}, accuracy {test_accuracy:.2%} "
            f"(trained {train_seconds:.1f} s, {summary['images_per_second']:,.0f} images/s)")
    else:
        summary.update(test_loss=None, test_accuracy=None)
    if name == "logreg":
        _print_logreg_predictions(model, x_test, y_test, say)

    summary["saved_to"] = None
    if not args.no_save and chief:
        path = args.save or (paths.default_model_path() if default_run else paths.home() / "models" / f"{name}.npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        summary["saved_to"] = str(path)
        say(f"saved the model to {path}" + ("  (python -m scratchnet.predict uses it by default)"
                                             if path == paths.default_model_path() else ""))
    if args.plots and chief:
        from scratchnet import plots

        x_plot, y_plot = (x_val, y_val) if x_val is not None else (x_test, y_test)
        written = plots.save_all(args.plots, model, history, x_plot, y_plot,
                                 class_names=data.get("classes"), tsne=args.tsne)
        say(f"wrote {len(written)} pictures to {args.plots}")
    return summary


def _check_split(recipe, n, processes):
    """Every process needs a row of every batch, an epoch's short last one included: say so before training."""
    if processes == 1 or recipe.batch_size is None:
        return
    last = n % recipe.batch_size if recipe.schedule == "epochs" else 0
    smallest = min(recipe.batch_size, last or recipe.batch_size)
    if smallest < processes:
        raise TrainingError(f"batches of {smallest} images cannot be split over {processes} processes (each needs "
                            f"one): choose a --batch-size whose batches, the last of an epoch of {n:,} images "
                            "included, hold at least one image per process, or run fewer processes")


def finetune(args):
    """Train the model saved at ``args.init_from`` further; returns the summary the ``--json`` line prints.

    With ``--dataset folder:DIR`` the training set is the drawings, each ``--repeat`` times, among ``--mix``
    random training images of the mix dataset, for ``FINETUNE_EPOCHS`` epochs unless ``--epochs`` says
    otherwise; accuracy on the drawings and on the mix dataset's test set is measured before and after.
    Otherwise it is the recipe's run on the whole dataset, starting from the saved weights and optimizer
    state. The model is saved atomically over ``--init-from`` unless ``--save`` or ``--no-save`` say otherwise.
    """
    from scratchnet.classes import model_classes
    from scratchnet.models import load_model

    say = _printer(args)
    source = args.init_from
    folder = args.dataset if args.dataset and args.dataset.startswith(datasets.folder.PREFIX) else None
    if not folder:
        given = _folder_options(args)
        if given:
            raise UsageError(f"{given[0]} needs --dataset folder:DIR (drawings to mix with the dataset)")
    if args.plots:
        raise UsageError("--plots draws a newly trained model's curves; it does not go with --init-from")
    repeat = FINETUNE_REPEAT if args.repeat is None else args.repeat
    mix = FINETUNE_MIX if args.mix is None else args.mix
    try:
        model = load_model(source, compile=True)
    except ValueError as error:
        raise TrainingError(f"--init-from: {' '.join(str(error).split())}") from error
    name = model.name
    if args.model is not None and args.model != name:
        raise UsageError(f"--model {args.model}: {source} holds a {name} model (leave --model out to fine-tune it)")
    if name not in zoo.NAMES:
        raise TrainingError(f"{source}: model {name!r} is none of the zoo's ({', '.join(zoo.NAMES)}), "
                            "so there is no recipe to fine-tune it with")
    if model.optimizer is None:
        raise TrainingError(f"{source}: the model was saved without an optimizer (uncompiled); nothing to train with")
    dtype = model.get_weights()[0].dtype.name
    if args.dtype is not None and args.dtype != dtype:
        raise UsageError(f"--dtype {args.dtype}: {source} holds {dtype} weights")
    if args.learning_rate is not None:
        model.optimizer.learning_rate = args.learning_rate
    learning_rate = model.optimizer.learning_rate  # the saved one, unless overridden; a schedule is not shown
    recipe = zoo.defaults(name)
    if name == DEFAULT_MODEL:
        recipe = recipe.replace(**DEFAULT_RECIPE)
    recipe = recipe.replace(dataset=args.mix_dataset if folder else args.dataset, epochs=args.epochs,
                            steps=args.steps, batch_size=args.batch_size, dtype=dtype,
                            learning_rate=learning_rate if isinstance(learning_rate, (int, float)) else None)
    if folder:
        # A few thousand images do not need the recipe's schedule (20,000 steps for some): plain epochs.
        recipe = recipe.replace(schedule="epochs", epochs=args.epochs or FINETUNE_EPOCHS, validation="none")

    x_drawn = y_drawn = drawings = None
    if folder:  # read before the big dataset, so a bad drawing is reported at once
        blank, _ = prepare(np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8), name, recipe)
        width = model.predict(blank, verbose=0).shape[-1]
        try:
            classes = model_classes(name, width, args.classes)
        except ValueError as error:  # ClassesError: --classes does not fit the model
            raise UsageError(str(error)) from error
        drawings = datasets.load(folder, classes=classes)
        x_drawn, y_drawn = prepare(drawings.x_train, drawings.y_train, name, recipe)

    data = load_data(recipe, args.data_dir)
    x_train, y_train = prepare(data["x_train"], data["y_train"], name, recipe)
    x_test, y_test = (prepare(data["x_test"], data["y_test"], name, recipe)
                      if data.get("y_test") is not None else prepare(data["x_val"], data["y_val"], name, recipe))
    x_val, y_val = (None, None) if folder or data.get("x_val") is None else \
        prepare(data["x_val"], data["y_val"], name, recipe)
    summary = {"model": name, "init_from": str(source), "dataset": data["name"], "seed": args.seed}
    if folder:
        rng = np.random.default_rng(args.seed)
        mixed = rng.choice(len(x_train), size=min(mix, len(x_train)), replace=False)
        x_train = np.concatenate([np.repeat(x_drawn, repeat, axis=0), x_train[mixed]])
        y_train = np.concatenate([np.repeat(y_drawn, repeat, axis=0), y_train[mixed]])
        summary.update(drawings=len(x_drawn), drawings_folder=drawings.source, repeat=repeat,
                       mix=len(mixed), dataset=drawings.name, mix_dataset=data["name"])
        say(f"fine-tuning {name} from {source} on {len(x_drawn)} drawings from {drawings.source} "
            f"(x{repeat}) and {len(mixed):,} {data['name']} images; {_describe(recipe)}")
    else:
        say(f"fine-tuning {name} from {source} on {len(x_train):,} {data['name']} images; {_describe(recipe)}")

    def accuracies(when):
        if x_drawn is not None:
            summary[f"drawings_accuracy_{when}"] = float(model.evaluate(x_drawn, y_drawn, verbose=0)[1])
        if x_test is not None:
            summary[f"test_accuracy_{when}"] = float(model.evaluate(x_test, y_test, batch_size=1000, verbose=0)[1])

    accuracies("before")
    start = time.perf_counter()
    history, steps, _ = _train(model, (x_train, y_train, x_val, y_val), recipe, args, say)
    summary.update(epochs=history.get("epochs"), steps=steps, train_seconds=round(time.perf_counter() - start, 3))
    accuracies("after")
    for part, label in (("drawings", "drawings"), ("test", f"{data['name']} test")):
        if f"{part}_accuracy_before" in summary:
            say(f"{label} accuracy: {summary[f'{part}_accuracy_before']:.2%} before, "
                f"{summary[f'{part}_accuracy_after']:.2%} after")

    summary["saved_to"] = None
    if not args.no_save:
        path = args.save or source
        model.save(path)  # written beside the target, then renamed: a server reading it never sees half a file
        summary["saved_to"] = str(path)
        say(f"saved the model to {path}" + ("  (a running python -m scratchnet.serve picks it up with its "
                                             "Reload button, or POST /api/reload)" if path == source else ""))
    return summary


def _train(model, data, recipe, args, say, backup=None):
    """Train ``model`` on ``data`` = (x_train, y_train, x_val, y_val) by the recipe's schedule; returns
    (history, steps, images seen)."""
    x_train, y_train, x_val, y_val = data
    # A diverging run overflows before its loss turns non-finite; the loss check reports it in one line,
    # so NumPy's overflow warnings would only add noise.
    with np.errstate(over="ignore", invalid="ignore"):
        if recipe.schedule == "full_batch":
            return _train_full_batch(model, x_train, y_train, recipe, args, say, backup)
        if recipe.schedule == "steps":
            return _train_steps(model, x_train, y_train, x_val, y_val, recipe, args, say, backup)
        return _train_epochs(model, x_train, y_train, x_val, y_val, recipe, args, say, backup)


def _folder_options(args):
    """The options of fine-tuning on a folder that the command line gives, e.g. ["--mix"]."""
    options = {"--repeat": args.repeat, "--mix": args.mix, "--mix-dataset": args.mix_dataset, "--classes": args.classes}
    return [flag for flag, value in options.items() if value is not None]


def _resume_command(args):
    """The command line that continues this run from its newest checkpoint."""
    import shlex

    words = [word for word in args.argv if word != "--resume"]
    return shlex.join([Path(sys.executable).name, "-m", "scratchnet.train", *words, "--resume"])


def _identity(name, recipe, args):
    """What a checkpoint must agree on with the run resuming it: the model, data and training arguments."""
    return {"model": name, "dataset": recipe.dataset, "data_dir": None if args.data_dir is None else
            str(args.data_dir), "epochs": recipe.epochs, "steps": recipe.steps, "batch_size": recipe.batch_size,
            "learning_rate": recipe.learning_rate, "seed": args.seed, "dtype": recipe.dtype,
            "backend": args.backend}


def _warm_up(name, recipe, args, num_classes, x_train, y_train, say):
    """Compile (or load from numba's disk cache) the kernels this model uses before training starts.

    A throw-away copy of the model takes one training step on a batch of the run's size and one evaluation
    in a batch of the run's evaluation size (1,000 images), so the real model's weights, optimizer and
    generators are untouched, and the kernels take the run's paths (the thread team, the fused passes,
    which start above sizes a few images would not reach): the run itself compiles nothing, and its first
    step (and with it the progress bar's time estimate) no longer includes compilation. numba compiles
    only on a cold cache (the first run, or after numba or scratchnet changed); then, and only then, the
    notice says what the wait is, and if a core is idle a second process compiles the backward kernels of
    convolution and max-pooling while this one compiles the rest (`scratchnet.kernels.precompile`).
    """
    import contextlib

    from scratchnet import engine

    compiled = []

    def on_compile():
        if not compiled:
            say("compiling kernels (first run only) ...")
        compiled.append(True)

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.backend != "numpy":
            stack.enter_context(_compile_listener(on_compile))
        if engine.get_backend() == "numba":  # a second process may compile the backward kernels meanwhile
            from scratchnet.kernels import precompile

            stack.enter_context(precompile.backward_in_background())
        copy = zoo.build(name, seed=args.seed, dtype=recipe.dtype, num_classes=num_classes,
                         learning_rate=recipe.learning_rate)
        batch = slice(0, recipe.batch_size or len(x_train))  # a full-batch recipe steps on the whole set
        evaluated = slice(0, 1000)  # the batch size of the run's evaluations
        with np.errstate(over="ignore", invalid="ignore"):
            copy.train_step(x_train[batch], y_train[batch])
            copy.evaluate(x_train[evaluated], y_train[evaluated], batch_size=1000, verbose=0)
    if compiled:
        say(f"compiled the kernels in {time.perf_counter() - start:.1f} s (cached for the next runs)")


def _compile_listener(callback):
    """A context in which ``callback()`` is called whenever numba starts compiling a function (numba's
    "numba:compile" event, which a function loaded from the disk cache does not fire)."""
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, data):
            callback()

        def on_end(self, data):
            pass

    return event.install_listener("numba:compile", Listener())


def _printer(args, chief=True):
    """Human-readable lines go to stdout, except with --json, where stdout holds only the JSON line; a
    process that is not the chief (rank 0) of several prints nothing."""
    stream = sys.stderr if args.json else sys.stdout

    def say(line):
        if chief:
            print(line, file=stream, flush=True)
    return say


def _describe(recipe):
    if recipe.schedule == "full_batch":
        return f"{recipe.steps} full-batch {recipe.optimizer} steps at learning rate {recipe.learning_rate:g}"
    size = f"batch {recipe.batch_size}, {recipe.optimizer} at learning rate {recipe.learning_rate:g}"
    if recipe.schedule == "steps":
        return f"{recipe.steps:,} steps of {size}"
    cap = f" (at most {recipe.steps:,} steps)" if recipe.steps else ""
    return f"{recipe.epochs} epochs of {size}{cap}"


# ----------------------------------------------------------------------------------------------- data

def load_data(recipe, data_dir=None):
    """Load the recipe's dataset as a dict: x/y for train, val (when the dataset or recipe has one), test.

    The arrays are ``scratchnet.datasets.load``'s, so a dataset's own validation and test sets (kaggle's
    80/20 split, notMNIST's) are the same here as anywhere else. Images stay as the loader gives them (uint8
    for the IDX datasets); ``prepare`` scales them.
    """
    loaded = datasets.load(recipe.dataset, data_dir=data_dir)
    data = dict(name=loaded.name, x_train=loaded.x_train, y_train=loaded.y_train, x_val=loaded.x_val,
                y_val=loaded.y_val, x_test=loaded.x_test, y_test=loaded.y_test, num_classes=loaded.num_classes,
                classes=list(loaded.classes))
    if recipe.validation == "test":
        data.update(x_val=data["x_test"], y_val=data["y_test"])
    elif recipe.validation == "head" and data["x_val"] is None:
        # TensorFlow 1's read_data_sets: validation is the FIRST 5,000 training images.
        data.update(x_val=data["x_train"][:TF1_VALIDATION_SIZE], y_val=data["y_train"][:TF1_VALIDATION_SIZE],
                    x_train=data["x_train"][TF1_VALIDATION_SIZE:], y_train=data["y_train"][TF1_VALIDATION_SIZE:])
    elif recipe.validation in ("split", "dataset") and data["x_val"] is None:
        n_val = int(round(len(data["x_train"]) * recipe.validation_split))
        if n_val:
            # Keras's validation_split: the LAST fraction of the training set, taken before any shuffling.
            data.update(x_val=data["x_train"][-n_val:], y_val=data["y_train"][-n_val:],
                        x_train=data["x_train"][:-n_val], y_train=data["y_train"][:-n_val])
    return data


TF1_VALIDATION_SIZE = 5_000


def prepare(images, labels, name, recipe):
    """Turn loader output into model inputs: scale pixels as the source did, shape for the model.

    uint8 pixels are scaled by the recipe's ``preprocess``; float images (notMNIST, already normalised to
    (v - 127.5) / 255 by its pipeline) are used as they are. ``logreg`` gets raw pixels with a ones column in
    front and binary labels "is it a 4?" of shape (n, 1).
    """
    if images is None:
        return None, None
    dtype = np.dtype(recipe.dtype)
    n = len(images)
    if images.dtype == np.uint8:
        x = images.astype(dtype)
        if recipe.preprocess == "unit":
            x /= dtype.type(255)
        elif recipe.preprocess == "centered":
            x = (x - dtype.type(127.5)) / dtype.type(255)
    else:
        x = images.astype(dtype, copy=False)
    if recipe.preprocess == "raw_bias":
        x = np.concatenate([np.ones((n, 1), dtype), x.reshape(n, -1)], axis=1)
        return x, (labels == 4).astype(dtype).reshape(n, 1)
    x = x.reshape(n, -1) if recipe.flat else x.reshape(n, 28, 28, 1)
    return x, labels.astype(np.int64)


# ------------------------------------------------------------------------------------------- schedules

def _checkpointing(name, recipe, args, say, distribution):
    """The BackupAndRestore of a run with --checkpoint-dir; rank 0 (or the one process) locks the directory.

    Epoch-scheduled runs write a checkpoint at every epoch's end, step-scheduled ones every ``report_every``
    steps; ``--checkpoint-every N`` adds (epochs) or sets (steps) a checkpoint every N steps. Every run writes
    one at its end.
    """
    from scratchnet import checkpoint
    from scratchnet.callbacks import BackupAndRestore

    directory = args.checkpoint_dir
    identity = _identity(name, recipe, args)
    if distribution.is_chief:  # the others find the checkpoint rank 0 chose in BackupAndRestore.on_train_begin
        args.lock = checkpoint.lock(directory)  # held until the process ends
        newest = checkpoint.latest(directory)
        if newest is not None and not args.resume:
            raise TrainingError(f"{directory} already holds checkpoints of a run: continue it with --resume, "
                                "or choose another --checkpoint-dir")
        if newest is not None:
            description = checkpoint.describe(newest)
            checkpoint.check_identity(newest, description, identity)
            checkpoint.check_processes(newest, description, distribution.size)
            say(f"resuming from {newest}")
            written_by = description.get("processes", 1)
            if written_by != distribution.size:
                say(f"(written by {written_by} process{'es' if written_by != 1 else ''}, resumed by "
                    f"{distribution.size}: the gradients are summed in another order from here, so the weights "
                    "differ from the uninterrupted run's by rounding)")
        elif args.resume:
            say(f"no checkpoint in {directory} yet: starting from the beginning")
    every = args.checkpoint_every or ("epoch" if recipe.schedule == "epochs" else recipe.report_every)
    return BackupAndRestore(directory, save_freq=every, delete_checkpoint=False, keep=args.keep_checkpoints,
                            identity=identity, restore=args.resume)


class _StopOnSignal:
    """While active: the first SIGINT, SIGTERM or SIGUSR1 asks ``backup`` to save at the end of the step and stop
    (with several processes, all of them stop after the step in which any one got it); a second SIGINT stops
    at once (Python's KeyboardInterrupt: exit code 130, the checkpoint being written, if any, is abandoned)."""

    def __init__(self, backup, say):
        self.backup, self.say, self.previous = backup, say, {}

    def __enter__(self):
        def handle(number, frame):
            name = signal.Signals(number).name
            self.backup.request_stop(name)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                self.say(f"{name}: saving a checkpoint at the end of this step (Ctrl-C again to stop at once)")
            except RuntimeError:  # the signal came while this thread was writing to the same stream
                pass

        for number in STOP_SIGNALS:
            self.previous[number] = signal.signal(number, handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False


def _train_epochs(model, x, y, x_val, y_val, recipe, args, say, backup=None):
    """Keras-style ``fit``: shuffled epochs, validation after each; a progress bar on a terminal, else a line
    per epoch (Keras's ``verbose=2`` shape, so a log file gets no carriage returns)."""
    from scratchnet.models import Callback, progress

    bar = not (args.quiet or args.json) and progress.is_terminal(sys.stdout)

    class EpochLines(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.steps = time.perf_counter(), 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps = batch + 1

        def on_epoch_end(self, epoch, logs=None):
            say(progress.epoch_line(epoch, recipe.epochs, time.perf_counter() - self.start, self.steps, logs))

    hooks = ([] if backup is None else [backup]) + ([] if bar else [EpochLines()])
    with _stopping_on_signals(backup, say):
        fit = model.fit(x, y, batch_size=recipe.batch_size, epochs=recipe.epochs, steps=recipe.steps,
                        validation_data=None if x_val is None else (x_val, y_val), shuffle=True,
                        verbose=1 if bar else 0, seed=args.seed, callbacks=hooks)
    history = dict(fit.history)
    epochs = len(history["loss"])
    steps = math.ceil(len(x) / recipe.batch_size) * epochs
    if recipe.steps:
        steps = min(steps, recipe.steps)
    history["epochs"] = epochs
    images = min(steps * recipe.batch_size, len(x) * epochs)
    if backup is not None and backup.restored_from is not None:
        # the images/s figure counts what this process trained, not the steps the checkpoint had done
        images = min((model.fit_loop.done - backup.restored_step) * recipe.batch_size, images)
    return history, steps, images


class StepBatches:
    """The batches of the "steps" schedule, an iterator of row indices without end: reshuffled passes over n
    examples, each pass ``n // batch_size`` whole batches of a new permutation (its last few rows are left
    out), or notMNIST's sequential ``offset = step * batch_size % (n - batch_size)``.

    Its state is what a checkpoint saves and restores (the names of ``fit``'s batches): ``order``, the current
    pass's permutation (None before the first batch, and for the sequential order); ``position``, the batches
    taken from it (sequential: the steps taken); ``rng``, the generator that draws the permutations (it has
    drawn the current one: the next pass's is drawn only when the next batch is asked for).
    """

    def __init__(self, n, batch_size, order, rng):
        if order not in ("shuffle", "sequential"):
            raise ValueError(f"batch order must be 'shuffle' or 'sequential', got {order!r}")
        self.sequential = order == "sequential"
        if batch_size > n - self.sequential:
            raise ValueError(f"batches of {batch_size} need more than the {n} examples")
        self.n, self.batch_size, self.rng = n, batch_size, None if self.sequential else rng
        self.per_pass = n // batch_size
        self.order, self.position = None, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.sequential:
            offset = (self.position * self.batch_size) % (self.n - self.batch_size)
            self.position += 1
            return slice(offset, offset + self.batch_size)
        if self.order is None or self.position == self.per_pass:
            self.order, self.position = self.rng.permutation(self.n), 0
        start = self.position * self.batch_size
        self.position += 1
        return self.order[start:start + self.batch_size]


def batches(n, batch_size, order, rng):
    """Index arrays forever (a ``StepBatches``): reshuffled passes, or notMNIST's sequential ``offset =
    step*b % (n-b)``.

    ``order`` is a recipe's ``batch_order``; ``rng`` (a ``numpy.random.Generator``) draws the permutations.
    The "steps" schedule takes its batches from here (and so does ``tf_reference.recipes``, for the same
    batch order in TensorFlow).
    """
    return StepBatches(n, batch_size, order, rng)


class _StepLoop:
    """Where a loop of training steps outside ``fit`` stands (the "steps" and "full_batch" schedules), so that
    --checkpoint-dir saves and resumes it as it does ``fit``.

    The position is a ``FitLoop`` on ``model.fit_loop`` (one "epoch" of ``steps`` steps: ``done`` is the steps
    taken), with the loop's ``batches`` and its ``history`` (the report lines' values). A ``backup``
    (``BackupAndRestore``) is called as Keras's custom training loops call callbacks: ``begin()`` restores the
    newest checkpoint and returns the step to start from, ``step_done(step, loss)`` after every step may write
    one (or stop on a signal: ``checkpoint.Interrupted``), ``end()`` writes the last.
    """

    def __init__(self, model, batch_order, history, steps, backup=None):
        from scratchnet.callbacks import CallbackList, History
        from scratchnet.models.training import FitLoop

        self.loop = model.fit_loop = FitLoop(batch_order, History(), 0, new_running=None)
        self.loop.history.history = history
        self.hooks = CallbackList([] if backup is None else [backup], model=model, epochs=1, steps=steps,
                                  verbose=0)

    @property
    def history(self):
        """The history so far (a restored checkpoint replaces it: read it after ``begin``)."""
        return self.loop.history.history

    def begin(self):
        self.hooks.on_train_begin()
        return self.loop.done

    def step_done(self, step, loss):
        self.loop.done = self.loop.batch = step + 1
        self.hooks.on_train_batch_end(step, {"batch_loss": loss, "step": step + 1})

    def end(self):
        self.hooks.on_train_end()


def _stopping_on_signals(backup, say):
    """While training with checkpoints: a signal stops at the next step boundary after saving one."""
    import contextlib

    return _StopOnSignal(backup, say) if backup is not None else contextlib.nullcontext()


def _train_steps(model, x, y, x_val, y_val, recipe, args, say, backup=None):
    """The TF1 style: a fixed number of mini-batch steps, a report line every ``report_every`` steps; with a
    ``backup`` (--checkpoint-dir) it resumes from the newest checkpoint and writes them as it goes."""
    from tqdm import tqdm

    from scratchnet.models import DivergenceError, progress

    if recipe.batch_size > len(x) - (recipe.batch_order == "sequential"):
        raise TrainingError(f"--batch-size {recipe.batch_size} is larger than the {len(x)} training images")
    batch_indices = batches(len(x), recipe.batch_size, recipe.batch_order, np.random.default_rng(args.seed))
    run = _StepLoop(model, batch_indices, {"step": [], "loss": [], "accuracy": [], "val_accuracy": []},
                    recipe.steps, backup)
    first = run.begin()
    history = run.history
    report_validation = recipe.batch_order == "sequential" and x_val is not None
    bar = tqdm(range(first, recipe.steps), initial=first, total=recipe.steps, desc="training", unit="step",
               disable=args.quiet or args.json or not model.distribution.is_chief
               or not progress.is_terminal(sys.stderr), file=sys.stderr, leave=False)
    with _stopping_on_signals(backup, say):
        for step in bar:
            index = next(batch_indices)
            loss = model.train_step(x[index], y[index])
            if not math.isfinite(loss):
                raise DivergenceError(f"training diverged at step {step}: the loss is {loss}; "
                                      f"try a smaller --learning-rate (now {recipe.learning_rate:g})")
            if step % recipe.report_every == 0 or step == recipe.steps - 1:
                _, batch_accuracy = model.evaluate(x[index], y[index], batch_size=len(y[index]), verbose=0)
                line = f"step {step:5d}: minibatch loss {loss:.4f}, minibatch accuracy {batch_accuracy:.1%}"
                history["step"].append(step)
                history["loss"].append(float(loss))
                history["accuracy"].append(float(batch_accuracy))
                if report_validation:
                    _, val_accuracy = model.evaluate(x_val, y_val, batch_size=1000, verbose=0)
                    history["val_accuracy"].append(float(val_accuracy))
                    line += f", validation accuracy {val_accuracy:.1%}"
                (bar.write if not bar.disable else say)(line) if not args.json else say(line)
            run.step_done(step, loss)
        run.end()
    bar.close()
    history = dict(history)
    if not history["val_accuracy"]:
        del history["val_accuracy"]
    history["epochs"] = None
    return history, recipe.steps, (recipe.steps - first) * recipe.batch_size


def _train_full_batch(model, x, y, recipe, args, say, backup=None):
    """logreg's loop, as its source printed it: the loss of the current weights, then one update; with a
    ``backup`` (--checkpoint-dir) it resumes from the newest checkpoint and writes them as it goes."""
    from scratchnet.models import DivergenceError
    from scratchnet.models.training import Batches

    stream = sys.stderr if args.json else sys.stdout
    chief = model.distribution.is_chief
    every_row = Batches(len(x), len(x), shuffle=False, rng=None)  # one batch of every row: nothing to draw
    run = _StepLoop(model, every_row, {"loss": []}, recipe.steps, backup)
    first = run.begin()
    history = run.history
    with _stopping_on_signals(backup, say):
        for iteration in range(first, recipe.steps):
            loss = model.train_step(x, y)
            if not math.isfinite(loss):
                raise DivergenceError(f"training diverged at iteration {iteration}: the loss is {loss}")
            if chief:
                print("Iteration %4d => Loss: %.20f" % (iteration, loss), file=stream)  # noqa: UP031 - the source's format
            history["loss"].append(float(loss))
            run.step_done(iteration, loss)
        run.end()
    history = dict(history)
    history["epochs"] = None
    return history, recipe.steps, (recipe.steps - first) * len(x)


def _print_logreg_predictions(model, x_test, y_test, say):
    predictions = np.round(model.predict(x_test[:10], verbose=0)).astype(int).ravel()
    say("first ten test predictions: " + " ".join(map(str, predictions)))
    say("first ten test labels:      " + " ".join(map(str, y_test[:10].astype(int).ravel())))


if __name__ == "__main__":
    sys.exit(main())
