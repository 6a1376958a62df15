"""Tests of scratchnet.metrics: the metric objects against their definitions, names, compile, errors."""

import json

import numpy as np
import pytest

from scratchnet import Sequential, layers, metrics, optimizers


def probabilities(rng, n, c):
    e = np.exp(rng.standard_normal((n, c)))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("cls, name", [
    (metrics.SparseCategoricalAccuracy, "sparse_categorical_accuracy"),
    (metrics.CategoricalAccuracy, "categorical_accuracy"),
    (metrics.TopKCategoricalAccuracy, "top_k_categorical_accuracy"),
    (metrics.SparseTopKCategoricalAccuracy, "sparse_top_k_categorical_accuracy"),
    (metrics.BinaryAccuracy, "binary_accuracy"),
    (metrics.Accuracy, "accuracy"),
    (metrics.MeanSquaredError, "mean_squared_error"),
    (metrics.MeanAbsoluteError, "mean_absolute_error"),
    (metrics.AUC, "auc"),
])
def test_metric_objects_have_keras_default_names_and_take_a_name(cls, name):
    assert cls().name == name
    assert cls(name="custom").name == "custom"


def test_sparse_categorical_accuracy_accumulates_over_batches_and_resets():
    rng = np.random.default_rng(0)
    metric = metrics.SparseCategoricalAccuracy(name="acc")
    hits = []
    for _ in range(3):
        p, y = probabilities(rng, 7, 4), rng.integers(0, 4, 7)
        metric.update_state(y, p)
        hits.extend(np.argmax(p, axis=1) == y)
    assert metric.result() == pytest.approx(np.mean(hits))
    assert metric.result().dtype == np.float32
    metric.reset_state()
    assert metric.result() == 0.0


def test_sample_weights_weight_each_example():
    metric = metrics.BinaryAccuracy()
    metric.update_state([[1], [1], [0], [0]], np.array([[0.98], [1], [0], [0.6]]), sample_weight=[1, 0, 0, 1])
    assert metric.result() == pytest.approx(0.5)  # Keras's docstring example
    metric = metrics.Accuracy()
    metric.update_state([[1], [2], [3], [4]], np.array([[0], [2], [3], [4]]), sample_weight=[1, 1, 0, 0])
    assert metric.result() == pytest.approx(0.5)


def test_top_k_counts_ties_at_the_boundary_as_in_tensorflow():
    p = np.array([[0.1, 0.3, 0.3, 0.3], [0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    metric = metrics.SparseTopKCategoricalAccuracy(k=1)
    metric.update_state(np.array([1, 1]), p)  # class 1 ties for first in row 0; second in row 1
    assert metric.result() == pytest.approx(0.5)
    one_hot = metrics.TopKCategoricalAccuracy(k=2)
    one_hot.update_state(np.eye(4)[[0, 1]], p)
    assert one_hot.result() == pytest.approx(0.5)


def test_mean_squared_and_absolute_error_metrics():
    y, p = np.array([[0.0, 1.0], [2.0, 2.0]]), np.array([[1.0, 1.0], [0.0, 2.0]])
    mse, mae = metrics.MeanSquaredError(), metrics.MeanAbsoluteError()
    mse.update_state(y, p)
    mae.update_state(y, p)
    assert mse.result() == pytest.approx(5 / 4) and mae.result() == pytest.approx(3 / 4)


def test_auc_of_a_perfect_and_of_a_useless_ranking():
    perfect = metrics.AUC()
    perfect.update_state(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert perfect.result() == pytest.approx(1.0, abs=1e-6)
    useless = metrics.AUC()
    useless.update_state(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5]))
    assert useless.result() == pytest.approx(0.5, abs=1e-6)


def test_auc_refuses_what_it_does_not_support():
    with pytest.raises(ValueError, match="curve"):
        metrics.AUC(curve="PRGAIN")
    with pytest.raises(ValueError, match="multi_label"):
        metrics.AUC(multi_label=True)
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)


def test_get_resolves_names_objects_functions_and_accuracy_by_loss():
    from scratchnet import losses

    assert metrics.get("accuracy", losses.get("sparse_categorical_crossentropy")) is metrics.sparse_categorical_accuracy
    assert metrics.get("acc", losses.get("binary_crossentropy")) is metrics.binary_accuracy
    assert metrics.get("accuracy", losses.get("mse")) is metrics.accuracy_by_shape  # Keras's shape rule
    assert metrics.get("mse") is metrics.mean_squared_error
    assert isinstance(metrics.get("SparseCategoricalAccuracy"), metrics.SparseCategoricalAccuracy)
    metric = metrics.TopKCategoricalAccuracy(k=3)
    assert metrics.get(metric) is metric
    with pytest.raises(ValueError, match="Unknown metric: 'f1'"):
        metrics.get("f1")
    with pytest.raises(ValueError, match="AUC is not a mean of per-example scores"):
        metrics.per_example(metrics.AUC())


def test_accuracy_by_shape_follows_keras():
    p = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    np.testing.assert_array_equal(metrics.accuracy_by_shape(np.array([1, 1]), p), [1, 0])  # sparse
    np.testing.assert_array_equal(metrics.accuracy_by_shape(np.eye(2)[[1, 1]], p), [1, 0])  # categorical
    np.testing.assert_array_equal(metrics.accuracy_by_shape(np.array([[0], [0]]), p[:, :1]), [1, 0])  # binary


def test_serialize_and_deserialize_round_trip():
    for metric in (metrics.SparseTopKCategoricalAccuracy(k=3, name="top3"), metrics.BinaryAccuracy(threshold=0.7),
                   metrics.AUC(curve="PR", num_thresholds=50)):
        back = metrics.deserialize(json.loads(json.dumps(metrics.serialize(metric))))
        assert type(back) is type(metric) and back.get_config() == metric.get_config()


def test_compile_takes_metric_objects_and_strings_and_logs_their_names():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.integers(0, 4, 40)
    model = Sequential([layers.Dense(4, activation="softmax", input_shape=(3,))], seed=0)
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy", metrics.SparseCategoricalAccuracy(name="acc"),
                           metrics.SparseTopKCategoricalAccuracy(k=2), "sparse_categorical_accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.25)
    keys = set(history.history)
    assert {"accuracy", "acc", "sparse_top_k_categorical_accuracy", "sparse_categorical_accuracy"} <= keys
    assert history.history["acc"] == history.history["accuracy"]
    values = model.evaluate(x, y, verbose=0)
    top2 = metrics.SparseTopKCategoricalAccuracy(k=2)
    top2.update_state(y, model.predict(x))
    assert values[3] == pytest.approx(float(top2.result()), abs=1e-6)
