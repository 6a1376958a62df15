"""Tests of scratchnet.ops.pooling: max-pooling against its definition, its gradient, and TF's tie rule."""

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import max_pool2d_backward, max_pool2d_forward, padding_amounts

GRAD_TOLERANCE = 1e-7


def distinct_values(rng, shape):
    """Inputs with no ties: a shuffled ramp, neighbours 0.01 apart (far more than the step h)."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.01 - 1.0


def naive_max_pool2d(x, pool, strides, padding):
    """The definition, window by window, with -inf padding."""
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    oh, top, bottom = padding_amounts(h, ph, sh, padding)
    ow, left, right = padding_amounts(w, pw, sw, padding)
    x_pad = np.full((n, h + top + bottom, w + left + right, c), -np.inf)
    x_pad[:, top : top + h, left : left + w] = x
    y = np.empty((n, oh, ow, c))
    for b, i, j, ch in itertools.product(range(n), range(oh), range(ow), range(c)):
        y[b, i, j, ch] = x_pad[b, i * sh : i * sh + ph, j * sw : j * sw + pw, ch].max()
    return y


POOL_GRID = [
    # (H, W, pool_size, strides, padding): 2x2 and 3x3 (overlapping at stride 2), odd and even sizes
    (h, w, pool, strides, padding)
    for (h, w) in [(6, 6), (7, 5)]
    for (pool, strides) in [(2, None), (2, 1), (3, 2), (3, 1), ((2, 3), (1, 2))]
    for padding in ["same", "valid"]
]


def _as_pair(value):
    return (value, value) if isinstance(value, int) else value


@pytest.mark.parametrize("h, w, pool, strides, padding", POOL_GRID)
def test_max_pool2d_forward_matches_the_definition(h, w, pool, strides, padding):
    x = np.random.default_rng(0).standard_normal((2, h, w, 3))
    y, _ = max_pool2d_forward(x, pool, strides, padding)
    pair = _as_pair(pool)
    expected = naive_max_pool2d(x, pair, pair if strides is None else _as_pair(strides), padding)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("h, w, pool, strides, padding", POOL_GRID)
def test_max_pool2d_backward_matches_numerical_gradient(h, w, pool, strides, padding):
    x = distinct_values(np.random.default_rng(1), (2, h, w, 2))
    errors = check_gradients(
        max_pool2d_forward,
        max_pool2d_backward,
        {"x": x},
        constants={"pool_size": pool, "strides": strides, "padding": padding},
    )
    assert errors["x"] < GRAD_TOLERANCE, errors


def test_max_pool2d_strides_default_to_the_pool_size():
    x = np.random.default_rng(2).standard_normal((1, 6, 6, 1))
    y_default, _ = max_pool2d_forward(x, 3)
    y_explicit, _ = max_pool2d_forward(x, 3, 3)
    assert y_default.shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(y_default, y_explicit)


def test_max_pool2d_never_chooses_a_padded_cell():
    # All inputs negative: a zero-padded pool would output 0 at the border; -inf padding never does.
    x = -1.0 - np.arange(9.0).reshape(1, 3, 3, 1)
    y, cache = max_pool2d_forward(x, 2, 2, "same")  # 3 -> 2 outputs, one padded row/col at the end
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1.0, -3.0], [-7.0, -9.0]])
    dx = max_pool2d_backward(np.ones_like(y), cache)
    assert dx.sum() == y.size  # every window's gradient landed on a real cell


def test_max_pool2d_backward_routes_a_tie_to_the_first_maximum_in_row_major_order():
    # Hand-worked (agrees with tf.nn.max_pool2d's gradient on the CPU):
    # window (0,0) = [[1, 3], [3, 2]]: maximum 3 at (0,1) and (1,0) -> all to (0,1);
    # window (0,1) = [[3, 0], [1, 3]]: 3 at (0,2) and (1,3) -> all to (0,2);
    # window (1,1) = [[5, 5], [5, 5]]: all equal -> all to (2,2).
    x = np.array([[1, 3, 3, 0], [3, 2, 1, 3], [0, 0, 5, 5], [0, 1, 5, 5]], float).reshape(1, 4, 4, 1)
    y, cache = max_pool2d_forward(x, 2, 2, "valid")
    np.testing.assert_array_equal(y[0, :, :, 0], [[3, 3], [1, 5]])
    dy = np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 2, 2, 1)
    dx = max_pool2d_backward(dy, cache)
    expected = np.zeros((4, 4))
    expected[0, 1] = 10.0
    expected[0, 2] = 20.0
    expected[3, 1] = 30.0  # window (1,0) = [[0, 0], [0, 1]]: single maximum 1 at (3,1)
    expected[2, 2] = 40.0
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pool2d_backward_accumulates_over_overlapping_windows():
    # 3x3 pool, stride 1 on a 4x4 ramp: the single largest cell (3,3) is the maximum of all
    # four windows and collects all four gradients.
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y, cache = max_pool2d_forward(x, 3, 1, "valid")
    dx = max_pool2d_backward(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1), cache)
    expected = np.zeros((4, 4))
    expected[2, 2], expected[2, 3], expected[3, 2], expected[3, 3] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)

    overlapping = np.zeros((1, 3, 3, 1))
    overlapping[0, 1, 1, 0] = 9.0  # the centre is the max of all four 2x2 stride-1 windows
    y, cache = max_pool2d_forward(overlapping, 2, 1, "valid")
    dx = max_pool2d_backward(np.ones_like(y), cache)
    assert dx[0, 1, 1, 0] == 4.0 and dx.sum() == 4.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_keeps_the_dtype_of_x(dtype):
    x = np.random.default_rng(3).standard_normal((2, 5, 5, 2)).astype(dtype)
    y, cache = max_pool2d_forward(x, 2, 2, "same")
    dx = max_pool2d_backward(np.ones(y.shape), cache)  # float64 dy, float32 x -> float32 dx
    assert y.dtype == dx.dtype == dtype


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": (2, 2, 2)}, "pool_size"),
        ({"strides": -1}, "strides"),
        ({"padding": "full"}, "padding"),
        ({"pool_size": 7, "padding": "valid"}, "kernel=7"),
    ],
)
def test_max_pool2d_rejects_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        max_pool2d_forward(np.zeros((1, 6, 6, 1)), **kwargs)


# --- properties over many random shapes (hypothesis) --------------------------------------------


def naive_max_pool2d_backward(x, dy, pool, strides, padding):
    """The routing rule, window by window: all of dy goes to the first maximum in row-major order."""
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    _, top, _ = padding_amounts(h, ph, sh, padding)
    _, left, _ = padding_amounts(w, pw, sw, padding)
    dx = np.zeros_like(x)
    for b, i, j, ch in itertools.product(range(n), range(dy.shape[1]), range(dy.shape[2]), range(c)):
        best, best_cell = -np.inf, None
        for di, dj in itertools.product(range(ph), range(pw)):  # row-major scan of the window
            row, col = i * sh + di - top, j * sw + dj - left
            if 0 <= row < h and 0 <= col < w and x[b, row, col, ch] > best:  # strict: first wins
                best, best_cell = x[b, row, col, ch], (row, col)
        dx[b, best_cell[0], best_cell[1], ch] += dy[b, i, j, ch]
    return dx


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 8),
    w=st.integers(1, 8),
    pool=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.sampled_from(["same", "valid"]),
    seed=st.integers(0, 2**16),
)
def test_max_pool2d_backward_follows_the_first_maximum_rule_amid_ties(h, w, pool, strides, padding, seed):
    assume(padding == "same" or (h >= pool[0] and w >= pool[1]))  # a valid window must fit
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (1, h, w, 2)).astype(float)  # values 0, 1, 2: ties everywhere
    y, cache = max_pool2d_forward(x, pool, strides, padding)
    dy = rng.integers(1, 5, y.shape).astype(float)  # integers: the sums below are exact
    dx = max_pool2d_backward(dy, cache)
    np.testing.assert_array_equal(dx, naive_max_pool2d_backward(x, dy, pool, strides, padding))
    assert dx.sum() == dy.sum()  # nothing lost to the padding, nothing duplicated by a tie


# --- average pooling and the global poolings ----------------------------------------------------

from scratchnet.ops import (  # noqa: E402
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    global_max_pool2d_backward,
    global_max_pool2d_forward,
)


def naive_avg_pool2d(x, pool, strides, padding):
    """The definition, window by window: the mean of the window's REAL cells (padding left out)."""
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    oh, top, _ = padding_amounts(h, ph, sh, padding)
    ow, left, _ = padding_amounts(w, pw, sw, padding)
    y = np.empty((n, oh, ow, c))
    for i, j in itertools.product(range(oh), range(ow)):
        rows = slice(max(i * sh - top, 0), min(i * sh - top + ph, h))
        cols = slice(max(j * sw - left, 0), min(j * sw - left + pw, w))
        y[:, i, j, :] = x[:, rows, cols, :].mean(axis=(1, 2))
    return y


