"""Metric objects against Keras's: the same batches (and sample weights) give the same result.

Every scratchnet metric object is fed the same three batches as its ``keras.metrics`` twin, with and
without sample weights; results agree to float32 rounding (1e-6). Random probabilities make ties
unlikely; top-k ties are compared on a hand-made batch.
"""
import zlib

import numpy as np
import pytest

from scratchnet import metrics
from tf_reference.config import deterministic

tf = deterministic()
import keras  # noqa: E402


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def softmax_rows(rng, n, c):
    e = np.exp(2 * rng.standard_normal((n, c)))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def batches(kind, rng, count=3, n=16, c=6):
    for _ in range(count):
        if kind == "sparse":
            yield rng.integers(0, c, n), softmax_rows(rng, n, c)
        elif kind == "one_hot":
            yield np.eye(c, dtype=np.float32)[rng.integers(0, c, n)], softmax_rows(rng, n, c)
        elif kind == "binary":
            yield rng.integers(0, 2, (n, 1)).astype(np.float32), rng.random((n, 1)).astype(np.float32)
        elif kind == "labels":
            yield rng.integers(0, 3, (n, 1)), rng.integers(0, 3, (n, 1))
        else:  # regression
            yield rng.standard_normal((n, c)).astype(np.float32), rng.standard_normal((n, c)).astype(np.float32)


CASES = [
    ("sparse", lambda: metrics.SparseCategoricalAccuracy(), lambda: keras.metrics.SparseCategoricalAccuracy()),
    ("one_hot", lambda: metrics.CategoricalAccuracy(), lambda: keras.metrics.CategoricalAccuracy()),
    ("one_hot", lambda: metrics.TopKCategoricalAccuracy(), lambda: keras.metrics.TopKCategoricalAccuracy()),
    ("one_hot", lambda: metrics.TopKCategoricalAccuracy(k=2), lambda: keras.metrics.TopKCategoricalAccuracy(k=2)),
    ("sparse", lambda: metrics.SparseTopKCategoricalAccuracy(), lambda: keras.metrics.SparseTopKCategoricalAccuracy()),
    ("sparse", lambda: metrics.SparseTopKCategoricalAccuracy(k=2),
     lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=2)),
    ("binary", lambda: metrics.BinaryAccuracy(), lambda: keras.metrics.BinaryAccuracy()),
    ("binary", lambda: metrics.BinaryAccuracy(threshold=0.7), lambda: keras.metrics.BinaryAccuracy(threshold=0.7)),
    ("labels", lambda: metrics.Accuracy(), lambda: keras.metrics.Accuracy()),
    ("regression", lambda: metrics.MeanSquaredError(), lambda: keras.metrics.MeanSquaredError()),
    ("regression", lambda: metrics.MeanAbsoluteError(), lambda: keras.metrics.MeanAbsoluteError()),
    ("binary", lambda: metrics.AUC(), lambda: keras.metrics.AUC()),
    ("binary", lambda: metrics.AUC(curve="PR"), lambda: keras.metrics.AUC(curve="PR")),
    ("binary", lambda: metrics.AUC(summation_method="minoring"),
     lambda: keras.metrics.AUC(summation_method="minoring")),
    ("binary", lambda: metrics.AUC(curve="PR", summation_method="majoring"),
     lambda: keras.metrics.AUC(curve="PR", summation_method="majoring")),
    ("binary", lambda: metrics.AUC(num_thresholds=7), lambda: keras.metrics.AUC(num_thresholds=7)),
    ("binary", lambda: metrics.AUC(thresholds=[0.3, 0.5, 0.9]), lambda: keras.metrics.AUC(thresholds=[0.3, 0.5, 0.9])),
    ("one_hot", lambda: metrics.AUC(), lambda: keras.metrics.AUC()),  # every value one binary prediction
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("index", range(len(CASES)))
def test_metric_object_matches_keras_over_batches(index, weighted):
    kind, make, make_keras = CASES[index]
    ours, theirs = make(), make_keras()
    rng = rng_for("metric", index, weighted)
    for y_true, y_pred in batches(kind, rng):
        weights = rng.uniform(0, 2, len(y_pred)).astype(np.float32) if weighted else None
        ours.update_state(y_true, y_pred, sample_weight=weights)
        theirs.update_state(y_true, y_pred, sample_weight=weights)
    expected = float(theirs.result())
    assert expected > 0.0
    assert float(ours.result()) == pytest.approx(expected, rel=1e-6, abs=1e-6), type(ours).__name__


def test_auc_from_logits_matches_keras():
    rng = rng_for("auc_logits")
    ours, theirs = metrics.AUC(from_logits=True), keras.metrics.AUC(from_logits=True)
    for _ in range(2):
        y, logits = rng.integers(0, 2, (20, 1)), (3 * rng.standard_normal((20, 1))).astype(np.float32)
        ours.update_state(y, logits)
        theirs.update_state(y, logits)
    assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)


def test_top_k_ties_match_keras():
    p = np.array([[0.1, 0.3, 0.3, 0.3], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]], dtype=np.float32)
    y = np.array([1, 1, 3])
    for k in (1, 2):
        ours, theirs = metrics.SparseTopKCategoricalAccuracy(k=k), keras.metrics.SparseTopKCategoricalAccuracy(k=k)
        ours.update_state(y, p)
        theirs.update_state(y, p)
        assert float(ours.result()) == pytest.approx(float(theirs.result())), k
