"""The zoo builds each model of MODELS.md with the right architecture, and each one trains."""

import numpy as np
import pytest

from scratchnet import zoo

PARAMETER_COUNTS = {  # worked out by hand from MODELS.md
    "logreg": 785,                                              # w (785, 1), bias in the ones column
    "softmax": 784 * 10 + 10,
    "mlp": 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10,        # 42,310
    "notmnist_cnn": 5 * 5 * 16 + 16 + 5 * 5 * 16 * 16 + 16 + 784 * 64 + 64 + 64 * 10 + 10,
    "emnist_cnn": 5 * 5 * 32 + 32 + 3 * 3 * 32 * 64 + 64 + 1600 * 128 + 128 + 128 * 62 + 62,
    "kaggle_cnn": 5 * 5 * 8 + 8 + 5 * 5 * 8 * 16 + 16 + 256 * 128 + 128 + 128 * 10 + 10,
    "deep_mnist": 5 * 5 * 32 + 32 + 5 * 5 * 32 * 64 + 64 + 3136 * 1024 + 1024 + 1024 * 10 + 10,
}


def test_zoo_names_are_the_seven_models_of_models_md():
    assert zoo.NAMES == ("logreg", "softmax", "mlp", "notmnist_cnn", "emnist_cnn", "kaggle_cnn", "deep_mnist")


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model_has_the_parameter_count_of_models_md(name):
    assert zoo.build(name).count_params() == PARAMETER_COUNTS[name]


def test_emnist_cnn_output_layer_follows_num_classes():
    assert zoo.build("emnist_cnn", num_classes=10).count_params() == PARAMETER_COUNTS["emnist_cnn"] - 52 * 129


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model_trains_a_few_steps_and_its_loss_falls(name):
    rng = np.random.default_rng(0)
    recipe = zoo.defaults(name)
    n = 32
    if name == "logreg":
        # small inputs keep full-batch descent at the source's 1e-5 stable on random data
        x = np.concatenate([np.ones((n, 1)), rng.random((n, 784))], axis=1)
        y = (rng.random((n, 1)) < 0.5).astype(np.float64)
        learning_rate = None
    else:
        x = rng.random((n, 784) if recipe.flat else (n, 28, 28, 1)).astype(np.float32)
        y = rng.integers(0, 10, n)
        learning_rate = 1e-3 if recipe.optimizer == "adam" else 0.05
    model = zoo.build(name, seed=1, learning_rate=learning_rate)
    first = model.evaluate(x, y, batch_size=n)[0]
    for _ in range(8):
        model.train_step(x, y)
    last = model.evaluate(x, y, batch_size=n)[0]
    assert np.isfinite(first) and np.isfinite(last)
    assert last < first, (name, first, last)


@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_defaults_name_a_dataset_and_a_schedule(name):
    recipe = zoo.defaults(name)
    assert recipe.dataset and recipe.reported and recipe.source
    assert (recipe.epochs or recipe.steps) and recipe.learning_rate > 0
    assert zoo.build.__doc__ and getattr(zoo, f"_build_{name}").__doc__


def test_zoo_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown model 'lenet'"):
        zoo.build("lenet")


def test_logreg_runs_in_float64_and_the_rest_in_float32():
    assert all(w.dtype == np.float64 for w in zoo.build("logreg").get_weights())
    assert all(w.dtype == np.float32 for w in zoo.build("mlp").get_weights())
    assert all(w.dtype == np.float64 for w in zoo.build("mlp", dtype="float64").get_weights())
