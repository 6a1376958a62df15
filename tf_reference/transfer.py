"""Moving a model between scratchnet and Keras: `to_keras(model)` and `from_keras(keras_model)`.

Layers map one to one by Keras name (Dense, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
GlobalMaxPooling2D, BatchNormalization, Softmax, ReLU, LeakyReLU, Flatten, Dropout, Activation, Reshape), with
the same configuration, and weights are copied by layer order and name (kernel/bias; BatchNormalization's
gamma, beta, moving_mean, moving_variance, in that Keras order), every shape asserted. Both engines use
the same layouts (NHWC activations, HWIO conv kernels, (in, out) dense kernels, Flatten in (h, w, c)
order), so no array is transposed.

scratchnet's `BiasAdd` has no Keras counterpart. `to_keras` folds it into the bias of the Conv2D/Dense
that produced its input (which must have no bias and no activation), across any MaxPooling2D layers in
between: max-pooling commutes exactly with adding a per-channel constant (rounding is monotonic, so
``max(x + b) == max(x) + b`` bit for bit), so notmnist_cnn's ``conv -> pool -> + bias -> relu`` becomes
Keras's ``Conv2D(bias) -> MaxPooling2D -> Activation(relu)``, loadable by plain Keras with nothing custom.
`from_keras` brings that back as a Conv2D with a bias: the same function, one layer fewer.

The compiled loss and optimizer travel too when they have a counterpart (SGD, Adam, AdamW, RMSprop, with a
number or a learning-rate schedule; the three cross-entropies, mean squared and mean absolute error);
optimizer state (momentum, Adam's m and v) does not: a transferred model starts a fresh optimizer.
"""
from __future__ import annotations

import numpy as np

from tf_reference.config import deterministic

tf = deterministic()
import keras  # noqa: E402  (after the deterministic set-up)

import scratchnet.layers as sn_layers  # noqa: E402
from scratchnet import losses as sn_losses  # noqa: E402
from scratchnet import optimizers as sn_optimizers  # noqa: E402
from scratchnet.models import Sequential  # noqa: E402

SUPPORTED = ("Dense", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
             "GlobalMaxPooling2D", "BatchNormalization", "Softmax", "ReLU", "LeakyReLU", "Flatten", "Dropout",
             "Activation", "Reshape", "BiasAdd", "InputLayer")
"""scratchnet layer classes `to_keras` understands (BiasAdd is folded, InputLayer dropped)."""


class TransferError(ValueError):
    """A model cannot be moved between the engines (unsupported layer, shape or weight mismatch)."""


# ------------------------------------------------------------------------------------------------
# scratchnet -> Keras
# ------------------------------------------------------------------------------------------------


def _keras_layer(layer):
    """The Keras layer with `layer`'s configuration (weights are set later), or None for InputLayer."""
    kind = type(layer).__name__
    if kind == "Dense":
        return keras.layers.Dense(layer.units, activation=layer.activation, use_bias=layer.use_bias)
    if kind == "Conv2D":
        return keras.layers.Conv2D(
            layer.filters, tuple(layer.kernel_size), strides=tuple(layer.strides), padding=layer.padding,
            activation=layer.activation, use_bias=layer.use_bias,
        )
    if kind == "MaxPooling2D":
        return keras.layers.MaxPooling2D(
            tuple(layer.pool_size), strides=tuple(layer.strides), padding=layer.padding
        )
    if kind == "AveragePooling2D":
        return keras.layers.AveragePooling2D(
            tuple(layer.pool_size), strides=tuple(layer.strides), padding=layer.padding
        )
    if kind == "GlobalAveragePooling2D":
        return keras.layers.GlobalAveragePooling2D(keepdims=layer.keepdims)
    if kind == "GlobalMaxPooling2D":
        return keras.layers.GlobalMaxPooling2D(keepdims=layer.keepdims)
    if kind == "BatchNormalization":
        return keras.layers.BatchNormalization(axis=-1, momentum=layer.momentum, epsilon=layer.epsilon,
                                               center=layer.center, scale=layer.scale)
    if kind == "Softmax":
        return keras.layers.Softmax(axis=layer.axis)
    if kind == "ReLU":
        return keras.layers.ReLU(max_value=layer.max_value, negative_slope=layer.negative_slope,
                                 threshold=layer.threshold)
    if kind == "LeakyReLU":
        return keras.layers.LeakyReLU(negative_slope=layer.negative_slope)
    if kind == "Flatten":
        return keras.layers.Flatten()
    if kind == "Dropout":
        return keras.layers.Dropout(layer.rate)
    if kind == "Activation":
        return keras.layers.Activation(layer.activation)
    if kind == "Reshape":
        return keras.layers.Reshape(tuple(layer.target_shape))
    if kind == "InputLayer":
        return None
    raise TransferError(f"cannot export layer {layer.name!r}: {kind} has no Keras counterpart "
                        f"(supported: {', '.join(SUPPORTED)})")


