"""Tests of scratchnet.models.Sequential: training, dtypes, evaluation modes, weights, summary, errors."""

import numpy as np
import pytest

from scratchnet import layers, losses, optimizers
from scratchnet.models import Callback, DivergenceError, Sequential


def blobs(n=200, dtype="float32", seed=0):
    """Two separable classes in 4-D: class 1 is shifted by +2 along every axis."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 4)) + 2.0 * y[:, None]
    return x.astype(dtype), y


def small_model(dtype="float32", dropout=0.0, seed=0):
    model = Sequential([layers.Dense(8, activation="relu", input_shape=(4,)), layers.Dropout(dropout),
                        layers.Dense(2, activation="softmax")], dtype=dtype, seed=seed)
    model.compile(optimizer=optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def mlp():
    return Sequential([layers.Flatten(input_shape=(28, 28, 1)), layers.Dense(50, activation="relu"),
                       layers.Dense(50, activation="relu"), layers.Dense(10, activation="softmax")])


def deep_mnist():
    truncated, bias = {"class_name": "TruncatedNormal", "config": {"stddev": 0.1}}, {
        "class_name": "Constant", "config": {"value": 0.1}}
    return Sequential([
        layers.Conv2D(32, 5, padding="same", activation="relu", kernel_initializer=truncated,
                      bias_initializer=bias, input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2, padding="same"),
        layers.Conv2D(64, 5, padding="same", activation="relu", kernel_initializer=truncated, bias_initializer=bias),
        layers.MaxPooling2D(2, padding="same"),
        layers.Flatten(),
        layers.Dense(1024, activation="relu", kernel_initializer=truncated, bias_initializer=bias),
        layers.Dropout(0.5),
        layers.Dense(10, kernel_initializer=truncated, bias_initializer=bias),
    ])


def test_fit_on_a_separable_problem_lowers_loss_and_raises_accuracy():
    x, y = blobs()
    history = small_model().fit(x, y, batch_size=20, epochs=5, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.95
    assert set(history) == {"loss", "accuracy"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_never_drifts_through_fit_predict_and_weights(dtype):
    x, y = blobs(dtype="float64")
    model = small_model(dtype=dtype, dropout=0.2)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert {w.dtype for w in model.get_weights()} == {np.dtype(dtype)}
    assert model.predict(x).dtype == np.dtype(dtype)
    assert {s.dtype for s in model.optimizer.get_state()} == {np.dtype(dtype)}


def test_inputs_are_cast_but_not_rescaled():
    model = small_model()
    x = np.random.default_rng(0).integers(0, 255, (5, 4)).astype(np.uint8)
    np.testing.assert_array_equal(model.predict(x), model.predict(x.astype(np.float32)))


def test_dropout_is_off_in_evaluate_and_predict():
    x, y = blobs(50)
    model = small_model(dropout=0.5)
    first, second = model.predict(x), model.predict(x)
    np.testing.assert_array_equal(first, second)
    no_dropout = small_model(dropout=0.0)  # same seed, so same weights
    np.testing.assert_array_equal(first, no_dropout.predict(x))
    assert model.evaluate(x, y) == no_dropout.evaluate(x, y)


def test_train_step_returns_the_loss_of_the_current_weights_and_updates_them():
    x, y = blobs(32)
    model = small_model()
    before_loss, _ = model.evaluate(x, y, batch_size=32)
    before = model.get_weights()
    loss = model.train_step(x, y)
    assert loss == pytest.approx(before_loss, rel=1e-6)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.optimizer.iterations == 1


def test_softmax_output_with_crossentropy_is_fused_to_the_stable_logits_form():
    # Logits 0 and 100: the clipped-probability form would saturate at -log(1e-7) = 16.1.
    model = Sequential([layers.Dense(2, activation="softmax", use_bias=False, input_shape=(1,))], dtype="float64")
    model.set_weights([np.array([[0.0, 100.0]])])
    x, y = np.ones((1, 1)), np.array([0])
    for loss in ["sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy()]:
        model.compile("sgd", loss, metrics=["accuracy"])
        assert model.evaluate(x, y) == [pytest.approx(100.0), 0.0]
    model.compile("sgd", "categorical_crossentropy")
    assert model.evaluate(x, np.array([[1.0, 0.0]])) == pytest.approx(100.0)


def test_sigmoid_output_with_binary_crossentropy_learns_in_float64():
    x, y = blobs(100, dtype="float64")
    model = Sequential([layers.Dense(1, activation="sigmoid", kernel_initializer="zeros", input_shape=(4,))],
                       dtype="float64")
    model.compile(optimizers.SGD(0.5), "binary_crossentropy", metrics=["accuracy"])
    assert model.train_step(x, y) == pytest.approx(np.log(2), rel=1e-12)
    history = model.fit(x, y, batch_size=100, epochs=20, verbose=0, shuffle=False).history
    assert history["accuracy"][-1] > 0.95


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, y = blobs(100)
    model = small_model()
    history = model.fit(x, y, batch_size=10, epochs=1, validation_split=0.2, verbose=0).history
    assert history["val_loss"][0] == pytest.approx(model.evaluate(x[80:], y[80:])[0], rel=1e-6)
    assert history["val_accuracy"][0] == model.evaluate(x[80:], y[80:])[1]


def test_steps_caps_the_number_of_updates_and_callbacks_see_each_step():
    x, y = blobs(100)
    seen = []

    class Record(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["step"])

    model = small_model()
    model.fit(x, y, batch_size=10, epochs=5, steps=13, verbose=0, callbacks=[Record()])
    assert model.optimizer.iterations == 13 and seen == list(range(1, 14))


def test_epoch_loss_is_the_mean_over_the_epochs_examples_weighting_each_batch_by_its_size():
    x, y = blobs(45)
    losses_seen = []

    class Record(Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses_seen.append(logs["batch_loss"])

    history = small_model().fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[Record()])
    # Keras's loss tracker weights each batch by its size (checked against Keras 3.15: a last batch of 5
    # counts half as much as a batch of 10).
    assert history.history["loss"][0] == pytest.approx(np.average(losses_seen, weights=[10, 10, 10, 10, 5]))


def test_a_diverging_run_raises_divergence_error_naming_the_step():
    x, y = blobs(20, dtype="float64")
    model = Sequential([layers.Dense(2, input_shape=(4,))], dtype="float64")
    model.compile(optimizers.SGD(1e300), loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(DivergenceError, match="step 2"), np.errstate(all="ignore"):
        model.fit(x * 1e10, y, batch_size=20, epochs=3, verbose=0)


def test_summary_counts_parameters_of_mlp_and_deep_mnist():
    text = mlp().summary(print_fn=None)
    assert "Total params: 42,310" in text and "(None, 784)" in text
    model = deep_mnist()
    assert model.count_params() == 3_274_634
    assert "Total params: 3,274,634" in model.summary(print_fn=None)


def test_layers_get_unique_keras_style_names():
    names = [layer.name for layer in deep_mnist().layers]
    assert names == ["conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense", "dropout",
                     "dense_1"]


def test_get_weights_is_in_keras_order_and_set_weights_round_trips():
    model = mlp()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(784, 50), (50,), (50, 50), (50,), (50, 10), (10,)]
    fresh = mlp()
    fresh.set_weights(weights)
    x = np.random.default_rng(0).random((3, 28, 28, 1))
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_set_weights_rejects_wrong_count_and_wrong_shapes_clearly():
    model = mlp()
    weights = model.get_weights()
    with pytest.raises(ValueError, match="expects 6 weight arrays; received a list of 5"):
        model.set_weights(weights[:5])
    weights[2] = np.zeros((50, 51))
    with pytest.raises(ValueError, match=r"dense_1/kernel has shape \(50, 50\); received .* \(50, 51\)"):
        model.set_weights(weights)


def test_model_builds_lazily_from_the_first_batch():
    model = Sequential([layers.Dense(3), layers.Dense(2, activation="softmax")])
    assert not model.built
    model.compile("adam", "sparse_categorical_crossentropy")
    model.train_step(np.zeros((4, 5)), np.array([0, 1, 0, 1]))
    assert model.built and model.input_shape == (None, 5) and model.count_params() == 5 * 3 + 3 + 3 * 2 + 2


def test_wrong_input_shape_names_the_expected_and_received_shapes():
    with pytest.raises(ValueError, match=r"expected shape \(None, 4\), received x.shape=\(2, 5\)"):
        small_model().predict(np.zeros((2, 5)))


@pytest.mark.parametrize("kwargs, message", [({"batch_size": 0}, "batch_size"), ({"epochs": -1}, "epochs"),
                                             ({"validation_split": 1.0}, "validation_split")])
def test_fit_rejects_bad_arguments_naming_them(kwargs, message):
    x, y = blobs(10)
    with pytest.raises(ValueError, match=message):
        small_model().fit(x, y, verbose=0, **kwargs)


def test_training_before_compile_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="compile"):
        mlp().train_step(np.zeros((1, 28, 28, 1)), np.array([0]))


def test_sigmoid_output_with_binary_crossentropy_is_fused_to_the_stable_logits_form():
    model = Sequential([layers.Dense(1, activation="sigmoid", use_bias=False, input_shape=(1,))], dtype="float64")
    model.set_weights([np.array([[100.0]])])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(np.ones((1, 1)), np.zeros(1))  # (N,) labels fit (N, 1) outputs
    assert loss == pytest.approx(100.0) and accuracy == 0.0


def test_a_loss_given_probabilities_clips_like_keras_while_the_model_fuses_the_softmax():
    model = Sequential([layers.Dense(2, use_bias=False, input_shape=(1,)), layers.Activation("softmax")],
                       dtype="float64")
    model.set_weights([np.array([[0.0, 100.0]])])
    model.compile("sgd", losses.SparseCategoricalCrossentropy())
    assert model.evaluate(np.ones((1, 1)), np.array([0])) == pytest.approx(100.0)  # from the logits
    probabilities = model.predict(np.ones((1, 1)))
    clipped = losses.SparseCategoricalCrossentropy()(np.array([0]), probabilities)
    assert float(clipped) == pytest.approx(-np.log(1e-7), rel=1e-6)  # clipped at 1e-7


def test_accuracy_resolves_by_loss_as_keras():
    from scratchnet import metrics

    assert metrics.get("accuracy", losses.get("sparse_categorical_crossentropy")) is metrics.sparse_categorical_accuracy
    assert metrics.get("accuracy", losses.get("categorical_crossentropy")) is metrics.categorical_accuracy
    assert metrics.get("acc", losses.get("binary_crossentropy")) is metrics.binary_accuracy
    y_pred = np.array([[0.5], [0.51], [0.2]], dtype=np.float32)
    np.testing.assert_array_equal(metrics.binary_accuracy(np.array([[0.0], [1.0], [1.0]]), y_pred), [1, 1, 0])


def test_categorical_and_sparse_losses_agree_on_one_hot_labels():
    x, y = blobs(30)
    sparse = small_model()
    categorical = small_model()
    categorical.compile(optimizers.Adam(0.05), "categorical_crossentropy", metrics=["accuracy"])
    one_hot = np.eye(2)[y]
    assert sparse.evaluate(x, y) == pytest.approx(categorical.evaluate(x, one_hot), rel=1e-6)
    assert sparse.train_step(x, y) == pytest.approx(categorical.train_step(x, one_hot), rel=1e-6)
    for a, b in zip(sparse.get_weights(), categorical.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_model_gradient_matches_numerical_gradient_of_the_loss_in_float64():
    from scratchnet.gradcheck import numerical_gradient, relative_error

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 6, 6, 1)), np.array([0, 1, 2, 1])
    model = Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(3, activation="softmax")], dtype="float64")
    model.compile(optimizers.SGD(1.0), "sparse_categorical_crossentropy")
    before = model.get_weights()
    model.train_step(x, y)  # with learning rate 1, the update IS minus the gradient
    analytic = [b - a for a, b in zip(model.get_weights(), before)]
    model.set_weights(before)
    for param, grad in zip(model._params, analytic):
        numeric = numerical_gradient(lambda _: model.evaluate(x, y, batch_size=4, verbose=0), param)
        assert relative_error(grad, numeric) < 1e-6


def test_out_of_range_class_ids_are_rejected_before_training():
    model = small_model()
    with pytest.raises(ValueError, match=r"\[0, 2\).*\[0, 5\]"):
        model.fit(np.ones((3, 4)), np.array([0, 1, 5]), verbose=0)
    assert model.optimizer.iterations == 0


def test_train_step_asks_only_the_first_trainable_layer_to_skip_its_input_gradient():
    model = Sequential([layers.Flatten(input_shape=(2, 3)), layers.Dense(4, activation="relu"),
                        layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    calls = []
    for layer in model.layers:
        original = layer.backward

        def spy(dy, _original=original, _name=layer.name, **options):
            calls.append((_name, options))
            return _original(dy, **options)

        layer.backward = spy
    model.train_step(np.ones((5, 2, 3)), np.array([0, 1, 2, 1, 0]))
    assert calls == [("dense_1", {"from_logits": True}), ("dense", {"need_dx": False})]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("use_bias", [False, True])
def test_logistic_regression_step_equals_the_layer_by_layer_step(monkeypatch, use_bias, backend):
    """The logistic-regression step (one engine op for its gradients; on numba, the one-pass kernel of
    scratchnet.kernels.fused) gives the layer-by-layer step's losses, logits and updates."""
    from scratchnet import engine
    from scratchnet.kernels import fused

    monkeypatch.setattr(fused, "FUSED_MIN_BYTES", 0)  # small data, the big-batch path
    rng = np.random.default_rng(4)
    x = np.floor(rng.random((301, 20)) * 256)
    y = (rng.random((301, 1)) < 0.3).astype(float)
    kernel = rng.standard_normal((20, 1)) * 1e-3

    results = {}
    for path in ("one op", "layer by layer"):
        model = Sequential([layers.Dense(1, activation="sigmoid", use_bias=use_bias, input_shape=(20,))],
                           dtype="float64")
        model.compile(optimizers.SGD(0.01), "binary_crossentropy")
        model.set_weights([kernel] + ([np.array([0.2])] if use_bias else []))
        assert model._is_logistic_regression(x, y)
        if path == "layer by layer":
            monkeypatch.setattr(model, "_is_logistic_regression", lambda *args: False)
        with engine.backend(backend):
            losses_seen = [model.train_step(x, y) for _ in range(3)]
        results[path] = losses_seen, model.get_weights(), model.layers[0].logits
    (loss_a, weights_a, logits_a), (loss_b, weights_b, logits_b) = results["one op"], results["layer by layer"]
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-12)
    np.testing.assert_allclose(logits_a, logits_b, rtol=1e-12, atol=1e-12)
    for got, want in zip(weights_a, weights_b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_train_step_frees_every_layers_caches_once_the_backward_has_run():
    """No activation of a step outlives it, so the next step's forward does not hold two steps' worth."""
    model = deep_mnist()
    model.compile(optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 4)
    losses_seen = [model.train_step(x, y) for _ in range(2)]
    for layer in model.layers:
        for name in ("_cache", "_conv_cache", "_bias_cache", "_activation_cache"):
            assert getattr(layer, name, None) is None, (layer.name, name)
        assert set(layer.grads) == set(layer.params)
    assert np.all(np.isfinite(losses_seen))



def test_a_training_step_never_writes_over_the_arrays_it_hands_between_layers():
    """Whatever the engine does in place stays inside its ops: every dy a layer receives and every output a
    layer hands on are unchanged after the step, and both backends train to the same weights."""
    from scratchnet import engine

    def make():
        model = Sequential([layers.Conv2D(4, 3, activation="relu"), layers.Conv2D(3, 3, activation="relu"),
                            layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3)], input_shape=(9, 9, 1), seed=5)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 9, 9, 1)).astype(np.float32), rng.integers(0, 3, 6)
    weights = {}
    for backend in ("numba", "numpy"):
        model, seen = make(), []
        for layer in model.layers:
            def spy_forward(x, training=False, _forward=layer.forward, seen=seen):
                out = _forward(x, training=training)
                seen.append((out, out.copy()))
                return out

            def spy_backward(dy, _backward=layer.backward, seen=seen, **options):
                seen.append((dy, dy.copy()))
                return _backward(dy, **options)

            layer.forward, layer.backward = spy_forward, spy_backward
        with engine.backend(backend):
            for _ in range(2):
                model.train_step(x, y)
        for array, copy in seen:
            np.testing.assert_array_equal(array, copy)
        weights[backend] = model.get_weights()
    for a, b in zip(weights["numba"], weights["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Keras's model API: Input, compile without metrics, evaluate/predict, fit's weighting and epochs
# ----------------------------------------------------------------------------------------------


def test_input_first_gives_the_input_shape_with_keras_none_batch_axis():
    import scratchnet as keras

    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Flatten(), layers.Dense(10)])
    assert model.built and model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense"]  # Input is not a layer
    assert keras.layers.Input is keras.Input
    later = Sequential()
    later.add(layers.Input(shape=(4,)))
    later.add(layers.Dense(2))
    assert later.input_shape == (None, 4) and later.count_params() == 10
    with pytest.raises(ValueError, match="must come first"):
        Sequential([layers.Dense(2), layers.Input(shape=(4,))])


