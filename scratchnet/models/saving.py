"""Saving a model to ONE ``.npz`` file (weights + JSON config + optimizer state) and loading it back.

File layout (a plain NumPy ``.npz``, readable with ``np.load(path, allow_pickle=False)``):

* ``config``: a 0-d unicode array holding JSON: ``{"format": "scratchnet", "format_version": 1,
  "class_name": "Sequential", "config": {...}, "compile_config": {...} | null, "weights": [...],
  "optimizer": {"iterations": t, "state_count": k} | null}``;
* ``weight_000``, ``weight_001``, ...: the weights in Keras order (layer by layer, kernel then bias);
* ``optimizer_000``, ...: the optimizer's per-parameter state (Adam's m and v, SGD's velocity).

The file is written to a temporary file in the same directory and then renamed over the target
(``os.replace``), so a crash never leaves a half-written model behind.

``.keras`` is Keras 3's format, written and read by ``scratchnet.models.keras_format`` (no TensorFlow
needed): ``save_model(model, "x.keras")`` writes what ``keras.models.load_model`` opens, and ``load_model``
reads a ``.keras`` file Keras wrote, whatever its name. Weights alone (``save_weights`` /
``load_weights``) go to Keras's ``.weights.h5`` or to an ``.npz`` of the same layout as a model file's
weights (``config`` then holds ``{"format": "scratchnet-weights", ...}``).
"""

import json
import os
import warnings
import zipfile

import numpy as np

from scratchnet import losses, optimizers
from scratchnet.fileio import atomic_write

from . import keras_format
from .registry import MODEL_CLASSES, model_class

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT", "FORMAT_VERSION"]

FORMAT, FORMAT_VERSION = "scratchnet", 1
WEIGHTS_FORMAT = "scratchnet-weights"


def _check_overwrite(path, overwrite):
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")


