"""Tests of scratchnet.ops.dense: y = x @ kernel + bias, its gradients, dtype and argument checks."""

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import dense_backward, dense_forward


def test_dense_forward_is_x_times_kernel_plus_bias():
    x = np.array([[1.0, 2.0]])
    kernel = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    y, _ = dense_forward(x, kernel, np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(y, [[2.0, 5.0, 3.0]])


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("n, ci, co", [(1, 1, 1), (4, 3, 5), (7, 10, 2)])
def test_dense_backward_matches_numerical_gradient(n, ci, co, with_bias):
    rng = np.random.default_rng(0)
    inputs = {
        "x": rng.standard_normal((n, ci)),
        "kernel": rng.standard_normal((ci, co)),
        "bias": rng.standard_normal(co) if with_bias else None,
    }
    errors = check_gradients(dense_forward, dense_backward, inputs)
    assert set(errors) == ({"x", "kernel", "bias"} if with_bias else {"x", "kernel"})
    assert max(errors.values()) < 1e-7, errors


def test_dense_backward_returns_none_for_dbias_without_a_bias():
    y, cache = dense_forward(np.ones((2, 3)), np.ones((3, 4)))
    assert dense_backward(np.ones_like(y), cache)[2] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_keeps_the_dtype_of_x(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)).astype(dtype)
    y, cache = dense_forward(x, rng.standard_normal((4, 2)), rng.standard_normal(2))
    grads = dense_backward(rng.standard_normal(y.shape), cache)
    assert y.dtype == dtype
    assert all(g.dtype == dtype for g in grads)


@pytest.mark.parametrize(
    "x_shape, kernel_shape, bias_shape, message",
    [
        ((4,), (4, 2), None, "x"),
        ((3, 4), (5, 2), None, "kernel"),
        ((3, 4), (4, 2), (3,), "bias"),
        ((3, 4), (4,), None, "kernel"),
    ],
)
def test_dense_rejects_mismatched_shapes_naming_the_argument(x_shape, kernel_shape, bias_shape, message):
    bias = None if bias_shape is None else np.zeros(bias_shape)
    with pytest.raises(ValueError, match=message):
        dense_forward(np.zeros(x_shape), np.zeros(kernel_shape), bias)


def test_dense_backward_without_dx_skips_it_and_keeps_the_parameter_gradients():
    rng = np.random.default_rng(5)
    y, cache = dense_forward(rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), np.zeros(2))
    dy = rng.standard_normal(y.shape)
    dx, dkernel, dbias = dense_backward(dy, cache, need_dx=False)
    _, dkernel_full, dbias_full = dense_backward(dy, cache)
    assert dx is None
    np.testing.assert_array_equal(dkernel, dkernel_full)
    np.testing.assert_array_equal(dbias, dbias_full)
