"""python -m scratchnet.train: trains on real MNIST, reports as JSON, and fails cleanly on bad input."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchnet import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, env=None):
    """Run the CLI in a child process, as a user would; returns (exit code, stdout, stderr)."""
    child_env = dict(os.environ, **(env or {}))
    done = subprocess.run([sys.executable, "-m", "scratchnet.train", *args], capture_output=True, text=True,
                          cwd=REPO, env=child_env, timeout=600)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_train_cli_trains_mlp_on_real_mnist_and_prints_a_json_summary(home, capsys):
    assert train.main(["--model", "mlp", "--steps", "60", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("model", "dataset", "epochs", "steps", "test_accuracy", "test_loss", "train_seconds",
                "images_per_second", "saved_to"):
        assert key in summary
    assert summary["model"] == "mlp" and summary["dataset"] == "mnist" and summary["steps"] == 60
    assert summary["test_accuracy"] > 0.80  # 60 Adam steps of 100 real digits already learn a lot
    assert os.path.exists(summary["saved_to"]) and summary["saved_to"] == str(home / "models" / "mlp.npz")


def test_train_cli_saved_model_loads_and_reproduces_the_test_accuracy(tmp_path, capsys):
    from scratchnet import load_model
    from scratchnet.datasets import mnist

    path = tmp_path / "softmax.npz"
    assert train.main(["--model", "softmax", "--steps", "50", "--save", str(path), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (_, _), (x_test, y_test) = mnist.load_data()
    model = load_model(path)
    accuracy = model.evaluate(x_test.reshape(-1, 784).astype(np.float32) / 255, y_test, batch_size=1000)[1]
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1e-9)


def test_kaggle_cnn_trains_on_the_kaggle_split_of_scratchnet_datasets(capsys):
    assert train.main(["--model", "kaggle_cnn", "--steps", "5", "--json", "--quiet", "--no-save"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["dataset"] == "kaggle" and summary["steps"] == 5
    assert "33,600 training, 8,400 validation, 28,000 test images" in captured.err
    assert summary["val_accuracy"] is not None and summary["test_accuracy"] is not None


def test_logreg_prints_the_source_loss_lines_reproducible_to_1e_12(capsys):
    """The printed trajectory equals the source's plain NumPy loop (naive loss, same data) to 1e-12."""
    from scratchnet.datasets import mnist

    assert train.main(["--model", "logreg", "--steps", "4", "--no-save"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Iteration")]
    assert len(lines) == 4
    assert lines[0] == f"Iteration    0 => Loss: {np.log(2.0):.20f}"

    (x, y), _ = mnist.load_data()
    X = np.hstack([np.ones((len(x), 1)), x.reshape(len(x), -1).astype(np.float64)])
    Y = (y == 4).astype(np.float64).reshape(-1, 1)
    w = np.zeros((785, 1))
    for line in lines:
        p = 1 / (1 + np.exp(-(X @ w)))
        expected = -np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p))
        assert abs(float(line.split(": ")[1]) - expected) < 1e-12, line
        w -= 1e-5 * X.T @ (p - Y) / len(X)


def test_diverging_run_exits_1_with_one_line(capsys):
    code = train.main(["--model", "softmax", "--steps", "30", "--learning-rate", "1e38", "--no-save", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: ") and "diverged" in err[0].lower()


@pytest.mark.parametrize("argv", [["--epochs", "-1"], ["--batch-size", "0"], ["--model", "lenet"],
                                  ["--learning-rate", "nan"], ["--steps", "many"]])
def test_usage_errors_exit_2(argv, capsys):
    assert train.main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_missing_data_dir_exits_1_with_one_line(tmp_path):
    code, out, err = run_cli("--model", "mlp", "--data-dir", str(tmp_path / "nowhere"), "--no-save")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error:") and "nowhere" in err
    assert "Traceback" not in err


def test_truncated_idx_file_in_data_dir_exits_1_naming_the_file(tmp_path):
    from scratchnet.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    from scratchnet.data.idx import write_idx

    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x_train[:100])
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y_train[:100])
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x_test[:100])
    raw = gzip.compress(gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())[:5000])
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(raw)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y_test[:100])
    code, out, err = run_cli("--model", "mlp", "--data-dir", str(tmp_path), "--no-save")
    assert code == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and "t10k-images-idx3-ubyte.gz" in err


def test_cli_help_lists_the_flags():
    code, out, err = run_cli("--help")
    assert code == 0 and "--model" in out and "--data-dir" in out
