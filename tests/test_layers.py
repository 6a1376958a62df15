"""Tests of scratchnet.layers: gradients against central differences (float64), shapes, configs, errors."""

import numpy as np
import pytest

from scratchnet import layers
from scratchnet.gradcheck import numerical_gradient, relative_error

TOLERANCE = 1e-6


def build(layer, input_shape, dtype="float64", seed=0):
    layer.build(input_shape, np.random.default_rng(seed), dtype)
    return layer


def check_layer_gradients(layer, x, training=False, seed=1):
    """backward(dy) must equal the numerical gradient of sum(forward(x) * dy) for x and every parameter."""
    rng = np.random.default_rng(seed)
    y = layer.forward(x, training=training)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    grads = {key: value.copy() for key, value in layer.grads.items()}

    def forward(_):
        return layer.forward(x, training=training)

    assert relative_error(dx, numerical_gradient(forward, x, dy)) < TOLERANCE
    for key, param in layer.params.items():
        assert relative_error(grads[key], numerical_gradient(forward, param, dy)) < TOLERANCE, key


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "softmax"])
def test_dense_backward_matches_numerical_gradient(activation):
    layer = build(layers.Dense(4, activation=activation, bias_initializer="random_normal"), (5,))
    check_layer_gradients(layer, np.random.default_rng(2).standard_normal((3, 5)))


def test_dense_without_bias_has_only_a_kernel_and_correct_gradient():
    layer = build(layers.Dense(3, use_bias=False), (4,))
    assert list(layer.params) == ["kernel"]
    check_layer_gradients(layer, np.random.default_rng(2).standard_normal((2, 4)))


def test_dense_applies_to_the_last_axis_of_higher_rank_inputs():
    layer = build(layers.Dense(3, activation="sigmoid"), (2, 4))
    x = np.random.default_rng(2).standard_normal((2, 2, 4))
    assert layer.forward(x).shape == (2, 2, 3) == (2, *layer.output_shape((2, 4)))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("strides, padding", [(1, "valid"), (1, "same"), (2, "same"), (2, "valid")])
def test_conv2d_backward_matches_numerical_gradient(strides, padding):
    layer = build(layers.Conv2D(3, (3, 2), strides=strides, padding=padding, activation="relu",
                                bias_initializer="random_normal"), (6, 5, 2))
    check_layer_gradients(layer, np.random.default_rng(3).standard_normal((2, 6, 5, 2)))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pooling2d_backward_matches_numerical_gradient(padding):
    layer = build(layers.MaxPooling2D(2, padding=padding), (5, 5, 2))
    check_layer_gradients(layer, np.random.default_rng(4).standard_normal((2, 5, 5, 2)))


def test_dropout_backward_matches_numerical_gradient_with_a_fixed_mask():
    layer = build(layers.Dropout(0.4), (6,))
    layer.mask = np.random.default_rng(5).random((3, 6)) >= 0.4
    check_layer_gradients(layer, np.random.default_rng(5).standard_normal((3, 6)), training=True)


@pytest.mark.parametrize("layer, shape", [
    (layers.Flatten(), (3, 2, 2)),
    (layers.Reshape((2, -1)), (3, 4)),
    (layers.Activation("relu"), (7,)),
    (layers.Activation("softmax"), (7,)),
    (layers.BiasAdd(bias_initializer="random_normal"), (3, 3, 4)),
])
def test_parameter_light_layers_backward_matches_numerical_gradient(layer, shape):
    build(layer, shape)
    check_layer_gradients(layer, np.random.default_rng(6).standard_normal((2, *shape)))


def test_backward_from_logits_skips_the_activation():
    x = np.random.default_rng(7).standard_normal((3, 5))
    softmax = build(layers.Dense(4, activation="softmax"), (5,), seed=1)
    linear = build(layers.Dense(4), (5,), seed=1)
    softmax.forward(x)
    linear.forward(x)
    dz = np.random.default_rng(8).standard_normal((3, 4))
    np.testing.assert_array_equal(softmax.backward(dz, from_logits=True), linear.backward(dz))
    np.testing.assert_array_equal(softmax.logits, linear.logits)


