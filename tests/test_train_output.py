"""What the training CLI prints when its output is not a terminal (a log file, CI, nohup): a line per epoch."""

import os
import re
import subprocess
import sys

import pytest

from scratchnet.models import progress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Keras's verbose=2 line, with the epoch in front: "Epoch 2/3 - 4s - 12ms/step - accuracy: 0.9 - loss: ..."
NUMBER = r"\d+\.\d{4}(?:e[+-]\d+)?"
EPOCH_LINE = re.compile(rf"^Epoch (\d+)/(\d+) - \d+s - \d+(?:s|ms|us)/step - accuracy: {NUMBER} - loss: {NUMBER}"
                        rf" - val_accuracy: {NUMBER} - val_loss: {NUMBER}$")


def run_cli(tmp_path, *args, env=None):
    """The CLI in a child process with stdout and stderr sent to pipes, as under CI or nohup."""
    env = dict(os.environ, SCRATCHNET_HOME=str(tmp_path / "home"), PYTHONPATH=REPO, **(env or {}))
    done = subprocess.run([sys.executable, "-m", "scratchnet.train", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_piped_output_is_one_line_per_epoch_without_carriage_returns(tmp_path, quiet):
    epochs = 3
    out, err = run_cli(tmp_path, "--model", "mlp", "--epochs", str(epochs), "--batch-size", "2000", "--no-save",
                       *(["--quiet"] if quiet else []))
    assert "\r" not in out and "\r" not in err
    assert "\x1b[" not in out and "\x1b[" not in err  # no terminal colour codes either
    lines = [line for line in out.splitlines() if line.startswith("Epoch")]
    assert len(lines) == epochs, out
    for number, line in enumerate(lines, start=1):
        match = EPOCH_LINE.match(line)
        assert match, f"not Keras's verbose=2 shape: {line!r}"
        assert (int(match[1]), int(match[2])) == (number, epochs)
    assert not any("━" in line or "/step" in line for line in out.splitlines() if not line.startswith("Epoch"))


def test_steps_schedule_draws_no_bar_into_a_pipe(tmp_path):
    out, err = run_cli(tmp_path, "--model", "softmax", "--steps", "30", "--no-save")
    assert "\r" not in out + err and "training:" not in err
    assert re.search(r"^step +0: minibatch loss", out, re.M)


def test_epoch_line_matches_keras_verbose_2_fields():
    line = progress.epoch_line(1, 4, 21.3, 1500, {"accuracy": 0.98512, "loss": 0.0489, "batch_loss": 3.0,
                                                  "val_accuracy": 0.988, "val_loss": 0.0001})
    assert line == ("Epoch 2/4 - 21s - 14ms/step - accuracy: 0.9851 - loss: 0.0489 - val_accuracy: 0.9880"
                    " - val_loss: 1.0000e-04")


@pytest.mark.parametrize(("verbose", "tty", "expected"), [("auto", True, 1), ("auto", False, 2), (0, True, 0),
                                                         (1, False, 1), (2, True, 2)])
def test_fit_verbose_follows_keras(verbose, tty, expected):
    class Stream:
        def isatty(self):
            return tty

    assert progress.resolve_verbose(verbose, Stream()) == expected


def test_first_run_says_it_compiles_and_the_next_does_not(tmp_path):
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}  # empty: every kernel compiles
    args = ("--model", "mlp", "--epochs", "1", "--batch-size", "2000", "--no-save", "--quiet")
    first, _ = run_cli(tmp_path, *args, env=cache)
    lines = first.splitlines()
    notice = lines.index("compiling kernels (first run only) ...")
    assert re.fullmatch(r"compiled the kernels in \d+\.\d s \(cached for the next runs\)", lines[notice + 1])
    assert lines[notice + 2].startswith("Epoch 1/1")  # compiled before training: the epoch's time leaves it out
    second, _ = run_cli(tmp_path, *args, env=cache)
    assert "compiling" not in second and "compiled" not in second
    # The warm-up trains a copy: the run itself is the same whether the kernels were compiled or cached.
    assert [line for line in first.splitlines() if line.startswith("test:")][0].split(" (")[0] == \
        [line for line in second.splitlines() if line.startswith("test:")][0].split(" (")[0]
