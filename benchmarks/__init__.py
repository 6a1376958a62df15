"""scratchnet against TensorFlow, measured by pytest-benchmark in one run: ``python -m benchmarks``.

Modules (none imports TensorFlow at import time):

* `benchmarks.workloads`  what is measured: the zoo models' batches, synthetic data, FLOP counts, op shapes.
* `benchmarks.sn_side`    the scratchnet bodies (train step, inference, conv2d / max-pool ops).
* `benchmarks.tf_side`    the TensorFlow bodies: Keras twins, ``@tf.function`` train steps (no XLA, oneDNN
  on, as users run TensorFlow), inference and the same ops.
* ``bench_*.py``          the pytest-benchmark suites (collected by ``benchmarks/conftest.py`` only when
  pytest is pointed at this folder; the normal test run never sees them).
* `benchmarks.memprobe`   one short training run in a fresh process: peak RSS, first-step time.
* `benchmarks.stepprofile` where a scratchnet training step spends its time, layer by layer.
* `benchmarks.report`     the table printed by ``python -m benchmarks`` and written to docs/benchmarks.md.

Timings live only here, never as assertions in the test suite.
"""
