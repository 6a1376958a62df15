"""Tests of scratchnet.ops.conv: TF padding arithmetic, conv2d and bias_add (definitions, gradients)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.gradcheck import check_gradients
from scratchnet.ops import (
    bias_add_backward,
    bias_add_forward,
    bias_add_relu_backward,
    bias_add_relu_forward,
    conv2d_backward,
    conv2d_bias_relu_backward,
    conv2d_bias_relu_forward,
    conv2d_forward,
    padding_amounts,
)

GRAD_TOLERANCE = 1e-7


# --- padding_amounts: hand-worked TensorFlow examples ----------------------------------------


@pytest.mark.parametrize(
    "size, kernel, stride, padding, expected",
    [
        (28, 5, 2, "same", (14, 1, 2)),  # pad_total = 13*2 + 5 - 28 = 3: one before, two after
        (28, 5, 2, "valid", (12, 0, 0)),  # ceil(24 / 2) = 12
        (28, 5, 1, "same", (28, 2, 2)),  # odd kernel, stride 1: symmetric
        (28, 2, 2, "same", (14, 0, 0)),  # the classic 2x2 pool: no padding needed
        (7, 2, 2, "same", (4, 0, 1)),  # odd size: the extra cell at the end
        (14, 2, 2, "same", (7, 0, 0)),
        (6, 4, 1, "same", (6, 1, 2)),  # even kernel: the extra cell at the end
        (7, 3, 2, "valid", (3, 0, 0)),  # ceil(5 / 2) = 3, nothing left over
        (8, 3, 2, "valid", (3, 0, 0)),  # ceil(6 / 2) = 3, the last row is dropped
        (5, 1, 3, "same", (2, 0, 0)),  # (2-1)*3 + 1 - 5 < 0: no padding
        (12, 3, 1, "VALID", (10, 0, 0)),  # case-insensitive
        (28, 5, 2, "Same", (14, 1, 2)),
    ],
)
def test_padding_amounts_matches_hand_worked_tensorflow_examples(size, kernel, stride, padding, expected):
    assert padding_amounts(size, kernel, stride, padding) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        ((28, 5, 2, "full"), "padding"),
        ((28, 0, 2, "same"), "kernel"),
        ((28, 5, 0, "same"), "stride"),
        ((28, 5, 1.5, "same"), "stride"),
        ((0, 5, 1, "same"), "size"),
        ((3, 5, 1, "valid"), "kernel=5"),
    ],
)
def test_padding_amounts_rejects_bad_arguments_naming_them(args, message):
    with pytest.raises(ValueError, match=message):
        padding_amounts(*args)


# --- conv2d against its definition ----------------------------------------------------------


def naive_conv2d(x, kernel, strides, padding):
    """The definition, one output number at a time (slow and obviously right)."""
    n, h, w, ci = x.shape
    kh, kw, _, co = kernel.shape
    sh, sw = strides
    oh, top, bottom = padding_amounts(h, kh, sh, padding)
    ow, left, right = padding_amounts(w, kw, sw, padding)
    x_pad = np.zeros((n, h + top + bottom, w + left + right, ci))
    x_pad[:, top : top + h, left : left + w] = x
    y = np.zeros((n, oh, ow, co))
    for b, i, j, c in itertools.product(range(n), range(oh), range(ow), range(co)):
        window = x_pad[b, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
        y[b, i, j, c] = np.sum(window * kernel[:, :, :, c])
    return y


CONV_GRID = [
    # (H, W, KH, KW, strides, padding): odd/even inputs and kernels, stride 1 and 2, same/valid
    (h, w, k[0], k[1], s, p)
    for (h, w) in [(7, 7), (6, 8)]
    for k in [(3, 3), (2, 2), (5, 4)]
    for s in [1, 2]
    for p in ["same", "valid"]
] + [(9, 7, 3, 3, (2, 1), "same"), (9, 7, 3, 3, (1, 2), "valid"), (5, 5, 5, 5, 1, "valid")]


def _conv_inputs(rng, h, w, kh, kw, ci=2, co=3, n=2):
    return rng.standard_normal((n, h, w, ci)), rng.standard_normal((kh, kw, ci, co))


@pytest.mark.parametrize("h, w, kh, kw, strides, padding", CONV_GRID)
def test_conv2d_forward_matches_the_definition(h, w, kh, kw, strides, padding):
    x, kernel = _conv_inputs(np.random.default_rng(0), h, w, kh, kw)
    y, _ = conv2d_forward(x, kernel, strides, padding)
    pair = (strides, strides) if isinstance(strides, int) else strides
    np.testing.assert_allclose(y, naive_conv2d(x, kernel, pair, padding), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h, w, kh, kw, strides, padding", CONV_GRID)
def test_conv2d_backward_matches_numerical_gradient(h, w, kh, kw, strides, padding):
    x, kernel = _conv_inputs(np.random.default_rng(1), h, w, kh, kw)
    errors = check_gradients(
        conv2d_forward,
        conv2d_backward,
        {"x": x, "kernel": kernel},
        constants={"strides": strides, "padding": padding},
    )
    assert max(errors.values()) < GRAD_TOLERANCE, errors


def test_conv2d_is_cross_correlation_not_convolution():
    x = np.zeros((1, 3, 3, 1))
    x[0, 0, 0, 0] = 1.0  # a single 1 in the top-left corner
    kernel = np.arange(1.0, 10.0).reshape(3, 3, 1, 1)
    y, _ = conv2d_forward(x, kernel, padding="valid")
    assert y.item() == kernel[0, 0, 0, 0]  # not kernel[2, 2] as a flipped convolution would give


def test_conv2d_same_padding_puts_the_extra_row_at_the_bottom():
    # 4x4 input of ones, 2x2 kernel of ones, stride 1, SAME: pad (0, 1) on each axis, so only
    # the last row and column of the output see the zero padding.
    y, _ = conv2d_forward(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), 1, "same")
    expected = np.array([[4, 4, 4, 2], [4, 4, 4, 2], [4, 4, 4, 2], [2, 2, 2, 1]], dtype=float)
    np.testing.assert_array_equal(y[0, :, :, 0], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_keeps_the_dtype_of_x(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 6, 3)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, 4))  # float64 kernel is cast to x's dtype
    y, cache = conv2d_forward(x, kernel, 2, "same")
    dx, dkernel = conv2d_backward(rng.standard_normal(y.shape), cache)
    assert y.dtype == dx.dtype == dkernel.dtype == dtype


@pytest.mark.parametrize(
    "x_shape, kernel_shape, kwargs, message",
    [
        ((2, 6, 6), (3, 3, 3, 4), {}, "x"),
        ((2, 6, 6, 3), (3, 3, 4), {}, "kernel"),
        ((2, 6, 6, 3), (3, 3, 2, 4), {}, "channels"),
        ((2, 6, 6, 3), (3, 3, 3, 4), {"strides": 0}, "strides"),
        ((2, 6, 6, 3), (3, 3, 3, 4), {"strides": (1, 2, 3)}, "strides"),
        ((2, 6, 6, 3), (3, 3, 3, 4), {"padding": "causal"}, "padding"),
        ((2, 2, 2, 3), (3, 3, 3, 4), {"padding": "valid"}, "kernel=3"),
    ],
)
def test_conv2d_rejects_bad_arguments_naming_them(x_shape, kernel_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv2d_forward(np.zeros(x_shape), np.zeros(kernel_shape), **kwargs)


def test_conv2d_rejects_integer_images():
    with pytest.raises(ValueError, match=r"x\.dtype=uint8"):
        conv2d_forward(np.zeros((1, 4, 4, 1), np.uint8), np.zeros((2, 2, 1, 1)))


def test_conv2d_backward_rejects_dy_of_the_wrong_shape():
    y, cache = conv2d_forward(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 2)))
    with pytest.raises(ValueError, match=r"dy.shape=\(1, 3, 3, 1\)"):
        conv2d_backward(np.zeros((1, 3, 3, 1)), cache)


# --- bias_add ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 3, 4), (4,)])
def test_bias_add_backward_matches_numerical_gradient(shape):
    rng = np.random.default_rng(3)
    errors = check_gradients(
        bias_add_forward,
        bias_add_backward,
        {"x": rng.standard_normal(shape), "bias": rng.standard_normal(shape[-1])},
    )
    assert max(errors.values()) < GRAD_TOLERANCE, errors


def test_bias_add_adds_along_the_last_axis():
    y, _ = bias_add_forward(np.zeros((2, 2, 3)), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(y[1, 0], [1.0, 2.0, 3.0])


def test_bias_add_rejects_a_bias_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"bias.shape=\(4,\)"):
        bias_add_forward(np.zeros((2, 3)), np.zeros(4))


# --- properties over many random shapes (hypothesis) --------------------------------------------


@st.composite
def conv_problems(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 9))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid", "SAME"]))
    seed = draw(st.integers(0, 2**16))
    return (h, w, kh, kw, strides, padding, seed)


@settings(max_examples=60, deadline=None)
@given(conv_problems())
def test_conv2d_backward_is_the_adjoint_of_the_forward(problem):
    # conv2d is linear in x and in the kernel, so for any dy:
    # <conv(x, k), dy> = <x, dx> = <k, dkernel>   (the definition of a vector-Jacobian product).
    h, w, kh, kw, strides, padding, seed = problem
    rng = np.random.default_rng(seed)
    x, kernel = rng.standard_normal((2, h, w, 2)), rng.standard_normal((kh, kw, 2, 3))
    y, cache = conv2d_forward(x, kernel, strides, padding)
    assert y.shape[1:3] == (padding_amounts(h, kh, strides[0], padding)[0],
                            padding_amounts(w, kw, strides[1], padding)[0])
    dy = rng.standard_normal(y.shape)
    dx, dkernel = conv2d_backward(dy, cache)
    assert np.sum(y * dy) == pytest.approx(np.sum(x * dx), rel=1e-10, abs=1e-10)
    assert np.sum(y * dy) == pytest.approx(np.sum(kernel * dkernel), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 3, 4)])
def test_bias_add_relu_backward_matches_numerical_gradient(shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    x += np.where(x >= 0, 0.2, -0.2)  # away from the relu's kink, with any bias below 0.1 in size
    errors = check_gradients(
        bias_add_relu_forward,
        bias_add_relu_backward,
        {"x": x, "bias": rng.uniform(-0.1, 0.1, shape[-1])},
    )
    assert max(errors.values()) < GRAD_TOLERANCE, errors


@pytest.mark.parametrize("strides, padding", [(1, "valid"), (2, "same")])
def test_conv2d_bias_relu_is_conv2d_then_bias_add_relu_and_matches_numerical_gradient(strides, padding):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 6, 3))
    kernel = rng.standard_normal((3, 2, 3, 4))
    bias = rng.uniform(-0.1, 0.1, 4)
    y, cache = conv2d_bias_relu_forward(x, kernel, bias, strides, padding)
    z, conv_cache = conv2d_forward(x, kernel, strides, padding)
    y_two_ops, z_bias = bias_add_relu_forward(z, bias)
    np.testing.assert_array_equal(y, y_two_ops)
    dy = rng.standard_normal(y.shape)
    dz, dbias_want = bias_add_relu_backward(dy, z_bias)
    dx_want, dkernel_want = conv2d_backward(dz, conv_cache)
    for got, want in zip(conv2d_bias_relu_backward(dy, cache), (dx_want, dkernel_want, dbias_want)):
        np.testing.assert_array_equal(got, want)
    assert conv2d_bias_relu_backward(dy, cache, need_dx=False)[0] is None
    assert np.abs(z_bias).min() > 1e-3  # no pre-activation near relu's kink, where differences mislead
    errors = check_gradients(
        lambda x, kernel, bias: conv2d_bias_relu_forward(x, kernel, bias, strides, padding),
        conv2d_bias_relu_backward,
        {"x": x, "kernel": kernel, "bias": bias},
    )
    assert max(errors.values()) < GRAD_TOLERANCE, errors
