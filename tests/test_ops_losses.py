"""Tests of scratchnet.ops.losses: values by hand, gradients, stability at ±1000, dtype, label forms."""

import warnings

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import (
    binary_cross_entropy_backward,
    binary_cross_entropy_forward,
    categorical_cross_entropy_backward,
    categorical_cross_entropy_forward,
    sigmoid_binary_cross_entropy_backward,
    sigmoid_binary_cross_entropy_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

GRAD_TOLERANCE = 1e-7


def probabilities(rng, n, c):
    """Rows of a softmax, comfortably inside (1e-7, 1 - 1e-7) so no clip is active."""
    e = np.exp(rng.standard_normal((n, c)))
    return e / e.sum(axis=1, keepdims=True)


# --- softmax cross-entropy from logits ----------------------------------------------------------


def test_softmax_cross_entropy_of_uniform_logits_is_log_c():
    loss, _ = softmax_cross_entropy_forward(np.zeros((3, 10)), np.array([0, 4, 9]))
    assert loss == pytest.approx(np.log(10), rel=1e-15)


def test_softmax_cross_entropy_sparse_and_one_hot_labels_agree():
    rng = np.random.default_rng(0)
    logits, ids = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    sparse, sparse_cache = softmax_cross_entropy_forward(logits, ids)
    dense, dense_cache = softmax_cross_entropy_forward(logits, np.eye(4)[ids])
    assert sparse == pytest.approx(dense, rel=1e-14)
    np.testing.assert_allclose(
        softmax_cross_entropy_backward(1.0, sparse_cache), softmax_cross_entropy_backward(1.0, dense_cache)
    )


def test_softmax_cross_entropy_gradient_is_softmax_minus_one_hot_over_n():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    _, cache = softmax_cross_entropy_forward(logits, np.array([2, 0]))
    e = np.exp(logits)
    expected = (e / e.sum(axis=1, keepdims=True) - np.eye(3)[[2, 0]]) / 2
    np.testing.assert_allclose(softmax_cross_entropy_backward(1.0, cache), expected, rtol=1e-14)


@pytest.mark.parametrize("label_form", ["sparse", "one_hot", "soft"])
def test_softmax_cross_entropy_backward_matches_numerical_gradient(label_form):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 5))
    labels = {
        "sparse": rng.integers(0, 5, 6),
        "one_hot": np.eye(5)[rng.integers(0, 5, 6)],
        "soft": probabilities(rng, 6, 5),
    }[label_form]
    errors = check_gradients(
        softmax_cross_entropy_forward,
        softmax_cross_entropy_backward,
        {"logits": logits},
        constants={"labels": labels},
    )
    assert errors["logits"] < GRAD_TOLERANCE


# --- binary cross-entropy from logits -----------------------------------------------------------


def test_sigmoid_binary_cross_entropy_equals_the_textbook_formula():
    rng = np.random.default_rng(2)
    z, y = rng.standard_normal((8, 1)) * 3, rng.integers(0, 2, (8, 1)).astype(float)
    p = 1 / (1 + np.exp(-z))
    textbook = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert sigmoid_binary_cross_entropy_forward(z, y)[0] == pytest.approx(textbook, rel=1e-13)


def test_sigmoid_binary_cross_entropy_at_zero_logits_is_log_2():
    loss, _ = sigmoid_binary_cross_entropy_forward(np.zeros((4, 1)), np.array([[0.0], [1.0], [1.0], [0.0]]))
    assert loss == pytest.approx(np.log(2), rel=1e-15)


def test_sigmoid_binary_cross_entropy_gradient_is_sigmoid_minus_label_over_n():
    z, y = np.array([[0.0], [2.0], [-1.0]]), np.array([[1.0], [0.0], [1.0]])
    _, cache = sigmoid_binary_cross_entropy_forward(z, y)
    expected = (1 / (1 + np.exp(-z)) - y) / 3
    np.testing.assert_allclose(sigmoid_binary_cross_entropy_backward(1.0, cache), expected, rtol=1e-14)


@pytest.mark.parametrize("shape", [(7, 1), (4, 3)])
def test_sigmoid_binary_cross_entropy_backward_matches_numerical_gradient(shape):
    rng = np.random.default_rng(3)
    errors = check_gradients(
        sigmoid_binary_cross_entropy_forward,
        sigmoid_binary_cross_entropy_backward,
        {"logits": rng.standard_normal(shape) * 2},
        constants={"labels": rng.uniform(0, 1, shape)},
    )
    assert errors["logits"] < GRAD_TOLERANCE


# --- cross-entropies from probabilities (Keras's forms) -----------------------------------------


@pytest.mark.parametrize("label_form", ["sparse", "one_hot"])
def test_categorical_cross_entropy_equals_minus_mean_log_probability_of_the_label(label_form):
    rng = np.random.default_rng(4)
    probs, ids = probabilities(rng, 5, 4), rng.integers(0, 4, 5)
    labels = ids if label_form == "sparse" else np.eye(4)[ids]
    loss, _ = categorical_cross_entropy_forward(probs, labels)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(5), ids])), rel=1e-12)