def test_functional_api_and_model_subclasses_raise_one_line_pointing_to_sequential():
    import scratchnet as keras

    inputs = keras.Input(shape=(4,))
    with pytest.raises(NotImplementedError, match=r"Functional API and subclassed models are out of scope.*Sequential"):
        keras.layers.Dense(2)(inputs)
    with pytest.raises(NotImplementedError, match="Sequential"):
        keras.Model(inputs, inputs)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()

    with pytest.raises(NotImplementedError, match="Sequential"):
        Subclassed()


def test_compile_without_metrics_tracks_only_the_loss_as_keras():
    x, y = blobs(40)
    model = Sequential([layers.Dense(2, activation="softmax", input_shape=(4,))])
    model.compile("adam", "sparse_categorical_crossentropy")
    assert model.metrics_names == ["loss"]
    history = model.fit(x, y, epochs=2, verbose=0)
    assert list(history.history) == ["loss"]
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float) and model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss}


def test_metrics_names_and_evaluate_return_dict_follow_keras():
    x, y = blobs(40)
    model = small_model()
    assert Sequential().metrics_names == []
    assert model.metrics_names == ["loss", "accuracy"]
    values = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == dict(zip(["loss", "accuracy"], values))
    assert list(model.evaluate(x, y, verbose=0, return_dict=True)) == ["accuracy", "loss"]  # sorted, as Keras 3


