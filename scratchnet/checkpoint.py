"""Checkpoints of a training loop in progress, from which a run killed at any moment resumes bit for bit.

A checkpoint is two files in its directory, ``ckpt-<updates>-<epoch>-<batch>.npz`` (the arrays: weights,
optimizer slots, the pass's batch order) and a ``.json`` of the same name (everything else: the position,
every random generator's state, the running means of the epoch, the history, and the ``identity`` of the run,
e.g. the training command's model and data arguments). Each file is written to a temporary name, flushed to
disk and renamed into place, the ``.json`` last: a checkpoint whose ``.json`` exists is complete, so a run
killed while writing leaves the previous checkpoint as the newest. Files are read with
``allow_pickle=False``.

The loop is ``model.fit_loop``: ``fit``'s own, or one that a loop of steps outside ``fit`` sets (the train
CLI's "steps" and "full_batch" schedules). The state saved is everything a training step reads that changes
from step to step: with the same seed and thread count, a resumed run draws the same dropout masks and
batches and ends with the same weights, bit for bit, as the run never interrupted.

With several processes (``scratchnet.distributed``) ``save`` and ``restore`` are called by all of them at the
same step: the weights, optimizer state, generators and position are the same on every process, so rank 0
writes them once, with each process's running means of the epoch (the one state of its own, the sums over
its rows), and every process reads the same files. The directory must be seen by all of them (one machine,
or a shared file system).

``lock(directory)`` holds an exclusive lock on ``directory/lock`` for the life of a run, so a second run
on the same directory refuses to start instead of mixing its checkpoints with the first one's.
"""

import json
import os
import re
import tempfile

import numpy as np

__all__ = ["CheckpointError", "Interrupted", "save", "restore", "latest", "checkpoints", "describe",
           "check_identity", "check_processes", "lock"]

FORMAT = "scratchnet-checkpoint"
VERSION = 2  # 2: the running means are a list, one entry per process
_NAME = re.compile(r"^ckpt-(\d{9})-(\d{5})-(\d{7})\.json$")


class CheckpointError(Exception):
    """A checkpoint that cannot be written or read; the message names the file or directory."""


class Interrupted(Exception):
    """A run stopped on a signal after saving a checkpoint; ``path`` is that checkpoint, ``signal`` its name."""

    def __init__(self, path, signal):
        super().__init__(f"stopped by {signal}; checkpoint saved to {path}")
        self.path, self.signal = path, signal


# ------------------------------------------------------------------------------------------- the state

def _generators(model):
    """Every ``numpy.random.Generator`` training draws from, by a stable name: the model's (initialisation),
    its default shuffling generator, each layer's (dropout), and the generator of the loop's batch order."""
    found = {"model": model.rng, "model.shuffle": model._shuffle_rng}
    for index, layer in enumerate(model.layers):
        if isinstance(getattr(layer, "rng", None), np.random.Generator):
            found[f"layers.{index}"] = layer.rng
    loop = model.fit_loop
    if loop.batches.rng is not None:
        found["fit.shuffle"] = loop.batches.rng
    return found


def _metric_state(metric):
    """A metric object's running state: its number attributes (a Mean's total and count) and arrays."""
    numbers, arrays = {}, {}
    for key, value in vars(metric).items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            numbers[key] = float(value) if isinstance(value, (float, np.floating)) else int(value)
    return numbers, arrays


def _number(value):
    """A history value as JSON keeps it: an int stays an int (a step number), anything else is a float."""
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else float(value)


def _running_state(running):
    """(numbers, arrays) of an epoch's running means: the loss sum, the examples seen, each metric's state."""
    numbers, arrays = {"loss_sum": float(running.loss_sum), "seen": int(running.seen),
                       "sums": [float(v) for v in running.sums], "metrics": []}, {}
    for i, metric in enumerate(running.metrics):
        metric_numbers, metric_arrays = _metric_state(metric)
        numbers["metrics"].append(metric_numbers)
        arrays.update({f"metric.{i}.{key}": value for key, value in metric_arrays.items()})
    return numbers, arrays


