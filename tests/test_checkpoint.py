"""Checkpoints and resume: a run killed at any moment and resumed ends bit-identical to the run never stopped."""

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scratchnet import callbacks, checkpoint, train, zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------- in Python: fit itself

@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return rng.random((600, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 600)


def cnn():
    # kaggle_cnn has dropout: its masks come from generators the checkpoint must carry
    return zoo.build("kaggle_cnn", seed=3, dtype="float32", num_classes=10, learning_rate=1e-3)


FIT = dict(batch_size=32, epochs=3, verbose=0, seed=5)  # 19 batches an epoch, the last one short


class StopAt(callbacks.Callback):
    """Stands for a crash: leaves fit by an exception after ``step`` updates."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if self.model.fit_loop.done == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("stops", [(7,), (19,), (5, 23, 40), (38, 39), (57,)])  # 57: the last batch, saved
def test_fit_resumed_from_backups_equals_the_uninterrupted_fit(tmp_path, images, stops):
    x, y = images
    fit = dict(FIT, validation_data=(x[:100], y[:100]))
    reference = cnn()
    expected = reference.fit(x, y, **fit).history
    for step in stops:
        with pytest.raises(KeyboardInterrupt):
            cnn().fit(x, y, callbacks=[callbacks.BackupAndRestore(tmp_path, save_freq=3), StopAt(step)], **fit)
    model = cnn()
    backup = callbacks.BackupAndRestore(tmp_path, save_freq=3)
    history = model.fit(x, y, callbacks=[backup], **fit)
    assert backup.restored_from is not None
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(model.optimizer.get_state(), reference.optimizer.get_state()):
        np.testing.assert_array_equal(got, want)
    assert history.history == expected and history.epoch == [0, 1, 2]
    assert checkpoint.checkpoints(tmp_path) == []  # delete_checkpoint=True, as Keras's


def test_request_stop_saves_at_the_step_boundary_and_keeps_the_newest(tmp_path, images):
    x, y = images

    class Signal(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self.model.fit_loop.done == 25:
                backup.request_stop("SIGINT")

    backup = callbacks.BackupAndRestore(tmp_path, save_freq=4, delete_checkpoint=False, keep=2)
    with pytest.raises(checkpoint.Interrupted) as stopped:
        cnn().fit(x, y, callbacks=[backup, Signal()], **FIT)
    assert stopped.value.signal == "SIGINT" and stopped.value.path == checkpoint.latest(tmp_path)
    description = json.loads(Path(stopped.value.path).read_text())
    assert description["position"] == {"epoch": 1, "batch": 7, "done": 26, "pass_position": 7}
    assert len(checkpoint.checkpoints(tmp_path)) == 2  # pruned to the newest two


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, images, monkeypatch):
    x, y = images
    backup = callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)
    model = cnn()
    model.fit(x, y, callbacks=[backup], **dict(FIT, epochs=1))
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def disk_full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "replace", disk_full)
    model.fit_loop.done += 1  # another position: another file name
    with pytest.raises(checkpoint.CheckpointError, match=f"cannot write a checkpoint in {re.escape(str(tmp_path))}: "
                                                         "No space left on device"):
        checkpoint.save(tmp_path, model)
    after = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert after == before  # nothing half-written, no temporary files left behind


@pytest.mark.parametrize("damage", ["truncate_npz", "garbage_json", "foreign_json", "missing_npz"])
def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path, images, damage):
    x, y = images
    cnn().fit(x, y, callbacks=[callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)], **dict(FIT, epochs=1))
    json_path = checkpoint.latest(tmp_path)
    npz_path = json_path[:-5] + ".npz"
    if damage == "truncate_npz":
        data = Path(npz_path).read_bytes()
        Path(npz_path).write_bytes(data[:len(data) // 2])
        named = npz_path
    elif damage == "garbage_json":
        Path(json_path).write_text('{"format": "scratchnet-checkp')
        named = json_path
    elif damage == "foreign_json":
        Path(json_path).write_text(json.dumps({"format": "something else", "version": 1}))
        named = json_path
    else:
        os.unlink(npz_path)
        named = npz_path
    model = cnn()
    weights = model.get_weights()
    with pytest.raises(checkpoint.CheckpointError, match=re.escape(named)):
        model.fit(x, y, callbacks=[callbacks.BackupAndRestore(tmp_path)], **FIT)
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)  # refused before anything changed


def test_the_lock_refuses_a_second_user(tmp_path):
    held = checkpoint.lock(tmp_path)
    try:
        with pytest.raises(checkpoint.CheckpointError, match="another run is using the checkpoint directory"):
            checkpoint.lock(tmp_path)
    finally:
        held.close()
    checkpoint.lock(tmp_path).close()  # free again once the first run ends


# ---------------------------------------------------------------------------------- the train CLI's loops of steps

def old_batches(n, batch_size, order, rng):
    """The generator ``train.batches`` was before it became a StepBatches (the batch order TF parity uses)."""
    if order == "sequential":
        step = 0
        while True:
            offset = (step * batch_size) % (n - batch_size)
            yield slice(offset, offset + batch_size)
            step += 1
    while True:
        permutation = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield permutation[start:start + batch_size]


@pytest.mark.parametrize(("order", "n", "batch_size"), [("shuffle", 10, 3), ("shuffle", 12, 4), ("shuffle", 100, 7),
                                                        ("shuffle", 5, 5), ("shuffle", 7, 1), ("sequential", 10, 3),
                                                        ("sequential", 100, 7), ("sequential", 6, 5)])
def test_step_batches_give_the_batches_of_the_generator_they_replaced(order, n, batch_size):
    old = old_batches(n, batch_size, order, np.random.default_rng(4))
    new = train.batches(n, batch_size, order, np.random.default_rng(4))
    for _ in range(60):  # several passes
        want, got = next(old), next(new)
        assert got == want if isinstance(want, slice) else np.array_equal(got, want)


class Crash(Exception):
    """Stands for a crash in the middle of a run of steps."""


def crash_at(model, step):
    """Make ``model.train_step`` raise ``Crash`` instead of taking step ``step`` (0-based) of the loop."""
    train_step = model.train_step

    def failing(*args, **kwargs):
        if model.fit_loop.done == step:
            raise Crash
        return train_step(*args, **kwargs)

    model.train_step = failing


STEP_RUNS = {
    # (model, recipe): dropout and reshuffled passes of 6 batches; notMNIST's sequential order with validation;
    # logreg's full batch
    "shuffle": ("kaggle_cnn", zoo.defaults("deep_mnist").replace(steps=20, batch_size=8, report_every=3)),
    "sequential": ("notmnist_cnn", zoo.defaults("notmnist_cnn").replace(steps=20, batch_size=8, report_every=4)),
    "full_batch": ("logreg", zoo.defaults("logreg").replace(steps=20)),
}


def run_steps(kind, images, backup=None):
    """Train as ``python -m scratchnet.train`` trains a "steps" or "full_batch" recipe; returns (model, history)."""
    import argparse

    name, recipe = STEP_RUNS[kind]
    x, y = images
    x = x[:50]
    if name == "logreg":  # raw pixels after a ones column; "is it a 4?"
        x = np.concatenate([np.ones((50, 1)), x.reshape(50, -1) * 255], axis=1)
        y = (y[:50] == 4).astype("float64").reshape(-1, 1)
    else:
        y = y[:50]
    model = zoo.build(name, seed=3, dtype=recipe.dtype, num_classes=10, learning_rate=recipe.learning_rate)
    args = argparse.Namespace(seed=5, quiet=True, json=False)
    data = (x.astype(recipe.dtype), y, x[:10].astype(recipe.dtype), y[:10])
    model.run = lambda: train._train(model, data, recipe, args, lambda line: None, backup)
    return model


@pytest.mark.parametrize("kind", list(STEP_RUNS))
@pytest.mark.parametrize("crashes", [(5,), (8, 9, 15), (19,)])
def test_a_loop_of_steps_resumed_from_checkpoints_equals_the_uninterrupted_loop(tmp_path, images, kind, crashes):
    reference = run_steps(kind, images)
    expected, steps, _ = reference.run()
    for step in crashes:
        model = run_steps(kind, images, callbacks.BackupAndRestore(tmp_path, save_freq=2, delete_checkpoint=False,
                                                                     keep=2))
        crash_at(model, step)
        with pytest.raises(Crash):
            model.run()
        assert model.fit_loop.done == step
    model = run_steps(kind, images, callbacks.BackupAndRestore(tmp_path, save_freq=2, delete_checkpoint=False))
    history, steps_again, _ = model.run()
    assert steps_again == steps and history == expected
    for got, want in zip(model.get_weights() + model.optimizer.get_state(),
                         reference.get_weights() + reference.optimizer.get_state()):
        np.testing.assert_array_equal(got, want)
    newest = json.loads(Path(checkpoint.latest(tmp_path)).read_text())
    assert newest["position"]["done"] == steps  # the end of the run is saved


# ---------------------------------------------------------------------------------- the training CLI

ARGS = ["--model", "mlp", "--epochs", "3", "--batch-size", "100", "--seed", "4", "--quiet"]  # 540 steps an epoch


def cli(tmp_path, *args):
    env = dict(os.environ, SCRATCHNET_HOME=str(tmp_path / "home"), PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-m", "scratchnet.train", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process):
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def weights(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name.startswith(("weight_", "optimizer_"))}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("reference")
    code, out, err = finish(cli(tmp_path, *ARGS, "--save", str(tmp_path / "model.npz")))
    assert code == 0, err
    return weights(tmp_path / "model.npz"), out


def wait_for(process, start):
    """Read the child's stdout up to the line that starts with ``start``."""
    while True:
        line = process.stdout.readline()
        assert line, f"the run ended before printing {start!r}"
        if line.startswith(start):
            return line


def same(got, want):
    assert got.keys() == want.keys()
    return all(np.array_equal(got[name], want[name]) for name in want)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cli_killed_at_a_random_moment_resumes_bit_identical(tmp_path, uninterrupted, seed):
    moment = random.Random(seed).uniform(0.0, 1.0)
    args = [*ARGS, "--save", str(tmp_path / "model.npz"), "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--checkpoint-every", "37"]
    process = cli(tmp_path, *args)
    wait_for(process, "Epoch 1/3")  # the epoch's checkpoint is being written or just written
    time.sleep(moment)
    process.send_signal(signal.SIGKILL)
    code, _, _ = finish(process)
    assert code == -signal.SIGKILL, "the run ended before it was killed"
    newest = checkpoint.latest(tmp_path / "ckpt")
    code, out, err = finish(cli(tmp_path, *args, "--resume"))
    assert code == 0, err
    assert f"resuming from {newest}" in out
    assert same(weights(tmp_path / "model.npz"), uninterrupted[0])


@pytest.mark.parametrize(("stop", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_signal_saves_a_checkpoint_and_prints_the_resume_command(tmp_path, uninterrupted, stop, exit_code):
    args = [*ARGS, "--save", str(tmp_path / "model.npz"), "--checkpoint-dir", str(tmp_path / "ckpt")]
    process = cli(tmp_path, *args)
    wait_for(process, "Epoch 1/3")
    time.sleep(0.3)
    process.send_signal(stop)
    code, out, err = finish(process)
    assert code == exit_code, err
    saved = re.search(rf"^{stop.name}: saved a checkpoint to (\S+\.json)$", err, re.M)
    assert saved and os.path.exists(saved[1]) and saved[1] == checkpoint.latest(tmp_path / "ckpt")
    command = re.search(r"^resume with: \S*python\S* -m scratchnet\.train (.*)$", err, re.M)
    assert command and command[1].split() == [*args, "--resume"]
    code, out, err = finish(cli(tmp_path, *command[1].split()))
    assert code == 0, err
    assert f"resuming from {saved[1]}" in out
    assert same(weights(tmp_path / "model.npz"), uninterrupted[0])


def test_cli_refuses_a_locked_directory_and_different_arguments(tmp_path):
    directory = tmp_path / "ckpt"
    held = checkpoint.lock(directory)
    try:
        code, _, err = finish(cli(tmp_path, *ARGS, "--no-save", "--checkpoint-dir", str(directory)))
    finally:
        held.close()
    assert code == 1 and err.strip().splitlines() == [
        f"error: another run is using the checkpoint directory {directory} (it holds {directory / 'lock'})"]
    code, _, err = finish(cli(tmp_path, *ARGS, "--epochs", "1", "--no-save", "--checkpoint-dir", str(directory)))
    assert code == 0, err
    code, _, err = finish(cli(tmp_path, *ARGS, "--epochs", "1", "--no-save", "--checkpoint-dir", str(directory)))
    assert code == 1 and "already holds checkpoints of a run: continue it with --resume" in err
    code, _, err = finish(cli(tmp_path, *ARGS, "--epochs", "1", "--seed", "5", "--no-save", "--checkpoint-dir",
                              str(directory), "--resume"))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "was made with different arguments: seed 4 (now 5)" in err


# ---------------------------------------------------------------------------------- the CLI, a model trained by steps

@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    """An MNIST directory of 5,300 training images (deep_mnist's recipe holds out the first 5,000 for validation,
    as TensorFlow 1 did: 300 are left to train on, 18 batches of 16 a pass) and 100 test images."""
    from scratchnet.data.idx import write_idx
    from scratchnet.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    folder = tmp_path_factory.mktemp("small_mnist")
    for name, array in (("train-images-idx3-ubyte.gz", x_train[:5300]), ("train-labels-idx1-ubyte.gz", y_train[:5300]),
                        ("t10k-images-idx3-ubyte.gz", x_test[:100]), ("t10k-labels-idx1-ubyte.gz", y_test[:100])):
        write_idx(folder / name, array)
    return folder


def step_args(data_dir):
    # deep_mnist: dropout, Adam, and the batch order's reshuffled passes (a new one every 18 steps)
    return ["--model", "deep_mnist", "--steps", "60", "--batch-size", "16", "--seed", "4", "--quiet",
            "--data-dir", str(data_dir)]


@pytest.fixture(scope="module")
def uninterrupted_steps(tmp_path_factory, small_mnist):
    tmp_path = tmp_path_factory.mktemp("reference_steps")
    code, out, err = finish(cli(tmp_path, *step_args(small_mnist), "--save", str(tmp_path / "model.npz")))
    assert code == 0, err
    return weights(tmp_path / "model.npz"), out


def wait_for_a_checkpoint(process, directory):
    """Wait until the run has written its first checkpoint to ``directory`` (it must still be running)."""
    while checkpoint.latest(directory) is None:
        assert process.poll() is None, "the run ended before it wrote a checkpoint"
        time.sleep(0.02)


def last_report(out):
    return [line for line in out.splitlines() if line.startswith("step ")][-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cli_of_a_steps_model_killed_at_a_random_moment_resumes_bit_identical(tmp_path, small_mnist,
                                                                               uninterrupted_steps, seed):
    moment = random.Random(seed).uniform(0.0, 1.0)
    args = [*step_args(small_mnist), "--save", str(tmp_path / "model.npz"), "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--checkpoint-every", "10"]
    process = cli(tmp_path, *args)
    wait_for_a_checkpoint(process, tmp_path / "ckpt")
    time.sleep(moment)
    process.send_signal(signal.SIGKILL)
    code, _, _ = finish(process)
    assert code == -signal.SIGKILL, "the run ended before it was killed"
    newest = checkpoint.latest(tmp_path / "ckpt")
    assert json.loads(Path(newest).read_text())["position"]["done"] < 60
    code, out, err = finish(cli(tmp_path, *args, "--resume"))
    assert code == 0, err
    assert f"resuming from {newest}" in out
    assert same(weights(tmp_path / "model.npz"), uninterrupted_steps[0])
    assert last_report(out) == last_report(uninterrupted_steps[1])  # "step    59: minibatch loss ..."


def test_cli_of_a_steps_model_stopped_by_sigterm_resumes_bit_identical(tmp_path, small_mnist, uninterrupted_steps):
    args = [*step_args(small_mnist), "--save", str(tmp_path / "model.npz"), "--checkpoint-dir", str(tmp_path / "ckpt")]
    process = cli(tmp_path, *args)
    wait_for(process, "step     0:")  # without --checkpoint-every: every 100 steps and at the end, so none yet
    time.sleep(0.3)
    assert checkpoint.latest(tmp_path / "ckpt") is None
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == 143, err
    saved = re.search(r"^SIGTERM: saved a checkpoint to (\S+\.json)$", err, re.M)
    assert saved and saved[1] == checkpoint.latest(tmp_path / "ckpt")
    command = re.search(r"^resume with: \S*python\S* -m scratchnet\.train (.*)$", err, re.M)
    assert command and command[1].split() == [*args, "--resume"]
    code, out, err = finish(cli(tmp_path, *command[1].split()))
    assert code == 0, err
    assert f"resuming from {saved[1]}" in out
    assert same(weights(tmp_path / "model.npz"), uninterrupted_steps[0])


# ---------------------------------------------------------------------------------- the CLI's failure paths

def files(directory):
    """{name: bytes} of the files in ``directory``."""
    return {path.name: path.read_bytes() for path in Path(directory).iterdir()}


@pytest.mark.parametrize(("reason", "failing"), [(errno.EROFS, ".npz"), (errno.ENOSPC, ".json")])
def test_cli_a_checkpoint_that_cannot_be_written_exits_1_with_one_line_and_keeps_the_previous(tmp_path, monkeypatch,
                                                                                             capsys, reason, failing):
    """A directory turned read-only (or a disk that fills) after the first checkpoint: the second one's .npz or
    .json cannot be put in place. (As root, permissions are not enforced: the rename is made to fail.)"""
    monkeypatch.setenv("SCRATCHNET_HOME", str(tmp_path / "home"))
    directory = tmp_path / "ckpt"
    replace, renamed, before = os.replace, [], {}

    def unwritable_after_the_first_checkpoint(source, target):
        if os.path.dirname(target) == str(directory):
            renamed.append(target)
            if len(renamed) == 3:  # the second checkpoint begins: what the first one left
                before.update({name: data for name, data in files(directory).items() if not name.startswith(".tmp-")})
            if renamed[2:] and target.endswith(failing):
                raise OSError(reason, os.strerror(reason), target)
        replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", unwritable_after_the_first_checkpoint)
    code = train.main(["--model", "softmax", "--steps", "30", "--seed", "1", "--no-save", "--quiet",
                       "--checkpoint-dir", str(directory), "--checkpoint-every", "10"])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot write a checkpoint in {directory}: {os.strerror(reason)}"]
    assert sorted(before) == ["ckpt-000000010-00000-0000010.json", "ckpt-000000010-00000-0000010.npz", "lock"]
    assert files(directory) == before  # the first checkpoint as it was; no temporary file, no .npz alone


def test_cli_a_file_where_the_checkpoint_directory_should_be_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCRATCHNET_HOME", str(tmp_path / "home"))
    (tmp_path / "file").write_text("not a directory")
    directory = tmp_path / "file" / "ckpt"
    code = train.main(["--model", "softmax", "--steps", "3", "--no-save", "--quiet", "--checkpoint-dir",
                       str(directory)])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [f"error: cannot use {directory} for checkpoints: Not a directory"]


def test_cli_a_second_ctrl_c_stops_at_once_leaving_no_half_written_checkpoint(tmp_path, small_mnist):
    """The first SIGINT asks for a checkpoint at the end of the step; the second, sent as soon as the run says
    so, stops it at once: in the middle of the step or of writing that checkpoint (deep_mnist's are 39 MB), which
    is then abandoned. Every checkpoint left is complete, and those written before are untouched."""
    directory = tmp_path / "ckpt"
    process = cli(tmp_path, *step_args(small_mnist), "--no-save", "--checkpoint-dir", str(directory),
                  "--checkpoint-every", "3", "--keep-checkpoints", "100")
    wait_for_a_checkpoint(process, directory)
    before = {name: data for name, data in files(directory).items()
              if name.endswith(".json") or name.endswith(".npz") and (directory / f"{name[:-4]}.json").exists()}
    process.send_signal(signal.SIGINT)
    wait_for(process, "SIGINT: saving a checkpoint at the end of this step (Ctrl-C again to stop at once)")
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process)
    assert code == 130, err
    assert err.splitlines()[-1] == "interrupted" or re.search(r"^SIGINT: saved a checkpoint to ", err, re.M)
    left = files(directory)
    assert not [name for name in left if name.startswith(".tmp-")]
    stems = {name.rsplit(".", 1)[0] for name in left if name != "lock"}
    assert {name for name in left if name != "lock"} == {f"{stem}.{kind}" for stem in stems for kind in ("json", "npz")}
    assert {name: left[name] for name in before} == before
    for stem in stems:
        description = checkpoint.describe(directory / f"{stem}.json")
        with np.load(directory / f"{stem}.npz", allow_pickle=False) as archive:
            assert len([name for name in archive.files if name.startswith("weight.")]) == \
                description["counts"]["weights"]