def test_history_keys_are_sorted_as_keras_3_and_params_name_epochs_and_steps():
    x, y = blobs(50)
    history = small_model().fit(x, y, batch_size=10, epochs=2, validation_split=0.2, verbose=0)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.epoch == [0, 1] and history.params == {"epochs": 2, "steps": 4, "verbose": 0}


def test_categorical_crossentropy_with_integer_labels_raises_as_keras():
    x, y = blobs(10)
    model = small_model()
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"one-hot rows .*\(N, 2\).*y.shape=\(10,\).*sparse_categorical_crossentropy"):
        model.fit(x, y, verbose=0)
    assert model.optimizer.iterations == 0


def test_sample_weight_weights_each_examples_loss_by_keras_rule():
    x, y = blobs(8, dtype="float64")
    model = small_model(dtype="float64")
    weights = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0, 0.0, 1.0])
    per_example = [model.evaluate(x[i:i + 1], y[i:i + 1], verbose=0)[0] for i in range(8)]
    # Keras: sum_n w_n loss_n / N (not divided by the sum of the weights)
    expected = float(np.sum(weights * per_example) / 8)
    assert model.evaluate(x, y, sample_weight=weights, verbose=0)[0] == pytest.approx(expected, rel=1e-12)
    # the gradient: a step with weights (w) equals a step on the examples repeated w times (integer weights)
    repeat = np.array([0, 1, 2, 1, 1, 3, 0, 1])
    a, b = small_model(dtype="float64"), small_model(dtype="float64")
    a.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    b.compile(optimizers.SGD(0.1 * repeat.sum() / 8), "sparse_categorical_crossentropy")
    a.train_step(x, y, sample_weight=repeat)
    b.train_step(np.repeat(x, repeat, axis=0), np.repeat(y, repeat))
    for got, want in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_class_weight_equals_the_matching_sample_weight_and_excludes_sample_weight():
    x, y = blobs(40)
    by_class, by_sample = small_model(), small_model()
    h1 = by_class.fit(x, y, batch_size=8, epochs=2, class_weight={0: 0.5, 1: 3.0}, verbose=0, seed=1).history
    h2 = by_sample.fit(x, y, batch_size=8, epochs=2, sample_weight=np.where(y == 1, 3.0, 0.5), verbose=0,
                       seed=1).history
    assert h1 == h2
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_array_equal(a, b)
    unweighted = small_model().fit(x, y, batch_size=8, epochs=2, verbose=0, seed=1).history
    assert unweighted["loss"] != h1["loss"]
    with pytest.raises(ValueError, match="cannot be specified at the same time"):
        small_model().fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(40), verbose=0)
    one_hot = small_model()
    one_hot.compile(optimizers.Adam(0.05), "categorical_crossentropy", metrics=["accuracy"])
    h3 = one_hot.fit(x, np.eye(2)[y], batch_size=8, epochs=2, class_weight={0: 0.5, 1: 3.0}, verbose=0,
                     seed=1).history
    np.testing.assert_allclose(h3["loss"], h1["loss"], rtol=1e-5)


