"""scratchnet against TensorFlow and PyTorch, measured by pytest-benchmark in one run: ``python -m benchmarks``.

Modules (none imports TensorFlow or torch at import time):

* `benchmarks.workloads`  what is measured: the zoo models' batches, synthetic data, FLOP counts, op shapes.
* `benchmarks.sn_side`    the scratchnet bodies (train step, inference, one-image latency, conv2d / max-pool ops).
* `benchmarks.tf_side`    the TensorFlow bodies: Keras twins, ``@tf.function`` train steps (no XLA, oneDNN
  on, as users run TensorFlow), inference, latency and the same ops.
* `benchmarks.torch_side` the PyTorch bodies: ``torch.nn`` twins with scratchnet's initial weights, eager,
  channels_last for the convolutional models; ``python -m benchmarks.torch_side`` compares the settings.
* ``bench_*.py``          the pytest-benchmark suites (collected by ``benchmarks/conftest.py`` only when
  pytest is pointed at this folder; the normal test run never sees them).
* `benchmarks.memprobe`   one short training run in a fresh process: peak RSS, first-step time.
* `benchmarks.stepprofile` where a scratchnet training step spends its time, layer by layer.
* `benchmarks.report`     the table printed by ``python -m benchmarks`` and written to docs/benchmarks.md.

Timings live only here, never as assertions in the test suite.
"""
import importlib
import importlib.util

ENGINES = ("scratchnet", "tensorflow", "pytorch")
"""The engines of the model suites: scratchnet and its two yardsticks."""

_SIDES = {"scratchnet": "benchmarks.sn_side", "tensorflow": "benchmarks.tf_side", "pytorch": "benchmarks.torch_side"}
_PACKAGES = {"tensorflow": "tensorflow", "pytorch": "torch"}


def side(engine: str):
    """The module of ``make_*`` bodies of ``engine`` (one of `ENGINES`)."""
    if engine not in _SIDES:
        raise ValueError(f"`engine` must be one of {ENGINES}; received: {engine!r}")
    return importlib.import_module(_SIDES[engine])


def installed(engine: str) -> bool:
    """Whether the package ``engine`` needs is installed (scratchnet always is), without importing it."""
    package = _PACKAGES.get(engine)
    return package is None or importlib.util.find_spec(package) is not None
