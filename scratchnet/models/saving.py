"""Saving a model to ONE ``.npz`` file (weights + JSON config + optimizer state) and loading it back.

File layout (a plain NumPy ``.npz``, readable with ``np.load(path, allow_pickle=False)``):

* ``config``: a 0-d unicode array holding JSON: ``{"format": "scratchnet", "format_version": 1,
  "class_name": "Sequential", "config": {...}, "compile_config": {...} | null, "weights": [...],
  "optimizer": {"iterations": t, "state_count": k} | null}``;
* ``weight_000``, ``weight_001``, ...: the weights in Keras order (layer by layer, kernel then bias);
* ``optimizer_000``, ...: the optimizer's per-parameter state (Adam's m and v, SGD's velocity).

The file is written to a temporary file in the same directory and then renamed over the target
(``os.replace``), so a crash never leaves a half-written model behind.
"""

import json
import os
import zipfile

import numpy as np

from scratchnet import losses, optimizers
from scratchnet.fileio import atomic_write

from .sequential import Sequential

__all__ = ["save_model", "load_model", "FORMAT", "FORMAT_VERSION"]

FORMAT, FORMAT_VERSION = "scratchnet", 1


def save_model(model, path):
    """Write ``model`` to ``path`` atomically (the name is used as given; ".npz" is not appended)."""
    model._check_built()
    path = os.fspath(path)
    weights = model.get_weights()
    names = [f"{layer.name}/{key}" for layer in model.layers for key in (*layer.params, *layer.non_trainable_params)]
    state = model.optimizer.get_state() if model.optimizer is not None else []
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class_name": "Sequential",
        "config": model.get_config(), "compile_config": model.get_compile_config(),
        "weights": [{"name": n, "shape": list(w.shape), "dtype": w.dtype.name} for n, w in zip(names, weights)],
        "optimizer": None if model.optimizer is None else
        {"iterations": model.optimizer.iterations, "state_count": len(state)},
    }
    arrays = {"config": np.array(json.dumps(header))}
    arrays.update({f"weight_{i:03d}": w for i, w in enumerate(weights)})
    arrays.update({f"optimizer_{i:03d}": s for i, s in enumerate(state)})

    with atomic_write(path) as file:  # a file object: numpy adds no second ".npz"
        np.savez(file, **arrays)


def load_model(path, compile=True):
    """Read a model written by ``save_model``: same layers, weights, dtype and (if compiled) optimizer state.

    Raises FileNotFoundError when ``path`` does not exist and a ValueError naming the file when it is
    not a complete scratchnet model file (truncated, corrupt, or another format).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}")

    def bad(reason):
        return ValueError(f"{path!r} is not a valid scratchnet model file: {reason}")

    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise bad("it is a single .npy array, not an .npz archive")
            if "config" not in archive.files:
                raise bad("it has no 'config' entry")
            header = json.loads(str(archive["config"][()]))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise bad("its config is not a scratchnet model config")
            if header.get("format_version") != FORMAT_VERSION:
                raise bad(f"format version {header.get('format_version')!r} (this scratchnet reads {FORMAT_VERSION})")
            weights = [archive[f"weight_{i:03d}"] for i in range(len(header["weights"]))]
            optimizer_info = header.get("optimizer") or {}
            state = [archive[f"optimizer_{i:03d}"] for i in range(optimizer_info.get("state_count", 0))]
    except ValueError as error:
        if str(error).startswith(repr(path)):
            raise
        raise bad(error) from None
    except (OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise bad(f"{type(error).__name__}: {error}") from None

    try:
        model = Sequential.from_config(header["config"])
        model.set_weights(weights)
        compile_config = header.get("compile_config")
        if compile and compile_config is not None:
            model.compile(optimizer=optimizers.deserialize(compile_config["optimizer"]),
                          loss=losses.deserialize(compile_config["loss"]), metrics=compile_config["metrics"])
            if state or optimizer_info.get("iterations"):
                model.optimizer.set_state(state, model._params, optimizer_info["iterations"])
    except (KeyError, TypeError, ValueError) as error:
        raise bad(f"its contents do not describe a model ({type(error).__name__}: {error})") from None
    return model
