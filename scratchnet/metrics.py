"""Keras's metrics: per-example scoring functions, and metric objects that accumulate them over batches.

A scoring function gives one score per example (accuracy: 1.0 right, 0.0 wrong; squared error: the
example's mean). A metric object (``SparseCategoricalAccuracy(name="acc")``, ``AUC()``, ...) keeps a running
state: ``update_state(y_true, y_pred, sample_weight=None)`` after each batch, ``result()`` for the value so
far, ``reset_state()`` to start again. Every object except ``AUC`` is the running mean of a scoring
function (``MeanMetricWrapper``), which ``per_example`` returns.

``compile(metrics=[...])`` takes names ("accuracy", "sparse_categorical_accuracy", "mse", ...), scoring
functions and metric objects; ``get(identifier, loss)`` resolves one, with "accuracy" (or "acc") meaning
the accuracy that fits the loss, as in Keras.

Notes: Keras's formulas, names and defaults (``k=5``, ``threshold=0.5``, AUC's 200 thresholds); results
are float32, Keras's default metric dtype.
"""

import numpy as np

__all__ = [
    "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy", "accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mean_squared_error",
    "mean_absolute_error", "Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
    "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "AUC", "get", "per_example",
    "serialize", "deserialize",
]

EPSILON = 1e-7
"""Keras's ``backend.epsilon()``: AUC's outermost thresholds are -EPSILON and 1 + EPSILON."""


# ----------------------------------------------------------------------------------------------
# Scoring functions: one score per example
# ----------------------------------------------------------------------------------------------


def _per_example_mean(values):
    """(N, ...) scores -> (N,) by averaging every axis but the batch axis."""
    values = np.asarray(values)
    return values.reshape(len(values), -1).mean(axis=1) if values.ndim > 1 else values


def _class_ids(y_true):
    """Integer class ids (N,) from ids (N,) or (N, 1)."""
    y_true = np.asarray(y_true)
    return y_true.reshape(len(y_true)) if y_true.ndim == 2 and y_true.shape[1] == 1 else y_true


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the highest-scoring class of ``y_pred`` (N, C) equals the class id ``y_true`` (N,)."""
    return (np.argmax(y_pred, axis=-1) == np.reshape(y_true, -1)).astype(y_pred.dtype)


def categorical_accuracy(y_true, y_pred):
    """1.0 where the highest-scoring classes of ``y_pred`` and the one-hot ``y_true`` (N, C) agree."""
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(y_pred.dtype)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of the outputs of each example where ``y_pred > threshold`` equals the 0/1 ``y_true``.

    Notes: like Keras, the prediction is thresholded with ``>`` (0.5 itself counts as class 0) and
    the result averaged over the last axis.
    """
    y_true = np.asarray(y_true).reshape(np.shape(y_pred)) if np.size(y_true) == np.size(y_pred) else y_true
    hits = (y_pred > threshold).astype(y_pred.dtype) == y_true
    return hits.reshape(len(y_pred), -1).mean(axis=1).astype(y_pred.dtype)


def accuracy(y_true, y_pred):
    """Fraction of the values of each example where ``y_pred`` equals ``y_true`` exactly (Keras's ``Accuracy``).

    Meant for predictions that are already labels (e.g. rounded); for class probabilities use the
    categorical accuracies.
    """
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true, dtype=y_pred.dtype).reshape(y_pred.shape)
    return _per_example_mean(y_true == y_pred).astype(np.float32)


def _in_top_k(target_scores, y_pred, k):
    """TensorFlow's ``in_top_k``: fewer than k classes score strictly higher than the target's class.

    Classes tied with the target at the boundary all count as in the top k, and a non-finite score never
    does.
    """
    higher = (y_pred > target_scores[:, np.newaxis]).sum(axis=-1)
    return (higher < k) & np.isfinite(target_scores) & np.all(np.isfinite(y_pred), axis=-1)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the one-hot ``y_true``'s class is among the ``k`` highest scores of ``y_pred`` (N, C)."""
    y_pred = np.asarray(y_pred)
    ids = np.argmax(y_true, axis=-1)
    return _in_top_k(y_pred[np.arange(len(y_pred)), ids], y_pred, k).astype(y_pred.dtype)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the class id ``y_true`` (N,) is among the ``k`` highest scores of ``y_pred`` (N, C)."""
    y_pred = np.asarray(y_pred)
    ids = _class_ids(y_true).astype(np.int64)
    return _in_top_k(y_pred[np.arange(len(y_pred)), ids], y_pred, k).astype(y_pred.dtype)


def mean_squared_error(y_true, y_pred):
    """Each example's mean of ``(y_true - y_pred)^2`` over its values."""
    y_pred = np.asarray(y_pred)
    difference = np.asarray(y_true, dtype=y_pred.dtype).reshape(y_pred.shape) - y_pred
    return _per_example_mean(difference * difference)


def mean_absolute_error(y_true, y_pred):
    """Each example's mean of ``|y_true - y_pred|`` over its values."""
    y_pred = np.asarray(y_pred)
    return _per_example_mean(np.abs(np.asarray(y_true, dtype=y_pred.dtype).reshape(y_pred.shape) - y_pred))


