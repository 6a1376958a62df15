"""The Layer base class, the fused activations, and turning layers into config dicts and back.

A layer is a thin stateful wrapper around stateless ops: it holds ``params`` (a dict in Keras order,
``kernel`` then ``bias``) and ``grads`` (same keys, filled by ``backward``), is built lazily by
``build(input_shape, rng, dtype)`` from the shape of ONE example, and runs ``forward(x, training)`` and
``backward(dy)``. Every op is reached through ``scratchnet.engine`` at call time, so the backend switch
(numba or NumPy) applies at once.

``params`` are the TRAINABLE weights, the ones an optimizer updates from ``grads``. A layer may also keep
``non_trainable_params`` (Keras's non-trainable weights, e.g. BatchNormalization's moving mean and
variance): the layer updates them itself in ``forward``; they have no gradient, no optimizer ever sees
them, and they are saved and loaded with the model (Keras order: every param, then every non-trainable
param).
"""

import re

import numpy as np

from scratchnet import engine

ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh", "elu", "gelu", "leaky_relu", "softplus", "silu")
"""Activation names a layer accepts (None means "linear"; "swish" is another name for "silu"), each with
Keras's default arguments: elu alpha 1.0, gelu exact (approximate=False), leaky_relu slope 0.2. Every name
but "linear" is the op pair ``engine.<name>_forward`` / ``engine.<name>_backward``."""

ACTIVATION_ALIASES = {"swish": "silu"}
"""Other names Keras accepts for an activation: ``keras.activations.swish`` is ``silu``, and a config
written by Keras names it "silu"."""

_REGISTRY = {}

FUNCTIONAL_API_MESSAGE = (
    "The Functional API and subclassed models are out of scope: scratchnet builds models with Sequential, "
    "e.g. Sequential([Input(shape=(28, 28, 1)), Flatten(), Dense(10, activation='softmax')])"
)


def register(cls):
    """Class decorator: make a layer class known to ``deserialize`` by its class name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def check_activation(activation):
    """Return the activation's name ("linear" for None), else raise a ValueError naming the argument."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        name = ACTIVATION_ALIASES.get(activation.lower(), activation.lower())
        if name in ACTIVATIONS:
            return name
    known = (*ACTIVATIONS, *ACTIVATION_ALIASES)
    raise ValueError(f"`activation` must be one of {known} or None. Received: activation={activation!r}")


def positive_int(value, name):
    """Return ``value`` as an int when it is a positive integer, else raise a ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def shape_tuple(shape, name):
    """Return ``shape`` as a tuple of positive ints, else raise a ValueError naming the argument."""
    try:
        return tuple(positive_int(d, name) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a tuple of positive integers. Received: {name}={shape!r}") from None


def snake_case(class_name):
    """Keras's default layer name from a class name: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)  # Keras's to_snake_case
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


