"""Keras-named loss objects: each turns (labels, predictions) into a mean loss and its gradient.

    >>> loss = get("sparse_categorical_crossentropy")
    >>> value, cache = loss.forward(labels, probabilities)
    >>> dprobabilities = loss.backward(cache)

A loss object only chooses which op of ``scratchnet.ops.losses`` (through ``scratchnet.engine``) does
the arithmetic: the stable from-logits form or Keras's clipped from-probabilities form.

Notes: Keras fuses a softmax (or sigmoid) output with its cross-entropy: the loss is computed from the
cached logits, without clipping, and the gradient with respect to the logits is ``softmax - onehot``.
``Sequential`` does the same; it asks ``loss.fuses_with(activation)`` and then calls
``forward(labels, logits, from_logits=True)``. Unlike Keras, a mismatched pair (say sigmoid with
categorical cross-entropy) is not fused.
"""

from typing import NamedTuple

import numpy as np

from scratchnet import engine

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
           "get", "serialize", "deserialize"]


class _WeightedCache(NamedTuple):
    """What a weighted ``forward`` keeps: the predictions' shape and dtype, and per distinct weight the
    rows that have it, their share of the batch mean and the op's cache."""

    shape: tuple
    dtype: np.dtype
    groups: list


class Loss:
    """Base class: ``forward(y_true, y_pred) -> (loss, cache)``, ``backward(cache) -> dy_pred``.

    ``y_pred`` holds probabilities, or logits when ``from_logits=True``. The loss is the mean over the
    batch, a 0-d array of the predictions' dtype.
    """

    LOGITS_OP = PROBABILITIES_OP = FUSED_ACTIVATION = DEFAULT_NAME = None

    def __init__(self, from_logits=False, name=None):
        self.from_logits = bool(from_logits)
        self.name = name or self.DEFAULT_NAME

    def forward(self, y_true, y_pred, from_logits=None, sample_weight=None):
        """Return ``(loss, cache)``; ``from_logits`` overrides the constructor's choice (for fusion).

        ``sample_weight`` (N,) weights each example's loss, as Keras: ``sum_n w_n * loss_n / N`` (the
        mean over the batch, not over the weights). The op runs once per distinct weight, on the rows
        that have it (a class weight has a few values); rows of weight 0 add nothing.
        """
        from_logits = self.from_logits if from_logits is None else from_logits
        op = self.LOGITS_OP if from_logits else self.PROBABILITIES_OP
        if sample_weight is None:
            loss, cache = getattr(engine, op + "_forward")(y_pred, y_true)
            return loss, (op, cache)
        weights = np.asarray(sample_weight).reshape(-1)
        if len(weights) != len(y_pred):
            raise ValueError(f"`sample_weight` needs one weight per example ({len(y_pred)}). "
                             f"Received: sample_weight.shape={np.shape(sample_weight)}")
        dtype = y_pred.dtype.type
        loss, groups = dtype(0), []
        for weight in np.unique(weights):
            rows = np.flatnonzero(weights == weight)
            if weight == 0:
                continue
            group_loss, group_cache = getattr(engine, op + "_forward")(y_pred[rows], y_true[rows])
            share = dtype(weight * len(rows) / len(weights))  # this group's part of the batch mean
            loss += group_loss * share
            groups.append((rows, share, group_cache))
        return loss, (op, _WeightedCache(y_pred.shape, y_pred.dtype, groups))

    def backward(self, cache):
        """Gradient of the loss with respect to the ``y_pred`` given to ``forward`` (logits if fused)."""
        op, op_cache = cache
        backward = getattr(engine, op + "_backward")
        if not isinstance(op_cache, _WeightedCache):
            return backward(1.0, op_cache)
        dy_pred = np.zeros(op_cache.shape, op_cache.dtype)
        for rows, share, group_cache in op_cache.groups:
            dy_pred[rows] = backward(share, group_cache)
        return dy_pred

    def __call__(self, y_true, y_pred):
        """The loss value alone, as ``keras_loss(y_true, y_pred)``."""
        y_pred = np.asarray(y_pred)
        return self.forward(self.targets(y_true, y_pred.shape[1:], y_pred.dtype), y_pred)[0]

    def fuses_with(self, activation):
        """True when an output ``activation`` should be fused with this loss (Keras's logits shortcut)."""
        return not self.from_logits and activation == self.FUSED_ACTIVATION

    def targets(self, y, output_shape, dtype):
        """Labels ``y`` in the form this loss wants for outputs of ``output_shape`` (one example)."""
        return np.asarray(y, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy of class probabilities against integer class ids (N,) (or (N, 1))."""

    LOGITS_OP, PROBABILITIES_OP = "softmax_cross_entropy", "categorical_cross_entropy"
    FUSED_ACTIVATION, DEFAULT_NAME = "softmax", "sparse_categorical_crossentropy"

    def targets(self, y, output_shape, dtype):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(
                "sparse_categorical_crossentropy needs integer class ids of shape (N,). "
                f"Received: y.shape={y.shape} (use categorical_crossentropy for one-hot rows)"
            )
        ids = y.astype(np.int64, copy=False)
        if not np.array_equal(ids, y):
            raise ValueError(f"Class ids must be whole numbers. Received: y.dtype={y.dtype}")
        classes = output_shape[-1] if len(output_shape) else 1
        if ids.size and (ids.min() < 0 or ids.max() >= classes):
            raise ValueError(
                f"Class ids must lie in [0, {classes}) for {classes} outputs. "
                f"Received: ids in [{ids.min()}, {ids.max()}]"
            )
        return ids


class CategoricalCrossentropy(Loss):
    """Cross-entropy of class probabilities against one-hot (or probability) rows (N, C)."""

    LOGITS_OP, PROBABILITIES_OP = "softmax_cross_entropy", "categorical_cross_entropy"
    FUSED_ACTIVATION, DEFAULT_NAME = "softmax", "categorical_crossentropy"

    def targets(self, y, output_shape, dtype):
        """One row per example, shaped like the outputs; integer class ids raise, as Keras's shape check."""
        y = np.asarray(y)
        if y.shape[1:] != tuple(output_shape):
            raise ValueError(
                f"categorical_crossentropy needs one-hot rows shaped like the outputs (N, "
                f"{', '.join(map(str, output_shape))}). Received: y.shape={y.shape} (for integer class ids "
                "use sparse_categorical_crossentropy, or one-hot them with utils.to_categorical)"
            )
        return y.astype(dtype, copy=False)


class BinaryCrossentropy(Loss):
    """Cross-entropy of probabilities of the positive class against 0/1 labels of the same shape."""

    LOGITS_OP, PROBABILITIES_OP = "sigmoid_binary_cross_entropy", "binary_cross_entropy"
    FUSED_ACTIVATION, DEFAULT_NAME = "sigmoid", "binary_crossentropy"

    def targets(self, y, output_shape, dtype):
        y = np.asarray(y, dtype=dtype)
        shape = (y.shape[0], *output_shape) if y.ndim else y.shape
        return y.reshape(shape) if y.size == np.prod(shape) else y  # (N,) labels for (N, 1) outputs


_CLASSES = {cls.__name__: cls for cls in (SparseCategoricalCrossentropy, CategoricalCrossentropy,
                                          BinaryCrossentropy)}
_ALIASES = {cls.DEFAULT_NAME: cls for cls in _CLASSES.values()}


def serialize(loss):
    """Return ``{"class_name": ..., "config": {...}}``, JSON-ready."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    """Rebuild a loss from what ``serialize`` returned."""
    try:
        return _CLASSES[config["class_name"]].from_config(dict(config.get("config", {})))
    except (KeyError, TypeError):
        raise ValueError(f"Unknown loss config: {config!r}") from None


def get(identifier):
    """Return a loss object from a name ("sparse_categorical_crossentropy"), a config dict or a Loss."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and (identifier in _ALIASES or identifier in _CLASSES):
        return (_ALIASES.get(identifier) or _CLASSES[identifier])()
    raise ValueError(f"Unknown loss: {identifier!r}. Known names: {sorted(_ALIASES)}")