def accuracy_by_shape(y_true, y_pred):
    """"accuracy" for a loss that does not say which: Keras's rule, read off the shapes.

    One output (N, 1): binary accuracy; labels of lower rank than the outputs, or (N, 1) labels for
    several outputs: sparse categorical; otherwise categorical.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred)
    if y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
        return sparse_categorical_accuracy(y_true, y_pred)
    return categorical_accuracy(y_true, y_pred)


# ----------------------------------------------------------------------------------------------
# Metric objects
# ----------------------------------------------------------------------------------------------


class Metric:
    """Base class of the stateful metrics: ``update_state``, ``result``, ``reset_state``, a ``name``."""

    DEFAULT_NAME = None

    def __init__(self, name=None, dtype=None):
        self.name = name or self.DEFAULT_NAME or _snake_case(type(self).__name__)
        self.dtype = np.dtype(dtype or "float32")
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """The running (weighted) mean of the values given to ``update_state(values, sample_weight=None)``."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += float(values.size)
            return
        weights = np.broadcast_to(_weights_for(sample_weight, values), values.shape)
        self.total += float((values * weights).sum())
        self.count += float(weights.sum())

    def result(self):
        return self.dtype.type(self.total / self.count if self.count else 0.0)


def _weights_for(sample_weight, values):
    """Per-example weights (N,) shaped to broadcast against (N, ...) values."""
    weights = np.asarray(sample_weight, dtype=np.float64)
    return weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim)) if weights.ndim else weights


class MeanMetricWrapper(Mean):
    """The running mean of a scoring function ``fn(y_true, y_pred, **kwargs)`` over all examples seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def per_example(self, y_true, y_pred):
        """The scores of a batch, one per example."""
        return _per_example_mean(self._fn(y_true, np.asarray(y_pred), **self._fn_kwargs))

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.per_example(y_true, y_pred), sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


class Accuracy(MeanMetricWrapper):
    """How often ``y_pred`` equals ``y_true`` exactly (for predictions that are labels)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the 0/1 ``y_true``."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the highest-scoring class matches the one-hot ``y_true``."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the highest-scoring class equals the integer ``y_true``."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot ``y_true``'s class is among the ``k`` highest scores (ties count in, as TF)."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer ``y_true`` is among the ``k`` highest scores (ties count in, as TF)."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, k=k)


class MeanSquaredError(MeanMetricWrapper):
    """The mean of ``(y_true - y_pred)^2`` over every value seen."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """The mean of ``|y_true - y_pred|`` over every value seen."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name, dtype)


class AUC(Metric):
    """Area under the ROC (default) or precision-recall curve, from confusion counts at fixed thresholds.

    Every value of ``y_pred`` (in [0, 1]) is a prediction of "positive" at each threshold it exceeds;
    ``y_true`` (same shape) is positive where it is non-zero. ``update_state`` adds each threshold's
    (weighted) true/false positives/negatives; ``result`` sums the curve between neighbouring thresholds:
    trapezoids ("interpolation"), or the lower ("minoring") / higher ("majoring") of the two heights; the
    PR curve with "interpolation" uses Davis & Goadrich's interpolation of precision, as Keras.

    Args:
        num_thresholds: thresholds ``-EPSILON, 1/(n-1), ..., (n-2)/(n-1), 1 + EPSILON`` (Keras's 200).
        curve: "ROC" or "PR".
        summation_method: "interpolation", "minoring" or "majoring".
        thresholds: explicit thresholds in (0, 1) instead of evenly spaced ones.
        from_logits: apply a sigmoid to ``y_pred`` first.

    Notes: Keras's thresholds and formulas (``multi_label=True``, label weights and the PRGAIN curve are
    not supported). As Keras, ``y_pred`` of several columns counts every value as one binary prediction.
    """

    CURVES = ("ROC", "PR")
    SUMMATIONS = ("interpolation", "minoring", "majoring")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if multi_label or num_labels is not None or label_weights is not None:
            raise ValueError("AUC: multi_label, num_labels and label_weights are not supported by scratchnet")
        if str(curve).upper() not in self.CURVES:
            raise ValueError(f'Invalid `curve` argument value "{curve}". Expected one of: {list(self.CURVES)}')
        if str(summation_method).lower() not in self.SUMMATIONS:
            raise ValueError(f'Invalid `summation_method` argument value "{summation_method}". '
                             f"Expected one of: {list(self.SUMMATIONS)}")
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                    or num_thresholds <= 1:
                raise ValueError(f"Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds!r}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = np.array([0.0 - EPSILON, *inner, 1.0 + EPSILON], dtype=np.float32)
        self.num_thresholds = len(self.thresholds)
        self._explicit_thresholds = None if thresholds is None else list(inner)
        self.curve, self.summation_method = str(curve).upper(), str(summation_method).lower()
        self.from_logits = bool(from_logits)
        super().__init__(name=name or "auc", dtype=dtype)

    def reset_state(self):
        shape = (len(self.thresholds),)
        self.true_positives, self.false_positives = np.zeros(shape), np.zeros(shape)
        self.true_negatives, self.false_negatives = np.zeros(shape), np.zeros(shape)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, dtype=np.float32)
        if self.from_logits:
            y_pred = (1 / (1 + np.exp(-y_pred.astype(np.float64)))).astype(np.float32)
        positive = np.asarray(y_true).reshape(y_pred.shape) != 0
        weights = np.ones(y_pred.shape) if sample_weight is None else \
            np.broadcast_to(_weights_for(sample_weight, y_pred), y_pred.shape)
        above = y_pred.reshape(-1)[:, np.newaxis] > self.thresholds  # (values, thresholds)
        positive, weights = positive.reshape(-1, 1), weights.reshape(-1, 1)
        self.true_positives += (weights * (positive & above)).sum(axis=0)
        self.false_positives += (weights * (~positive & above)).sum(axis=0)
        self.false_negatives += (weights * (positive & ~above)).sum(axis=0)
        self.true_negatives += (weights * (~positive & ~above)).sum(axis=0)

    def result(self):
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.dtype.type(self._interpolated_pr_auc())
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self.dtype.type(((x[:-1] - x[1:]) * heights).sum())

    def _interpolated_pr_auc(self):
        """Precision interpolated between thresholds as tp / p with tp and p linear (Davis & Goadrich 2006).

        Between thresholds A and B, ``slope = dtp / dp`` and ``intercept = tp_B - slope * p_B``; the area is
        ``slope * (dtp + intercept * log(p_A / p_B)) / (tp_B + fn_B)``.
        """
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return _divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0)).sum()

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "from_logits": self.from_logits}
        if self._explicit_thresholds is not None:
            config["thresholds"] = self._explicit_thresholds
            del config["num_thresholds"]
        return config


