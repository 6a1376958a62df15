"""Keras 3's own files, read and written without TensorFlow: the ``.keras`` archive and ``.weights.h5``.

A ``.keras`` file is a zip archive of three members (Keras 3's ``saving_lib``):

* ``metadata.json``: ``{"keras_version": ..., "date_saved": ...}``;
* ``config.json``: the model as Keras serialises it, ``{"module": "keras", "class_name": "Sequential",
  "config": {"name", "trainable", "dtype", "layers": [{"module": "keras.layers", "class_name": "Dense",
  "config": {...}, "build_config": {"input_shape": [null, ...]}}, ...]}, "compile_config": {...}}``;
* ``model.weights.h5``: an HDF5 file with every layer's variables under ``layers/<key>/vars/0``, ``1``, ...
  (``<key>`` is the snake_case class name made unique in order: dense, dense_1, ...; a layer's variables
  in creation order: kernel, bias), and the optimizer's under ``optimizer/vars``: the iteration count,
  the learning rate, then each trainable variable's slots in turn (Adam: m, v; SGD with momentum: the
  velocity).

A ``.weights.h5`` file (``save_weights``) is that HDF5 file on its own. Both engines use the same
layouts for every array (NHWC, HWIO kernels, (in, out) dense kernels), so no array is transposed.

h5py is imported only when such a file is read or written.
"""

import datetime
import inspect
import io
import json
import os
import warnings
import zipfile

import numpy as np

from scratchnet import __version__, initializers, losses, optimizers
from scratchnet import layers as layers_module
from scratchnet import metrics as metrics_module
from scratchnet.fileio import atomic_write
from scratchnet.layers.base import FUNCTIONAL_API_MESSAGE, snake_case
from scratchnet.layers.weights import layer_weights

from .registry import model_class

__all__ = ["save_keras", "load_keras", "save_weights_h5", "load_weights_h5", "is_keras_archive", "is_hdf5",
           "KERAS_LAYERS"]

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
KERAS_VERSION = "3.15.1"
"""The Keras release whose format this module writes and was checked against."""

KERAS_LAYERS = ("Dense", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Activation", "Reshape",
                "BatchNormalization", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                "Softmax", "ReLU", "LeakyReLU")
"""scratchnet layer classes that are Keras layers of the same name and arguments."""

_KERAS_ALIASES = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
                  "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool2D": "GlobalMaxPooling2D"}

_OPTIMIZERS_WITH_KERAS_STATE = ("SGD", "Adam")
"""Optimizers whose per-weight state is laid out as Keras lays it out (checked by training in both)."""

_NEUTRAL = {"data_format": "channels_last", "dilation_rate": (1, 1), "groups": 1, "reduction": "sum_over_batch_size",
            "axis": -1, "label_smoothing": 0.0}
"""Keras options scratchnet lacks, at the values that make them do nothing."""

_IGNORED = ("name", "ema_momentum", "ema_overwrite_frequency", "renorm_momentum")
"""Keras options that change nothing scratchnet computes (they act only with ``use_ema=True`` or
``renorm=True``, which are refused)."""

_MAX_MEMBER_BYTES = 1 << 32  # a zip member claiming more than 4 GiB is refused (a decompression bomb)


def _error(path, reason):
    return ValueError(f"{os.fspath(path)!r}: {reason}")


