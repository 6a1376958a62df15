"""Saving a model to ONE ``.npz`` file (weights + JSON config + optimizer state) and loading it back.

File layout (a plain NumPy ``.npz``, readable with ``np.load(path, allow_pickle=False)``):

* ``config``: a 0-d unicode array holding JSON: ``{"format": "scratchnet", "format_version": 1,
  "class_name": "Sequential", "config": {...}, "compile_config": {...} | null, "weights": [...],
  "optimizer": {"iterations": t, "state_count": k} | null}``;
* ``weight_000``, ``weight_001``, ...: the weights in Keras order (layer by layer, kernel then bias);
* ``optimizer_000``, ...: the optimizer's per-parameter state (Adam's m and v, SGD's velocity).

The file is written to a temporary file in the same directory and then renamed over the target
(``os.replace``), so a crash never leaves a half-written model behind.

This module knows the file format, not the model classes: a class registers itself with
`register_model_class` (Keras's ``register_keras_serializable`` in miniature) and the file names it in
``class_name``. So ``Sequential.save`` can use this module without this module importing ``Sequential``.
"""

import json
import os
import zipfile

import numpy as np

from scratchnet import losses, optimizers
from scratchnet.fileio import atomic_write

__all__ = ["save_model", "load_model", "register_model_class", "FORMAT", "FORMAT_VERSION"]

FORMAT, FORMAT_VERSION = "scratchnet", 1

# class_name -> the class whose from_config() rebuilds it; filled by register_model_class.
MODEL_CLASSES = {}


def register_model_class(cls):
    """Class decorator: models of ``cls`` can be saved, and loaded back from files naming ``cls.__name__``."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def save_model(model, path):
    """Write ``model`` to ``path`` atomically (the name is used as given; ".npz" is not appended)."""
    class_name = type(model).__name__
    if MODEL_CLASSES.get(class_name) is not type(model):
        raise TypeError(f"save_model expects a registered model class ({', '.join(sorted(MODEL_CLASSES))}); "
                        f"received {class_name}")
    path = os.fspath(path)
    weights = model.get_weights()  # first: it raises the "not built yet" error for an unbuilt model
    names = [f"{layer.name}/{key}" for layer in model.layers for key in layer.params]
    state = model.optimizer.get_state() if model.optimizer is not None else []
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class_name": class_name,
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

    model_class = MODEL_CLASSES.get(header.get("class_name"))
    if model_class is None:
        raise bad(f"its class_name {header.get('class_name')!r} is none of {', '.join(sorted(MODEL_CLASSES))}")
    try:
        model = model_class.from_config(header["config"])
        model.set_weights(weights)
        compile_config = header.get("compile_config")
        if compile and compile_config is not None:
            model.compile(optimizer=optimizers.deserialize(compile_config["optimizer"]),
                          loss=losses.deserialize(compile_config["loss"]), metrics=compile_config["metrics"])
            if state or optimizer_info.get("iterations"):
                # The weights give the slots' shapes and dtypes, in the order the optimizer sees the parameters.
                model.optimizer.set_state(state, model.get_weights(), optimizer_info["iterations"])
    except (KeyError, TypeError, ValueError) as error:
        raise bad(f"its contents do not describe a model ({type(error).__name__}: {error})") from None
    return model
