"""Keras-named loss objects: each turns (labels, predictions) into a mean loss and its gradient.

    >>> loss = get("sparse_categorical_crossentropy")
    >>> value, cache = loss.forward(labels, probabilities)
    >>> dprobabilities = loss.backward(cache)

A built-in loss object only chooses which op of ``scratchnet.ops.losses`` (through ``scratchnet.engine``)
does the arithmetic: the stable from-logits form or Keras's clipped from-probabilities form of the
cross-entropies, mean squared error, mean absolute error.

Custom losses work as in Keras: a function ``f(y_true, y_pred)`` (``compile(loss=f)``) or a ``Loss``
subclass with ``call(y_true, y_pred)``, returning the loss of each example; the loss is their mean
(Keras's ``sum_over_batch_size``). scratchnet has no automatic differentiation, so the gradient with
respect to ``y_pred`` comes from the loss's ``gradient(y_true, y_pred)`` method (or ``f.gradient`` for a
function) when it has one: the derivative of ``sum(call(y_true, y_pred))``. Without one the loss is
differentiated numerically, by central differences on every value of ``y_pred``: exact enough in
float64, but two calls of the loss per output value per batch (slow); a warning says so once.

Notes: Keras fuses a softmax (or sigmoid) output with its cross-entropy: the loss is computed from the
cached logits, without clipping, and the gradient with respect to the logits is ``softmax - onehot``.
``Sequential`` does the same; it asks ``loss.fuses_with(activation)`` and then calls
``forward(labels, logits, from_logits=True)``. Unlike Keras, a mismatched pair (say sigmoid with
categorical cross-entropy) is not fused.
"""

import inspect
import warnings
from typing import NamedTuple

import numpy as np

from scratchnet import engine
from scratchnet.gradcheck import numerical_gradient

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "MeanAbsoluteError", "LossFunctionWrapper", "mean_squared_error",
           "mean_absolute_error", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "get", "serialize", "deserialize"]

