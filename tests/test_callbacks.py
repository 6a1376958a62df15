"""Tests of scratchnet.callbacks: Keras's hook names, order and logs, and the built-in callbacks' rules."""

import csv
import math

import numpy as np
import pytest

from scratchnet import callbacks, layers, losses, optimizers
from scratchnet.models import DivergenceError, Sequential, load_model


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return (rng.standard_normal((n, 4)) + 2.0 * y[:, None]).astype("float32"), y


def model(learning_rate=0.05, seed=0):
    m = Sequential([layers.Dense(8, activation="relu", input_shape=(4,)), layers.Dense(2, activation="softmax")],
                   seed=seed)
    m.compile(optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


class Recorder(callbacks.Callback):
    """Writes down every hook call with a copy of its logs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_") and name not in ("on_batch_begin", "on_batch_end"):
            calls = object.__getattribute__(self, "calls")

            def record(*args):
                calls.append((name, *args[:-1], dict(args[-1]) if args[-1] is not None else None))

            return record
        return object.__getattribute__(self, name)


def test_fit_calls_keras_hooks_in_order_with_dict_logs():
    x, y = blobs(30)
    recorder = Recorder()
    model().fit(x, y, batch_size=10, epochs=2, validation_split=1 / 3, verbose=0, callbacks=[recorder])
    names = [call[0] for call in recorder.calls]
    epoch = ["on_epoch_begin", *["on_train_batch_begin", "on_train_batch_end"] * 2,
             "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end", "on_epoch_end"]
    assert names == ["on_train_begin", *epoch, *epoch, "on_train_end"]
    assert recorder.calls[0] == ("on_train_begin", {})  # logs, as Keras passes them: a dict, never None
    batch_end = recorder.calls[3]
    assert batch_end[1] == 0 and set(batch_end[2]) == {"accuracy", "loss", "batch_loss", "step"}
    assert list(recorder.calls[-2][2]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert recorder.params == {"epochs": 2, "steps": 2, "verbose": 0}


def test_on_batch_end_and_on_batch_begin_are_called_as_keras_aliases():
    x, y = blobs(30)
    seen = []

    class OldStyle(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch, round(logs["loss"], 6)))

    model().fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[OldStyle()])
    assert [s[:2] for s in seen] == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2), ("end", 2)]


def test_evaluate_and_predict_call_their_hooks():
    x, y = blobs(25)
    recorder = Recorder()
    m = model()
    m.evaluate(x, y, batch_size=10, verbose=0, callbacks=[recorder])
    m.predict(x, batch_size=10, verbose=0, callbacks=[recorder])
    names = [call[0] for call in recorder.calls]
    assert names == ["on_test_begin", *["on_test_batch_begin", "on_test_batch_end"] * 3, "on_test_end",
                     "on_predict_begin", *["on_predict_batch_begin", "on_predict_batch_end"] * 3, "on_predict_end"]
    assert recorder.calls[7][1]["loss"] == pytest.approx(m.evaluate(x, y, verbose=0)[0], rel=1e-6)
    assert recorder.calls[-2][2]["outputs"].shape == (5, 2)


def test_callbacks_that_are_not_callbacks_are_rejected():
    x, y = blobs(10)
    with pytest.raises(TypeError, match="Callback objects"):
        model().fit(x, y, verbose=0, callbacks=[lambda epoch, logs: None])


def test_lambda_callback_takes_any_hook_by_name():
    x, y = blobs(20)
    ends, batches = [], []
    cb = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(epoch),
                                  on_batch_end=lambda batch, logs: batches.append(batch))
    model().fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[cb])
    assert ends == [0, 1] and batches == [0, 1, 0, 1]
    with pytest.raises(TypeError, match="unknown hooks"):
        callbacks.LambdaCallback(on_epoch_finish=print)


def test_setting_stop_training_ends_fit_after_the_current_batch():
    x, y = blobs(50)

    class StopAtThirdBatch(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    m = model()
    history = m.fit(x, y, batch_size=10, epochs=3, verbose=0, callbacks=[StopAtThirdBatch()])
    assert m.optimizer.iterations == 3 and history.epoch == [0]


# ----------------------------------------------------------------------------------------------
# EarlyStopping
# ----------------------------------------------------------------------------------------------


def feed(callback, values, monitor="val_loss", m=None):
    """Run the callback's epoch-end rule over a sequence of monitored values (no training)."""
    m = m or model()
    callback.set_model(m)
    callback.on_train_begin({})
    stopped_at = None
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {monitor: value})
        if m.stop_training:
            stopped_at = epoch
            break
    return stopped_at