def test_categorical_cross_entropy_renormalises_rows_and_clips_zeros():
    unnormalised = np.array([[2.0, 2.0]])  # renormalised to [0.5, 0.5]
    loss, _ = categorical_cross_entropy_forward(unnormalised, np.array([[1.0, 0.0]]))
    assert loss == pytest.approx(np.log(2))
    certain_and_wrong = np.array([[0.0, 1.0]])  # log(0) avoided by clipping at 1e-7
    loss, cache = categorical_cross_entropy_forward(certain_and_wrong, np.array([0]))
    assert np.isfinite(loss) and loss == pytest.approx(-np.log(1e-7), rel=1e-6)
    assert np.all(np.isfinite(categorical_cross_entropy_backward(1.0, cache)))


@pytest.mark.parametrize("label_form", ["sparse", "one_hot", "soft", "unnormalised"])
def test_categorical_cross_entropy_backward_matches_numerical_gradient(label_form):
    rng = np.random.default_rng(5)
    probs = probabilities(rng, 6, 4)
    labels = np.eye(4)[rng.integers(0, 4, 6)]
    if label_form == "sparse":
        labels = rng.integers(0, 4, 6)
    elif label_form == "soft":
        labels = probabilities(rng, 6, 4)
    elif label_form == "unnormalised":
        probs = probs * rng.uniform(0.5, 2.0, (6, 1))  # rows not summing to 1: renormalised
    errors = check_gradients(
        categorical_cross_entropy_forward,
        categorical_cross_entropy_backward,
        {"probs": probs},
        constants={"labels": labels},
        h=1e-7,
    )
    assert errors["probs"] < GRAD_TOLERANCE


def test_binary_cross_entropy_equals_the_textbook_formula_inside_the_clip():
    p, y = np.array([[0.2], [0.9], [0.5]]), np.array([[0.0], [1.0], [1.0]])
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert binary_cross_entropy_forward(p, y)[0] == pytest.approx(expected, rel=1e-14)


def test_binary_cross_entropy_clips_exact_zeros_and_ones():
    loss, cache = binary_cross_entropy_forward(np.array([[0.0], [1.0]]), np.array([[1.0], [0.0]]))
    assert loss == pytest.approx(-np.log(1e-7), rel=1e-6)
    np.testing.assert_array_equal(binary_cross_entropy_backward(1.0, cache), 0.0)  # the clip is flat


@pytest.mark.parametrize("shape", [(6, 1), (3, 4)])
def test_binary_cross_entropy_backward_matches_numerical_gradient(shape):
    rng = np.random.default_rng(6)
    errors = check_gradients(
        binary_cross_entropy_forward,
        binary_cross_entropy_backward,
        {"probs": rng.uniform(0.05, 0.95, shape)},
        constants={"labels": rng.integers(0, 2, shape).astype(float)},
    )
    assert errors["probs"] < GRAD_TOLERANCE


# --- properties shared by every loss ------------------------------------------------------------

LOSSES = [
    ("softmax_ce", softmax_cross_entropy_forward, softmax_cross_entropy_backward),
    ("sigmoid_bce", sigmoid_binary_cross_entropy_forward, sigmoid_binary_cross_entropy_backward),
    ("categorical_ce", categorical_cross_entropy_forward, categorical_cross_entropy_backward),
    ("binary_ce", binary_cross_entropy_forward, binary_cross_entropy_backward),
]


def _loss_arguments(name, dtype, extreme=False):
    """(predictions, labels) for a loss; ``extreme`` puts logits at ±1000 (probabilities at 0/1)."""
    rng = np.random.default_rng(7)
    if name in ("softmax_ce", "categorical_ce"):
        predictions = rng.choice([-1000.0, 1000.0], (4, 3)) if extreme else rng.standard_normal((4, 3))
        if name == "categorical_ce":
            e = np.exp(predictions - predictions.max(axis=1, keepdims=True))
            predictions = e / e.sum(axis=1, keepdims=True)
        labels = np.array([0, 1, 2, 0])
    else:
        if extreme:
            predictions = np.array([[-1000.0], [1000.0], [-1000.0], [1000.0]])
        else:
            predictions = rng.standard_normal((4, 1))
        if name == "binary_ce":
            predictions = np.where(predictions > 0, 1.0, 0.0) if extreme else 1 / (1 + np.exp(-predictions))
        labels = np.array([[0.0], [0.0], [1.0], [1.0]])
    return predictions.astype(dtype), labels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, forward, backward", LOSSES)
def test_losses_are_finite_and_warning_free_at_extreme_inputs(name, forward, backward, dtype):
    predictions, labels = _loss_arguments(name, dtype, extreme=True)
    # exp(-2000) underflowing to exactly 0 is correct; overflow, log(0) and inf - inf are not.
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        loss, cache = forward(predictions, labels)
        grad = backward(1.0, cache)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


