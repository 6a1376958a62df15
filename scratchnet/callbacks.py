"""Hooks into ``fit`` / ``evaluate`` / ``predict``, with Keras's names, arguments and call order.

    >>> model.fit(x, y, epochs=50, validation_split=0.1,
    ...           callbacks=[callbacks.EarlyStopping(patience=3, restore_best_weights=True),
    ...                      callbacks.ModelCheckpoint("best.keras", save_best_only=True)])

A ``Callback`` overrides the hooks it needs; ``fit`` calls them through a ``CallbackList`` in the order
given, then the ``History`` it returns, then the progress printer, as Keras does (so a callback that
adds to the epoch's ``logs``, as ``LearningRateScheduler`` adds ``learning_rate``, is recorded).

``logs``: ``on_train_begin`` and every ``*_begin`` hook get ``{}``; a training batch's end gets ``loss``
and the metrics as running means over the epoch so far, plus scratchnet's ``batch_loss`` (this step's
loss) and ``step`` (steps since ``fit`` began); an epoch's end gets the epoch's values and the
``val_*`` ones, keys in alphabetical order (as Keras 3). Setting ``model.stop_training = True`` ends
``fit`` after the current batch.
"""

import csv
import math
import os
import signal
import warnings

import numpy as np

from scratchnet import checkpoint

__all__ = ["Callback", "CallbackList", "History", "LambdaCallback", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "BackupAndRestore"]


class Callback:
    """Base class of the objects ``fit(callbacks=[...])``, ``evaluate`` and ``predict`` call.

    Attributes:
        model: the model being trained (set by ``set_model``).
        params: ``{"epochs", "steps", "verbose"}`` of the running call (set by ``set_params``).

    ``on_batch_begin`` / ``on_batch_end`` are Keras's older names for ``on_train_batch_begin`` /
    ``on_train_batch_end``: overriding either name works, because the ``on_train_batch_*`` hooks call them.
    """

    def __init__(self):
        self.model = None
        self.params = None

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


_HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_"))


class CallbackList:
    """Calls one hook on every callback in order: ``callbacks.on_epoch_end(epoch, logs)``.

    Every hook is called with a dict (``{}`` when there is nothing to report), never None.
    """

    def __init__(self, callbacks=None, model=None, **params):
        callbacks = list(callbacks or [])
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"`callbacks` must hold Callback objects. Received: {callback!r}")
        self.callbacks = callbacks
        self.model = model
        self.params = params
        for callback in callbacks:
            if model is not None:
                callback.set_model(model)
            callback.set_params(params)

    def append(self, callback):
        if self.model is not None:
            callback.set_model(self.model)
        callback.set_params(self.params)
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)


def _list_hook(name):
    """CallbackList's method `name`: call hook `name` on every callback, in order."""
    indexed = "epoch" in name or "batch" in name  # on_epoch_end(epoch, logs), on_train_end(logs)

    def call(self, *args):
        if not self.callbacks:  # nobody to call: a batch loop pays nothing for its hooks
            return
        index, logs = (args[0], args[1:]) if indexed else ((), args)
        # One dict, keys sorted as Keras 3 sorts them, for every callback: what one adds, the next sees.
        logs = dict(sorted(logs[0].items())) if logs and logs[0] is not None else {}
        for callback in self.callbacks:
            getattr(callback, name)(*((index,) if indexed else ()), logs)

    call.__name__ = call.__qualname__ = name
    return call


for _name in _HOOKS:  # real methods: a missing attribute's __getattr__ costs ~2 us a hook call
    setattr(CallbackList, _name, _list_hook(_name))
del _name


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"][i]``, ``["val_accuracy"]``, ...

    Attributes:
        history: dict from a key (accuracy, loss, val_accuracy, val_loss, ...) to a list of floats.
        epoch: the epoch indices recorded (0-based; with ``initial_epoch=k`` they start at k).
        params: ``{"epochs", "steps", "verbose"}`` of the ``fit`` call.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