def test_initial_epoch_resumes_numbering_and_trains_the_remaining_epochs():
    x, y = blobs(30)
    model = small_model()
    history = model.fit(x, y, batch_size=10, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4] and model.optimizer.iterations == 2 * 3 and len(history.history["loss"]) == 2


def test_steps_per_epoch_walks_through_one_pass_and_warns_when_it_runs_out():
    x, y = blobs(50)  # 5 batches of 10 per pass
    rows_seen = []
    model = small_model()
    original = model._train_batch

    def spy(x_batch, *args):
        rows_seen.append(x_batch[:, 0].copy())
        return original(x_batch, *args)

    model._train_batch = spy
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(x, y, batch_size=10, epochs=3, steps_per_epoch=2, verbose=0, shuffle=False)
    # epochs 1 and 2 take batches 0-1 and 2-3 of the pass; epoch 3 gets batch 4 only, then the pass ends
    assert len(rows_seen) == 5 and history.params["steps"] == 2
    np.testing.assert_array_equal(np.concatenate(rows_seen), x[:, 0])
    assert len(history.history["loss"]) == 3


def test_validation_freq_and_validation_data_with_sample_weights():
    x, y = blobs(40)
    model = small_model()
    weights = np.linspace(0, 2, 10)
    history = model.fit(x[:30], y[:30], epochs=4, validation_data=(x[30:], y[30:], weights), validation_freq=2,
                        verbose=0).history
    assert len(history["loss"]) == 4 and len(history["val_loss"]) == 2
    assert history["val_loss"][-1] == pytest.approx(
        model.evaluate(x[30:], y[30:], sample_weight=weights, verbose=0)[0], rel=1e-6)


