"""Tests of scratchnet.layers: gradients against central differences (float64), shapes, configs, errors."""

import numpy as np
import pytest

from scratchnet import engine, layers
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
    check_layer_gradients(layer, np.random.default_rng(4).standard_normal((2, 5, 5, 2)), training=True)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_max_pooling2d_in_inference_gives_the_same_output_and_keeps_no_cache(backend):
    layer = build(layers.MaxPooling2D(2, padding="same"), (5, 5, 2), dtype="float32")
    x = np.random.default_rng(4).standard_normal((2, 5, 5, 2)).astype(np.float32)
    with engine.backend(backend):
        y_training = layer.forward(x, training=True)
        y_inference = layer.forward(x, training=False)
        np.testing.assert_array_equal(y_inference, y_training)
        with pytest.raises(ValueError, match="training=True"):
            layer.backward(np.ones_like(y_inference))


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
    (lambda: layers.Dense(3, activation="hard_tanh"), "activation"),
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


# ------------------------------------------------------------------------------------------------
# Keras's other layers: BatchNormalization, average and global pooling, Softmax, ReLU, LeakyReLU
# ------------------------------------------------------------------------------------------------

from scratchnet import Sequential, optimizers  # noqa: E402


@pytest.mark.parametrize("activation", ["tanh", "elu", "gelu", "leaky_relu", "softplus", "silu", "swish"])
def test_dense_with_every_new_activation_matches_numerical_gradient(activation):
    layer = build(layers.Dense(4, activation=activation, bias_initializer="random_normal"), (5,))
    check_layer_gradients(layer, np.random.default_rng(2).standard_normal((3, 5)))


def test_swish_is_silu_as_in_keras_configs():
    assert layers.Dense(2, activation="swish").activation == "silu"
    assert layers.Dense(2, activation="GELU").get_config()["activation"] == "gelu"


@pytest.mark.parametrize("layer, shape", [
    (layers.AveragePooling2D(2, padding="same"), (5, 5, 2)),
    (layers.AveragePooling2D(3, strides=2), (7, 6, 2)),
    (layers.GlobalAveragePooling2D(), (3, 4, 2)),
    (layers.GlobalAveragePooling2D(keepdims=True), (3, 4, 2)),
    (layers.GlobalMaxPooling2D(), (3, 4, 2)),
    (layers.GlobalMaxPooling2D(keepdims=True), (3, 4, 2)),
    (layers.Softmax(), (6,)),
    (layers.Softmax(axis=1), (4, 3)),
    (layers.ReLU(), (7,)),
    (layers.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.3), (7,)),
    (layers.LeakyReLU(), (7,)),
])
def test_new_parameter_free_layers_backward_matches_numerical_gradient(layer, shape):
    build(layer, shape)
    x = np.random.default_rng(6).standard_normal((2, *shape))
    x = np.where(np.abs(x - 0.3) < 0.02, x + 0.05, x)  # away from ReLU's kinks
    x = np.where(np.abs(x - 1.0) < 0.02, x + 0.05, x)
    if "Max" in type(layer).__name__:
        x = x + np.arange(x.size).reshape(x.shape) * 1e-3  # no ties
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("layer, input_shape, expected", [
    (layers.AveragePooling2D(2), (7, 7, 3), (3, 3, 3)),
    (layers.AveragePooling2D(2, padding="same"), (7, 7, 3), (4, 4, 3)),
    (layers.GlobalAveragePooling2D(), (7, 5, 3), (3,)),
    (layers.GlobalMaxPooling2D(keepdims=True), (7, 5, 3), (1, 1, 3)),
    (layers.BatchNormalization(), (7, 5, 3), (7, 5, 3)),
    (layers.Softmax(), (10,), (10,)),
    (layers.ReLU(6.0), (4, 2), (4, 2)),
])
def test_new_layers_output_shape_matches_the_forward_pass(layer, input_shape, expected):
    build(layer, input_shape, dtype="float32")
    assert layer.output_shape(input_shape) == expected
    y = layer.forward(np.ones((2, *input_shape), dtype=np.float32))
    assert y.shape == (2, *expected) and y.dtype == np.float32


def test_relu_layer_options_follow_keras():
    x = np.array([[-10.0, -5.0, 0.0, 5.0, 10.0]])
    assert layers.ReLU()(x).tolist() == [[0.0, 0.0, 0.0, 5.0, 10.0]]
    assert layers.ReLU(negative_slope=0.5)(x).tolist() == [[-5.0, -2.5, 0.0, 5.0, 10.0]]
    assert layers.ReLU(max_value=5.0)(x).tolist() == [[0.0, 0.0, 0.0, 5.0, 5.0]]
    assert layers.ReLU(threshold=5.0)(x).tolist() == [[0.0, 0.0, 0.0, 0.0, 10.0]]
    assert layers.LeakyReLU()(np.array([[-1.0]]))[0, 0] == pytest.approx(-0.3)  # the layer's default is 0.3


