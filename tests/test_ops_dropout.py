"""Tests of scratchnet.ops.dropout: Keras semantics, explicit masks, reproducible masks, gradients."""

import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import dropout_backward, dropout_forward


def test_dropout_zeroes_dropped_units_and_scales_kept_ones_by_one_over_keep():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, True]])
    y, _ = dropout_forward(x, 0.25, mask=mask)
    np.testing.assert_allclose(y, np.where(mask, x / 0.75, 0.0), rtol=1e-15)


def test_dropout_rate_is_the_fraction_dropped():
    rng = np.random.default_rng(0)
    y, _ = dropout_forward(np.ones(100_000), 0.2, rng=rng)
    assert np.mean(y == 0) == pytest.approx(0.2, abs=0.01)
    assert np.mean(y) == pytest.approx(1.0, abs=0.02)  # the expectation is unchanged


def test_dropout_mask_is_drawn_as_rng_random_at_least_rate():
    x = np.ones((4, 5))
    y, _ = dropout_forward(x, 0.5, rng=np.random.default_rng(7))
    expected_mask = np.random.default_rng(7).random(x.shape) >= 0.5
    np.testing.assert_array_equal(y != 0, expected_mask)


def test_dropout_same_seed_gives_the_same_mask_and_different_seeds_differ():
    x = np.ones((8, 8))
    a, _ = dropout_forward(x, 0.5, rng=np.random.default_rng(3))
    b, _ = dropout_forward(x, 0.5, rng=np.random.default_rng(3))
    c, _ = dropout_forward(x, 0.5, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kwargs", [{"training": False, "rate": 0.5}, {"training": True, "rate": 0.0}])
def test_dropout_is_the_identity_at_inference_and_at_rate_zero(kwargs):
    x = np.random.default_rng(1).standard_normal((3, 4))
    y, cache = dropout_forward(x, rng=np.random.default_rng(0), **kwargs)
    np.testing.assert_array_equal(y, x)
    dy = np.random.default_rng(2).standard_normal(x.shape)
    np.testing.assert_array_equal(dropout_backward(dy, cache), dy)


def test_dropout_explicit_mask_wins_over_the_rng():
    mask = np.zeros((2, 2), dtype=bool)
    mask[0, 0] = True
    y, _ = dropout_forward(np.ones((2, 2)), 0.5, rng=np.random.default_rng(0), mask=mask)
    np.testing.assert_array_equal(y, [[2.0, 0.0], [0.0, 0.0]])


def test_dropout_accepts_a_broadcastable_mask():
    mask = np.array([True, False, True])  # one decision per feature, shared by the batch
    y, _ = dropout_forward(np.ones((2, 3)), 0.5, mask=mask)
    np.testing.assert_array_equal(y, [[2.0, 0.0, 2.0], [2.0, 0.0, 2.0]])


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5])
def test_dropout_backward_matches_numerical_gradient(rate):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6))
    mask = rng.random(x.shape) >= rate
    constants = {"rate": rate, "mask": mask}
    errors = check_gradients(dropout_forward, dropout_backward, {"x": x}, constants=constants)
    assert errors["x"] < 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_keeps_the_dtype(dtype):
    x = np.ones((3, 3), dtype)
    y, cache = dropout_forward(x, 0.3, rng=np.random.default_rng(0))
    assert y.dtype == dropout_backward(np.ones((3, 3)), cache).dtype == dtype
    # float32 scaling uses the float32 scale, as tf.nn.dropout does
    assert set(np.unique(y)) <= {dtype(0), x[0, 0] * np.asarray(1 / 0.7, dtype)}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rate": 1.0, "rng": np.random.default_rng(0)}, "rate=1.0"),
        ({"rate": -0.1, "rng": np.random.default_rng(0)}, "rate=-0.1"),
        ({"rate": "0.5", "rng": np.random.default_rng(0)}, "rate='0.5'"),
        ({"rate": 0.5}, "rng"),
        ({"rate": 0.5, "rng": 42}, "rng=42"),
        ({"rate": 0.5, "mask": np.ones((2, 3))}, "mask.dtype=float64"),
        ({"rate": 0.5, "mask": np.ones((3, 2), bool)}, r"mask.shape=\(3, 2\)"),
    ],
)
def test_dropout_rejects_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dropout_forward(np.ones((2, 3)), **kwargs)