def test_frozen_layers_get_no_updates_and_summary_counts_them_as_non_trainable():
    x, y = blobs(40)
    model = small_model()
    model.fit(x, y, epochs=1, verbose=0)  # the optimizer already holds state for every weight
    first = model.get_layer(index=0)
    first.trainable = False
    frozen = [w.copy() for w in first.get_weights()]
    moving = model.layers[-1].get_weights()[0].copy()
    model.fit(x, y, epochs=2, verbose=0)
    for before, after in zip(frozen, first.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(moving, model.layers[-1].get_weights()[0])
    assert [w.path for w in model.trainable_weights] == ["sequential/dense_1/kernel", "sequential/dense_1/bias"]
    assert "Trainable params: 18" in model.summary(print_fn=None)
    assert "Non-trainable params: 40" in model.summary(print_fn=None)
    first.trainable = True  # unfreezing: it trains again, from a fresh optimizer state
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(frozen[0], first.get_weights()[0])


def test_freezing_the_whole_model_and_reloading_keeps_the_flags(tmp_path):
    x, y = blobs(20)
    model = small_model()
    model.trainable = False
    before = model.get_weights()
    model.fit(x, y, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.save(tmp_path / "frozen.npz")
    from scratchnet.models import load_model

    assert not any(layer.trainable for layer in load_model(tmp_path / "frozen.npz").layers)


def test_weights_are_named_live_arrays_as_keras_variables():
    model = small_model()
    weights = model.weights
    assert [(w.name, w.path) for w in weights][:2] == [("kernel", "sequential/dense/kernel"),
                                                        ("bias", "sequential/dense/bias")]
    assert [w.shape for w in weights] == [w.shape for w in model.get_weights()]
    weights[1].assign(np.full(8, 0.5))
    assert np.all(model.get_layer("dense").params["bias"] == 0.5)
    plain = weights[0].numpy()
    plain[...] = 7.0
    assert not np.any(model.get_weights()[0] == 7.0)
    assert type(weights[0] + 1) is np.ndarray
    with pytest.raises(ValueError, match="shape"):
        weights[1].assign(np.zeros(3))


def test_get_layer_and_pop_follow_keras():
    model = small_model()
    assert model.get_layer("dropout") is model.layers[1] and model.get_layer(index=-1).name == "dense_1"
    expected = r"No such layer: nope\. Existing layers are: \['dense', 'dropout', 'dense_1'\]"
    with pytest.raises(ValueError, match=expected):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="index 5 but model only has 3 layers"):
        model.get_layer(index=5)
    x, y = blobs(20)
    model.fit(x, y, verbose=0)
    removed = model.pop()
    assert removed.name == "dense_1" and model.output_shape == (None, 8)
    model.add(layers.Dense(2, activation="softmax", name="new_head"))
    model.fit(x, y, verbose=0)  # the optimizer follows the new set of weights
    assert model.output_shape == (None, 2) and model.evaluate(x, y, verbose=0)[1] >= 0
    empty = Sequential()
    with pytest.raises(TypeError, match="There are no layers in the model"):
        empty.pop()


def test_a_model_inside_a_model_shares_its_layers():
    inner = small_model()
    outer = Sequential([inner, layers.Activation("linear", name="identity")])
    x, _ = blobs(5)
    np.testing.assert_array_equal(outer.predict(x, verbose=0), inner.predict(x, verbose=0))
    assert outer.layers[0] is inner.layers[0]


def test_calling_the_model_returns_an_array_with_keras_numpy_method():
    x, _ = blobs(3)
    model = small_model()
    out = model(x)
    assert isinstance(out.numpy(), np.ndarray) and type(out.numpy()) is np.ndarray
    np.testing.assert_array_equal(out.numpy(), model.predict(x, verbose=0))


def test_evaluate_and_predict_print_as_keras_by_verbose(capsys):
    x, y = blobs(50)
    model = small_model()
    model.evaluate(x, y, batch_size=10, verbose=2)
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and line.startswith("5/5 - ") and ("ms/step" in line or "us/step" in line)
    assert line.rstrip().split(" - ")[-2:] == [f"accuracy: {model.evaluate(x, y, verbose=0)[1]:.4f}",
                                               f"loss: {model.evaluate(x, y, verbose=0)[0]:.4f}"]
    model.predict(x, batch_size=10, verbose=1)  # not a terminal: the final state of the bar only
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("5/5 ━━━━━━━━━━━━━━━━━━━━ ") and "loss" not in out
    model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y)  # "auto": a file, not a terminal, so one line as verbose=2
    assert capsys.readouterr().out.count("\n") == 1
    with pytest.raises(ValueError, match="verbose"):
        model.predict(x, verbose=3)


