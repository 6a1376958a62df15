"""Tests of scratchnet.ops.normalization: batch normalisation's values, gradients (both modes), statistics."""

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference_backward,
    batch_norm_inference_forward,
    moving_average_update,
)

GRAD_TOLERANCE = 1e-7
SHAPES = [(6, 4), (3, 4, 5, 2)]  # dense (N, C) and images (N, H, W, C)


def random_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    x = 3.0 + 2.0 * rng.standard_normal(shape)  # off-centre and wide: normalising must matter
    return x, rng.uniform(0.5, 2.0, channels), rng.standard_normal(channels)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_forward_normalises_every_channel_over_all_other_axes(shape):
    x, _, _ = random_inputs(shape)
    y, cache = batch_norm_forward(x, epsilon=0.0)
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, rtol=1e-12)
    np.testing.assert_allclose(cache.mean, x.mean(axis=axes), rtol=1e-14)
    np.testing.assert_allclose(cache.variance, x.var(axis=axes), rtol=1e-13)  # biased, as Keras


@pytest.mark.parametrize("shape", SHAPES)
def test_training_forward_is_the_textbook_formula_with_gamma_beta_and_epsilon(shape):
    x, gamma, beta = random_inputs(shape, seed=1)
    axes = tuple(range(len(shape) - 1))
    expected = gamma * (x - x.mean(axis=axes)) / np.sqrt(x.var(axis=axes) + 1e-3) + beta
    np.testing.assert_allclose(batch_norm_forward(x, gamma, beta)[0], expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_gamma, with_beta", [(True, True), (False, True), (True, False), (False, False)])
def test_training_backward_matches_numerical_gradient(shape, with_gamma, with_beta):
    x, gamma, beta = random_inputs(shape, seed=2)
    inputs = {"x": x, "gamma": gamma if with_gamma else None, "beta": beta if with_beta else None}
    errors = check_gradients(batch_norm_forward, batch_norm_backward, inputs)
    assert set(errors) == {name for name, value in inputs.items() if value is not None}
    assert max(errors.values()) < GRAD_TOLERANCE, errors


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_backward_matches_numerical_gradient(shape):
    x, gamma, beta = random_inputs(shape, seed=3)
    rng = np.random.default_rng(4)
    statistics = {"moving_mean": rng.standard_normal(shape[-1]), "moving_variance": rng.uniform(0.5, 2, shape[-1])}
    errors = check_gradients(batch_norm_inference_forward, batch_norm_inference_backward,
                             {"x": x, "gamma": gamma, "beta": beta}, constants=statistics)
    assert max(errors.values()) < GRAD_TOLERANCE, errors


def test_inference_with_the_batch_statistics_equals_training_mode():
    x, gamma, beta = random_inputs((5, 3, 3, 4), seed=5)
    y_training, cache = batch_norm_forward(x, gamma, beta)
    y_inference, _ = batch_norm_inference_forward(x, gamma, beta, cache.mean, cache.variance)
    np.testing.assert_allclose(y_inference, y_training, rtol=1e-13, atol=1e-13)


def test_training_gradient_differs_from_inference_gradient():
    """In training the statistics depend on x: dx sums to zero per channel (shifting x changes nothing)."""
    x, gamma, beta = random_inputs((8, 3), seed=6)
    dy = np.random.default_rng(7).standard_normal(x.shape)
    _, cache = batch_norm_forward(x, gamma, beta)
    dx, _, _ = batch_norm_backward(dy, cache)
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-12)
    _, inference_cache = batch_norm_inference_forward(x, gamma, beta, cache.mean, cache.variance)
    assert not np.allclose(batch_norm_inference_backward(dy, inference_cache)[0], dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_modes_keep_the_dtype(dtype):
    x, gamma, beta = (a.astype(dtype) for a in random_inputs((4, 3), seed=8))
    y, cache = batch_norm_forward(x, gamma, beta)
    assert y.dtype == cache.mean.dtype == cache.variance.dtype == dtype
    assert all(g.dtype == dtype for g in batch_norm_backward(np.ones(x.shape), cache))
    y, cache = batch_norm_inference_forward(x, gamma, beta, np.zeros(3), np.ones(3))  # float64 statistics
    assert y.dtype == dtype
    assert all(g.dtype == dtype for g in batch_norm_inference_backward(np.ones(x.shape), cache))


def test_wrong_gamma_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"`gamma` must have one value per channel \(3.*gamma.shape=\(4,\)"):
        batch_norm_forward(np.ones((2, 3)), gamma=np.ones(4))


def test_one_dimensional_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"x.shape=\(5,\)"):
        batch_norm_forward(np.ones(5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moving_average_update_is_keras_formula_in_place(dtype):
    moving = np.array([0.0, 1.0, 2.0], dtype=dtype)
    same = moving
    value = np.array([1.0, 1.0, -2.0])
    moving_average_update(moving, value, 0.99)
    assert moving is same and moving.dtype == dtype
    expected = same_dtype = np.array([0.0, 1.0, 2.0], dtype=dtype) * dtype(0.99) + value.astype(dtype) * dtype(1 - 0.99)
    np.testing.assert_array_equal(moving, expected)
    assert same_dtype.dtype == dtype