REDUCTION = "sum_over_batch_size"
"""Keras's default reduction, the only one scratchnet has: the mean of the per-example losses."""


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

    Subclass it as in Keras to write your own loss: implement ``call(y_true, y_pred)`` returning the loss
    of each example, and, to train at full speed, ``gradient(y_true, y_pred)`` returning the derivative
    of ``sum(call(y_true, y_pred))`` with respect to ``y_pred`` (y_pred's shape). For example::

        class MeanSquaredLogError(Loss):
            def call(self, y_true, y_pred):
                return ((np.log1p(y_pred) - np.log1p(y_true)) ** 2).mean(axis=-1)

            def gradient(self, y_true, y_pred):
                return 2 * (np.log1p(y_pred) - np.log1p(y_true)) / (1 + y_pred) / y_pred.shape[-1]

    Notes: Keras's ``reduction`` is accepted only as its default, "sum_over_batch_size" (the mean); Keras's
    ``dtype`` is accepted and has no effect: every loss is computed in the model's dtype.
    """

    LOGITS_OP = PROBABILITIES_OP = FUSED_ACTIVATION = DEFAULT_NAME = None

    def __init__(self, from_logits=False, name=None, reduction=REDUCTION, dtype=None):
        if reduction not in (REDUCTION, "auto"):
            raise ValueError(f"scratchnet's losses average over the batch: `reduction` must be {REDUCTION!r}. "
                             f"Received: reduction={reduction!r}")
        self.from_logits = bool(from_logits)
        self.name = name or self.DEFAULT_NAME or _snake_case(type(self).__name__)
        self.reduction = REDUCTION
        self._warned = False

    def forward(self, y_true, y_pred, from_logits=None, sample_weight=None):
        """Return ``(loss, cache)``; ``from_logits`` overrides the constructor's choice (for fusion).

        ``sample_weight`` (N,) weights each example's loss, as Keras: ``sum_n w_n * loss_n / N`` (the
        mean over the batch, not over the weights). The op runs once per distinct weight, on the rows
        that have it (a class weight has a few values); rows of weight 0 add nothing.
        """
        if self.PROBABILITIES_OP is None:  # a custom loss: its call(y_true, y_pred) gives the values
            return self._call_forward(y_true, y_pred, sample_weight)
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
        if op is None:
            return self._call_backward(op_cache)
        backward = getattr(engine, op + "_backward")
        if not isinstance(op_cache, _WeightedCache):
            return backward(1.0, op_cache)
        dy_pred = np.zeros(op_cache.shape, op_cache.dtype)
        for rows, share, group_cache in op_cache.groups:
            dy_pred[rows] = backward(share, group_cache)
        return dy_pred

    # -- custom losses: call() and gradient() --------------------------------------------------------

    def call(self, y_true, y_pred):
        """The loss of each example (N,) (or any shape: every value counts once in the mean)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement call(y_true, y_pred), the loss of each example"
        )

    def gradient(self, y_true, y_pred):
        """The derivative of ``sum(call(y_true, y_pred))`` with respect to ``y_pred``, y_pred's shape.

        The default differentiates ``call`` numerically (central differences, two calls per value of
        y_pred, in float64); override it with the formula to train fast.
        """
        return self._numerical_gradient(y_true, y_pred, None)

    def _has_gradient(self):
        return type(self).gradient is not Loss.gradient

    def _call_forward(self, y_true, y_pred, sample_weight=None):
        """A custom loss's (mean loss, cache): the mean of ``call``'s values, each weighted by its example's
        ``sample_weight`` when given (Keras: ``sum(w * values) / values.size``)."""
        y_pred = np.asarray(y_pred)
        values = np.asarray(self.call(y_true, y_pred), dtype=np.float64)
        if values.size == 0:
            raise ValueError(f"Loss {self.name!r}: call(y_true, y_pred) returned no values")
        weights = None if sample_weight is None else _weights_like(sample_weight, values)
        total = (values if weights is None else values * weights).sum()
        return y_pred.dtype.type(total / values.size), (None, (y_true, y_pred, values.shape, weights))

    def _call_backward(self, cache):
        """A custom loss's gradient: ``gradient`` (rows scaled by their weights), divided by the count."""
        y_true, y_pred, values_shape, weights = cache
        size = int(np.prod(values_shape))
        if weights is not None and not self._has_gradient():
            grad = self._numerical_gradient(y_true, y_pred, weights)  # exact for any call(), weights inside
        else:
            if not self._has_gradient():
                self._warn_numerical()
            grad = np.asarray(self.gradient(y_true, y_pred), dtype=np.float64)
            if grad.shape != y_pred.shape:
                raise ValueError(f"Loss {self.name!r}: gradient(y_true, y_pred) must have y_pred's shape "
                                 f"{y_pred.shape}. Received: shape {grad.shape}")
            if weights is not None:  # example n's values depend on y_pred[n] alone: scale its row
                grad = grad * weights.reshape((-1,) + (1,) * (grad.ndim - 1))
        return (grad / size).astype(y_pred.dtype)

    def _numerical_gradient(self, y_true, y_pred, weights):
        """Central differences of ``sum(weights * call(y_true, y_pred))`` in float64, every value nudged."""
        self._warn_numerical()
        x = np.array(y_pred, dtype=np.float64)
        return numerical_gradient(lambda p: self.call(y_true, p), x, weights)

    def _warn_numerical(self):
        if not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn(
                f"Loss {self.name!r} has no gradient(y_true, y_pred): scratchnet has no automatic "
                "differentiation, so it differentiates the loss numerically, with two calls of the loss per "
                "output value per batch (slow). Give the loss a `gradient` method (or the function a "
                "`gradient` attribute) returning d sum(loss) / d y_pred to train at full speed.",
                stacklevel=4,
            )

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
        if self.LOGITS_OP is None:  # Keras's base config: a custom loss's __init__ need not take from_logits
            return {"name": self.name, "reduction": self.reduction}
        return {"name": self.name, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _weights_like(sample_weight, values):
    """Per-example weights (N,) in the shape that multiplies per-example values (N, ...)."""
    weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(weights) != len(values):
        raise ValueError(f"`sample_weight` needs one weight per example ({len(values)}). "
                         f"Received: sample_weight.shape={np.shape(sample_weight)}")
    return weights.reshape((-1,) + (1,) * (values.ndim - 1))


def _snake_case(name):
    import re

    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


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


class _RegressionLoss(Loss):
    """A loss of outputs against targets of the same shape, computed by one op (no logits form)."""

    def __init__(self, reduction=REDUCTION, name=None, dtype=None):
        super().__init__(from_logits=False, name=name, reduction=reduction, dtype=dtype)

    def targets(self, y, output_shape, dtype):
        """Targets shaped like the outputs; (N,) targets for (N, 1) outputs are reshaped, others must match."""
        y = np.asarray(y, dtype=dtype)
        shape = (y.shape[0], *output_shape) if y.ndim else y.shape
        if y.shape != shape and y.size == np.prod(shape):
            return y.reshape(shape)
        if y.shape != shape:
            raise ValueError(
                f"{self.name} needs targets shaped like the outputs (N, {', '.join(map(str, output_shape))}). "
                f"Received: y.shape={y.shape}"
                + (" (class ids? one-hot them with utils.to_categorical)" if y.ndim == 1 else "")
            )
        return y

    def __repr__(self):
        return f"{type(self).__name__}()"


class MeanSquaredError(_RegressionLoss):
    """Mean of ``(y_true - y_pred)^2`` over every value (Keras's ``mse``)."""

    PROBABILITIES_OP, DEFAULT_NAME = "mean_squared_error", "mean_squared_error"


class MeanAbsoluteError(_RegressionLoss):
    """Mean of ``|y_true - y_pred|`` over every value (Keras's ``mae``)."""

    PROBABILITIES_OP, DEFAULT_NAME = "mean_absolute_error", "mean_absolute_error"


class LossFunctionWrapper(Loss):
    """A loss from a function ``fn(y_true, y_pred, **kwargs)`` returning each example's loss (Keras's wrapper).

    The function's gradient comes from its ``gradient`` attribute when it has one (same arguments, the
    derivative of the summed values with respect to y_pred), else numerically (see ``Loss.gradient``).
    As Keras, ``y_true`` is brought to y_pred's rank first: a trailing axis of 1 is added or dropped.
    """

    def __init__(self, fn, reduction=REDUCTION, name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction, dtype=dtype)
        self.fn, self.fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        return self.fn(_same_rank(y_true, y_pred), y_pred, **self.fn_kwargs)

    def _has_gradient(self):
        return callable(getattr(self.fn, "gradient", None))

    def gradient(self, y_true, y_pred):
        if self._has_gradient():
            return self.fn.gradient(_same_rank(y_true, y_pred), y_pred, **self.fn_kwargs)
        return super().gradient(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "fn": getattr(self.fn, "__name__", repr(self.fn)), **self.fn_kwargs}

    def __repr__(self):
        return f"LossFunctionWrapper({getattr(self.fn, '__name__', self.fn)!r})"


def _same_rank(y_true, y_pred):
    """Keras's ``squeeze_or_expand_to_same_rank`` for labels: drop or add one trailing axis of 1."""
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., np.newaxis]
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return y_true[..., 0]
    return y_true


