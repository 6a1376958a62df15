"""Tests of scratchnet.ops.activations: values, gradients, the kinks, stability at ±1000."""

import functools
import math
import warnings

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import (
    activations,
    elu_backward,
    elu_forward,
    gelu_backward,
    gelu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    relu_general_backward,
    relu_general_forward,
    sigmoid_backward,
    sigmoid_forward,
    silu_backward,
    silu_forward,
    softmax_backward,
    softmax_forward,
    softplus_backward,
    softplus_forward,
    tanh_backward,
    tanh_forward,
)

partial = functools.partial

ACTIVATIONS = [
    ("relu", relu_forward, relu_backward),
    ("sigmoid", sigmoid_forward, sigmoid_backward),
    ("softmax", softmax_forward, softmax_backward),
    ("tanh", tanh_forward, tanh_backward),
    ("elu", elu_forward, elu_backward),
    ("elu_alpha_0.5", partial(elu_forward, alpha=0.5), elu_backward),
    ("gelu", gelu_forward, gelu_backward),
    ("gelu_tanh", partial(gelu_forward, approximate=True), gelu_backward),
    ("leaky_relu", leaky_relu_forward, leaky_relu_backward),
    ("softplus", softplus_forward, softplus_backward),
    ("silu", silu_forward, silu_backward),
    ("relu6", partial(relu_general_forward, max_value=6.0), relu_general_backward),
    ("relu_slope_ceiling_threshold",
     partial(relu_general_forward, negative_slope=0.1, max_value=1.5, threshold=0.05), relu_general_backward),
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


def test_new_activations_give_their_textbook_values():
    x = np.array([-3.0, -0.5, 0.25, 2.0])
    np.testing.assert_allclose(tanh_forward(x)[0], np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(elu_forward(x)[0], [math.exp(-3) - 1, math.exp(-0.5) - 1, 0.25, 2.0], rtol=1e-15)
    np.testing.assert_allclose(elu_forward(x, alpha=2.0)[0], [2 * (math.exp(-3) - 1), 2 * (math.exp(-0.5) - 1),
                                                              0.25, 2.0], rtol=1e-15)
    phi = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x]
    np.testing.assert_allclose(gelu_forward(x)[0], x * phi, rtol=1e-6)  # TF's float32-rounded 1/sqrt(2)
    c = float(np.float32(1 / math.sqrt(2)))
    np.testing.assert_allclose(gelu_forward(x)[0], [v * 0.5 * math.erfc(-v * c) for v in x], rtol=1e-14)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(gelu_forward(x, approximate=True)[0], tanh_form, rtol=1e-7)  # float32 constants
    slope = float(np.float32(0.2))  # Keras 3's default, rounded to float32 as TensorFlow's op attribute
    np.testing.assert_allclose(leaky_relu_forward(x)[0], [-3 * slope, -0.5 * slope, 0.25, 2.0], rtol=1e-15)
    np.testing.assert_allclose(softplus_forward(x)[0], np.log1p(np.exp(x)), rtol=1e-15)
    np.testing.assert_allclose(silu_forward(x)[0], x / (1 + np.exp(-x)), rtol=1e-15)


def test_gelu_exact_is_accurate_where_phi_is_tiny():
    """x * Phi(x) at x = -30 is about -1.5e-196: computed from erfc, not from 1 + erf (which gives 0)."""
    y, _ = gelu_forward(np.array([-30.0]))
    expected = -30.0 * 0.5 * math.erfc(30.0 * float(np.float32(1 / math.sqrt(2))))
    assert y[0] != 0
    np.testing.assert_allclose(y, [expected], rtol=1e-12)


def test_erfc_without_scipy_gives_the_same_values(monkeypatch):
    import builtins

    x = np.linspace(-6, 6, 101)
    with_scipy = activations.erfc(x)
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    without = activations.erfc(x)
    assert without.dtype == np.float64
    np.testing.assert_allclose(without, with_scipy, rtol=1e-14, atol=0)  # two libraries, ulps apart
    np.testing.assert_allclose(without, [math.erfc(v) for v in x], rtol=1e-15, atol=0)


RELU_GENERAL_KINKS = [
    # (options, x, expected y, expected dx for dy = 1), hand-computed from Keras's graph (see the op)
    ({}, [-1.0, 0.0, 2.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]),
    ({"negative_slope": 0.5}, [-2.0, 0.0, 3.0], [-1.0, 0.0, 3.0], [0.5, 0.5, 1.0]),  # leaky: slope at 0
    ({"negative_slope": 0.5, "max_value": 6.0}, [-1.0, 0.0, 6.0], [-0.5, 0.0, 6.0], [0.5, 0.0, 0.0]),
    ({"max_value": 6.0}, [0.0, 6.0, 7.0], [0.0, 6.0, 6.0], [0.0, 0.0, 0.0]),  # relu6: 0 at 6
    ({"max_value": 2.0}, [1.0, 2.0, 3.0], [1.0, 2.0, 2.0], [1.0, 1.0, 0.0]),  # clip passes at its bound
    ({"threshold": 1.0}, [0.5, 1.0, 1.5], [0.0, 0.0, 1.5], [0.0, 0.0, 1.0]),
    ({"negative_slope": 0.5, "threshold": 1.0}, [0.0, 1.0, 2.0], [-0.5, 0.0, 2.0], [0.5, 0.0, 1.0]),
    ({"negative_slope": 0.5, "max_value": 2.0}, [-1.0, 0.0, 2.5], [-0.5, 0.0, 2.0], [0.5, 0.0, 0.0]),
]


@pytest.mark.parametrize("options, x, expected_y, expected_dx", RELU_GENERAL_KINKS)
def test_relu_general_values_and_gradients_at_the_kinks(options, x, expected_y, expected_dx):
    y, cache = relu_general_forward(np.array(x), **options)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(relu_general_backward(np.ones(len(x)), cache), expected_dx)


def test_leaky_relu_gradient_at_zero_is_the_slope_and_elu_gradient_at_zero_is_one():
    _, cache = leaky_relu_forward(np.array([0.0]))
    np.testing.assert_array_equal(leaky_relu_backward(np.array([10.0]), cache), [10.0 * float(np.float32(0.2))])
    _, cache = elu_forward(np.array([0.0]))
    np.testing.assert_array_equal(elu_backward(np.array([10.0]), cache), [10.0])