def test_fit_prints_epoch_lines_only_for_more_than_one_epoch(capsys):
    x, y = blobs(40)
    small_model().fit(x, y, batch_size=10, epochs=2, validation_split=0.25, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("3/3 - ") and [part.split(":")[0] for part in lines[1].split(" - ")[3:]] == [
        "accuracy", "loss", "val_accuracy", "val_loss"]
    small_model().fit(x, y, batch_size=10, epochs=1, verbose=2)
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_progress_bar_redraws_in_place_on_a_terminal():
    import io

    from scratchnet.models.progress import Progbar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = Progbar(3, verbose=1, stream=stream)
    bar.INTERVAL = 0.0
    for step in (1, 2):
        bar.update(step, {"loss": 0.5})
    bar.finish({"loss": 0.25})
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "\x1b[32m" in text and text.rstrip().endswith("loss: 0.2500")


# ----------------------------------------------------------------------------------------------
# keras.utils: to_categorical and set_random_seed
# ----------------------------------------------------------------------------------------------


def test_to_categorical_matches_keras():
    from scratchnet.utils import to_categorical

    one_hot = to_categorical([2, 0, 1])
    assert one_hot.dtype == np.float64 and one_hot.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert to_categorical(np.array([[1], [3]]), 5).shape == (2, 5)  # a trailing axis of 1 is dropped
    assert to_categorical(np.array([[1, 2]]), 3).shape == (1, 2, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="integer class ids"):
        to_categorical([0.5])


def test_set_random_seed_makes_later_models_reproducible_and_distinct():
    from scratchnet import utils

    def two_models():
        return [Sequential([layers.Dense(3, input_shape=(4,)), layers.Dropout(0.5)]) for _ in range(2)]

    try:
        utils.set_random_seed(7)
        first = two_models()
        draw = np.random.random()  # noqa: NPY002 - the global generator is what is checked
        utils.set_random_seed(7)
        second = two_models()
        assert np.random.random() == draw  # noqa: NPY002 - NumPy's global generator is seeded too
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
            assert a.seed == b.seed
        assert not np.array_equal(first[0].get_weights()[0], first[1].get_weights()[0])
        assert Sequential([layers.Dense(3, input_shape=(4,))], seed=0).seed == 0  # an explicit seed wins
    finally:
        utils._GLOBAL.update(seed=None, model_seeds=None)
    assert Sequential().seed == 0  # without set_random_seed: seed 0, reproducible by default
    with pytest.raises(ValueError, match="seed"):
        utils.set_random_seed(1.5)


def test_on_batch_methods_accumulate_until_reset_metrics_as_keras():
    x, y = blobs(40)
    model = small_model()
    first = model.train_on_batch(x[:20], y[:20])
    assert model.optimizer.iterations == 1 and len(first) == 2
    second = model.test_on_batch(x[20:], y[20:], return_dict=True)
    alone = small_model()
    alone.set_weights(model.get_weights())
    assert second["loss"] == pytest.approx((first[0] * 20 + alone.evaluate(x[20:], y[20:], verbose=0)[0] * 20) / 40)
    model.reset_metrics()
    assert model.test_on_batch(x[20:], y[20:]) == pytest.approx(alone.evaluate(x[20:], y[20:], verbose=0))
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x, verbose=0))
