"""Tests of scratchnet.gradcheck: the checker must be right before it can judge the ops."""

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients, numerical_gradient, relative_error
from scratchnet.ops import dense_backward, dense_forward


def test_numerical_gradient_of_a_square_is_twice_x_weighted_by_dy():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    dy = np.array([[1.0, 2.0], [-1.0, 0.5]])
    grad = numerical_gradient(lambda v: v**2, x, dy)
    np.testing.assert_allclose(grad, 2 * x * dy, rtol=1e-8)


def test_numerical_gradient_without_dy_differentiates_the_sum():
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(numerical_gradient(np.sin, x), np.cos(x), rtol=1e-8)


def test_numerical_gradient_restores_x_even_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])
    before = x.copy()
    numerical_gradient(lambda v: v**3, x)
    np.testing.assert_array_equal(x, before)

    def explode(v):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        numerical_gradient(explode, x)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_rejects_integer_input():
    with pytest.raises(ValueError, match="x"):
        numerical_gradient(lambda v: v, np.arange(3))


def test_relative_error_is_zero_for_equal_arrays_and_for_zeros():
    a = np.array([1.0, -2.0, 3.0])
    assert relative_error(a, a.copy()) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_relative_error_is_symmetric_scale_free_and_uses_the_max_norm():
    a = np.array([1.0, 100.0])
    b = np.array([1.5, 100.0])
    # max |a - b| = 0.5 (first entry); max (|a| + |b|) = 200 (second entry).
    assert relative_error(a, b) == pytest.approx(0.5 / 200)
    assert relative_error(b, a) == relative_error(a, b)
    assert relative_error(1e-9 * a, 1e-9 * b) == pytest.approx(relative_error(a, b))


def test_relative_error_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        relative_error(np.zeros(2), np.zeros(3))


def _dense_inputs(rng):
    return {
        "x": rng.standard_normal((4, 3)),
        "kernel": rng.standard_normal((3, 5)),
        "bias": rng.standard_normal(5),
    }


def test_check_gradients_passes_a_correct_backward():
    errors = check_gradients(dense_forward, dense_backward, _dense_inputs(np.random.default_rng(0)))
    assert set(errors) == {"x", "kernel", "bias"}
    assert max(errors.values()) < 1e-8


@pytest.mark.parametrize("broken", ["dx_scaled", "dkernel_transposed_input", "dbias_mean"])
def test_check_gradients_catches_a_deliberately_wrong_backward(broken):
    def wrong_backward(dy, cache):
        dx, dkernel, dbias = dense_backward(dy, cache)
        if broken == "dx_scaled":
            dx = 1.01 * dx
        elif broken == "dkernel_transposed_input":
            x = cache[0]
            dkernel = x.T[::-1] @ dy  # rows of x mixed up: a classic indexing bug
        else:
            dbias = dy.mean(axis=0)  # forgot that the bias is summed over the batch
        return dx, dkernel, dbias

    errors = check_gradients(dense_forward, wrong_backward, _dense_inputs(np.random.default_rng(1)))
    wrong_input = {"dx_scaled": "x", "dkernel_transposed_input": "kernel", "dbias_mean": "bias"}[broken]
    assert errors[wrong_input] > 1e-3
    assert all(error < 1e-8 for name, error in errors.items() if name != wrong_input)


def test_check_gradients_skips_none_gradients():
    rng = np.random.default_rng(2)
    inputs = {"x": rng.standard_normal((2, 3)), "kernel": rng.standard_normal((3, 2)), "bias": None}
    errors = check_gradients(dense_forward, dense_backward, inputs)
    assert set(errors) == {"x", "kernel"}


def test_check_gradients_rejects_a_backward_returning_too_few_gradients():
    with pytest.raises(ValueError, match="returned 1 gradients for 3 inputs"):
        check_gradients(
            dense_forward,
            lambda dy, cache: dense_backward(dy, cache)[0],
            _dense_inputs(np.random.default_rng(3)),
        )


def test_check_gradients_does_not_modify_the_callers_inputs():
    inputs = _dense_inputs(np.random.default_rng(4))
    before = {name: value.copy() for name, value in inputs.items()}
    check_gradients(dense_forward, dense_backward, inputs)
    for name in inputs:
        np.testing.assert_array_equal(inputs[name], before[name])