def _capture(model, identity, epoch_logs=None):
    """(arrays, description, running) of the model and its loop as they stand now; ``running`` is this
    process's (numbers, arrays) of the epoch's running means, or None between epochs. ``epoch_logs`` are those
    of an epoch that just ended, which the History records only after the checkpoint's own callback ran."""
    loop = model.fit_loop
    arrays = {f"weight.{i}": array for i, array in enumerate(model.get_weights())}
    optimizer = model.optimizer
    arrays.update({f"optimizer.{i}": array for i, array in enumerate(optimizer.get_state())})
    if loop.batches.order is not None:
        arrays["order"] = loop.batches.order
    running = None if loop.running is None else _running_state(loop.running)
    history = {key: list(values) for key, values in loop.history.history.items()}
    epochs = list(loop.history.epoch)
    if epoch_logs is not None:
        for key, value in epoch_logs.items():
            history.setdefault(key, []).append(value)
        epochs.append(loop.epoch - 1)
    description = {
        "format": FORMAT, "version": VERSION, "identity": identity,
        "position": {"epoch": loop.epoch, "batch": loop.batch, "done": loop.done,
                     "pass_position": loop.batches.position},
        "optimizer_iterations": int(optimizer.iterations),
        "generators": {name: rng.bit_generator.state for name, rng in _generators(model).items()},
        "processes": model.distribution.size,
        "running": None,
        "history": {"history": {key: [_number(v) for v in values] for key, values in history.items()},
                    "epoch": epochs},
        "counts": {"weights": len(model.get_weights()), "optimizer": len(optimizer.get_state())},
    }
    return arrays, description, running


def _stem(description):
    position = description["position"]
    return f"ckpt-{position['done']:09d}-{position['epoch']:05d}-{position['batch']:07d}"


# ------------------------------------------------------------------------------------------- writing

def _write_atomically(path, write):
    """Write through ``write(file)`` to a temporary file beside ``path``, flush it to disk, rename it."""
    folder = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def save(directory, model, identity=None, keep=None, epoch_logs=None):
    """Write a checkpoint of ``model``'s loop in progress to ``directory``; keep the newest ``keep``.

    Returns the path of the ``.json``. Raises ``CheckpointError`` (naming the directory and the reason) if
    it cannot be written; the checkpoints already there are left as they were. With several processes every
    one of them calls it at the same step; rank 0 writes, and all return its path once it is written.
    """
    directory = os.fspath(directory)
    distribution = model.distribution
    arrays, description, running = _capture(model, identity or {}, epoch_logs)
    if running is not None:  # None on every process alike: between epochs, and in a loop of steps
        shares = distribution.gather(running)  # each process's running means of its rows, on rank 0
        if distribution.is_chief:
            description["running"] = [numbers for numbers, _ in shares]
            arrays.update({f"running.{rank}.{name}": value for rank, (_, share) in enumerate(shares)
                           for name, value in share.items()})
    path = _write(directory, arrays, description, keep) if distribution.is_chief else None
    return distribution.broadcast(path)  # the others wait here: none ends the run while rank 0 writes


def _write(directory, arrays, description, keep):
    stem = os.path.join(directory, _stem(description))
    try:
        os.makedirs(directory, exist_ok=True)
        fresh = not os.path.exists(stem + ".json")  # else this position's checkpoint is there: leave it be
        try:
            _write_atomically(stem + ".npz", lambda file: np.savez(file, **arrays))
            text = json.dumps(description, indent=1).encode()
            _write_atomically(stem + ".json", lambda file: file.write(text))
        except BaseException:  # a failed write, or a second Ctrl-C: leave no .npz without its .json behind
            if fresh:
                _remove(stem + ".npz")
            raise
        _sync_directory(directory)
    except OSError as error:
        raise CheckpointError(f"cannot write a checkpoint in {directory}: {error.strerror or error}") from None
    if keep is not None:
        for old in checkpoints(directory)[:-keep]:  # the .npz first: a prune cut short is finished by the next
            _remove(old[:-len(".json")] + ".npz")
            _remove(old)
    return stem + ".json"


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_directory(directory):
    """Make the renames durable: a crash right after ``save`` returns keeps the new checkpoint."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def checkpoints(directory):
    """The complete checkpoints in ``directory`` (paths of their ``.json``), oldest first."""
    try:
        names = sorted(name for name in os.listdir(directory) if _NAME.match(name))
    except FileNotFoundError:
        return []
    return [os.path.join(directory, name) for name in names]


def latest(directory):
    """The newest complete checkpoint's ``.json`` in ``directory``, or None."""
    found = checkpoints(directory)
    return found[-1] if found else None


# ------------------------------------------------------------------------------------------- reading

def _read_description(path):
    try:
        with open(path, "rb") as file:
            description = json.loads(file.read().decode())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not a scratchnet checkpoint (not valid JSON; truncated or corrupt?)") \
            from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a scratchnet checkpoint (no '{FORMAT}' format tag)")
    if description.get("version") != VERSION:
        raise CheckpointError(f"{path} is a version {description.get('version')!r} checkpoint; "
                              f"this scratchnet reads version {VERSION}")
    return description