def test_dropout_is_identity_when_not_training_and_scales_kept_units_when_training():
    layer = build(layers.Dropout(0.5), (1000,), dtype="float32")
    x = np.ones((4, 1000), dtype=np.float32)
    assert layer.forward(x, training=False) is x
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6


@pytest.mark.parametrize("layer, input_shape, expected", [
    (layers.Conv2D(32, 5, strides=2), (28, 28, 1), (12, 12, 32)),
    (layers.Conv2D(32, 5, padding="same"), (28, 28, 1), (28, 28, 32)),
    (layers.Conv2D(4, 3, strides=2, padding="same"), (7, 7, 1), (4, 4, 4)),
    (layers.MaxPooling2D(2, padding="same"), (7, 7, 16), (4, 4, 16)),
    (layers.MaxPooling2D(2), (7, 7, 16), (3, 3, 16)),
    (layers.MaxPooling2D(3, strides=1), (5, 5, 2), (3, 3, 2)),
    (layers.Flatten(), (7, 7, 64), (3136,)),
    (layers.Reshape((-1, 7)), (14, 2), (4, 7)),
    (layers.Dense(10), (784,), (10,)),
])
def test_output_shape_matches_the_forward_pass(layer, input_shape, expected):
    build(layer, input_shape, dtype="float32")
    assert layer.output_shape(input_shape) == expected
    x = np.zeros((2, *input_shape), dtype=np.float32)
    y = layer.forward(x)
    assert y.shape == (2, *expected)
    assert y.dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_gradients_and_outputs_keep_the_layer_dtype(dtype):
    layer = build(layers.Conv2D(2, 3, activation="relu"), (5, 5, 1), dtype=dtype)
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1)).astype(dtype)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert {p.dtype for p in layer.params.values()} == {np.dtype(dtype)}
    assert {g.dtype for g in layer.grads.values()} == {np.dtype(dtype)}
    assert y.dtype == dx.dtype == np.dtype(dtype)


def test_params_are_in_keras_order_and_shapes():
    conv = build(layers.Conv2D(8, 5), (28, 28, 3))
    dense = build(layers.Dense(7), (11,))
    assert list(conv.params) == ["kernel", "bias"]
    assert conv.params["kernel"].shape == (5, 5, 3, 8) and conv.params["bias"].shape == (8,)
    assert dense.params["kernel"].shape == (11, 7)
    assert conv.count_params() == 5 * 5 * 3 * 8 + 8


@pytest.mark.parametrize("layer", [
    layers.Dense(5, activation="relu", use_bias=False, kernel_initializer="he_normal", input_shape=(3,)),
    layers.Conv2D(4, (3, 5), strides=(2, 1), padding="same", activation="softmax",
                  kernel_initializer={"class_name": "TruncatedNormal", "config": {"stddev": 0.1}},
                  bias_initializer="ones", name="c"),
    layers.MaxPooling2D(3, strides=2, padding="same"),
    layers.Dropout(0.25, seed=3),
    layers.Flatten(),
    layers.Activation("sigmoid"),
    layers.BiasAdd(bias_initializer={"class_name": "Constant", "config": {"value": 1.0}}),
    layers.Reshape((7, -1)),
    layers.InputLayer((28, 28, 1)),
])
def test_config_round_trip_rebuilds_an_equal_layer(layer):
    import json

    config = json.loads(json.dumps(layers.serialize(layer)))
    clone = layers.deserialize(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Dense(0), "units"),
    (lambda: layers.Dense(3, activation="tanh"), "activation"),
    (lambda: layers.Conv2D(3, 0), "kernel_size"),
    (lambda: layers.Conv2D(3, 3, padding="full"), "padding"),
    (lambda: layers.MaxPooling2D((2, 2, 2)), "pool_size"),
    (lambda: layers.Dropout(1.0), "rate"),
    (lambda: layers.Reshape((-1, -1)), "target_shape"),
])
def test_bad_arguments_raise_value_errors_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_conv2d_rejects_flat_inputs_with_a_clear_message():
    with pytest.raises(ValueError, match=r"\(height, width, channels\).*\(784,\)"):
        build(layers.Conv2D(3, 3), (784,))