def _divide_no_nan(a, b):
    """a / b, 0 where b is 0 (Keras's divide_no_nan)."""
    b = np.asarray(b, dtype=np.float64)
    return np.where(b != 0, np.asarray(a, dtype=np.float64) / np.where(b != 0, b, 1), 0.0)


def _snake_case(name):
    import re

    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


# ----------------------------------------------------------------------------------------------
# Resolving identifiers
# ----------------------------------------------------------------------------------------------

_FUNCTIONS = {f.__name__: f for f in (
    sparse_categorical_accuracy, categorical_accuracy, binary_accuracy, top_k_categorical_accuracy,
    sparse_top_k_categorical_accuracy, mean_squared_error, mean_absolute_error)}
_FUNCTIONS.update({"mse": mean_squared_error, "MSE": mean_squared_error, "mae": mean_absolute_error,
                   "MAE": mean_absolute_error})
_CLASSES = {cls.__name__: cls for cls in (
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, AUC, Mean)}
_FOR_LOSS = {
    "SparseCategoricalCrossentropy": sparse_categorical_accuracy,
    "CategoricalCrossentropy": categorical_accuracy,
    "BinaryCrossentropy": binary_accuracy,
}


def get(identifier, loss=None):
    """A metric from a name, a config dict, a scoring function or a metric object (returned as is).

    Names give scoring functions ("sparse_categorical_accuracy", "mse", ...) or, for class names
    ("SparseCategoricalAccuracy", "AUC"), new metric objects. "accuracy" / "acc" give the accuracy that
    fits ``loss``: sparse categorical, categorical or binary for the three cross-entropies, and Keras's
    rule by the shapes of labels and outputs for any other loss.
    """
    if isinstance(identifier, Metric) or callable(identifier) and not isinstance(identifier, type):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if identifier in ("accuracy", "acc"):
        return _FOR_LOSS.get(type(loss).__name__, accuracy_by_shape)
    if isinstance(identifier, str) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]
    if isinstance(identifier, str) and identifier in _CLASSES:
        return _CLASSES[identifier]()
    raise ValueError(f"Unknown metric: {identifier!r}. Known names: {['accuracy', *_FUNCTIONS, *_CLASSES]}")


def per_example(metric):
    """The scoring function (y_true, y_pred) -> (N,) behind ``metric`` (a function or a mean-of-scores object).

    Raises a ValueError for a metric that is not a mean of per-example scores (``AUC``).
    """
    if isinstance(metric, MeanMetricWrapper):
        return metric.per_example
    if isinstance(metric, Metric):
        raise ValueError(f"{type(metric).__name__} is not a mean of per-example scores; read it with "
                         "update_state() and result()")
    return metric


def serialize(metric):
    """``{"class_name": ..., "config": {...}}`` for a metric object; a scoring function's name as is."""
    if isinstance(metric, Metric):
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    return getattr(metric, "__name__", metric)


def deserialize(config, custom_objects=None):
    """Rebuild a metric from what ``serialize`` returned (``custom_objects`` maps other class names)."""
    if isinstance(config, str):
        return get(config)
    classes = {**_CLASSES, **(custom_objects or {})}
    try:
        cls = classes[config["class_name"]]
        arguments = dict(config.get("config", {}))
    except (KeyError, TypeError):
        raise ValueError(f"Unknown metric config: {config!r} (pass custom_objects for your own classes)") from None
    return cls.from_config(arguments)
