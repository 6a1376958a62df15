"""The deterministic TensorFlow set-up that every parity comparison runs under.

`deterministic()` imports TensorFlow (once per process) with:

* oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``, which must be set BEFORE TensorFlow is imported: oneDNN
  reorders float sums, so its results move by a few ulps from run to run and from the plain kernels);
* op determinism on (``tf.config.experimental.enable_op_determinism()``);
* no XLA (``tf.config.optimizer.set_jit(False)``; the twins never pass ``jit_compile=True``);
* TensorFloat-32 off (it only matters on GPUs, where float32 matmuls would silently drop to 10-bit
  mantissas).

float64 is not switched on globally: the twins take an explicit ``dtype`` (Keras layers get
``dtype="float64"``, tf.nn twins create float64 variables), so float32 and float64 models can live side
by side in one process. `keras_float64()` is there for code that wants Keras's global floatx instead.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
"""The environment variable TensorFlow reads once, at import, to decide whether oneDNN is used."""

_configured = False


def onednn_disabled() -> bool:
    """True when TensorFlow runs (or will run, once imported) without oneDNN's reordered kernels."""
    return os.environ.get(ONEDNN_VARIABLE) == "0"


def deterministic() -> ModuleType:
    """Import TensorFlow in the deterministic parity set-up and return the ``tensorflow`` module.

    Safe to call many times; the set-up is applied once.

    Raises:
        RuntimeError: if TensorFlow was already imported with oneDNN on (the setting can no longer change
            in this process). Import `tf_reference` (or set ``TF_ENABLE_ONEDNN_OPTS=0``) before TensorFlow.
    """
    global _configured
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(ONEDNN_VARIABLE, "0")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not onednn_disabled():
        raise RuntimeError(
            f"TensorFlow parity needs {ONEDNN_VARIABLE}=0 before TensorFlow is imported; "
            f"received: {ONEDNN_VARIABLE}={os.environ.get(ONEDNN_VARIABLE)!r}"
        )
    import tensorflow as tf

    if not _configured:
        tf.config.experimental.enable_op_determinism()
        tf.config.optimizer.set_jit(False)
        tf.config.experimental.enable_tensor_float_32_execution(False)
        _configured = True
    return tf


def describe() -> dict[str, str]:
    """The set-up in force, for reports: TensorFlow and Keras versions and the switches above."""
    tf = deterministic()
    import keras

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "oneDNN": "off" if onednn_disabled() else "on",
        "op determinism": "on",
        "XLA (jit)": "off" if not tf.config.optimizer.get_jit() else "on",
        "TensorFloat-32": "on" if tf.config.experimental.tensor_float_32_execution_enabled() else "off",
    }


@contextlib.contextmanager
def keras_float64() -> Iterator[None]:
    """Run a block with Keras's global floatx set to float64, restoring the previous value afterwards."""
    deterministic()
    import keras

    previous, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # Keras caches the dtype policy at first use
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(previous_policy)