def is_keras_archive(path):
    """True for a zip archive with a ``config.json`` (a Keras 3 ``.keras`` file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return CONFIG in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def is_hdf5(path):
    """True for an HDF5 file (a Keras 2 ``.h5`` model or a ``.weights.h5`` file), by its signature."""
    with open(path, "rb") as file:
        return file.read(8) == b"\x89HDF\r\n\x1a\n"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Reading and writing Keras files needs h5py: pip install h5py") from None
    return h5py


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def _keras_object(module, class_name, config):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _keras_value(value):
    """A scratchnet config value as Keras writes it: initializer dicts get their module."""
    if isinstance(value, dict) and "class_name" in value:
        return _keras_object("keras.initializers", value["class_name"], dict(value.get("config", {})))
    return value


def _keras_layer_config(layer, dtype_policy, input_shape):
    kind = type(layer).__name__
    if kind not in KERAS_LAYERS:
        raise ValueError(f"layer {layer.name!r} ({kind}) has no Keras counterpart: save this model as .npz")
    config = {key: _keras_value(value) for key, value in layer.get_config().items() if key != "input_shape"}
    config.update(trainable=layer.trainable, dtype=dtype_policy)
    return {**_keras_object("keras.layers", kind, config), "build_config": {"input_shape": [None, *input_shape]}}


def _keras_compile_config(model):
    """The compile() arguments as Keras writes them, or None when there is no Keras equivalent."""
    if model.loss is None or not hasattr(model.loss, "get_config"):
        return None
    optimizer = optimizers.serialize(model.optimizer)
    learning_rate = optimizer["config"].get("learning_rate")
    if isinstance(learning_rate, dict):  # a schedule
        optimizer["config"]["learning_rate"] = _keras_object(
            "keras.optimizers.schedules", learning_rate["class_name"], learning_rate.get("config", {}))
    optimizer["config"].setdefault("name", optimizer["class_name"].lower())
    loss = losses.serialize(model.loss)
    metrics = list(model.metric_names)
    return {"optimizer": _keras_object("keras.optimizers", optimizer["class_name"], optimizer["config"]),
            "loss": _keras_object("keras.losses", loss["class_name"], loss["config"]), "loss_weights": None,
            "metrics": metrics or None, "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def _keras_config(model):
    policy = _keras_object("keras", "DTypePolicy", {"name": model.dtype})
    shape = tuple(model.input_shape[1:])
    layers = [_keras_object("keras.layers", "InputLayer", {"batch_shape": [None, *shape], "dtype": model.dtype,
                                                           "sparse": False, "name": "input_layer"})]
    for layer in model.layers:
        layers.append(_keras_layer_config(layer, policy, shape))
        shape = tuple(layer.output_shape(shape))
    config = {"name": model.name, "trainable": True, "dtype": policy, "layers": layers,
              "build_input_shape": [None, *model.input_shape[1:]]}
    return {**_keras_object("keras", "Sequential", config),
            "build_config": {"input_shape": [None, *model.input_shape[1:]]},
            "compile_config": _keras_compile_config(model)}


def _layer_keys(class_names):
    """Keras's names of the layers' groups in the weights file: snake_case class names made unique."""
    used, keys = {}, []
    for name in class_names:
        base = snake_case(name)
        if base in used:
            used[base] += 1
            keys.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            keys.append(base)
    return keys


def _optimizer_arrays(model):
    """The optimizer's variables in Keras's order (iterations, learning rate, slots), or None."""
    optimizer = model.optimizer
    if optimizer is None or type(optimizer).__name__ not in _OPTIMIZERS_WITH_KERAS_STATE:
        return None
    params = model._trainable_params()
    model._sync_optimizer(params)
    state = optimizer.get_state()
    if not state and optimizer.iterations == 0:
        return None  # never stepped: Keras too writes no optimizer variables before it builds them
    try:
        learning_rate = float(optimizer.learning_rate)
    except (TypeError, ValueError):
        return None
    # Keras keeps its learning-rate variable in the model's float type (floatx)
    return [np.array(optimizer.iterations, dtype=np.int64), np.array(learning_rate, dtype=model.dtype), *state]


def _write_weights(h5, model, include_optimizer=True):
    h5.create_group("vars").attrs["name"] = model.name
    for layer, key in zip(model.layers, _layer_keys(type(layer).__name__ for layer in model.layers)):
        group = h5.create_group(f"layers/{key}/vars")
        group.attrs["name"] = layer.name
        for i, (_, array, _) in enumerate(layer_weights(layer)):
            group.create_dataset(str(i), data=array)
    arrays = _optimizer_arrays(model) if include_optimizer else None
    if arrays is not None:
        group = h5.create_group("optimizer/vars")
        group.attrs["name"] = getattr(model.optimizer, "name", type(model.optimizer).__name__.lower())
        for i, array in enumerate(arrays):
            group.create_dataset(str(i), data=array)


def _weights_bytes(model, include_optimizer=True):
    buffer = io.BytesIO()
    with _h5py().File(buffer, "w") as h5:
        _write_weights(h5, model, include_optimizer)
    return buffer.getvalue()


def save_keras(model, path):
    """Write ``model`` as a Keras 3 ``.keras`` archive (atomically) that ``keras.models.load_model`` opens."""
    model._check_built()
    config = _keras_config(model)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "producer": f"scratchnet {__version__}"}
    weights = _weights_bytes(model)
    with atomic_write(path) as file, zipfile.ZipFile(file, "w") as archive:
        archive.writestr(METADATA, json.dumps(metadata))
        archive.writestr(CONFIG, json.dumps(config))
        archive.writestr(WEIGHTS, weights)


def save_weights_h5(model, path):
    """Write the weights (and the optimizer's state) as Keras's ``.weights.h5``, atomically."""
    model._check_built()
    data = _weights_bytes(model)
    with atomic_write(path) as file:
        file.write(data)


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def _read_member(archive, name, path):
    info = archive.getinfo(name)
    if info.file_size > _MAX_MEMBER_BYTES:
        raise _error(path, f"its member {name} declares {info.file_size} bytes; refusing to read it")
    return archive.read(name)


def _class_name(config):
    name = config.get("class_name")
    return _KERAS_ALIASES.get(name, name)


def _dtype_name(policy):
    if isinstance(policy, dict):
        policy = policy.get("config", {}).get("name")
    return policy


def _config_value(value):
    """A Keras config value as scratchnet takes it (initializers without their null options)."""
    if isinstance(value, dict) and "class_name" in value:
        options = {k: v for k, v in (value.get("config") or {}).items() if v is not None and k != "seed"}
        return {"class_name": value["class_name"], "config": options}
    return value


def _is_neutral(key, value):
    if value is None or value is False or key in _IGNORED:
        return True
    if key in _NEUTRAL:
        neutral = _NEUTRAL[key]
        return value == neutral or (isinstance(value, (list, tuple)) and tuple(value) == neutral)
    return False


def _layer_from_keras(config, path):
    """The scratchnet layer a Keras layer config describes, or a ValueError naming what is unsupported."""
    kind, options = _class_name(config), dict(config.get("config") or {})
    name = options.get("name", kind)
    cls = getattr(layers_module, kind, None) if kind in KERAS_LAYERS else None
    if cls is None:
        raise _error(path, f"layer {name!r} ({config.get('class_name')}) is not supported by scratchnet, "
                           f"which has {', '.join(k for k in KERAS_LAYERS if hasattr(layers_module, k))}")
    dtype = _dtype_name(options.pop("dtype", None))
    accepted = inspect.signature(cls.__init__).parameters
    arguments = {"name": options.pop("name", None)}
    trainable = options.pop("trainable", True)
    for key in ("batch_shape", "batch_input_shape", "input_shape"):  # read by _input_shape
        options.pop(key, None)
    for key, value in options.items():
        if key in accepted:
            arguments[key] = _config_value(value)
        elif not _is_neutral(key, value):
            raise _error(path, f"layer {name!r} ({kind}) uses {key}={value!r}, which scratchnet does not support")
    for key, value in list(arguments.items()):
        if key.endswith("_initializer") and isinstance(value, dict):
            try:
                initializers.get(value)
            except (ValueError, TypeError):
                del arguments[key]  # only used to initialise: the file's weights replace the values
    try:
        layer = cls(**arguments)
    except (TypeError, ValueError) as error:
        raise _error(path, f"layer {name!r} ({kind}): {error}") from None
    layer.trainable = bool(trainable)
    return layer, dtype


def _input_shape(model_config, layer_configs):
    for config in layer_configs:
        options = config.get("config") or {}
        shape = options.get("batch_shape") or options.get("batch_input_shape")
        if shape:
            return tuple(shape)[1:]
        if options.get("input_shape"):
            return tuple(options["input_shape"])
    shape = model_config.get("build_input_shape") or (model_config.get("build_config") or {}).get("input_shape")
    return tuple(shape)[1:] if shape else None


def model_from_keras_config(config, path):
    """An unbuilt-weights scratchnet ``Sequential`` from Keras's ``config.json`` (layers, dtype, input shape)."""
    Sequential = model_class("Sequential")

    if not isinstance(config, dict) or config.get("class_name") is None:
        raise _error(path, "its config.json does not describe a Keras model")
    if config["class_name"] != "Sequential":
        raise _error(path, f"it holds a Keras {config['class_name']} model. {FUNCTIONAL_API_MESSAGE}")
    model_config = config.get("config") or {}
    layer_configs = list(model_config.get("layers") or [])
    body = [c for c in layer_configs if c.get("class_name") != "InputLayer"]
    pairs = [_layer_from_keras(c, path) for c in body]
    dtypes = {dtype for _, dtype in pairs if dtype} or {_dtype_name(model_config.get("dtype")) or "float32"}
    if len(dtypes) != 1 or next(iter(dtypes)) not in ("float32", "float64"):
        raise _error(path, f"its layers compute in {sorted(map(str, dtypes))}; scratchnet models are all float32 "
                           "or all float64")
    shape = _input_shape(config, layer_configs)
    if shape is None or any(d is None for d in shape):
        raise _error(path, f"the model has no fully known input shape (received {shape})")
    return Sequential([layer for layer, _ in pairs], input_shape=shape, dtype=dtypes.pop(),
                      name=model_config.get("name", "sequential"))


def _read_layer_weights(h5, model, path, skip_mismatch=False):
    groups = h5.get("layers") or h5.get("_layer_checkpoint_dependencies")
    keys = _layer_keys(type(layer).__name__ for layer in model.layers)
    for layer, key in zip(model.layers, keys):
        targets = layer_weights(layer)
        group = groups.get(f"{key}/vars") if groups is not None else None
        stored = [] if group is None else [group[str(i)] for i in range(len(group))]
        problem = None
        if len(stored) != len(targets):
            problem = f"layer {layer.name!r} has {len(targets)} weights; the file has {len(stored)} for {key!r}"
        else:
            for (name, array, _), dataset in zip(targets, stored):
                if dataset.shape != array.shape or dataset.dtype.kind not in "fiu":
                    problem = (f"layer {layer.name!r}: {name} has shape {array.shape}; the file holds "
                               f"{dataset.dtype} {dataset.shape}")
                    break
        if problem is not None:
            if skip_mismatch:
                warnings.warn(f"Skipping {problem}", stacklevel=3)
                continue
            raise _error(path, problem)
        for (_, array, _), dataset in zip(targets, stored):
            array[...] = np.asarray(dataset[()], dtype=array.dtype)


def _read_optimizer_state(h5, model):
    """Restore the optimizer's state from ``optimizer/vars`` when it matches the model's optimizer."""
    group = h5.get("optimizer/vars")
    optimizer = model.optimizer
    if group is None or optimizer is None or type(optimizer).__name__ not in _OPTIMIZERS_WITH_KERAS_STATE:
        return False
    arrays = [group[str(i)][()] for i in range(len(group))]
    params = model._trainable_params()
    owners = _repeat_per_slot(optimizer, params)
    try:
        if len(arrays) != 2 + len(owners):
            raise ValueError("a different number of variables")
        optimizer.set_state([np.asarray(a, dtype=p.dtype) for a, p in zip(arrays[2:], owners)], params,
                            int(arrays[0]))
    except (ValueError, IndexError, TypeError):
        warnings.warn(f"The saved state of optimizer {type(optimizer).__name__} does not match this model's "
                      "weights; the optimizer starts fresh.", stacklevel=3)
        return False
    model._optimizer_params = list(params)
    return True


def _repeat_per_slot(optimizer, params):
    """Each parameter repeated once per slot it has, to pair state arrays with their dtypes."""
    return [p for p in params for _ in optimizer._make_slots(p)]


def _compile_from_keras(model, compile_config, path):
    """Compile ``model`` as Keras's compile_config says; warn and leave it uncompiled where scratchnet
    lacks the optimizer, loss or a metric (as Keras does when compiling a loaded model fails)."""
    try:
        optimizer = _object_from_keras(compile_config.get("optimizer"), optimizers, "optimizer")
        loss = compile_config.get("loss")
        loss = losses.get(loss) if isinstance(loss, str) else _object_from_keras(loss, losses, "loss")
        metrics = []
        for metric in compile_config.get("metrics") or []:
            if isinstance(metric, dict):
                try:
                    metric = metrics_module.get(metric, loss)  # a metric object, where scratchnet has it
                except (ValueError, TypeError, KeyError):
                    metric = snake_case(metric.get("class_name", ""))  # else its function, by Keras's name
            metrics_module.get(metric, loss)
            metrics.append(metric)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        warnings.warn(f"{os.fspath(path)!r}: the model is loaded uncompiled: {error}", stacklevel=3)
        model.optimizer = model.loss = None
        return False
    return True


def _object_from_keras(config, module, what):
    """An optimizer or loss from Keras's serialisation: its class by name, the options scratchnet takes."""
    if isinstance(config, str):
        return module.get(config)
    if isinstance(config, dict) and config.get("class_name") == "function":  # a loss given as a function
        return module.get(config.get("config"))
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"unknown {what} {config!r}")
    cls = getattr(module, config["class_name"], None)
    if not isinstance(cls, type):
        raise ValueError(f"scratchnet has no {what} {config['class_name']}")
    accepted = inspect.signature(cls.__init__).parameters
    options = {}
    for key, value in (config.get("config") or {}).items():
        if key in accepted:
            if isinstance(value, dict) and "class_name" in value:  # a learning-rate schedule
                value = {"class_name": value["class_name"], "config": value.get("config", {})}
            options[key] = value
        elif not (_is_neutral(key, value) or key == "name"):
            raise ValueError(f"{what} {config['class_name']} with {key}={value!r} is not supported")
    return module.deserialize({"class_name": config["class_name"], "config": options})


