"""Model parity with TensorFlow: every zoo model against its TF twin, same weights, batches and dropout masks.

For each of the seven models, in float32 and float64 (`tf_reference.parity` does the runs):

* one batch: inference and training logits, the loss and every parameter gradient (conv models under
  both engine backends);
* training: every weight after 1 and after 10 steps, and each step's loss, with Keras's SGD and Adam
  (and SGD with momentum / Nesterov momentum for two models).

Measure: ``max|scratchnet - tf| / max|tf|`` per array (infinity norms). Tolerance: float64 1e-10, float32
1e-5, except float32 weights after Adam steps, 1e-4 (`tf_reference.parity.ADAM_FLOAT32_TOLERANCE` says
why). Batches hold 4 examples so the whole module runs in a couple of minutes on two cores.
"""
import numpy as np
import pytest

from scratchnet import engine
from tf_reference import parity
from tf_reference.compare import TOLERANCE

MODELS = parity.twins.NAMES
CONV_MODELS = ("notmnist_cnn", "emnist_cnn", "kaggle_cnn", "deep_mnist")
DTYPES = ("float32", "float64")


def assert_pairs_within_tolerance(pairs, dtype):
    """Every comparison within its tolerance; the failure lists each one that is not."""
    assert pairs, "nothing was compared"
    failures = [
        f"{pair.what}: max norm {pair.difference:.2e} (tolerance {pair.tolerance(dtype):.0e}), "
        f"2-norm {pair.l2_difference:.2e}"
        for pair in pairs
        if not pair.within(dtype)
    ]
    assert not failures, f"{dtype}, scratchnet vs tf outside tolerance:\n" + "\n".join(failures)


def one_batch_cases():
    for name in MODELS:
        for dtype in DTYPES:
            for backend in (("numba", "numpy") if name in CONV_MODELS else ("numba",)):
                yield pytest.param(name, dtype, backend, id=f"{name}-{dtype}-{backend}")


@pytest.mark.parametrize("name, dtype, backend", list(one_batch_cases()))
def test_logits_loss_and_every_gradient_match_tf_for_one_batch(name, dtype, backend):
    with engine.backend(backend):
        pairs = parity.one_batch(name, dtype)
    kinds = {pair.kind for pair in pairs}
    assert kinds == {"logits", "loss", "gradient"}
    assert_pairs_within_tolerance(pairs, dtype)


def training_cases():
    for name in MODELS:
        for dtype in DTYPES:
            for optimizer in ("sgd", "adam"):
                yield pytest.param(name, dtype, optimizer, id=f"{name}-{dtype}-{optimizer}")
    for name in ("mlp", "notmnist_cnn"):
        for dtype in DTYPES:
            for optimizer in ("momentum", "nesterov"):
                yield pytest.param(name, dtype, optimizer, id=f"{name}-{dtype}-{optimizer}")


@pytest.mark.parametrize("name, dtype, optimizer", list(training_cases()))
def test_weights_after_1_and_10_steps_match_tf(name, dtype, optimizer):
    pairs = parity.training(name, dtype, optimizer, steps=10)
    steps_seen = {pair.what.split(" ")[2] for pair in pairs if pair.kind == "weights"}
    assert steps_seen == {"1", "10"}
    assert_pairs_within_tolerance(pairs, dtype)


def test_parity_runs_really_train_and_drop_units():
    """Guard against vacuous parity: the weights move, the losses change, and dropout masks bite."""
    model, _ = parity.build_pair("deep_mnist", "float64", optimizer="adam")
    masks = parity.draw_masks(model, parity.BATCH_SIZE, np.random.default_rng(1))
    assert len(masks) == 1 and 0.3 < masks[0].mean() < 0.7

    pairs = parity.training("mlp", "float64", "sgd", steps=10)
    losses = next(pair for pair in pairs if pair.kind == "loss")
    assert np.ptp(losses.tensorflow) > 1e-3
    start = parity.zoo.build("mlp", seed=0, dtype="float64").get_weights()
    moved = [pair for pair in pairs if pair.what.startswith("sgd step 10 ")]
    assert all(not np.allclose(pair.tensorflow, w0, rtol=0, atol=1e-8) for pair, w0 in zip(moved, start))


def test_a_wrong_weight_is_caught():
    """The comparison is sensitive: one weight nudged by 1e-8 relative fails the float64 tolerance."""
    model, twin = parity.build_pair("softmax", "float64", optimizer="sgd")
    (x, labels), = parity.make_batches("softmax", 1)
    weights = model.get_weights()
    weights[1] = weights[1] + 1e-8
    twin.set_weights(weights)
    logits = model.predict_logits(x)
    logits_tf = twin.predict_logits(x)
    assert parity.relative_difference(logits, logits_tf) > TOLERANCE["float64"]


# ------------------------------------------------------------------------------------------------
# Small models of the newer layers (BatchNormalization, average/global pooling, Softmax/ReLU/LeakyReLU
# layers, every activation by name, mse/mae) and optimizers (RMSprop, AdamW, schedules, weight decay)
# against their Keras twins (tf_reference.keras_parity)
# ------------------------------------------------------------------------------------------------

