"""The kernel tests pass with numba's JIT switched off (NUMBA_DISABLE_JIT=1), where every kernel runs as the
plain Python it is written in: so a kernel's Python is correct on its own, and a failing kernel can be
debugged with ordinary tracebacks and a debugger.

A representative subset runs, in a fresh process: every family of kernel at small shapes. The worker team
synchronises through numba intrinsics that have no pure-Python form, so the run keeps to one thread
(SCRATCHNET_NUM_THREADS=1) and leaves out the tests that force work onto the team. Tests are picked by
name, not by kernel module, so kernels can move between modules freely.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FILES = ["tests/test_kernels.py", "tests/test_optimizers.py", "tests/test_sequential.py"]

FAMILIES = {
    "conv2d": "conv2d_kernel_matches_reference and (shape1 or shape3)",
    "conv2d chunks": "conv2d_kernel_chunking",
    "conv2d direct loop": "conv2d_direct_loop and not two",
    "max pooling": "max_pool2d",
    "relu": "relu_kernels",
    "sigmoid and softmax": "sigmoid_and_softmax",
    "bias add (+ relu)": "bias_add or bias_kernels",
    "dropout": "dropout_kernel",
    "Adam update": "adam_fused_kernel",
    "one-pass logistic regression": "logistic_regression_step",
    "conv2d + bias + relu": "conv2d_bias_relu_kernels or bias_add_relu_over",
}
"""A name for each family -> the pytest -k expression that picks its tests."""

NEEDS_THE_TEAM = "team or worker_threads or sliced_over_threads"


def test_kernel_tests_pass_with_the_jit_disabled(tmp_path):
    report = tmp_path / "report.xml"
    selection = " or ".join(f"({expression})" for expression in FAMILIES.values())
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", SCRATCHNET_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *FILES, "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "-k", f"({selection}) and not ({NEEDS_THE_TEAM})"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

    cases = ElementTree.parse(report).getroot().iter("testcase")
    passed = [case.get("name") for case in cases if not list(case)]  # no <skipped>, <failure> or <error>
    assert len(passed) >= 100
    for family, expression in FAMILIES.items():
        # the first word of each expression is a test-name fragment of that family
        assert any(expression.split()[0] in name for name in passed), f"no {family} test ran without the JIT"