class LambdaCallback(Callback):
    """A callback made of plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Any hook may be given by name (``on_batch_end=...``, ``on_test_end=...``), as in Keras.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - set(_HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback got unknown hooks {unknown}; hooks are {sorted(_HOOKS)}")
        given = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin, "on_train_batch_end": on_train_batch_end, **kwargs}
        for hook, function in given.items():
            if function is not None:
                setattr(self, hook, function)


# ------------------------------------------------------------------------------------------------
# Watching a value: EarlyStopping, ModelCheckpoint and ReduceLROnPlateau
# ------------------------------------------------------------------------------------------------

_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "mape", "msle", "crossentropy", "hinge", "divergence")
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "top_k", "iou", "f1", "score")


class _MonitorCallback(Callback):
    """Shared by the callbacks that watch one value of the epoch's logs (``monitor``, ``mode``, ``min_delta``).

    ``mode="auto"`` minimises losses and errors and maximises accuracies; a metric object whose class
    says which way is better (a ``direction`` attribute, "up" or "down") decides for itself. Anything else
    raises, asking for ``mode``, as Keras does.
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0.0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode {mode!r} is unknown, falling back to 'auto'.", stacklevel=3)
            mode = "auto"
        self.monitor, self.mode, self.best = monitor, mode, baseline
        self.min_delta = abs(min_delta)
        self._lower_is_better = None

    def _direction(self):
        if self.mode != "auto":
            return self.mode == "min"
        name = self.monitor.removeprefix("val_")
        for metric in getattr(self.model, "metrics", None) or []:
            direction = getattr(metric, "direction", None) or getattr(metric, "_direction", None)
            if getattr(metric, "name", None) == name and direction in ("up", "down"):
                return direction == "down"
        if name == "loss" or name.endswith(_LOWER_IS_BETTER):
            return True
        if any(part in name for part in _HIGHER_IS_BETTER):
            return False
        raise ValueError(
            f"{type(self).__name__} received monitor={self.monitor!r}, but cannot tell whether it should be "
            "maximized or minimized. Pass `mode='max'` or `mode='min'`."
        )

    def _is_improvement(self, value, reference):
        if self._lower_is_better is None:
            self._lower_is_better = self._direction()
        if reference is None:
            return True
        if self._lower_is_better:
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def _monitored(self, logs, what):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{what} is conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs or {})}", stacklevel=3)
        return value


class EarlyStopping(_MonitorCallback):
    """Stop training when ``monitor`` has stopped improving for ``patience`` epochs.

    Args:
        monitor: the logs key watched ("val_loss" by default).
        min_delta: a change smaller than this is no improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints the epoch it stopped at.
        mode: "auto", "min" or "max" (see ``_MonitorCallback``).
        baseline: training stops unless the value gets better than this within ``patience`` epochs.
        restore_best_weights: at the end, put back the weights of the best epoch (when it stopped
            early or not, as Keras 3).
        start_from_epoch: epochs to wait before watching (a warm-up).

    Attributes:
        stopped_epoch: the epoch it stopped at (0 when it never did); ``best_epoch``, ``best``.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitored(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_MonitorCallback):
    """Save the model (or its weights) after every epoch, or only when ``monitor`` improved.

    Args:
        filepath: where to save; may hold ``str.format`` fields filled from the epoch (1-based) and the
            logs, e.g. ``"ckpt/{epoch:02d}-{val_loss:.2f}.keras"``. A model file ends in ``.keras`` (Keras's
            format) or ``.npz`` (scratchnet's); with ``save_weights_only`` it ends in ``.weights.h5`` or ``.npz``.
        monitor, mode: the value ``save_best_only`` compares (see ``_MonitorCallback``).
        verbose: 1 prints a line per save.
        save_best_only: save only when the monitored value improved on the best so far.
        save_weights_only: ``model.save_weights(filepath)`` instead of ``model.save(filepath)``.
        save_freq: "epoch", or an integer: save every that many training batches.
        initial_value_threshold: with ``save_best_only``, the value to beat before the first save.

    Every file is written to a temporary name and renamed into place, so an interrupted run never leaves a
    half-written checkpoint. Missing folders are created.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only, self.save_weights_only = verbose, save_best_only, save_weights_only
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected 'epoch' or a positive integer")
        self.save_freq = save_freq
        endings = (".weights.h5", ".npz") if save_weights_only else (".keras", ".npz")
        if not self.filepath.endswith(endings):
            what = "weights file" if save_weights_only else "model file"
            raise ValueError(f"The {what} of ModelCheckpoint must end in {' or '.join(endings)}. "
                             f"Received: filepath={self.filepath}")
        self._batches_since_save = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _file_path(self, epoch, batch, logs):
        fields = dict(logs or {})
        if batch is not None and "batch" not in fields:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**{**fields, "epoch": epoch + 1})
        except KeyError as error:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {error}') from None

    def _should_save(self, epoch, logs, path):
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch, batch, logs):
        path = self._file_path(epoch, batch, logs)
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint needs a file path; {path} is an existing directory")
        if self._should_save(epoch, logs, path):
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            if self.save_weights_only:
                self.model.save_weights(path)
            else:
                self.model.save(path)
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: finished saving model to {path}")


