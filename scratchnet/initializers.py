"""Weight initialisers with Keras's names and defaults, each called as ``init(shape, dtype, rng)``.

An initialiser is a small object holding its hyperparameters; calling it returns a new array:

    >>> init = get("glorot_uniform")
    >>> kernel = init((784, 50), "float32", np.random.default_rng(0))

Randomness comes only from the ``rng`` argument (a ``numpy.random.Generator``); no global seeding.
Every initialiser round-trips through ``serialize`` / ``deserialize`` as ``{"class_name", "config"}``.

Notes: TensorFlow's random streams cannot be reproduced in NumPy, so parity tests copy weights between
engines; what matches TensorFlow here is the distribution (its bounds, mean and standard deviation).
Random draws are made in float64 and then cast, so a float32 and a float64 model with the same seed start
from the same weights (up to rounding).
"""

import math

import numpy as np

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal",
    "LecunUniform", "compute_fans", "get", "serialize", "deserialize",
]

TRUNCATED_NORMAL_STDDEV = 0.87962566103423978
"""Standard deviation of a unit normal truncated to [-2, 2]; VarianceScaling divides by it."""


def compute_fans(shape):
    """Return (fan_in, fan_out) of a weight of ``shape``, as Keras does.

    A dense kernel (in, out) gives (in, out); a conv kernel (KH, KW, CI, CO) gives
    (KH*KW*CI, KH*KW*CO): the receptive field counts in both fans.
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _check_rng(rng, name):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name} draws random numbers and needs `rng`, a numpy.random.Generator "
            f"(e.g. numpy.random.default_rng(0)). Received: rng={rng!r}"
        )


def _truncated_standard_normal(shape, rng):
    """Unit normal samples redrawn until every one lies within two standard deviations."""
    sample = rng.standard_normal(shape)
    outside = np.abs(sample) > 2.0
    while outside.any():
        sample[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(sample) > 2.0
    return sample


class Initializer:
    """Base class: ``init(shape, dtype="float32", rng=None)`` returns a new array of ``shape``."""

    def __call__(self, shape, dtype="float32", rng=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class Constant(Initializer):
    """Every element equals ``value`` (Keras ``Constant``, default 0.0)."""

    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype="float32", rng=None):
        return np.full(tuple(shape), self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    """All zeros (Keras ``Zeros``, the default bias initialiser)."""

    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    """All ones (Keras ``Ones``)."""

    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class RandomNormal(Initializer):
    """Normal samples with ``mean`` and ``stddev`` (Keras defaults 0.0 and 0.05)."""

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32", rng=None):
        _check_rng(rng, type(self).__name__)
        return (self.mean + self.stddev * rng.standard_normal(tuple(shape))).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    """Uniform samples in [minval, maxval) (Keras defaults -0.05 and 0.05)."""

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype="float32", rng=None):
        _check_rng(rng, type(self).__name__)
        return rng.uniform(self.minval, self.maxval, tuple(shape)).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class TruncatedNormal(Initializer):
    """Normal samples with ``mean`` and ``stddev``, redrawn when more than 2 stddev from the mean.

    Notes: like ``tf.random.truncated_normal`` and Keras ``TruncatedNormal``, the stddev is NOT rescaled,
    so the samples' actual standard deviation is about 0.88 * stddev.
    """

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32", rng=None):
        _check_rng(rng, type(self).__name__)
        sample = _truncated_standard_normal(tuple(shape), rng)
        return (self.mean + self.stddev * sample).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class VarianceScaling(Initializer):
    """Samples whose variance is ``scale / n``, n being fan_in, fan_out or their average (``mode``).

    ``distribution`` is "truncated_normal" (default), "untruncated_normal" or "uniform"
    (limit ``sqrt(3 * scale / n)``).

    Notes: as Keras, the truncated normal's stddev is ``sqrt(scale / n) / 0.87962566103423978`` so that
    the samples, after truncation at 2 stddev, have the target variance.
    """

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        if not scale > 0:
            raise ValueError(f"`scale` must be positive. Received: scale={scale!r}")
        if mode not in self.MODES:
            raise ValueError(f"`mode` must be one of {self.MODES}. Received: mode={mode!r}")
        if distribution == "normal":  # Keras's old spelling of truncated_normal
            distribution = "truncated_normal"
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(
                f"`distribution` must be one of {self.DISTRIBUTIONS}. Received: distribution={distribution!r}"
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype="float32", rng=None):
        _check_rng(rng, type(self).__name__)
        shape = tuple(shape)
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / TRUNCATED_NORMAL_STDDEV
            sample = stddev * _truncated_standard_normal(shape, rng)
        elif self.distribution == "untruncated_normal":
            sample = math.sqrt(variance) * rng.standard_normal(shape)
        else:
            limit = math.sqrt(3.0 * variance)
            sample = rng.uniform(-limit, limit, shape)
        return sample.astype(dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling with fixed arguments (Glorot, He, LeCun): its config is empty."""

    ARGUMENTS = {}

    def __init__(self):
        super().__init__(**self.ARGUMENTS)

    def get_config(self):
        return {}


class GlorotUniform(_FixedVarianceScaling):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)) (Keras's default kernel init)."""

    ARGUMENTS = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)) after truncation."""

    ARGUMENTS = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


class HeNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / fan_in) after truncation."""

    ARGUMENTS = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


class HeUniform(_FixedVarianceScaling):
    """Uniform in [-limit, limit], limit = sqrt(6 / fan_in)."""

    ARGUMENTS = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


class LecunNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(1 / fan_in) after truncation."""

    ARGUMENTS = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


class LecunUniform(_FixedVarianceScaling):
    """Uniform in [-limit, limit], limit = sqrt(3 / fan_in)."""

    ARGUMENTS = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}


# Keras's snake_case aliases: `initializers.truncated_normal(stddev=0.1)` builds a TruncatedNormal.
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_normal, he_uniform, lecun_normal, lecun_uniform = HeNormal, HeUniform, LecunNormal, LecunUniform

_CLASSES = {
    cls.__name__: cls
    for cls in (Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
                GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform)
}
_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_normal": HeNormal,
    "he_uniform": HeUniform, "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
}


def serialize(initializer):
    """Return ``{"class_name": ..., "config": {...}}``, JSON-ready."""
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config):
    """Rebuild an initialiser from what ``serialize`` returned."""
    try:
        cls = _CLASSES[config["class_name"]]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown initializer config: {config!r}") from None
    return cls.from_config(dict(config.get("config", {})))


def get(identifier):
    """Return an initialiser from a name ("glorot_uniform"), a class name, a config dict or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(
                f"Unknown initializer: {identifier!r}. Known names: {sorted(_ALIASES)}"
            )
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    raise ValueError(
        "Could not interpret initializer identifier (expected a name, a config dict or an Initializer). "
        f"Received: {identifier!r}"
    )