@pytest.mark.parametrize("h, w, pool, strides, padding", POOL_GRID)
def test_avg_pool2d_forward_matches_the_definition(h, w, pool, strides, padding):
    x = np.random.default_rng(0).standard_normal((2, h, w, 3))
    y, _ = avg_pool2d_forward(x, pool, strides, padding)
    pair = _as_pair(pool)
    expected = naive_avg_pool2d(x, pair, pair if strides is None else _as_pair(strides), padding)
    np.testing.assert_allclose(y, expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("h, w, pool, strides, padding", POOL_GRID)
def test_avg_pool2d_backward_matches_numerical_gradient(h, w, pool, strides, padding):
    x = np.random.default_rng(1).standard_normal((2, h, w, 2))
    errors = check_gradients(avg_pool2d_forward, avg_pool2d_backward, {"x": x},
                             constants={"pool_size": pool, "strides": strides, "padding": padding})
    assert errors["x"] < GRAD_TOLERANCE


def test_avg_pool2d_same_padding_divides_by_the_real_cells_only():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # Keras's docstring example, pool 2, stride 1, same
    y, _ = avg_pool2d_forward(x, 2, 1, "same")
    np.testing.assert_array_equal(y[0, :, :, 0], [[3.0, 4.0, 4.5], [6.0, 7.0, 7.5], [7.5, 8.5, 9.0]])


def test_global_avg_pool2d_is_the_mean_over_height_and_width_with_its_gradient():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    y, _ = global_avg_pool2d_forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-15)
    assert check_gradients(global_avg_pool2d_forward, global_avg_pool2d_backward, {"x": x})["x"] < GRAD_TOLERANCE