from tf_reference import keras_parity  # noqa: E402

SMALL_CONV_MODELS = ("bn_cnn", "pooling_mse")


def small_one_batch_cases():
    for name in keras_parity.MODELS:
        for dtype in DTYPES:
            for backend in (("numba", "numpy") if name in SMALL_CONV_MODELS else ("numba",)):
                yield pytest.param(name, dtype, backend, id=f"{name}-{dtype}-{backend}")


@pytest.mark.parametrize("name, dtype, backend", list(small_one_batch_cases()))
def test_new_layers_predictions_loss_gradients_and_moving_statistics_match_keras(name, dtype, backend):
    with engine.backend(backend):
        pairs = keras_parity.one_batch(name, dtype)
    assert {pair.kind for pair in pairs} == {"logits", "loss", "gradient"}
    assert_pairs_within_tolerance(pairs, dtype)


def small_training_cases():
    models = list(keras_parity.MODELS)
    combos = {(models[i % len(models)], optimizer) for i, optimizer in enumerate(keras_parity.OPTIMIZERS)}
    combos |= {(name, "adam") for name in models} | {("bn_cnn", "rmsprop_cosine"), ("bn_mlp", "adamw")}
    for name, optimizer in sorted(combos):
        for dtype in DTYPES:
            yield pytest.param(name, dtype, optimizer, id=f"{name}-{dtype}-{optimizer}")


@pytest.mark.parametrize("name, dtype, optimizer", list(small_training_cases()))
def test_new_layers_and_optimizers_weights_after_1_and_5_steps_match_keras(name, dtype, optimizer):
    pairs = keras_parity.training(name, dtype, optimizer)
    assert {pair.what.split(" ")[2] for pair in pairs if pair.kind == "weights"} == {"1", str(keras_parity.STEPS)}
    assert_pairs_within_tolerance(pairs, dtype)


def test_new_layer_parity_runs_really_train_and_move_the_statistics():
    """Guard against vacuous parity: weights and moving statistics move, and a wrong momentum is caught."""
    model, _, _ = keras_parity.build_pair("bn_cnn", "float64", "adamw")
    start = model.get_weights()
    pairs = keras_parity.training("bn_cnn", "float64", "adamw")
    last = [pair for pair in pairs if pair.what.startswith(f"adamw step {keras_parity.STEPS} ")]
    assert len(last) == len(start)
    assert all(not np.allclose(pair.tensorflow, w0, rtol=0, atol=1e-8) for pair, w0 in zip(last, start))
    assert any("moving_variance" in pair.what for pair in last)

    model, keras_model, _ = keras_parity.build_pair("bn_mlp", "float64")
    keras_model.layers[1].momentum = 0.98  # Keras's default is 0.99: one training forward must show it
    (x, _), = keras_parity.make_batches("bn_mlp", 1)
    model(x, training=True)
    keras_model(x, training=True)
    mean = model.layers[1].non_trainable_params["moving_mean"]
    assert parity.relative_difference(mean, keras_model.layers[1].moving_mean.numpy()) > 1e-3


@pytest.mark.parametrize("name", list(keras_parity.MODELS))
def test_new_layer_models_export_to_keras_files_and_come_back(name, tmp_path):
    """The export CLI's two directions: scratchnet .npz -> .keras (plain Keras loads it) -> .npz."""
    from scratchnet import load_model
    from tf_reference import export

    model, _, _ = keras_parity.build_pair(name, "float32", "rmsprop")
    for x, y in keras_parity.make_batches(name, 2):
        model.train_step(x, y)  # moving statistics and weights away from their initial values
    model.save(tmp_path / "model.npz")
    assert export.main([str(tmp_path / "model.npz"), str(tmp_path / "model.keras")]) == 0
    assert export.main([str(tmp_path / "model.keras"), str(tmp_path / "back.npz")]) == 0
    back = load_model(tmp_path / "back.npz")
    assert [type(layer).__name__ for layer in back.layers] == [type(layer).__name__ for layer in model.layers]
    for w, w_back in zip(model.get_weights(), back.get_weights(), strict=True):
        np.testing.assert_array_equal(w, w_back)
    assert type(back.optimizer).__name__ == "RMSprop" and type(back.loss) is type(model.loss)


@pytest.mark.parametrize("optimizer", ["adam_piecewise", "rmsprop_cosine", "sgd_exponential", "adamw"])
def test_optimizers_and_schedules_cross_to_keras_and_back_unchanged(optimizer):
    from tf_reference.transfer import from_keras

    model, keras_model, _ = keras_parity.build_pair("bn_mlp", "float64", optimizer)
    back = from_keras(keras_model)
    assert type(back.optimizer) is type(model.optimizer)
    assert back.optimizer.get_config() == model.optimizer.get_config()
    assert type(back.loss) is type(model.loss)
