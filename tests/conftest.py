"""Test-wide set-up: TensorFlow (used only by the parity tests, through tf_reference) runs with oneDNN off.

The parity tests compare against TensorFlow's plain kernels (../shared/PARITY.md), and the setting only takes
effect if it is in the environment before TensorFlow is first imported, whichever test imports it first.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
