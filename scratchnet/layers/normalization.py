"""BatchNormalization: normalises each channel by batch statistics while training, by moving averages after."""

import numpy as np

from scratchnet import engine, initializers

from .base import Layer, register


@register
class BatchNormalization(Layer):
    """Keras's BatchNormalization over the last (channel) axis: ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    In training (``fit``, ``train_step``) the mean and variance are the batch's own, per channel over
    every other axis, and the layer moves its averages towards them:
    ``moving = moving * momentum + batch_statistic * (1 - momentum)``. In inference (``predict``,
    ``evaluate``) the moving averages are used and nothing changes. A frozen layer (``trainable = False``)
    always runs in inference mode, as in Keras 3.

    Weights, in Keras's order: ``gamma`` and ``beta`` (trainable ``params``, present unless ``scale`` /
    ``center`` is False), then ``moving_mean`` and ``moving_variance`` (``non_trainable_params``: the
    optimizer never touches them; they are saved and loaded with the model).

    Args:
        axis: the channel axis, counted as Keras counts it (with the batch axis): -1 or the last axis.
        momentum: of the moving averages (Keras's 0.99; PyTorch's 0.1 means 0.9 here).
        epsilon: added to the variance (Keras's 1e-3).
        center, scale: whether to learn ``beta`` and ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer:
            Keras's defaults zeros, ones, zeros, ones.

    Notes: Keras's arithmetic: biased batch variance (divided by M, not M - 1) both to normalise and in
    the moving variance; the moving update ``moving * momentum + value * (1 - momentum)`` in the layer's
    dtype. Other axes than the last, ``renorm``, ``synchronized`` and regularisers are not supported.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"`axis` must be an int (the channel axis). Received: axis={axis!r}")
        self.axis = int(axis)
        self.momentum = _number_in(momentum, "momentum", 0.0, 1.0)
        self.epsilon = _number_in(epsilon, "epsilon", 0.0, None, low_open=True)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape, rng=None, dtype="float32"):
        rank = len(input_shape) + 1  # with the batch axis, as Keras counts axes
        if len(input_shape) < 1 or self.axis not in (-1, rank - 1):
            raise ValueError(
                "BatchNormalization normalises over the last (channel) axis only: `axis` must be -1 or "
                f"{rank - 1} for inputs of shape (None, {', '.join(map(str, input_shape))}). Received: axis={self.axis}"
            )
        super().build(input_shape, rng, dtype)
        channels = (self.input_shape[-1],)
        self.params = {}
        if self.scale:
            self.params["gamma"] = self.gamma_initializer(channels, self.dtype, rng)
        if self.center:
            self.params["beta"] = self.beta_initializer(channels, self.dtype, rng)
        self.non_trainable_params = {
            "moving_mean": self.moving_mean_initializer(channels, self.dtype, rng),
            "moving_variance": self.moving_variance_initializer(channels, self.dtype, rng),
        }

    def forward(self, x, training=False):
        gamma, beta = self.params.get("gamma"), self.params.get("beta")
        moving_mean = self.non_trainable_params["moving_mean"]
        moving_variance = self.non_trainable_params["moving_variance"]
        self._training = bool(training) and getattr(self, "trainable", True)
        if not self._training:
            y, self._cache = engine.batch_norm_inference_forward(x, gamma, beta, moving_mean, moving_variance,
                                                                 self.epsilon)
            return y
        y, self._cache = engine.batch_norm_forward(x, gamma, beta, self.epsilon)
        engine.moving_average_update(moving_mean, self._cache.mean, self.momentum)
        engine.moving_average_update(moving_variance, self._cache.variance, self.momentum)
        return y

    def backward(self, dy):
        backward = engine.batch_norm_backward if self._training else engine.batch_norm_inference_backward
        dx, dgamma, dbeta = backward(dy, self._use_up_cache())
        self.grads = {}
        if self.scale:
            self.grads["gamma"] = dgamma
        if self.center:
            self.grads["beta"] = dbeta
        return dx

    def get_config(self):
        return {
            **super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
        }


def _number_in(value, name, low, high, low_open=False):
    """``value`` as a float in [low, high] ((low, ...) when ``low_open``), else a ValueError naming it."""
    number_types = (int, float, np.integer, np.floating)
    ok = isinstance(value, number_types) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, " + (f"{high}]" if high is not None else "inf)")
        raise ValueError(f"`{name}` must be a number in {bounds}. Received: {name}={value!r}")
    return float(value)