def test_early_stopping_patience_min_delta_and_mode():
    assert feed(callbacks.EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.91, 0.8]) == 3
    assert feed(callbacks.EarlyStopping(patience=0), [1.0, 1.1]) == 1
    assert feed(callbacks.EarlyStopping(patience=1, min_delta=0.2), [1.0, 0.9]) == 1  # 0.1 is no improvement
    assert feed(callbacks.EarlyStopping(monitor="val_accuracy", patience=1), [0.5, 0.6, 0.7], "val_accuracy") is None
    assert feed(callbacks.EarlyStopping(monitor="val_accuracy", patience=1), [0.5, 0.4], "val_accuracy") == 1
    assert feed(callbacks.EarlyStopping(monitor="score", mode="min", patience=1), [3.0, 4.0], "score") == 1
    with pytest.raises(ValueError, match="mode='max'"):
        feed(callbacks.EarlyStopping(monitor="val_thing"), [1.0], "val_thing")


def test_early_stopping_baseline_and_start_from_epoch():
    # as Keras: an epoch that improves never stops training, but one that does not beat the baseline
    # does not reset the patience either
    assert feed(callbacks.EarlyStopping(patience=2), [1.0, 0.9, 0.95]) is None
    assert feed(callbacks.EarlyStopping(patience=2, baseline=0.5), [1.0, 0.9, 0.95]) == 2
    # ignores the first two epochs, then the usual rule
    assert feed(callbacks.EarlyStopping(patience=1, start_from_epoch=2), [1.0, 2.0, 3.0, 4.0]) == 3


def test_early_stopping_restores_the_best_weights_in_fit():
    x, y = blobs(40)
    m = model(learning_rate=0.05)
    snapshots = []
    record = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(m.get_weights()))
    losses = iter([0.5, 0.3, 0.4, 0.45, 0.6])  # best at epoch 1

    class FakeValidation(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(losses)

    stopper = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = m.fit(x, y, epochs=5, verbose=0, callbacks=[FakeValidation(), record, stopper])
    assert history.epoch == [0, 1, 2, 3] and stopper.stopped_epoch == 3 and stopper.best_epoch == 1
    for restored, best in zip(m.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(restored, best)
    assert history.history["val_loss"] == [0.5, 0.3, 0.4, 0.45]  # History comes after the user's callbacks


def test_missing_monitor_warns_and_does_nothing():
    x, y = blobs(20)
    with pytest.warns(UserWarning, match="val_loss.*not available"):
        history = model().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.EarlyStopping(patience=0)])
    assert len(history.epoch) == 2


# ----------------------------------------------------------------------------------------------
# ModelCheckpoint
# ----------------------------------------------------------------------------------------------


def test_model_checkpoint_formats_the_path_and_saves_every_epoch(tmp_path):
    x, y = blobs(40)
    pattern = str(tmp_path / "ckpt" / "m-{epoch:02d}-{val_loss:.2f}.keras")
    m = model()
    history = m.fit(x, y, epochs=2, validation_split=0.25, verbose=0,
                    callbacks=[callbacks.ModelCheckpoint(pattern)])
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    expected = [f"m-{e + 1:02d}-{v:.2f}.keras" for e, v in enumerate(history.history["val_loss"])]
    assert names == sorted(expected)
    last = load_model(tmp_path / "ckpt" / expected[-1])
    np.testing.assert_array_equal(last.predict(x, verbose=0), m.predict(x, verbose=0))


def test_model_checkpoint_save_best_only_keeps_the_best(tmp_path):
    m = model()
    path = tmp_path / "best.npz"
    checkpoint = callbacks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    checkpoint.set_model(m)
    saved_weights = []
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6]):
        m.layers[-1].params["bias"][...] = epoch  # a different model each epoch
        checkpoint.on_epoch_begin(epoch, {})
        checkpoint.on_epoch_end(epoch, {"val_accuracy": accuracy})
        saved_weights.append(load_model(path).layers[-1].params["bias"].copy())
    assert [w[0] for w in saved_weights] == [0, 1, 1]  # epoch 2 (0.6) did not beat epoch 1 (0.7)
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]  # written atomically: no temporary left


def test_model_checkpoint_weights_only_and_save_freq_in_batches(tmp_path):
    x, y = blobs(40)
    m = model()
    saves = []
    m.save_weights = lambda path, overwrite=True: saves.append(path)
    m.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}-{batch}.weights.h5"), save_weights_only=True,
                                  save_freq=3)])
    assert [p.rsplit("/", 1)[1] for p in saves] == ["w-1-3.weights.h5", "w-2-2.weights.h5"]


@pytest.mark.parametrize("kwargs, message", [
    ({"filepath": "m.h5"}, r"\.keras or \.npz"),
    ({"filepath": "m.keras", "save_weights_only": True}, r"\.weights\.h5 or \.npz"),
    ({"filepath": "m.keras", "save_freq": "batch"}, "save_freq"),
])
def test_model_checkpoint_rejects_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        callbacks.ModelCheckpoint(**kwargs)