def _plan_keras_layers(model):
    """Pair every scratchnet layer with a Keras layer, folding each BiasAdd into an earlier layer.

    Returns a list of ``[keras_layer, {"kernel": array, "bias": array}]`` in order.
    """
    plan = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BiasAdd":
            _fold_bias(plan, layer)
            continue
        keras_layer = _keras_layer(layer)
        if keras_layer is not None:
            plan.append([keras_layer, {**layer.params, **getattr(layer, "non_trainable_params", {})}])
    return plan


def _fold_bias(plan, bias_layer):
    """Give `bias_layer`'s bias to the nearest earlier Conv2D/Dense, past MaxPooling2D layers only."""
    for keras_layer, weights in reversed(plan):
        if isinstance(keras_layer, keras.layers.MaxPooling2D):
            continue  # max(x + b) == max(x) + b exactly, per channel
        if (isinstance(keras_layer, (keras.layers.Conv2D, keras.layers.Dense)) and "bias" not in weights
                and keras_layer.activation is keras.activations.linear):
            keras_layer.use_bias = True  # not built yet: the bias weight is created at build time
            weights["bias"] = bias_layer.params["bias"]
            return
        break
    raise TransferError(
        f"cannot export BiasAdd {bias_layer.name!r}: Keras has no BiasAdd layer, and it does not follow a "
        "Conv2D/Dense without bias and activation (possibly through MaxPooling2D layers) to fold into"
    )


def _loss_to_keras(loss):
    if loss is None:
        return None
    config = sn_losses.serialize(loss)
    classes = {
        "SparseCategoricalCrossentropy": keras.losses.SparseCategoricalCrossentropy,
        "CategoricalCrossentropy": keras.losses.CategoricalCrossentropy,
        "BinaryCrossentropy": keras.losses.BinaryCrossentropy,
    }
    if config["class_name"] == "MeanSquaredError":
        return keras.losses.MeanSquaredError()
    if config["class_name"] == "MeanAbsoluteError":
        return keras.losses.MeanAbsoluteError()
    if config["class_name"] not in classes:
        raise TransferError(f"cannot export loss {config['class_name']}: a custom loss has no Keras counterpart")
    return classes[config["class_name"]](from_logits=config["config"].get("from_logits", False))


def schedule_to_keras(schedule):
    """The ``keras.optimizers.schedules`` twin of a scratchnet learning-rate schedule (same config)."""
    config = sn_optimizers.schedules.serialize(schedule)
    return getattr(keras.optimizers.schedules, config["class_name"])(**config["config"])


def optimizer_to_keras(optimizer):
    """The Keras twin of a scratchnet optimizer (same class, configuration and schedule; fresh state)."""
    if optimizer is None:
        return None
    config = dict(optimizer.get_config())
    classes = {"SGD": keras.optimizers.SGD, "Adam": keras.optimizers.Adam, "AdamW": keras.optimizers.AdamW,
               "RMSprop": keras.optimizers.RMSprop}
    kind = type(optimizer).__name__
    if kind not in classes:
        raise TransferError(f"cannot export optimizer {kind}: no Keras counterpart known")
    if isinstance(config["learning_rate"], dict):
        config["learning_rate"] = schedule_to_keras(sn_optimizers.schedules.deserialize(config["learning_rate"]))
    return classes[kind](**config)


