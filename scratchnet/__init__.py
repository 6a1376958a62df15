"""scratchnet: a from-scratch neural-network engine for handwriting recognition, in NumPy and numba.

Read it top-down: ``scratchnet.ops`` holds the readable forward/backward pairs, ``scratchnet.kernels`` their
numba twins, ``scratchnet.layers`` / ``optimizers`` / ``models`` the Keras-style API built on them, and
``scratchnet.zoo`` the seven classic handwriting models. TensorFlow is never imported here.

It answers to Keras's names, so a Keras script can start with ``import scratchnet as keras`` and use
``keras.Sequential``, ``keras.Input``, ``keras.layers``, ``keras.optimizers``, ``keras.losses``,
``keras.metrics``, ``keras.callbacks``, ``keras.utils`` and ``keras.models.load_model``. ``keras.Model``
(the Functional API, subclassed models) raises, pointing to ``Sequential``.

Attributes are imported lazily, so ``import scratchnet`` stays fast and never compiles a kernel.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "ops", "kernels", "engine", "runtime", "gradcheck", "initializers", "layers", "optimizers", "losses",
    "metrics", "models", "zoo", "data", "datasets", "paths", "plots", "imageprep", "callbacks", "utils",
}
_ATTRIBUTES = {
    "Sequential": "scratchnet.models",
    "Model": "scratchnet.models",
    "load_model": "scratchnet.models",
    "save_model": "scratchnet.models",
    "History": "scratchnet.models",
    "DivergenceError": "scratchnet.models",
    "Input": "scratchnet.layers",
    "InputLayer": "scratchnet.layers",
}

__all__ = sorted(_SUBMODULES | set(_ATTRIBUTES) | {"saving", "__version__"})  # noqa: PLE0605 - lazy names


_MODULE_ALIASES = {"saving": "scratchnet.models.saving"}  # keras.saving.load_model / save_model


def __getattr__(name):
    if name in _MODULE_ALIASES:
        return importlib.import_module(_MODULE_ALIASES[name])
    if name in _SUBMODULES:
        return importlib.import_module(f"scratchnet.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'scratchnet' has no attribute {name!r}")
