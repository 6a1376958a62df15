"""Tests of scratchnet.losses: mse/mae by name and as objects, Keras's loss functions, custom losses."""

import json
import warnings

import numpy as np
import pytest

from scratchnet import Sequential, layers, losses, optimizers
from scratchnet.gradcheck import numerical_gradient, relative_error


def batch(seed=0, shape=(6, 3)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("name, cls", [
    ("mse", losses.MeanSquaredError), ("MSE", losses.MeanSquaredError),
    ("mean_squared_error", losses.MeanSquaredError), ("MeanSquaredError", losses.MeanSquaredError),
    ("mae", losses.MeanAbsoluteError), ("mean_absolute_error", losses.MeanAbsoluteError),
    ("bce", losses.BinaryCrossentropy), ("binary_crossentropy", losses.BinaryCrossentropy),
])
def test_loss_names_resolve_as_in_keras(name, cls):
    assert type(losses.get(name)) is cls


def test_regression_losses_compute_keras_values_and_exact_gradients():
    y, p = batch()
    for loss, expected in ((losses.MeanSquaredError(), ((y - p) ** 2).mean()),
                           (losses.MeanAbsoluteError(), np.abs(y - p).mean())):
        value, cache = loss.forward(y, p)
        assert float(value) == pytest.approx(expected, rel=1e-14)
        grad = loss.backward(cache)
        numerical = numerical_gradient(lambda q, loss=loss: loss.forward(y, q)[0], p.copy())
        assert relative_error(grad, numerical) < 1e-7
    assert losses.MeanSquaredError().name == "mean_squared_error"


def test_keras_loss_functions_give_each_examples_loss():
    y, p = batch(1)
    np.testing.assert_allclose(losses.mean_squared_error(y, p), ((y - p) ** 2).mean(axis=-1), rtol=1e-15)
    np.testing.assert_allclose(losses.mean_absolute_error(y, p), np.abs(y - p).mean(axis=-1), rtol=1e-15)
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(np.array([0, 0]), probs),
                               [-np.log(0.9), -np.log(0.2)], rtol=1e-6)
    np.testing.assert_allclose(losses.categorical_crossentropy(np.eye(2)[[0, 1]], probs),
                               [-np.log(0.9), -np.log(0.8)], rtol=1e-6)
    np.testing.assert_allclose(losses.binary_crossentropy(np.array([[1.0], [0.0]]), np.array([[0.9], [0.2]])),
                               [-np.log(0.9), -np.log(0.8)], rtol=1e-6)


def test_keras_loss_functions_passed_to_compile_become_their_exact_classes():
    assert type(losses.get(losses.mean_squared_error)) is losses.MeanSquaredError
    assert type(losses.get(losses.sparse_categorical_crossentropy)) is losses.SparseCategoricalCrossentropy
    assert type(losses.get(losses.MeanAbsoluteError)) is losses.MeanAbsoluteError  # a class is instantiated


def test_regression_targets_must_be_shaped_like_the_outputs():
    loss = losses.MeanSquaredError()
    assert loss.targets(np.arange(4), (1,), np.float32).shape == (4, 1)
    with pytest.raises(ValueError, match=r"mean_squared_error needs targets shaped like the outputs \(N, 10\).*"
                                         r"y.shape=\(4,\).*to_categorical"):
        loss.targets(np.arange(4), (10,), np.float32)


def test_categorical_crossentropy_with_integer_labels_raises_like_keras():
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(2,))])
    model.compile("sgd", "categorical_crossentropy", metrics=[])
    with pytest.raises(ValueError, match=r"categorical_crossentropy needs one-hot rows.*\(N, 3\).*"
                                         r"sparse_categorical_crossentropy"):
        model.fit(np.ones((4, 2)), np.array([0, 1, 2, 1]), verbose=0)


def test_other_reductions_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="sum")


# --- custom losses ---------------------------------------------------------------------------------


def squared_error(y_true, y_pred):
    return ((y_true - y_pred) ** 2).mean(axis=-1)


def squared_error_gradient(y_true, y_pred):
    return 2 * (y_pred - y_true) / y_pred.shape[-1]


class SquaredError(losses.Loss):
    def __init__(self, name="squared_error", **kwargs):  # Keras's idiom: the base's arguments pass through
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return squared_error(y_true, y_pred)


class SquaredErrorWithGradient(SquaredError):
    def gradient(self, y_true, y_pred):
        return squared_error_gradient(y_true, y_pred)