# ----------------------------------------------------------------------------------------------
# Keras's loss functions: each example's loss (what Keras's loss classes average)
# ----------------------------------------------------------------------------------------------


def mean_squared_error(y_true, y_pred):
    """Each example's mean of ``(y_true - y_pred)^2`` over the last axis."""
    y_pred = np.asarray(y_pred)
    difference = np.asarray(_same_rank(y_true, y_pred), dtype=y_pred.dtype) - y_pred
    return (difference * difference).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Each example's mean of ``|y_true - y_pred|`` over the last axis."""
    y_pred = np.asarray(y_pred)
    return np.abs(np.asarray(_same_rank(y_true, y_pred), dtype=y_pred.dtype) - y_pred).mean(axis=-1)


def _per_example(loss_class, y_true, y_pred, from_logits):
    """Each example's loss from a built-in class's op, one example at a time (the ops return means)."""
    y_pred = np.asarray(y_pred)
    loss = loss_class(from_logits=from_logits)
    y_true = loss.targets(y_true, y_pred.shape[1:], y_pred.dtype)
    return np.array([loss.forward(y_true[i:i + 1], y_pred[i:i + 1])[0] for i in range(len(y_pred))],
                    dtype=y_pred.dtype)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """Each example's binary cross-entropy, averaged over its outputs (Keras's clipped form)."""
    return _per_example(BinaryCrossentropy, y_true, y_pred, from_logits)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Each example's cross-entropy against one-hot rows (Keras's renormalised, clipped form)."""
    return _per_example(CategoricalCrossentropy, y_true, y_pred, from_logits)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Each example's cross-entropy against integer class ids."""
    return _per_example(SparseCategoricalCrossentropy, y_true, y_pred, from_logits)


_CLASSES = {cls.__name__: cls for cls in (SparseCategoricalCrossentropy, CategoricalCrossentropy,
                                          BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)}
_ALIASES = {cls.DEFAULT_NAME: cls for cls in _CLASSES.values()}
_ALIASES.update({"mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
                 "MAE": MeanAbsoluteError, "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy})
_FUNCTIONS = {mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
              binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
              sparse_categorical_crossentropy: SparseCategoricalCrossentropy}
"""scratchnet's own loss functions, turned into their op-based classes by ``get`` (exact gradients)."""


def serialize(loss):
    """Return ``{"class_name": ..., "config": {...}}``, JSON-ready."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config, custom_objects=None):
    """Rebuild a loss from what ``serialize`` returned; ``custom_objects`` maps the names of your own
    ``Loss`` subclasses (or loss functions) to them, as Keras's ``custom_objects``."""
    custom_objects = custom_objects or {}
    try:
        name, arguments = config["class_name"], dict(config.get("config", {}))
    except (KeyError, TypeError, AttributeError):
        raise ValueError(f"Unknown loss config: {config!r}") from None
    if name == "LossFunctionWrapper":
        function = custom_objects.get(arguments.pop("fn", None))
        if function is None:
            raise ValueError(f"Cannot rebuild the custom loss function {config['config'].get('fn')!r}: pass it "
                             "in custom_objects={name: function}")
        return LossFunctionWrapper(function, **arguments)
    cls = _CLASSES.get(name) or custom_objects.get(name)
    if cls is None:
        raise ValueError(f"Unknown loss {name!r}: a custom Loss subclass must be passed in "
                         f"custom_objects={{{name!r}: {name}}}")
    return cls.from_config(arguments)


def get(identifier):
    """Return a loss object from a name ("sparse_categorical_crossentropy", "mse", ...), a config dict, a
    Loss object or class, or a function ``f(y_true, y_pred)`` returning each example's loss."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and (identifier in _ALIASES or identifier in _CLASSES):
        return (_ALIASES.get(identifier) or _CLASSES[identifier])()
    if inspect.isclass(identifier) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and not inspect.isclass(identifier):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]()
        return LossFunctionWrapper(identifier)
    raise ValueError(f"Unknown loss: {identifier!r}. Known names: {sorted(_ALIASES)}")