def test_global_max_pool2d_is_the_max_over_height_and_width_with_its_gradient():
    x = distinct_values(np.random.default_rng(3), (2, 3, 4, 5))
    y, _ = global_max_pool2d_forward(x)
    np.testing.assert_array_equal(y, x.max(axis=(1, 2)))
    assert check_gradients(global_max_pool2d_forward, global_max_pool2d_backward, {"x": x})["x"] < GRAD_TOLERANCE


def test_global_max_pool2d_splits_the_gradient_of_a_tie_equally():
    """reduce_max's rule (not max-pooling's first-maximum rule): k tied cells get dy / k each."""
    grid = np.array([[1.0, 3.0, 0.0, 3.0],
                     [2.0, 3.0, 3.0, 0.0]])
    _, cache = global_max_pool2d_forward(grid.reshape(1, 2, 4, 1))
    dx = global_max_pool2d_backward(np.array([[12.0]]), cache)
    np.testing.assert_array_equal(dx.reshape(2, 4), [[0, 3, 0, 3], [0, 3, 3, 0]])


def test_global_poolings_reject_non_image_input():
    for forward in (global_avg_pool2d_forward, global_max_pool2d_forward):
        with pytest.raises(ValueError, match="4 dimensions"):
            forward(np.ones((2, 3)))