# ----------------------------------------------------------------------------------------------
# Learning rate: ReduceLROnPlateau and LearningRateScheduler
# ----------------------------------------------------------------------------------------------


def test_reduce_lr_on_plateau_factor_patience_cooldown_and_min_lr():
    m = model(learning_rate=1.0)
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.2)
    cb.set_model(m)
    cb.on_train_begin({})
    rates = []
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"val_loss": value}
        cb.on_epoch_end(epoch, logs)
        rates.append(m.optimizer.learning_rate)
        assert logs["learning_rate"] == (rates[-2] if epoch else 1.0)
    # plateau from epoch 1: halve; Keras's cooldown of 2 skips one epoch; halve; skip; min_lr caps it
    assert rates == [1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    with pytest.raises(ValueError, match=r"factor >= 1\.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_learning_rate_scheduler_sets_the_rate_each_epoch_and_logs_it():
    x, y = blobs(20)
    m = model(learning_rate=0.1)
    seen = []
    record = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(m.optimizer.learning_rate))
    history = m.fit(x, y, epochs=3, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr), record])
    assert seen == [0.1, 0.05, 0.025] and history.history["learning_rate"] == [0.1, 0.05, 0.025]
    one_argument = model(learning_rate=0.1)
    one_argument.fit(x, y, epochs=2, verbose=0,
                     callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))])
    assert one_argument.optimizer.learning_rate == 0.02
    with pytest.raises(ValueError, match="schedule"):
        model().fit(x, y, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: "fast")])


def test_the_learning_rate_a_scheduler_sets_is_the_one_the_optimizer_uses():
    x, y = blobs(20)
    a, b = model(), model()
    a.compile(optimizers.SGD(0.3), "sparse_categorical_crossentropy")
    b.compile(optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    a.fit(x, y, epochs=1, verbose=0, shuffle=False, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: 0.05)])
    b.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# ----------------------------------------------------------------------------------------------
# CSVLogger and TerminateOnNaN
# ----------------------------------------------------------------------------------------------


def test_csv_logger_writes_a_row_per_epoch_and_appends(tmp_path):
    x, y = blobs(20)
    path = tmp_path / "log.csv"
    m = model()
    history = m.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    rows = list(csv.reader(path.open()))
    # no validation: room is left for val_ columns, as Keras does
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1] and rows[1][3:] == ["NA", "NA"]
    assert float(rows[2][2]) == pytest.approx(history.history["loss"][1])
    m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, append=True)])
    assert len(list(csv.reader(path.open()))) == 4  # one more row, no second header
    m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, separator=";")])
    assert path.read_text().splitlines()[0] == "epoch;accuracy;loss;val_accuracy;val_loss"


def test_terminate_on_nan_stops_quietly_where_scratchnet_would_raise(capsys):
    x, y = blobs(40)
    m = Sequential([layers.Dense(2, input_shape=(4,))], dtype="float64")
    m.compile(optimizers.SGD(1e300), losses.SparseCategoricalCrossentropy(from_logits=True))
    with np.errstate(all="ignore"):
        history = m.fit(x * 1e10, y, batch_size=10, epochs=3, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert math.isnan(history.history["loss"][0]) and history.epoch == [0]
    assert m.optimizer.iterations < 4
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    m2 = Sequential([layers.Dense(2, input_shape=(4,))], dtype="float64")
    m2.compile(optimizers.SGD(1e300), losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(DivergenceError), np.errstate(all="ignore"):  # the default, without the callback
        m2.fit(x * 1e10, y, batch_size=10, epochs=3, verbose=0)
    with pytest.raises(RuntimeError, match="NaN or Inf loss"), np.errstate(all="ignore"):
        m2.fit(x * 1e10, y, batch_size=10, verbose=0, callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


def test_callback_list_has_every_hook_as_a_method_and_no_other_name():
    """Each hook is a method of CallbackList itself (an attribute found by __getattr__ costs a failed lookup
    on every call: microseconds a batch in predict); an empty list's hooks do nothing, others are unknown."""
    hook_names = [name for name in vars(callbacks.Callback) if name.startswith("on_")]
    assert hook_names and all(name in vars(callbacks.CallbackList) for name in hook_names)
    empty = callbacks.CallbackList()
    assert empty.on_predict_batch_end(0, {"outputs": None}) is None
    recorder = Recorder()
    callbacks.CallbackList([recorder]).on_predict_batch_end(3, {"b": 1, "a": 2})
    assert recorder.calls == [("on_predict_batch_end", 3, {"a": 2, "b": 1})]
    with pytest.raises(AttributeError):
        empty.on_unknown_hook  # noqa: B018