def _read_arrays(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing (its .json is there): the checkpoint is incomplete") from None
    except (ValueError, OSError, EOFError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint archive (truncated or corrupt?): {error}") \
            from None
    except Exception as error:  # noqa: BLE001 - zipfile raises several types (BadZipFile, ...) for a bad file
        raise CheckpointError(f"{path} is not a readable checkpoint archive (truncated or corrupt?): {error}") \
            from None


def describe(path):
    """The ``.json`` description of the checkpoint at ``path`` (checked to be one)."""
    return _read_description(os.fspath(path))


def check_identity(path, description, identity):
    """Raise ``CheckpointError`` naming every argument in which ``identity`` differs from the checkpoint's."""
    saved = description.get("identity", {})
    differences = [f"{key} {saved.get(key)!r} (now {identity.get(key)!r})"
                   for key in sorted(set(saved) | set(identity)) if saved.get(key) != identity.get(key)]
    if differences:
        raise CheckpointError(f"{path} was made with different arguments: " + ", ".join(differences))


def check_processes(path, description, processes):
    """Raise ``CheckpointError`` if a run over ``processes`` processes cannot resume the checkpoint: one written
    within an epoch holds each process's running means of the epoch, so it needs as many processes again.
    (Anywhere else every process's state is the same, and any number of processes resumes it; only the same
    number sums the gradients in the same order, which a bit-identical continuation needs.)"""
    written_by = description.get("processes", 1)
    if description.get("running") is not None and written_by != processes:
        raise CheckpointError(f"{path} was written within an epoch by {written_by} process"
                              f"{'es' if written_by != 1 else ''}, each with its own running means of the epoch: "
                              f"resume it with {written_by} (now {processes}), or from a checkpoint of an epoch's end")


def restore(path, model, identity=None):
    """Set ``model`` and its loop in progress (call from ``on_train_begin``) to the checkpoint at ``path``.

    Everything is read and checked before anything of the model changes: a bad checkpoint raises
    ``CheckpointError`` naming the file and leaves the model as it was. Returns the description. With several
    processes each one calls it with the same ``path`` (a directory they all see) and takes its own share.
    """
    path = os.fspath(path)
    description = _read_description(path)
    if identity is not None:
        check_identity(path, description, identity)
    distribution = model.distribution
    check_processes(path, description, distribution.size)
    npz = path[:-len(".json")] + ".npz"
    arrays = _read_arrays(npz)
    try:
        counts = description["counts"]
        weights = [arrays[f"weight.{i}"] for i in range(counts["weights"])]
        slots = [arrays[f"optimizer.{i}"] for i in range(counts["optimizer"])]
        position, generators = description["position"], description["generators"]
        running = description["running"]
        running = None if running is None else running[distribution.rank]
    except KeyError as error:
        raise CheckpointError(f"{npz} lacks {error.args[0]!r}: not a checkpoint of this run") from None
    except (IndexError, TypeError):
        raise CheckpointError(f"{path} holds no running means for process {distribution.rank}: not a checkpoint "
                              "of this run") from None
    loop = model.fit_loop
    targets = _generators(model)
    if set(generators) != set(targets):
        raise CheckpointError(f"{path} holds the random generators {sorted(generators)}, this model has "
                              f"{sorted(targets)}: not a checkpoint of this model")
    try:
        model.set_weights(weights)
        params = model._trainable_params()
        if slots:
            model.optimizer.set_state(slots, params, description["optimizer_iterations"])
        else:
            model.optimizer.iterations = description["optimizer_iterations"]
        model._optimizer_params = list(params)
    except ValueError as error:
        raise CheckpointError(f"{npz} does not fit this model: {error}") from None
    for name, state in generators.items():
        targets[name].bit_generator.state = state
    loop.epoch, loop.batch, loop.done = position["epoch"], position["batch"], position["done"]
    loop.batches.order = arrays.get("order")
    loop.batches.position = position["pass_position"]
    loop.running = None
    if running is not None:
        loop.running = loop.new_running()
        loop.running.loss_sum, loop.running.seen = running["loss_sum"], running["seen"]
        loop.running.sums = list(running["sums"])
        for i, (metric, numbers) in enumerate(zip(loop.running.metrics, running["metrics"])):
            for key, value in numbers.items():
                setattr(metric, key, value)
            prefix = f"running.{distribution.rank}.metric.{i}."
            for name, value in arrays.items():
                if name.startswith(prefix):
                    setattr(metric, name[len(prefix):], value)
    loop.history.history = {key: list(values) for key, values in description["history"]["history"].items()}
    loop.history.epoch = list(description["history"]["epoch"])
    return description


# ------------------------------------------------------------------------------------------- the lock

def lock(directory):
    """Hold an exclusive lock on ``directory/lock``; returns the open file (closing it releases the lock).

    Raises ``CheckpointError`` if another run holds it.
    """
    import fcntl

    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        file = open(os.path.join(directory, "lock"), "a+")  # noqa: SIM115 - held open for the whole run
    except OSError as error:
        raise CheckpointError(f"cannot use {directory} for checkpoints: {error.strerror or error}") from None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        file.close()
        raise CheckpointError(f"another run is using the checkpoint directory {directory} (it holds "
                              f"{os.path.join(directory, 'lock')})") from None
    return file