def save_model(model, path, overwrite=True):
    """Write ``model`` to ``path`` atomically: a Keras 3 archive for a ``.keras`` name, else scratchnet's
    ``.npz`` (the name is used as given; ".npz" is not appended)."""
    model._check_built()
    path = os.fspath(path)
    _check_overwrite(path, overwrite)
    if path.endswith(".keras"):
        keras_format.save_keras(model, path)
        return
    if path.endswith(".h5"):
        raise ValueError(f"{path!r}: scratchnet does not write HDF5 model files; save as .keras (Keras 3's format) "
                         "or .npz (scratchnet's), or save the weights alone with save_weights('x.weights.h5')")
    if MODEL_CLASSES.get(type(model).__name__) is not type(model):
        raise TypeError(f"save_model expects a registered model class ({', '.join(sorted(MODEL_CLASSES))}); "
                        f"received {type(model).__name__}")
    weights = model.get_weights()
    names = [item.split("/", 1)[1] for item, _, _ in model._weight_items()]
    if model.optimizer is not None:
        model._sync_optimizer(model._trainable_params())
    state = model.optimizer.get_state() if model.optimizer is not None else []
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class_name": type(model).__name__,
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
    """Read a model written by ``save_model`` or by Keras: same layers, weights, dtype and (if compiled)
    optimizer state. The format is read from the file's contents, not its name.

    Raises FileNotFoundError when ``path`` does not exist and a ValueError naming the file when it is
    neither a complete scratchnet model file nor a Keras 3 archive of layers scratchnet has (the message
    names the first layer it lacks).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    if keras_format.is_keras_archive(path):
        return keras_format.load_keras(path, compile=compile)
    if os.path.isfile(path) and keras_format.is_hdf5(path):
        raise ValueError(f"{path!r} is an HDF5 file (a Keras 2 .h5 model or a .weights.h5 file): scratchnet reads "
                         "Keras 3 .keras archives and its own .npz files; weights go in with model.load_weights")
    return _load_npz(path, compile)


def _load_npz(path, compile):

    def bad(reason):
        return ValueError(f"{path!r} is not a valid scratchnet model file: {reason}")

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            is_npy = file.read(6) == b"\x93NUMPY"
        if not is_npy:  # np.load would guess "pickled data" for any other bytes
            raise bad("it is neither an .npz archive nor a Keras .keras archive (not a zip file; truncated?)")
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
    except zipfile.BadZipFile as error:
        raise bad(f"it is neither an .npz archive nor a Keras .keras archive ({error})") from None
    except (OSError, EOFError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise bad(f"{type(error).__name__}: {error}") from None

    try:
        model = model_class(header.get("class_name")).from_config(header["config"])
        model.set_weights(weights)
        compile_config = header.get("compile_config")
        if compile and compile_config is not None:
            model.compile(optimizer=optimizers.deserialize(compile_config["optimizer"]),
                          loss=losses.deserialize(compile_config["loss"]), metrics=compile_config["metrics"])
            if state or optimizer_info.get("iterations"):
                params = model._trainable_params()
                model.optimizer.set_state(state, params, optimizer_info["iterations"])
                model._optimizer_params = list(params)
    except (KeyError, TypeError, ValueError) as error:
        raise bad(f"its contents do not describe a model ({type(error).__name__}: {error})") from None
    return model


def save_weights(model, path, overwrite=True):
    """Write the model's weights atomically: Keras's layout for ``.weights.h5`` (what Keras 3 requires of
    ``save_weights``, optimizer state included), scratchnet's for ``.npz``."""
    model._check_built()
    path = os.fspath(path)
    _check_overwrite(path, overwrite)
    if path.endswith(".weights.h5"):
        keras_format.save_weights_h5(model, path)
        return
    if not path.endswith(".npz"):
        raise ValueError(f"The filename must end in `.weights.h5` (Keras's weights file) or `.npz` (scratchnet's). "
                         f"Received: filepath={path}")
    items = model._weight_items()
    header = {"format": WEIGHTS_FORMAT, "format_version": FORMAT_VERSION,
              "weights": [{"name": name, "shape": list(w.shape), "dtype": w.dtype.name} for name, w, _ in items]}
    arrays = {"config": np.array(json.dumps(header))}
    arrays.update({f"weight_{i:03d}": w for i, (_, w, _) in enumerate(items)})
    with atomic_write(path) as file:
        np.savez(file, **arrays)


def load_weights(model, path, skip_mismatch=False):
    """Load weights into a built model from ``.weights.h5`` (Keras's or ours), ``.npz`` (``save_weights``'s or
    a whole scratchnet model file) or a ``.keras`` archive, checking every shape.

    With ``skip_mismatch`` a layer whose weights do not fit is skipped with a warning instead of raising.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No weights file at {path!r}")
    model._check_built()
    if keras_format.is_keras_archive(path) or keras_format.is_hdf5(path):
        keras_format.load_weights_h5(model, path, skip_mismatch=skip_mismatch)
        return
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["config"][()]))
            if header.get("format") not in (FORMAT, WEIGHTS_FORMAT):
                raise ValueError("its config is not a scratchnet config")
            saved = [archive[f"weight_{i:03d}"] for i in range(len(header["weights"]))]
    except (OSError, EOFError, KeyError, TypeError, ValueError, AttributeError, zipfile.BadZipFile,
            json.JSONDecodeError) as error:
        raise ValueError(f"{path!r} is not a weights file scratchnet reads (.weights.h5, .npz or .keras): "
                         f"{type(error).__name__}: {error}") from None
    items = model._weight_items()
    if len(saved) != len(items) and not skip_mismatch:
        raise ValueError(f"{path!r} holds {len(saved)} weight arrays; model {model.name!r} has {len(items)}")
    for (name, array, _), value in zip(items, saved):
        if value.shape != array.shape:
            if skip_mismatch:
                warnings.warn(f"Skipping weight {name}: shape {array.shape}, the file has {value.shape}", stacklevel=2)
                continue
            raise ValueError(f"{path!r}: weight {name} has shape {array.shape}; the file holds {value.shape}")
        array[...] = value
