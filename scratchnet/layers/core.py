"""The non-convolutional layers: Dense, Activation, BiasAdd, Dropout, Flatten, Reshape and InputLayer."""

import math

import numpy as np

from scratchnet import engine, initializers

from .base import ActivatedLayer, Layer, positive_int, register, shape_tuple


@register
class Dense(ActivatedLayer):
    """Fully connected layer: ``activation(x @ kernel + bias)``, kernel (in, units), bias (units,).

    Applied to the last axis of its input, as in Keras. Default init: glorot_uniform kernel, zero bias.

    Notes: the kernel is (in, out) and applied as ``x @ kernel``, Keras's layout, so weights copy
    across unchanged.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(activation, **kwargs)
        self.units = positive_int(units, "units")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape, rng=None, dtype="float32"):
        super().build(input_shape, rng, dtype)
        if len(self.input_shape) < 1:
            raise ValueError(f"Dense needs inputs with a feature axis. Received: input_shape={input_shape!r}")
        self.params = {"kernel": self.kernel_initializer((self.input_shape[-1], self.units), self.dtype, rng)}
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.units,), self.dtype, rng)

    def forward(self, x, training=False):
        self._x_shape = x.shape
        if x.ndim != 2:  # Keras applies Dense to the last axis of any input
            x = x.reshape(-1, x.shape[-1])
        z, self._cache = engine.dense_forward(x, self.params["kernel"], self.params.get("bias"))
        if len(self._x_shape) != 2:
            z = z.reshape(*self._x_shape[:-1], self.units)
        return self._activate(z)

    def backward(self, dy, from_logits=False, need_dx=True):
        """Fill ``grads`` and return dx; ``need_dx=False`` (a model's first layer) skips dx, returning None."""
        dz = self._activation_backward(dy, from_logits)
        dx, dkernel, dbias = engine.dense_backward(dz.reshape(-1, self.units), self._cache, need_dx)
        self.grads = {"kernel": dkernel, "bias": dbias} if self.use_bias else {"kernel": dkernel}
        return dx.reshape(self._x_shape) if need_dx else None

    def output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(), "units": self.units, "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


@register
class Activation(ActivatedLayer):
    """Applies an activation on its own: ``Activation("relu")``, ``Activation("softmax")``, ..."""

    def __init__(self, activation, **kwargs):
        super().__init__(activation, **kwargs)

    def forward(self, x, training=False):
        return self._activate(x)

    def backward(self, dy, from_logits=False):
        return self._activation_backward(dy, from_logits)


@register
class BiasAdd(Layer):
    """Adds a learned bias over the last (channel) axis and nothing else: ``y[..., c] = x[..., c] + bias[c]``.

    Needed where a bias comes after another layer, as in TF1-style ``relu(max_pool(conv(x)) + bias)``.

    Notes: like ``tf.nn.bias_add`` with NHWC data.
    """

    def __init__(self, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape, rng=None, dtype="float32"):
        super().build(input_shape, rng, dtype)
        self.params = {"bias": self.bias_initializer((self.input_shape[-1],), self.dtype, rng)}

    def forward(self, x, training=False):
        y, self._cache = engine.bias_add_forward(x, self.params["bias"])
        return y

    def backward(self, dy):
        dx, dbias = engine.bias_add_backward(dy, self._cache)
        self.grads = {"bias": dbias}
        return dx

    def get_config(self):
        return {**super().get_config(), "bias_initializer": initializers.serialize(self.bias_initializer)}


@register
class Dropout(Layer):
    """Drops a fraction ``rate`` of the units while training, scaling the rest by 1 / (1 - rate).

    The identity in ``evaluate`` and ``predict`` (``training=False``). The mask comes from the model's
    generator (given at build time), or from ``seed`` when one is given; ``mask`` may be set to a fixed
    boolean keep-mask, used instead of drawing one (for parity runs against TensorFlow; data-parallel
    training sets it each step to this process's rows of the global batch's mask, see scratchnet.distributed).

    Notes: Keras semantics, ``rate`` is the fraction DROPPED (TF1's keep_prob is ``1 - rate``).
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 <= rate < 1:
            raise ValueError(f"`rate` must be a number in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = None if seed is None else np.random.default_rng(seed)
        self.mask = None

    def build(self, input_shape, rng=None, dtype="float32"):
        super().build(input_shape, rng, dtype)
        if self.rng is None and rng is not None:
            self.rng = rng.spawn(1)[0]  # its own stream: drawing masks never shifts other draws

    def forward(self, x, training=False):
        y, self._cache = engine.dropout_forward(x, self.rate, rng=self.rng, mask=self.mask, training=training)
        return y

    def backward(self, dy):
        return engine.dropout_backward(dy, self._cache)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@register
class Flatten(Layer):
    """Flattens each example to one row: (N, H, W, C) -> (N, H*W*C), in (h, w, c) order as Keras."""

    def forward(self, x, training=False):
        y, self._cache = engine.flatten_forward(x)
        return y

    def backward(self, dy):
        return engine.flatten_backward(dy, self._cache)

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)


@register
class Reshape(Layer):
    """Reshapes each example to ``target_shape`` (one entry may be -1, inferred as in NumPy)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(target_shape)
        if target_shape.count(-1) > 1 or not all(isinstance(d, (int, np.integer)) and (d > 0 or d == -1)
                                                 for d in target_shape):
            raise ValueError(
                "`target_shape` must be a tuple of positive integers with at most one -1. "
                f"Received: target_shape={target_shape!r}"
            )
        self.target_shape = tuple(int(d) for d in target_shape)

    def output_shape(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != size:
            raise ValueError(
                f"Cannot reshape examples of shape {tuple(input_shape)} ({size} values) to "
                f"target_shape={self.target_shape}"
            )
        return shape

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], *self.output_shape(x.shape[1:]))

    def backward(self, dy):
        return dy.reshape(self._x_shape).copy()

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register
class InputLayer(Layer):
    """Declares the shape of one input example; ``Sequential`` turns it into the model's input shape.

    ``shape`` is one example's shape (Keras's ``batch_shape`` with its batch axis is accepted too); the
    batch size and the input dtype are not fixed (inputs are cast to the model's dtype).

    Notes: as in Keras 3, a Sequential model does not list its InputLayer among ``model.layers``.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, *, input_shape=None,
                 sparse=None, ragged=None):
        if sparse or ragged:
            raise ValueError("scratchnet inputs are dense arrays: sparse and ragged inputs are not supported")
        if shape is None and batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("InputLayer needs `shape`, the shape of one example. Received: shape=None")
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        super().__init__(name=name, input_shape=shape_tuple(shape, "shape"))

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        return {"name": self.name, "shape": list(self._declared_input_shape)}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None):
    """Keras's ``Input(shape=(28, 28, 1))``: put it first in a ``Sequential`` to give the input shape.

    Returns an ``InputLayer``. It is not a symbolic tensor: calling a layer on it (the Functional API)
    raises, pointing to ``Sequential``.
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name,
                      sparse=sparse)