_optimizer_to_keras = optimizer_to_keras


def to_keras(model, *, compile: bool = True) -> keras.Sequential:
    """A ``keras.Sequential`` computing the same function as scratchnet `model`, with its weights copied.

    With `compile` (default) and a compiled `model`, the Keras model is compiled with the matching loss,
    optimizer (fresh state) and ``metrics=["accuracy"]``.
    """
    dtype = np.dtype(model.dtype).name
    input_shape = tuple(model.input_shape)
    if input_shape and input_shape[0] is None:  # Keras's (None, ...) form
        input_shape = input_shape[1:]
    from tf_reference.models import floatx

    with floatx(dtype):
        plan = _plan_keras_layers(model)
        keras_model = keras.Sequential(
            [keras.Input(input_shape), *[keras_layer for keras_layer, _ in plan]], name=getattr(model, "name", None)
        )
    for keras_layer, weights in plan:
        _assign(keras_layer, weights)
    loss = getattr(model, "loss", None)
    optimizer = getattr(model, "optimizer", None)
    if compile and loss is not None and optimizer is not None:
        with floatx(dtype):
            keras_model.compile(optimizer=_optimizer_to_keras(optimizer), loss=_loss_to_keras(loss),
                                metrics=["accuracy"])
            # Build the optimizer's slots now so a saved file holds them and loads without warnings.
            keras_model.optimizer.build(keras_model.trainable_variables)
    return keras_model


def _assign(keras_layer, weights):
    """Set a built Keras layer's kernel/bias from a ``{"kernel": ..., "bias": ...}`` dict, checking shapes."""
    targets = {variable.path.split("/")[-1]: variable for variable in keras_layer.weights}
    if sorted(targets) != sorted(weights):
        raise TransferError(
            f"layer {keras_layer.name!r}: Keras weights {sorted(targets)} != scratchnet weights {sorted(weights)}"
        )
    for key, value in weights.items():
        value = np.asarray(value)
        if tuple(targets[key].shape) != value.shape:
            raise TransferError(
                f"layer {keras_layer.name!r}: {key} has shape {value.shape}, Keras expects {tuple(targets[key].shape)}"
            )
        targets[key].assign(value)


# ------------------------------------------------------------------------------------------------
# Keras -> scratchnet
# ------------------------------------------------------------------------------------------------


def _activation_name(activation) -> str:
    name = keras.activations.serialize(activation)
    name = name if isinstance(name, str) else name.get("config", name.get("class_name"))
    name = {"swish": "silu"}.get(name, name)
    if name not in sn_layers.ACTIVATIONS:
        raise TransferError(f"cannot import activation {name!r}; scratchnet knows {sn_layers.ACTIVATIONS}")
    return name


