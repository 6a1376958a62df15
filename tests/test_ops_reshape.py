"""Tests of scratchnet.ops.reshape: Keras's (h, w, c) flatten order and its inverse."""

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import flatten_backward, flatten_forward


def test_flatten_uses_keras_h_w_c_order():
    x = np.arange(2 * 2 * 3 * 2, dtype=float).reshape(2, 2, 3, 2)  # (N, H, W, C)
    y, _ = flatten_forward(x)
    assert y.shape == (2, 12)
    # Second entry of a row: pixel (0, 0), channel 1; third: pixel (0, 1), channel 0.
    assert y[1, 1] == x[1, 0, 0, 1] and y[1, 2] == x[1, 0, 1, 0]


def test_flatten_backward_restores_the_input_shape():
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 2))
    y, cache = flatten_forward(x)
    np.testing.assert_array_equal(flatten_backward(y, cache), x)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 3, 2)])
def test_flatten_backward_matches_numerical_gradient(shape):
    x = np.random.default_rng(1).standard_normal(shape)
    assert check_gradients(flatten_forward, flatten_backward, {"x": x})["x"] < 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flatten_keeps_the_dtype(dtype):
    x = np.ones((2, 3, 3, 1), dtype)
    y, cache = flatten_forward(x)
    assert y.dtype == flatten_backward(np.ones(y.shape), cache).dtype == dtype


def test_flatten_backward_rejects_dy_of_the_wrong_shape():
    _, cache = flatten_forward(np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match=r"dy.shape=\(2, 8\)"):
        flatten_backward(np.ones((2, 8)), cache)
