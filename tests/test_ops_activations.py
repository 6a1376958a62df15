"""Tests of scratchnet.ops.activations: values, gradients, the ReLU kink, stability at ±1000."""

import warnings

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
)

ACTIVATIONS = [
    ("relu", relu_forward, relu_backward),
    ("sigmoid", sigmoid_forward, sigmoid_backward),
    ("softmax", softmax_forward, softmax_backward),
]


def away_from_zero(rng, shape):
    """Values with |x| in [0.1, 2]: no finite-difference step crosses ReLU's kink."""
    return rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("name, forward, backward", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 3, 2)])
def test_activation_backward_matches_numerical_gradient(name, forward, backward, shape):
    x = away_from_zero(np.random.default_rng(0), shape)
    assert check_gradients(forward, backward, {"x": x})["x"] < 1e-7


def test_relu_gradient_at_exactly_zero_is_zero():
    x = np.array([-1.0, 0.0, 0.0, 2.0])
    y, cache = relu_forward(x)
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(relu_backward(np.array([5.0, 6.0, 7.0, 8.0]), cache), [0, 0, 0, 8.0])


def test_sigmoid_values_and_symmetry():
    x = np.array([-2.0, 0.0, 2.0])
    y, _ = sigmoid_forward(x)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(y + y[::-1], 1.0, rtol=1e-15)


def test_softmax_rows_sum_to_one_and_ignore_shifts():
    x = np.random.default_rng(1).standard_normal((4, 6))
    y, _ = softmax_forward(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(softmax_forward(x + 100.0)[0], y, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, forward, backward", ACTIVATIONS)
def test_activations_are_finite_and_warning_free_at_plus_minus_1000(name, forward, backward, dtype):
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=dtype)
    # Underflow is allowed: exp(-1000) rounding to exactly 0 is the right answer; overflow,
    # division by zero and invalid operations (inf - inf, 0 * inf) are not.
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        y, cache = forward(x)
        dx = backward(np.ones_like(y), cache)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert y.dtype == dx.dtype == dtype


def test_sigmoid_and_softmax_saturate_correctly_at_plus_minus_1000():
    np.testing.assert_array_equal(sigmoid_forward(np.array([-1000.0, 1000.0]))[0], [0.0, 1.0])
    np.testing.assert_array_equal(softmax_forward(np.array([[-1000.0, 1000.0]]))[0], [[0.0, 1.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, forward, backward", ACTIVATIONS)
def test_activations_keep_the_dtype(name, forward, backward, dtype):
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(dtype)
    y, cache = forward(x)
    assert y.dtype == backward(np.ones(y.shape), cache).dtype == dtype  # float64 dy is cast


@pytest.mark.parametrize("name, forward, backward", ACTIVATIONS)
def test_activations_reject_integer_input(name, forward, backward):
    with pytest.raises(ValueError, match=r"x\.dtype=int64"):
        forward(np.arange(4, dtype=np.int64))
