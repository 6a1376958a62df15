"""The TensorFlow twins of scratchnet's models: the only package of this repository that imports TensorFlow.

Modules:

* `tf_reference.config`   the deterministic TensorFlow set-up used for parity (`deterministic()`).
* `tf_reference.models`   a TF twin of each of the seven models of MODELS.md (`build(name, ...)`).
* `tf_reference.transfer` weight copying both ways (`to_keras(model)`, `from_keras(keras_model)`).
* `tf_reference.export`   ``python -m tf_reference.export`` (scratchnet .npz <-> Keras .keras).
* `tf_reference.parity`   ``python -m tf_reference.parity``: the parity table written to docs/parity.md.

Importing this package does not import TensorFlow. It does set ``TF_ENABLE_ONEDNN_OPTS=0`` (oneDNN's
reordered float arithmetic off) unless TensorFlow is already imported or the variable is already set:
parity is what this package is for. A benchmark that wants TensorFlow as users run it (oneDNN on)
sets ``TF_ENABLE_ONEDNN_OPTS=1`` before importing anything from here.
"""
from __future__ import annotations

import os
import sys

if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # keep TF's C++ start-up chatter (including "failed call to cuInit" on machines without a GPU) off
    # stderr; Python exceptions are unaffected
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