def with_gradient(function, gradient):
    def loss(y_true, y_pred):
        return function(y_true, y_pred)

    loss.gradient = gradient
    return loss


@pytest.mark.parametrize("make", [lambda: squared_error, lambda: SquaredError()])
def test_custom_loss_without_gradient_is_differentiated_numerically_with_one_warning(make):
    y, p = batch(2)
    loss = losses.get(make())
    reference = losses.MeanSquaredError()
    with pytest.warns(UserWarning, match="no gradient.*numerically.*slow"):
        value, cache = loss.forward(y, p)
        grad = loss.backward(cache)
    assert float(value) == pytest.approx(float(reference.forward(y, p)[0]), rel=1e-14)
    np.testing.assert_allclose(grad, reference.backward(reference.forward(y, p)[1]), rtol=1e-7, atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once per loss
        loss.backward(loss.forward(y, p)[1])


@pytest.mark.parametrize("make", [lambda: with_gradient(squared_error, squared_error_gradient),
                                  lambda: SquaredErrorWithGradient()])
def test_custom_loss_with_a_gradient_uses_it_without_warning(make):
    y, p = batch(3)
    loss = losses.get(make())
    reference = losses.MeanSquaredError()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = loss.backward(loss.forward(y, p)[1])
    np.testing.assert_allclose(grad, reference.backward(reference.forward(y, p)[1]), rtol=1e-14)


@pytest.mark.parametrize("make", [lambda: SquaredError(), lambda: SquaredErrorWithGradient()])
def test_custom_loss_with_sample_weights_weights_each_example_like_keras(make):
    y, p = batch(4)
    weights = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0])
    loss = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value, cache = loss._call_forward(y, p, sample_weight=weights)
        grad = loss._call_backward(cache[1])
    per_example = squared_error(y, p)
    assert float(value) == pytest.approx((weights * per_example).sum() / len(p), rel=1e-14)
    expected = squared_error_gradient(y, p) * weights[:, None] / len(p)
    np.testing.assert_allclose(grad, expected, rtol=1e-7, atol=1e-12)


def test_a_gradient_of_the_wrong_shape_is_a_clear_error():
    loss = losses.get(with_gradient(squared_error, lambda y_true, y_pred: y_pred.sum(axis=-1)))
    y, p = batch(5)
    with pytest.raises(ValueError, match=r"gradient\(y_true, y_pred\) must have y_pred's shape \(6, 3\)"):
        loss.backward(loss.forward(y, p)[1])


def test_a_loss_subclass_without_call_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="must implement call"):
        losses.Loss(name="empty").forward(np.ones((2, 1)), np.ones((2, 1)))


def test_a_model_trains_the_same_with_a_custom_loss_as_with_mse():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4))
    y = x @ rng.standard_normal((4, 2))

    def train(loss):
        model = Sequential([layers.Dense(8, activation="tanh", input_shape=(4,)), layers.Dense(2)],
                           dtype="float64", seed=3)
        model.compile(optimizers.SGD(0.05), loss, metrics=[])
        return model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False).history["loss"], model

    history_mse, reference = train("mse")
    with pytest.warns(UserWarning, match="numerically"):
        history_custom, model = train(squared_error)
    assert history_mse[-1] < history_mse[0]
    np.testing.assert_allclose(history_custom, history_mse, rtol=1e-7)
    for w, w_ref in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(w, w_ref, rtol=1e-6, atol=1e-9)
    history_fast, _ = train(SquaredErrorWithGradient())
    np.testing.assert_allclose(history_fast, history_mse, rtol=1e-12)


def test_custom_losses_serialize_and_need_custom_objects_to_come_back():
    config = json.loads(json.dumps(losses.serialize(SquaredErrorWithGradient())))
    with pytest.raises(ValueError, match="custom_objects"):
        losses.deserialize(config)
    back = losses.deserialize(config, custom_objects={"SquaredErrorWithGradient": SquaredErrorWithGradient})
    assert type(back) is SquaredErrorWithGradient and back.name == "squared_error"
    wrapped = json.loads(json.dumps(losses.serialize(losses.get(squared_error))))
    with pytest.raises(ValueError, match="custom_objects"):
        losses.deserialize(wrapped)
    assert losses.deserialize(wrapped, custom_objects={"squared_error": squared_error}).fn is squared_error
    mse = losses.deserialize(json.loads(json.dumps(losses.serialize(losses.MeanSquaredError()))))
    assert type(mse) is losses.MeanSquaredError