class ReduceLROnPlateau(_MonitorCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor, mode, min_delta: what counts as an improvement (see ``_MonitorCallback``).
        factor: the multiplier, < 1. ``new_lr = max(lr * factor, min_lr)``.
        patience: epochs without improvement before a reduction.
        verbose: 1 prints each reduction.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the learning rate never goes below this.

    The epoch's logs get ``learning_rate`` (the rate the epoch trained with), as in Keras.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta=min_delta)
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.cooldown_counter = self.wait = 0

    def on_train_begin(self, logs=None):
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        logs["learning_rate"] = _learning_rate(self.model, type(self).__name__)
        current = self._monitored(logs, "Learning rate reduction")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = logs["learning_rate"]
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


def _learning_rate(model, who):
    """The optimizer's current learning rate as a float, or a clear error when it follows a schedule."""
    rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    try:
        return float(rate)
    except (TypeError, ValueError):
        raise TypeError(f"{who} needs an optimizer with a number as its learning rate. "
                        f"Received: learning_rate={rate!r}") from None


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (or ``schedule(epoch)``).

    The epoch's logs get ``learning_rate``, as in Keras.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        current = _learning_rate(self.model, type(self).__name__)
        try:
            rate = self.schedule(epoch, current)
        except TypeError:  # a one-argument schedule, as Keras allows
            rate = self.schedule(epoch)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) or \
                not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"The output of the `schedule` function should be a positive float. Got: {rate!r}")
        self.model.optimizer.learning_rate = float(rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(rate)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _learning_rate(self.model, type(self).__name__)


class CSVLogger(Callback):
    """Write one row per epoch (``epoch`` and every logs key) to a CSV file.

    Args:
        filename: the CSV file.
        separator: the field separator (",").
        append: add to an existing file (its header is not repeated) instead of starting a new one.

    Rows are flushed at every epoch's end, so the file can be watched while training runs and a crash keeps
    the epochs finished.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys = self.writer = self._file = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        self._close()
        self._write_header = not (self.append and os.path.exists(self.filename)
                                  and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115 - open for the run
        self.keys = self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]  # as Keras: room for later validation
        if self.writer is None:
            self.writer = csv.writer(self._file, delimiter=self.sep, lineterminator="\r\n")
            if self._write_header:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(_csv_value(logs.get(key, "NA")) for key in self.keys)])
        self._file.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()


def _csv_value(value):
    if isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) > 0:
        return f"[{', '.join(map(str, value))}]"
    return value


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is nan or inf (with ``raise_error``, raise instead).

    Without this callback scratchnet raises ``DivergenceError`` at a non-finite loss; with it, training
    stops quietly after that batch, as in Keras.
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class BackupAndRestore(Callback):
    """Back up a ``fit`` in progress to ``backup_dir`` and, if a backup is there, resume from it (as Keras's).

    A run killed at any moment and started again with the same callback (same data, seed and thread
    count) continues from the newest backup and ends with the weights, bit for bit, of the run never
    interrupted: the backup holds the weights, the optimizer's state, every random generator, the batch
    order and position within the epoch, the epoch's running means and the history (see
    ``scratchnet.checkpoint``). A loop of steps outside ``fit`` can use it too, as Keras's custom training
    loops call callbacks: set ``model.fit_loop`` to a ``FitLoop``, then call ``on_train_begin()``,
    ``on_train_batch_end(step)`` after each step (with ``fit_loop.done`` counted up) and ``on_train_end()``.

    Args:
        backup_dir: the directory of the backups (created if missing).
        save_freq: "epoch" (at every epoch's end), or an integer n: also after every n-th training batch.
        delete_checkpoint: delete the backups when training finishes (Keras's default), so the next ``fit``
            starts afresh; False keeps the newest ``keep``, the last one being of the end of training.
        keep: how many backups to keep (scratchnet's; older ones are deleted after each new one is written).
        identity: scratchnet's: a dict of JSON values describing the run (e.g. the command's arguments); a
            backup made with another identity is refused with an error naming the differences.
        restore: scratchnet's: False never restores (a fresh run that only writes backups).

    After ``fit``, ``restored_from`` is the backup it resumed from (None if it started afresh) and
    ``restored_step`` the number of updates that backup had done. ``request_stop(signal_name)`` (safe to
    call from a signal handler; e.g. "SIGINT") saves a backup at the end of the current batch and raises
    ``scratchnet.checkpoint.Interrupted`` out of ``fit``.

    With several processes (``scratchnet.distributed``) every process holds this callback on the same
    ``backup_dir``, which all of them must see (one machine, or a shared file system): rank 0 chooses the
    backup to resume from and writes the backups; each process reads the same one. After every batch one
    Allreduce of a flag tells all of them whether any was asked to stop, so they stop after the same batch.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, *, keep=1, identity=None,
                 restore=True):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq!r}. "
                             "Expected either 'epoch' or a positive integer")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be a positive integer. Received: keep={keep!r}")
        self.save_freq, self.delete_checkpoint, self.keep = save_freq, delete_checkpoint, keep
        self.identity, self.restore = identity, restore
        self.restored_from, self.restored_step, self.last_saved = None, 0, None
        self._stop_signal, self._epoch_list, self._saved_at = 0, None, None

    def request_stop(self, signal_name):
        if signal_name not in signal.Signals.__members__:
            raise ValueError(f"request_stop expects a signal's name, such as 'SIGINT'. Received: {signal_name!r}")
        self._stop_signal = signal.Signals[signal_name].value

    def _save(self, epoch_logs=None):
        self.last_saved = checkpoint.save(self.backup_dir, self.model, self.identity, self.keep, epoch_logs)
        self._saved_at = self.model.fit_loop.done

    def _agreed_stop(self):
        """The name of the signal that asked to stop, or None; with several processes, the same on all of them
        (the largest signal number any of them got), so that every process stops after the same batch."""
        number = self.model.distribution.reduce_max(self._stop_signal)
        return signal.Signals(number).name if number else None

    def on_train_begin(self, logs=None):
        distribution = self.model.distribution
        path = checkpoint.latest(self.backup_dir) if self.restore and distribution.is_chief else None
        path = distribution.broadcast(path)  # rank 0's choice: every process resumes from the same backup
        if path is None:
            return
        if not os.path.exists(path):
            raise checkpoint.CheckpointError(
                f"process {distribution.rank} cannot see {path}, which rank 0 resumes from: every process must see "
                "the checkpoint directory (one machine, or a shared file system)")
        description = checkpoint.restore(path, self.model, self.identity)
        self.restored_from, self.restored_step = path, description["position"]["done"]
        self._saved_at = self.restored_step
        self._epoch_list = list(description["history"]["epoch"])

    def on_epoch_begin(self, epoch, logs=None):
        if self._epoch_list is not None:  # the History cleared its epochs in its own on_train_begin
            self.model.fit_loop.history.epoch = self._epoch_list
            self._epoch_list = None

    def on_train_batch_end(self, batch, logs=None):
        stop = self._agreed_stop()
        if stop is not None:
            self._save()
            raise checkpoint.Interrupted(self.last_saved, stop)
        if self.save_freq != "epoch" and self.model.fit_loop.done % self.save_freq == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch_logs=logs)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            if self.model.distribution.is_chief:  # the one process that writes them
                for path in checkpoint.checkpoints(self.backup_dir):
                    for name in (path[:-len(".json")] + ".npz", path):
                        try:
                            os.unlink(name)
                        except OSError:
                            pass
        elif self._saved_at != self.model.fit_loop.done:  # fit's last epoch end has written it already
            self._save()
