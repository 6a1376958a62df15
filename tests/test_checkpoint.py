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

from scratchnet import callbacks, checkpoint, zoo

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