def test_losses_at_1000_logits_have_the_exact_large_values():
    # A confidently wrong logit margin of 2000 costs 2000 nats; a confidently right one costs 0.
    logits = np.array([[1000.0, -1000.0], [1000.0, -1000.0]])
    assert softmax_cross_entropy_forward(logits, np.array([1, 0]))[0] == pytest.approx(1000.0)
    z = np.array([[1000.0], [-1000.0]])
    assert sigmoid_binary_cross_entropy_forward(z, np.array([[0.0], [0.0]]))[0] == pytest.approx(500.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, forward, backward", LOSSES)
def test_losses_return_a_0d_scalar_and_a_gradient_of_the_inputs_dtype(name, forward, backward, dtype):
    predictions, labels = _loss_arguments(name, dtype)
    loss, cache = forward(predictions, labels)
    assert np.ndim(loss) == 0 and loss.dtype == dtype
    for dloss in (1.0, np.float64(1.0), np.array(1.0)):  # a float64 dloss must not promote
        grad = backward(dloss, cache)
        assert grad.dtype == dtype and grad.shape == predictions.shape


@pytest.mark.parametrize("name, forward, backward", LOSSES)
def test_loss_backward_scales_with_dloss(name, forward, backward):
    predictions, labels = _loss_arguments(name, np.float64)
    _, cache = forward(predictions, labels)
    np.testing.assert_allclose(backward(2.5, cache), 2.5 * backward(1.0, cache), rtol=1e-14)


@pytest.mark.parametrize(
    "forward, predictions, labels, message",
    [
        (softmax_cross_entropy_forward, np.zeros((3, 4)), np.array([0, 1, 4]), r"\[0, 4\)"),
        (softmax_cross_entropy_forward, np.zeros((3, 4)), np.array([0, 1]), "labels.shape"),
        (softmax_cross_entropy_forward, np.zeros((3, 4)), np.zeros((3, 5)), "labels.shape"),
        (softmax_cross_entropy_forward, np.zeros((3, 4)), np.array([0.5, 1.0, 2.0]), "integer"),
        (softmax_cross_entropy_forward, np.zeros(4), np.array([0]), "logits"),
        (softmax_cross_entropy_forward, np.zeros((0, 4)), np.zeros(0, int), "at least one"),
        (sigmoid_binary_cross_entropy_forward, np.zeros((3, 1)), np.zeros(3), "labels.shape"),
        (categorical_cross_entropy_forward, np.zeros((3, 4), int), np.array([0, 1, 2]), "probs"),
        (binary_cross_entropy_forward, np.zeros((3, 1)), np.zeros((1, 3)), "labels.shape"),
    ],
)
def test_losses_reject_bad_arguments_naming_them(forward, predictions, labels, message):
    with pytest.raises(ValueError, match=message):
        forward(predictions, labels)


def test_loss_backward_rejects_a_non_scalar_dloss():
    _, cache = softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="dloss"):
        softmax_cross_entropy_backward(np.ones(2), cache)


# --- mean squared and mean absolute error -----------------------------------------------------------

from scratchnet.ops import (  # noqa: E402
    mean_absolute_error_backward,
    mean_absolute_error_forward,
    mean_squared_error_backward,
    mean_squared_error_forward,
)


def test_mean_squared_and_absolute_error_by_hand():
    predictions = np.array([[1.0, 2.0], [0.0, -1.0]])
    labels = np.array([[0.0, 2.0], [2.0, 1.0]])
    assert mean_squared_error_forward(predictions, labels)[0] == pytest.approx((1 + 0 + 4 + 4) / 4, rel=1e-15)
    assert mean_absolute_error_forward(predictions, labels)[0] == pytest.approx((1 + 0 + 2 + 2) / 4, rel=1e-15)


@pytest.mark.parametrize("forward, backward", [(mean_squared_error_forward, mean_squared_error_backward),
                                               (mean_absolute_error_forward, mean_absolute_error_backward)])
@pytest.mark.parametrize("shape", [(5, 1), (4, 3), (2, 3, 2)])
def test_regression_losses_backward_match_numerical_gradient(forward, backward, shape):
    rng = np.random.default_rng(0)
    labels = rng.standard_normal(shape)
    predictions = labels + rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)  # away from |.|'s kink
    errors = check_gradients(forward, lambda dloss, cache: backward(dloss, cache),
                             {"predictions": predictions}, constants={"labels": labels})
    assert errors["predictions"] < GRAD_TOLERANCE


def test_mean_absolute_error_gradient_is_zero_where_prediction_equals_label():
    _, cache = mean_absolute_error_forward(np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]]))
    np.testing.assert_array_equal(mean_absolute_error_backward(1.0, cache), [[0.0, 0.5]])


def test_regression_losses_want_labels_shaped_like_the_predictions():
    with pytest.raises(ValueError, match=r"predictions' shape \(4, 3\).*labels.shape=\(4,\)"):
        mean_squared_error_forward(np.zeros((4, 3)), np.zeros(4))
