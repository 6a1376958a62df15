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