def _scratchnet_layer(layer):
    """The scratchnet layer with Keras `layer`'s configuration, or None for an InputLayer."""
    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "Dense":
        return sn_layers.Dense(layer.units, activation=_activation_name(layer.activation), use_bias=layer.use_bias)
    if kind == "Conv2D":
        if config.get("data_format", "channels_last") != "channels_last" or tuple(config["dilation_rate"]) != (1, 1) \
                or config.get("groups", 1) != 1:
            raise TransferError(f"cannot import Conv2D {layer.name!r}: only channels_last, undilated, ungrouped")
        return sn_layers.Conv2D(
            layer.filters, tuple(layer.kernel_size), strides=tuple(layer.strides), padding=layer.padding,
            activation=_activation_name(layer.activation), use_bias=layer.use_bias,
        )
    if kind in ("MaxPooling2D", "MaxPool2D"):
        if config.get("data_format", "channels_last") != "channels_last":
            raise TransferError(f"cannot import MaxPooling2D {layer.name!r}: only channels_last")
        return sn_layers.MaxPooling2D(tuple(layer.pool_size), strides=tuple(layer.strides), padding=layer.padding)
    if kind in ("AveragePooling2D", "AvgPool2D"):
        if config.get("data_format", "channels_last") != "channels_last":
            raise TransferError(f"cannot import AveragePooling2D {layer.name!r}: only channels_last")
        return sn_layers.AveragePooling2D(tuple(layer.pool_size), strides=tuple(layer.strides), padding=layer.padding)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D"):
        if config.get("data_format", "channels_last") != "channels_last":
            raise TransferError(f"cannot import {kind} {layer.name!r}: only channels_last")
        cls = sn_layers.GlobalMaxPooling2D if "Max" in kind else sn_layers.GlobalAveragePooling2D
        return cls(keepdims=bool(config.get("keepdims", False)))
    if kind == "BatchNormalization":
        if config.get("renorm") or config.get("synchronized"):
            raise TransferError(f"cannot import BatchNormalization {layer.name!r} with renorm or synchronized")
        axis = config["axis"][0] if isinstance(config["axis"], (list, tuple)) else config["axis"]
        try:
            rank = len(layer.input.shape)
        except (AttributeError, ValueError):  # a layer not connected to a model
            rank = None
        if axis != -1 and axis != (None if rank is None else rank - 1):
            raise TransferError(f"cannot import BatchNormalization {layer.name!r}: only the last axis (axis={axis})")
        return sn_layers.BatchNormalization(momentum=float(config["momentum"]), epsilon=float(config["epsilon"]),
                                            center=bool(config["center"]), scale=bool(config["scale"]))
    if kind == "Softmax":
        axis = config.get("axis", -1)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise TransferError(f"cannot import Softmax {layer.name!r} over several axes {axis}")
            axis = axis[0]
        return sn_layers.Softmax(axis=int(axis))
    if kind == "ReLU":
        return sn_layers.ReLU(max_value=config.get("max_value"), negative_slope=float(config["negative_slope"]),
                              threshold=float(config["threshold"]))
    if kind == "LeakyReLU":
        return sn_layers.LeakyReLU(negative_slope=float(config["negative_slope"]))
    if kind == "Flatten":
        return sn_layers.Flatten()
    if kind == "Dropout":
        if config.get("noise_shape") is not None:
            raise TransferError(f"cannot import Dropout {layer.name!r} with a noise_shape")
        return sn_layers.Dropout(layer.rate)
    if kind == "Activation":
        return sn_layers.Activation(_activation_name(layer.activation))
    if kind == "Reshape":
        return sn_layers.Reshape(tuple(layer.target_shape))
    if kind == "InputLayer":
        return None
    raise TransferError(f"cannot import layer {layer.name!r}: {kind} has no scratchnet counterpart")


def _loss_from_keras(loss):
    if loss is None:
        return None
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or type(loss).__name__
    from_logits = False if isinstance(loss, str) else bool(getattr(loss, "get_config", dict)().get("from_logits"))
    known = {
        "sparse_categorical_crossentropy": sn_losses.SparseCategoricalCrossentropy,
        "SparseCategoricalCrossentropy": sn_losses.SparseCategoricalCrossentropy,
        "categorical_crossentropy": sn_losses.CategoricalCrossentropy,
        "CategoricalCrossentropy": sn_losses.CategoricalCrossentropy,
        "binary_crossentropy": sn_losses.BinaryCrossentropy,
        "BinaryCrossentropy": sn_losses.BinaryCrossentropy,
    }
    regression = {"mean_squared_error": sn_losses.MeanSquaredError, "MeanSquaredError": sn_losses.MeanSquaredError,
                  "mse": sn_losses.MeanSquaredError, "mean_absolute_error": sn_losses.MeanAbsoluteError,
                  "MeanAbsoluteError": sn_losses.MeanAbsoluteError, "mae": sn_losses.MeanAbsoluteError}
    if name in regression:
        return regression[name]()
    if name not in known:
        return None
    return known[name](from_logits=from_logits)


