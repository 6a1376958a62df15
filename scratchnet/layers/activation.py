"""Activation layers with arguments: Softmax(axis), ReLU(max_value, negative_slope, threshold), LeakyReLU."""

import numpy as np

from scratchnet import engine

from .base import ActivatedLayer, Layer, register


def _non_negative(value, name, layer, allow_none=False):
    """Keras's check: ``value`` must be a number >= 0 (or None where allowed)."""
    if value is None and allow_none:
        return None
    number_types = (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, number_types) or not value >= 0 or not np.isfinite(value):
        raise ValueError(f"{name} of a {layer} layer cannot be None or a negative value. Received: {name}={value!r}")
    return float(value)


@register
class Softmax(ActivatedLayer):
    """Softmax over ``axis`` (Keras's default -1, the last axis): ``exp(x) / sum exp(x)``.

    Over the last axis it is ``Activation("softmax")``, so a cross-entropy loss fuses with it and reads the
    logits, as Keras does with its Softmax layer. Over another axis the softmax is applied with that axis
    moved last (no fusion).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"`axis` must be an int. Received: axis={axis!r}")
        self.axis = int(axis)

    def build(self, input_shape, rng=None, dtype="float32"):
        rank = len(input_shape) + 1  # Keras counts the batch axis
        if not (-rank <= self.axis < rank) or self.axis in (0, -rank):
            raise ValueError(f"Softmax: `axis` must name a non-batch axis of inputs of rank {rank}. "
                             f"Received: axis={self.axis}")
        super().build(input_shape, rng, dtype)
        if self.axis in (-1, rank - 1):
            self._moved = None
        else:
            self._moved = self.axis % rank
            self.activation = f"softmax(axis={self.axis})"  # not "softmax": a loss must not fuse with it

    def forward(self, x, training=False):
        if self._moved is None:
            return self._activate(x)
        y, self._activation_cache = engine.softmax_forward(np.moveaxis(x, self._moved, -1))
        self.logits = x
        return np.moveaxis(y, -1, self._moved)

    def backward(self, dy, from_logits=False):
        if self._moved is None:
            return self._activation_backward(dy, from_logits)
        dx = engine.softmax_backward(np.moveaxis(dy, self._moved, -1), self._activation_cache)
        return np.ascontiguousarray(np.moveaxis(dx, -1, self._moved))

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key != "activation"}
        return {**config, "axis": self.axis}


@register
class ReLU(Layer):
    """Keras's ReLU layer: ``min(x, max_value)`` above ``threshold``, ``negative_slope * (x - threshold)`` below.

    Defaults (``max_value=None, negative_slope=0.0, threshold=0.0``) give ``max(x, 0)``, through the same
    op as ``activation="relu"``; ``ReLU(6.0)`` is relu6.

    Notes: Keras's checks (no negative arguments) and TensorFlow's gradients at the kinks (see
    ``scratchnet.ops.activations.relu_general_backward``).
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _non_negative(max_value, "max_value", "ReLU", allow_none=True)
        self.negative_slope = _non_negative(negative_slope, "negative_slope", "ReLU")
        self.threshold = _non_negative(threshold, "threshold", "ReLU")
        self._plain = self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    def forward(self, x, training=False):
        if self._plain:
            y, self._cache = engine.relu_forward(x)
        else:
            y, self._cache = engine.relu_general_forward(x, self.negative_slope, self.max_value, self.threshold)
        return y

    def backward(self, dy):
        backward = engine.relu_backward if self._plain else engine.relu_general_backward
        return backward(dy, self._use_up_cache())

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


@register
class LeakyReLU(Layer):
    """``x`` where ``x > 0``, else ``negative_slope * x``.

    Notes: Keras's LeakyReLU LAYER defaults to ``negative_slope=0.3``, while the activation
    ``"leaky_relu"`` defaults to 0.2 (both as Keras 3).
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = _non_negative(negative_slope, "negative_slope", "LeakyReLU")

    def forward(self, x, training=False):
        y, self._cache = engine.leaky_relu_forward(x, self.negative_slope)
        return y

    def backward(self, dy):
        return engine.leaky_relu_backward(dy, self._use_up_cache())

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