@pytest.mark.parametrize("layer, shape", [
    (layers.Dense(3, activation="softmax"), (4,)),
    (layers.Conv2D(2, 3, padding="same", activation="relu"), (5, 5, 2)),
    (layers.MaxPooling2D(2), (4, 4, 1)),
    (layers.Flatten(), (2, 3)),
    (layers.Dropout(0.5), (6,)),
    (layers.BiasAdd(), (3,)),
    (layers.Reshape((3, 2)), (6,)),
    (layers.Activation("sigmoid"), (3,)),
])
def test_backward_does_not_modify_dy_or_the_input(layer, shape):
    build(layer, shape)
    x = np.random.default_rng(9).standard_normal((2, *shape))
    x_before = x.copy()
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(10).standard_normal(y.shape)
    dy_before = dy.copy()
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dy, dy_before)
    np.testing.assert_array_equal(x, x_before)
    assert dx is not dy and dx.shape == x.shape


def test_conv2d_with_bias_and_relu_runs_them_as_one_op_with_the_same_results():
    """Conv2D(bias, relu) uses conv2d_bias_relu; its output and gradients are those of the three ops."""
    from scratchnet import engine

    x = np.random.default_rng(3).standard_normal((2, 6, 5, 2))
    fused = build(layers.Conv2D(3, 3, activation="relu", bias_initializer="random_normal"), (6, 5, 2))
    dy = np.random.default_rng(4).standard_normal((2, 4, 3, 3))
    y = fused.forward(x)
    z, _ = engine.conv2d_forward(x, fused.params["kernel"], 1, "valid")
    logits, _ = engine.bias_add_forward(z, fused.params["bias"])
    np.testing.assert_allclose(y, np.maximum(logits, 0), rtol=1e-12)
    fused.backward(dy)
    dz = np.where(logits > 0, dy, 0)
    np.testing.assert_allclose(fused.grads["bias"], dz.sum(axis=(0, 1, 2)), rtol=1e-12)
    fused.forward(x)
    fused.backward(dy, from_logits=True)  # dy is already the gradient of the pre-activation
    np.testing.assert_allclose(fused.grads["bias"], dy.sum(axis=(0, 1, 2)), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_conv2d_training_forward_keeps_only_its_output_with_the_inference_results(backend):
    """In training, Conv2D(bias, relu) writes relu(z + bias) over its fresh z and keeps no logits; same y and grads."""
    from scratchnet import engine

    x = np.random.default_rng(3).standard_normal((2, 6, 5, 2))
    dy = np.random.default_rng(4).standard_normal((2, 4, 3, 3))
    with engine.backend(backend):
        layer = build(layers.Conv2D(3, 3, activation="relu", bias_initializer="random_normal"), (6, 5, 2))
        y_inference = layer.forward(x, training=False)
        dx_inference = layer.backward(dy)
        grads_inference = dict(layer.grads)
        y = layer.forward(x, training=True)
        assert layer.logits is None
        y_kept = y.copy()
        dx = layer.backward(dy)
    np.testing.assert_array_equal(y, y_inference)
    np.testing.assert_array_equal(y, y_kept)  # the output handed on is never overwritten later
    np.testing.assert_array_equal(dx, dx_inference)
    for key in grads_inference:
        np.testing.assert_array_equal(layer.grads[key], grads_inference[key])