def _optimizer_from_keras(optimizer):
    if optimizer is None:
        return None
    config = optimizer.get_config()
    if isinstance(config["learning_rate"], dict):  # a serialised learning-rate schedule
        schedule = config["learning_rate"]
        if schedule.get("class_name") not in ("ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay"):
            return None
        learning_rate = sn_optimizers.schedules.deserialize(schedule)
    else:
        learning_rate = float(config["learning_rate"])
    decay = config.get("weight_decay")
    decay = None if decay is None else float(decay)
    if isinstance(optimizer, keras.optimizers.SGD):
        return sn_optimizers.SGD(learning_rate=learning_rate, momentum=float(config["momentum"]),
                                 nesterov=bool(config["nesterov"]), weight_decay=decay)
    if isinstance(optimizer, keras.optimizers.RMSprop):
        return sn_optimizers.RMSprop(learning_rate=learning_rate, rho=float(config["rho"]),
                                     momentum=float(config["momentum"]), epsilon=float(config["epsilon"]),
                                     centered=bool(config["centered"]), weight_decay=decay)
    if isinstance(optimizer, keras.optimizers.Adam) and not config.get("amsgrad"):  # AdamW subclasses Adam
        cls = sn_optimizers.AdamW if isinstance(optimizer, keras.optimizers.AdamW) else sn_optimizers.Adam
        return cls(learning_rate=learning_rate, beta_1=float(config["beta_1"]), beta_2=float(config["beta_2"]),
                   epsilon=float(config["epsilon"]), weight_decay=decay)
    return None


def from_keras(keras_model, *, compile: bool = True) -> Sequential:
    """A scratchnet ``Sequential`` computing the same function as a Keras Sequential, weights copied.

    With `compile` (default) and a compiled Keras model whose optimizer (SGD, Adam, AdamW, RMSprop) and loss
    (a cross-entropy, mean squared or mean absolute error) scratchnet has, the scratchnet model is compiled
    the same way.
    """
    if not isinstance(keras_model, keras.Sequential):
        raise TransferError(f"only keras.Sequential models can be imported; received {type(keras_model).__name__}")
    input_shape = tuple(keras_model.inputs[0].shape[1:]) if keras_model.inputs else None
    if input_shape is None or any(d is None for d in input_shape):
        raise TransferError(f"the Keras model needs a fully known input shape; received {input_shape}")
    dtypes = {v.dtype for v in keras_model.weights}
    dtype = dtypes.pop() if len(dtypes) == 1 else "float32"

    pairs = []
    for keras_layer in keras_model.layers:
        layer = _scratchnet_layer(keras_layer)
        if layer is not None:
            pairs.append((layer, keras_layer))
    model = Sequential([layer for layer, _ in pairs], input_shape=input_shape, dtype=dtype,
                       name=keras_model.name)
    weights = []
    for layer, keras_layer in pairs:
        by_name = {v.path.split("/")[-1]: np.asarray(v.numpy()) for v in keras_layer.weights}
        for key, value in {**layer.params, **getattr(layer, "non_trainable_params", {})}.items():
            if key not in by_name:
                raise TransferError(f"layer {keras_layer.name!r}: Keras has no {key!r} weight")
            if value.shape != by_name[key].shape:
                raise TransferError(
                    f"layer {keras_layer.name!r}: {key} has shape {by_name[key].shape}, "
                    f"scratchnet expects {value.shape}"
                )
            weights.append(by_name[key])
    model.set_weights(weights)
    if compile and getattr(keras_model, "compiled", False):
        loss = _loss_from_keras(keras_model.loss)
        optimizer = _optimizer_from_keras(keras_model.optimizer)
        if loss is not None and optimizer is not None:
            model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model