def load_keras(path, compile=True):
    """A scratchnet ``Sequential`` from a Keras 3 ``.keras`` archive: same layers, weights, dtype and, when
    scratchnet has them, compile settings and optimizer state."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if WEIGHTS not in names:
                extra = " (sharded or .npz weights are not supported)" if any(n.endswith(".json") for n in names
                                                                              if n != CONFIG) else ""
                raise _error(path, f"the archive has no {WEIGHTS}{extra}")
            config = json.loads(_read_member(archive, CONFIG, path))
            weights = _read_member(archive, WEIGHTS, path)
    except zipfile.BadZipFile as error:
        raise _error(path, f"not a readable .keras archive ({error})") from None
    except json.JSONDecodeError as error:
        raise _error(path, f"its config.json is not JSON ({error})") from None
    model = model_from_keras_config(config, path)
    h5py = _h5py()
    try:
        with h5py.File(io.BytesIO(weights), "r") as h5:
            _read_layer_weights(h5, model, path)
            if (compile and config.get("compile_config")
                    and _compile_from_keras(model, config["compile_config"], path)):
                _read_optimizer_state(h5, model)
    except OSError as error:
        raise _error(path, f"its {WEIGHTS} is not a readable HDF5 file ({error})") from None
    return model


def load_weights_h5(model, path, skip_mismatch=False):
    """Load a Keras ``.weights.h5`` file (or the weights of a ``.keras`` archive) into a built ``model``."""
    h5py = _h5py()
    if is_keras_archive(path):
        with zipfile.ZipFile(path) as archive:
            source = io.BytesIO(_read_member(archive, WEIGHTS, path))
    else:
        source = os.fspath(path)
    try:
        with h5py.File(source, "r") as h5:
            _read_layer_weights(h5, model, path, skip_mismatch)
            _read_optimizer_state(h5, model)
    except OSError as error:
        raise _error(path, f"not a readable HDF5 weights file ({error})") from None
