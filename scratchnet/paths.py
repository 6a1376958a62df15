"""Where scratchnet keeps its files on the user's machine: the cache and the default model."""

import os
from pathlib import Path


def home() -> Path:
    """The scratchnet home: ``$SCRATCHNET_HOME``, else ``~/.cache/scratchnet``."""
    return Path(os.environ.get("SCRATCHNET_HOME", Path.home() / ".cache" / "scratchnet")).expanduser()


def default_model_path() -> Path:
    """Where ``python -m scratchnet.train`` (no arguments) saves its model and the predictor looks for it."""
    return home() / "models" / "default.npz"
