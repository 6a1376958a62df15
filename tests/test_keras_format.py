"""Keras 3 files written and read by scratchnet (no TensorFlow inside scratchnet), checked against real Keras.

Both ways: a model scratchnet saves as ``.keras`` (or ``.weights.h5``) is opened by ``keras.models.load_model``
(``load_weights``) and predicts what scratchnet predicts; a file Keras writes is opened by scratchnet and
predicts what Keras predicts. Training resumed on the other engine takes the same step, which checks that
the optimizer's state (Adam's moments, SGD's momentum) is laid out as Keras lays it out. Predictions are
compared with ``max|a - b| / max|b|`` against the parity tolerance of the dtype (float32 1e-5, float64 1e-10).
"""
import numpy as np
import pytest

import scratchnet
from tf_reference.compare import assert_close
from tf_reference.config import deterministic
from tf_reference.models import floatx

tf = deterministic()
import keras  # noqa: E402

pytestmark = pytest.mark.tf


@pytest.fixture(autouse=True)
def keras_seed():
    keras.utils.set_random_seed(0)  # deterministic TensorFlow needs one for fit's shuffling


def images(n=16, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.random((n, 10, 10, 1)).astype(dtype), rng.integers(0, 3, n)


def scratchnet_cnn(dtype="float32", optimizer=None):
    model = scratchnet.Sequential([
        scratchnet.Input(shape=(10, 10, 1)),
        scratchnet.layers.Conv2D(4, 3, activation="relu", padding="same"),
        scratchnet.layers.MaxPooling2D(2),
        scratchnet.layers.Conv2D(3, 3, strides=2, kernel_initializer="he_normal"),
        scratchnet.layers.Activation("relu"),
        scratchnet.layers.Reshape((-1,)),
        scratchnet.layers.Dropout(0.0),
        scratchnet.layers.Dense(5, activation="sigmoid", bias_initializer="ones"),
        scratchnet.layers.Dense(3, activation="softmax"),
    ], dtype=dtype, seed=3, name="cnn")
    model.compile(optimizer or scratchnet.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def keras_cnn(dtype="float32", optimizer=None):
    with floatx(dtype):
        model = keras.Sequential([
            keras.Input(shape=(10, 10, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(3, 3, strides=2),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ], name="keras_cnn")
        model.compile(optimizer or keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return model


def keras_predict(model, x):
    return np.asarray(model(x, training=False))  # predict() would cast float64 inputs to floatx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scratchnet_keras_file_opens_in_keras_and_predicts_the_same(tmp_path, dtype):
    x, y = images(dtype=dtype)
    model = scratchnet_cnn(dtype)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "cnn.keras")
    with floatx(dtype):
        loaded = keras.models.load_model(tmp_path / "cnn.keras")
    assert_close(keras_predict(loaded, x), model.predict(x, verbose=0), what="Keras predictions", dtype=dtype)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert loaded.count_params() == model.count_params() and loaded.name == "cnn"
    assert isinstance(loaded.optimizer, keras.optimizers.Adam) and int(loaded.optimizer.iterations) == 4


@pytest.mark.parametrize("kind", ["adam", "sgd_momentum"])
def test_training_resumed_in_keras_takes_scratchnet_next_step(tmp_path, kind):
    """The optimizer state scratchnet writes is the one Keras reads: the next step agrees."""
    x, y = images(dtype="float64")
    optimizer = (scratchnet.optimizers.Adam(0.01) if kind == "adam"
                 else scratchnet.optimizers.SGD(0.1, momentum=0.9))
    model = scratchnet_cnn("float64", optimizer)
    for _ in range(3):
        model.train_step(x, y)
    model.save(tmp_path / "m.keras")
    with floatx("float64"):
        loaded = keras.models.load_model(tmp_path / "m.keras")
        loaded.train_on_batch(x, y)
    model.train_step(x, y)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        assert_close(theirs, ours, what=f"weights after a resumed {kind} step", dtype="float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_file_opens_in_scratchnet_and_predicts_the_same(tmp_path, dtype):
    x, y = images(dtype=dtype)
    model = keras_cnn(dtype)
    with floatx(dtype):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "k.keras")
    loaded = scratchnet.load_model(tmp_path / "k.keras")
    assert loaded.dtype == dtype and loaded.input_shape == (None, 10, 10, 1) and loaded.name == "keras_cnn"
    assert_close(loaded.predict(x, verbose=0), keras_predict(model, x), what="scratchnet predictions", dtype=dtype)
    assert loaded.metrics_names == ["loss", "accuracy"] and loaded.optimizer.iterations == 4


def test_training_resumed_in_scratchnet_takes_keras_next_step(tmp_path):
    x, y = images(dtype="float64")
    model = keras_cnn("float64", keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    with floatx("float64"):
        for _ in range(3):
            model.train_on_batch(x, y)
    model.save(tmp_path / "k.keras")
    loaded = scratchnet.load_model(tmp_path / "k.keras")
    assert loaded.optimizer.nesterov and loaded.optimizer.iterations == 3
    with floatx("float64"):
        model.train_on_batch(x, y)
    loaded.train_step(x, y)
    for ours, theirs in zip(loaded.get_weights(), model.get_weights()):
        assert_close(ours, np.asarray(theirs), what="weights after a resumed SGD step", dtype="float64")


def test_weights_files_move_both_ways(tmp_path):
    x, y = images()
    ours = scratchnet_cnn()
    ours.fit(x, y, verbose=0)
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs = keras.Sequential([
        keras.Input(shape=(10, 10, 1)), keras.layers.Conv2D(4, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(2), keras.layers.Conv2D(3, 3, strides=2), keras.layers.Activation("relu"),
        keras.layers.Reshape((-1,)), keras.layers.Dropout(0.0), keras.layers.Dense(5, activation="sigmoid"),
        keras.layers.Dense(3, activation="softmax")])
    theirs.load_weights(tmp_path / "ours.weights.h5")
    assert_close(keras_predict(theirs, x), ours.predict(x, verbose=0), what="Keras after load_weights")

    keras_model = keras_cnn()
    keras_model.save_weights(tmp_path / "theirs.weights.h5")
    fresh = scratchnet.Sequential([
        scratchnet.Input(shape=(10, 10, 1)), scratchnet.layers.Conv2D(4, 3, activation="relu", padding="same"),
        scratchnet.layers.MaxPooling2D(2), scratchnet.layers.Conv2D(3, 3, strides=2), scratchnet.layers.Flatten(),
        scratchnet.layers.Dense(3, activation="softmax")])
    fresh.load_weights(tmp_path / "theirs.weights.h5")
    assert_close(fresh.predict(x, verbose=0), keras_predict(keras_model, x), what="scratchnet after load_weights")


def test_a_keras_file_with_a_layer_scratchnet_lacks_names_that_layer(tmp_path):
    model = keras.Sequential([keras.Input(shape=(6, 4)), keras.layers.Dense(3),
                              keras.layers.LayerNormalization(name="norm"), keras.layers.LSTM(2)])
    model.save(tmp_path / "rnn.keras")
    with pytest.raises(ValueError, match=r"rnn.keras.*layer 'norm' \(LayerNormalization\) is not supported"):
        scratchnet.load_model(tmp_path / "rnn.keras")


def test_a_functional_keras_file_is_refused_pointing_to_sequential(tmp_path):
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.save(tmp_path / "functional.keras")
    with pytest.raises(ValueError, match=r"Functional model.*out of scope.*Sequential"):
        scratchnet.load_model(tmp_path / "functional.keras")


def test_keras_metric_objects_and_loss_objects_in_a_file_are_mapped(tmp_path):
    x, y = images()
    model = keras.Sequential([keras.Input(shape=(10, 10, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = scratchnet.load_model(tmp_path / "m.keras")
    assert loaded.loss.from_logits and loaded.metrics_names == ["loss", "sparse_categorical_accuracy"]
    keras_loss, keras_accuracy = model.evaluate(x, y, verbose=0)
    loss, accuracy = loaded.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(keras_loss, rel=1e-5) and accuracy == pytest.approx(keras_accuracy)