class Layer:
    """Base class of every layer.

    Subclasses set ``params`` in ``build`` and implement ``forward``, ``backward`` and ``output_shape``.
    ``input_shape`` (one example, no batch axis) may be given to the first layer of a model, as in Keras.
    ``trainable = False`` (as in Keras) freezes the layer's weights: a model still passes gradients through
    the layer but no longer updates its weights.
    """

    def __init__(self, *, name=None, input_shape=None, trainable=True):
        self.name = name
        self.trainable = bool(trainable)  # False freezes the weights: a model's optimizer never sees them
        self.input_shape = None if input_shape is None else shape_tuple(input_shape, "input_shape")
        self._declared_input_shape = self.input_shape  # what the user gave, kept in the config
        self.params = {}
        self.non_trainable_params = {}
        self.grads = {}
        self.built = False
        self.dtype = None

    def build(self, input_shape, rng=None, dtype="float32"):
        """Create the parameters for examples of ``input_shape`` (no batch axis) in ``dtype``."""
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype)
        self.built = True

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def _use_up_cache(self):
        """Return the forward's ``_cache`` and forget it: passed straight to a backward op, the cache then
        belongs to that op alone, which can free the activations it holds as soon as it has read them."""
        cache, self._cache = self._cache, None
        return cache

    def release_caches(self):
        """Forget what the last forward kept for the backward (a model calls this once the backward has run).

        The next training step then allocates its activations without the last step's still held; a
        ``backward`` after this needs a new ``forward``. ``logits`` (public) stay.
        """
        for name in ("_cache", "_conv_cache", "_bias_cache", "_activation_cache"):
            if name in self.__dict__:
                setattr(self, name, None)

    def output_shape(self, input_shape):
        """Shape of one output example for one input example of ``input_shape``; default: unchanged."""
        return tuple(input_shape)

    def count_params(self):
        """Number of scalar weights, trainable and not, as Keras counts (the layer must be built)."""
        if not self.built:
            raise ValueError(f"Layer {self.name!r} is not built yet: call build() (or the model) first.")
        return sum(int(p.size) for p in (*self.params.values(), *self.non_trainable_params.values()))

    def get_weights(self):
        """Every weight array in Keras order: the params (kernel, then bias), then the non-trainable ones."""
        return [*self.params.values(), *self.non_trainable_params.values()]

    def set_weights(self, weights):
        """Copy ``weights`` (the list ``get_weights`` returns) into the layer in place, checking every shape."""
        targets = {**self.params, **self.non_trainable_params}
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(
                f"Layer {self.name!r} expects {len(targets)} weight arrays {list(targets)}; "
                f"received a list of {len(weights)}"
            )
        for (key, target), value in zip(targets.items(), weights):
            if np.shape(value) != target.shape:
                raise ValueError(
                    f"Weight {self.name}/{key} has shape {target.shape}; received an array of shape {np.shape(value)}"
                )
        for target, value in zip(targets.values(), weights):
            target[...] = value

    @property
    def weights(self):
        """Keras's ``layer.weights``: every weight as a named live array (empty before the layer is built)."""
        from .weights import Weight, layer_weights  # weights.py reads layers: imported when first asked

        return [Weight(array, key, f"{self.name}/{key}", trainable) for key, array, trainable in layer_weights(self)]

    def get_config(self):
        config = {"name": self.name}
        if self._declared_input_shape is not None:
            config["input_shape"] = list(self._declared_input_shape)
        if not self.trainable:
            config["trainable"] = False
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, x, training=False):
        """Forward pass, building the layer from ``x`` first if needed (default rng seed 0)."""
        if isinstance(x, Layer):  # Dense(10)(keras.Input(...)): the Functional API
            raise NotImplementedError(FUNCTIONAL_API_MESSAGE)
        x = np.asarray(x)
        if not self.built:
            dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
            self.build(x.shape[1:], np.random.default_rng(0), dtype)
        return self.forward(x.astype(self.dtype, copy=False), training=training)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


class ActivatedLayer(Layer):
    """A layer whose output goes through an activation by name (``ACTIVATIONS``; linear means none).

    ``forward`` keeps the pre-activation ``logits`` so that a loss can use them directly, and
    ``backward(dy, from_logits=True)`` takes the gradient with respect to those logits, skipping the
    activation's backward: this is how a softmax output and a cross-entropy loss are fused.
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = check_activation(activation)
        self.logits = None
        self._activation_cache = None

    def _activate(self, z):
        """Apply the activation to the pre-activation ``z``, keeping ``z`` as ``self.logits``."""
        self.logits = z
        if self.activation == "linear":
            return z
        y, self._activation_cache = getattr(engine, self.activation + "_forward")(z)
        return y

    def _activation_backward(self, dy, from_logits):
        """Gradient with respect to the logits (``dy`` itself when linear or when ``from_logits``)."""
        if from_logits or self.activation == "linear":
            return dy
        return getattr(engine, self.activation + "_backward")(dy, self._activation_cache)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


def serialize(layer):
    """Return ``{"class_name": ..., "config": {...}}`` for a layer, JSON-ready."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config):
    """Rebuild an (unbuilt) layer from what ``serialize`` returned."""
    try:
        cls = _REGISTRY[config["class_name"]]
        arguments = dict(config["config"])
    except (KeyError, TypeError):
        raise ValueError(f"Unknown layer config (known classes: {sorted(_REGISTRY)}): {config!r}") from None
    return cls.from_config(arguments)