@pytest.mark.parametrize("make, message", [
    (lambda: layers.ReLU(max_value=-1.0), "max_value"),
    (lambda: layers.ReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: layers.ReLU(threshold=None), "threshold"),
    (lambda: layers.BatchNormalization(momentum=1.5), "momentum"),
    (lambda: layers.BatchNormalization(epsilon=0.0), "epsilon"),
    (lambda: layers.AveragePooling2D(2, data_format="channels_first"), "data_format"),
    (lambda: layers.GlobalMaxPooling2D(data_format="channels_first"), "data_format"),
    (lambda: build(layers.BatchNormalization(axis=1), (4, 4, 3)), "axis"),
    (lambda: build(layers.GlobalAveragePooling2D(), (12,)), "height, width, channels"),
])
def test_new_layers_reject_bad_arguments_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_softmax_layer_rows_sum_to_one_along_its_axis():
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    np.testing.assert_allclose(layers.Softmax()(x).sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(layers.Softmax(axis=1)(x).sum(axis=1), 1.0, rtol=1e-6)


def test_batch_normalization_weights_are_keras_four_in_keras_order():
    layer = build(layers.BatchNormalization(), (4, 4, 3))
    assert list(layer.params) == ["gamma", "beta"]
    assert list(layer.non_trainable_params) == ["moving_mean", "moving_variance"]
    names = ["gamma", "beta", "moving_mean", "moving_variance"]
    expected = [np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)]
    for name, weight, value in zip(names, layer.get_weights(), expected):
        np.testing.assert_array_equal(weight, value, err_msg=name)
    assert layer.count_params() == 12
    no_affine = build(layers.BatchNormalization(center=False, scale=False), (3,))
    assert no_affine.params == {} and no_affine.count_params() == 6


def test_batch_normalization_training_normalises_and_moves_the_averages_by_momentum():
    rng = np.random.default_rng(0)
    layer = build(layers.BatchNormalization(momentum=0.9), (4,))
    x = 5.0 + 2.0 * rng.standard_normal((64, 4))
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(layer.non_trainable_params["moving_mean"], 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.non_trainable_params["moving_variance"], 0.9 + 0.1 * x.var(axis=0), rtol=1e-12)


def test_batch_normalization_inference_uses_the_moving_averages_and_changes_nothing():
    layer = build(layers.BatchNormalization(), (3,))
    layer.set_weights([np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0]),
                       np.array([1.0, 1.0, 1.0]), np.array([4.0, 4.0, 4.0])])
    x = np.array([[3.0, 3.0, 3.0]])
    before = [w.copy() for w in layer.get_weights()]
    y = layer.forward(x, training=False)
    scale = 2 / np.sqrt(4.001)  # (x - moving_mean) / sqrt(moving_variance + epsilon)
    np.testing.assert_allclose(y, [[1.0 * scale, 1.0 + 2.0 * scale, 3.0 * scale]])
    for after, old in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(after, old)


@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_backward_matches_numerical_gradient(training):
    layer = build(layers.BatchNormalization(momentum=0.0, gamma_initializer="random_normal",
                                            beta_initializer="random_normal"), (3, 2, 4))
    layer.non_trainable_params["moving_variance"][...] = [0.5, 1.0, 2.0, 3.0]
    x = np.random.default_rng(3).standard_normal((3, 3, 2, 4))
    if training:  # momentum 0: the moving averages become the batch's, identical on every repeated forward
        layer.forward(x, training=True)
    check_layer_gradients(layer, x, training=training)


def test_frozen_batch_normalization_runs_in_inference_mode_like_keras():
    layer = build(layers.BatchNormalization(), (2,))
    layer.trainable = False
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_array_equal(layer.forward(x, training=True), layer.forward(x, training=False))
    np.testing.assert_array_equal(layer.non_trainable_params["moving_mean"], [0.0, 0.0])


def test_batch_normalization_config_round_trip():
    import json

    layer = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, name="bn")
    clone = layers.deserialize(json.loads(json.dumps(layers.serialize(layer))))
    assert clone.get_config() == layer.get_config()
    for layer in (layers.AveragePooling2D(3, 2, "same"), layers.GlobalMaxPooling2D(keepdims=True),
                  layers.Softmax(axis=2), layers.ReLU(6.0, 0.1, 0.5), layers.LeakyReLU(0.1)):
        clone = layers.deserialize(json.loads(json.dumps(layers.serialize(layer))))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def bn_model(dtype="float64"):
    model = Sequential([layers.Conv2D(3, 3, input_shape=(6, 6, 1)), layers.BatchNormalization(),
                        layers.ReLU(), layers.GlobalAveragePooling2D(), layers.Dense(2, activation="softmax")],
                       dtype=dtype, seed=1)
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=[])
    return model


def test_the_optimizer_updates_gamma_and_beta_but_never_the_moving_statistics():
    model = bn_model()
    bn = model.layers[1]
    statistics = list(bn.non_trainable_params.values())
    assert not any(p is s for p in model._params for s in statistics)
    assert len(model.get_weights()) == len(model._params) + 2
    x = np.random.default_rng(0).random((8, 6, 6, 1))
    conv = Sequential([layers.Conv2D(3, 3, input_shape=(6, 6, 1))], dtype="float64")
    conv.set_weights(model.get_weights()[:2])
    batch_mean = conv.predict(x).mean(axis=(0, 1, 2))  # what the BN layer sees in the step below

    model.train_step(x, np.arange(8) % 2)
    # the moving mean is exactly 0.99 * 0 + 0.01 * the batch mean: the optimizer added nothing to it
    np.testing.assert_allclose(bn.non_trainable_params["moving_mean"], 0.01 * batch_mean, rtol=1e-10)
    assert not np.array_equal(bn.params["gamma"], np.ones(3)) and not np.array_equal(bn.params["beta"], np.zeros(3))


def test_summary_counts_the_moving_statistics_as_non_trainable():
    text = bn_model().summary(print_fn=None)
    assert "Non-trainable params: 6" in text
    total = bn_model().count_params()
    assert f"Trainable params: {total - 6:,}" in text


def test_save_and_load_keep_the_moving_statistics(tmp_path):
    from scratchnet import load_model

    model = bn_model()
    x = np.random.default_rng(0).random((8, 6, 6, 1))
    for _ in range(3):
        model.train_step(x, np.arange(8) % 2)
    path = tmp_path / "bn.npz"
    model.save(path)
    loaded = load_model(path)
    for w, w_loaded in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(w, w_loaded)
    assert not np.allclose(loaded.layers[1].non_trainable_params["moving_mean"], 0)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
