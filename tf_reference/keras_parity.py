"""Parity runs of small Keras-style models built from the newer layers, against their Keras twins.

The zoo's seven models (`tf_reference.parity`) use Dense, Conv2D, max-pooling and ReLU. The models here
exercise everything else a Keras script may use: BatchNormalization (training and inference, its moving
statistics), AveragePooling2D, the global poolings, the Softmax / ReLU / LeakyReLU layers, every activation
by name, mean squared and mean absolute error, RMSprop, AdamW and the learning-rate schedules.

A run builds the scratchnet model, copies it to Keras with `tf_reference.transfer.to_keras` (same layers,
same weights, BatchNormalization's four weights in Keras's order) and feeds both the same batches:

* `one_batch`: predictions in inference mode, outputs in training mode, the loss, every gradient, and
  BatchNormalization's moving statistics after the training forwards;
* `training`: every weight (the moving statistics too) after step 1 and after the last step of the same
  optimizer, and each step's loss.

Each comparison is a `tf_reference.parity.Pair`, measured with max |difference| / max |TF|.
"""
from __future__ import annotations

import numpy as np

from tf_reference.config import deterministic

tf = deterministic()

from scratchnet import Sequential, layers  # noqa: E402
from scratchnet import optimizers as sn_optimizers  # noqa: E402
from tf_reference.models import floatx  # noqa: E402
from tf_reference.parity import Pair  # noqa: E402
from tf_reference.transfer import optimizer_to_keras, to_keras  # noqa: E402

BATCH_SIZE = 8
"""Examples per batch: batch statistics over 8 examples (x positions) are well defined and fast."""

STEPS = 5


# A layer feeding a BatchNormalization has no bias (as usual): the normalisation removes any per-channel
# constant, so that bias's gradient is exactly 0 and both engines only differ in rounding noise around it.


def _bn_mlp():
    return [layers.Dense(12, use_bias=False, input_shape=(10,)), layers.BatchNormalization(), layers.ReLU(),
            layers.Dense(12, use_bias=False), layers.BatchNormalization(center=False, momentum=0.9),
            layers.Activation("tanh"), layers.Dense(4, activation="softmax")]


def _bn_cnn():
    return [layers.Conv2D(4, 3, padding="same", use_bias=False, input_shape=(8, 8, 2)),
            layers.BatchNormalization(epsilon=1e-5), layers.Activation("elu"), layers.AveragePooling2D(2),
            layers.Conv2D(6, 3, activation="gelu"), layers.GlobalAveragePooling2D(), layers.Dense(3),
            layers.Softmax()]


def _pooling_regression():
    return [layers.Conv2D(5, 3, activation="leaky_relu", input_shape=(7, 7, 1)),
            layers.AveragePooling2D(2, strides=1, padding="same"), layers.GlobalMaxPooling2D(),
            layers.Dense(6, activation="softplus"), layers.Dense(2)]


def _activations_mae():
    return [layers.Dense(8, activation="silu", input_shape=(6,)), layers.LeakyReLU(),
            layers.Dense(8, activation="swish"), layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.05),
            layers.Dense(8, activation="gelu"), layers.ReLU(6.0), layers.Dense(3)]


def _bn_binary():  # BatchNormalization first: normalising the input features
    return [layers.BatchNormalization(scale=False, input_shape=(5,)), layers.Dense(6, activation="softplus"),
            layers.Dense(1, activation="sigmoid")]


MODELS = {
    # name: (layers, labels, loss)
    "bn_mlp": (_bn_mlp, "sparse", "sparse_categorical_crossentropy"),
    "bn_cnn": (_bn_cnn, "one_hot", "categorical_crossentropy"),
    "pooling_mse": (_pooling_regression, "regression", "mse"),
    "activations_mae": (_activations_mae, "regression", "mae"),
    "bn_binary": (_bn_binary, "binary", "binary_crossentropy"),
}
"""Small models, each using several of the newer layers, activations and losses."""

OPTIMIZERS = {
    "sgd": lambda: sn_optimizers.SGD(0.05),
    "momentum": lambda: sn_optimizers.SGD(0.01, momentum=0.9, nesterov=True),
    "rmsprop": lambda: sn_optimizers.RMSprop(0.001),
    "rmsprop_centered": lambda: sn_optimizers.RMSprop(0.001, rho=0.8, momentum=0.5, centered=True),
    "adam": lambda: sn_optimizers.Adam(0.001),
    "adamw": lambda: sn_optimizers.AdamW(0.001, weight_decay=0.05),
    "sgd_exponential": lambda: sn_optimizers.SGD(sn_optimizers.schedules.ExponentialDecay(0.1, 2, 0.5)),
    "adam_piecewise": lambda: sn_optimizers.Adam(sn_optimizers.schedules.PiecewiseConstantDecay([1, 3],
                                                                                                [0.01, 0.003, 0.001])),
    "rmsprop_cosine": lambda: sn_optimizers.RMSprop(sn_optimizers.schedules.CosineDecay(
        0.0005, 4, alpha=0.1, warmup_target=0.002, warmup_steps=2)),
    "sgd_weight_decay": lambda: sn_optimizers.SGD(0.05, weight_decay=0.1),
}
"""scratchnet optimizers; each run gives Keras the twin `optimizer_to_keras` makes of it."""

ADAM_LIKE = ("adam", "adamw", "adam_piecewise")
"""Runs whose float32 weights get `tf_reference.parity.ADAM_FLOAT32_TOLERANCE` (see there why)."""


def make_batches(name: str, count: int, batch_size: int = BATCH_SIZE, seed: int = 0):
    """`count` batches (x, y) for model `name`, float64 (each engine casts): inputs in [-1, 1) off-centre."""
    make_layers, labels, _ = MODELS[name]
    model = Sequential(make_layers(), dtype="float64")
    input_shape, output_shape = _example_shape(model.input_shape), _example_shape(model.output_shape)
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        x = 0.3 + rng.uniform(-1, 1, (batch_size, *input_shape))
        batches.append((x, _labels(labels, output_shape, batch_size, rng)))
    return batches


def _example_shape(shape):
    """One example's shape, with or without Keras's leading None batch axis."""
    shape = tuple(shape)
    return shape[1:] if shape and shape[0] is None else shape


def _labels(kind, output_shape, n, rng):
    classes = output_shape[-1]
    if kind == "sparse":
        return rng.integers(0, classes, n)
    if kind == "one_hot":
        return np.eye(classes)[rng.integers(0, classes, n)]
    if kind == "binary":
        return rng.integers(0, 2, (n, 1)).astype(np.float64)
    return rng.standard_normal((n, *output_shape))


def build_pair(name: str, dtype: str, optimizer: str = "sgd"):
    """The scratchnet model (seed 0) compiled with `optimizer`, and its Keras twin with the same weights
    and the twin optimizer: (model, keras_model, keras_optimizer)."""
    make_layers, _, loss = MODELS[name]
    model = Sequential(make_layers(), dtype=dtype, seed=0, name=name)
    model.compile(OPTIMIZERS[optimizer](), loss, metrics=[])
    keras_model = to_keras(model, compile=True)
    with floatx(dtype):
        keras_optimizer = optimizer_to_keras(model.optimizer)
    return model, keras_model, keras_optimizer


def _keras_loss_and_grads(keras_model, x, y):
    """Keras's batch loss (its compiled loss object on the model's output, which reads the logits of a
    softmax/sigmoid output, as ``fit``) and the gradients of the trainable variables."""
    x = tf.constant(x)
    y = tf.constant(y)
    with tf.GradientTape() as tape:
        outputs = keras_model(x, training=True)
        loss = keras_model.loss(y, outputs)
    return loss, tape.gradient(loss, keras_model.trainable_variables)


def _keras_labels(model, y):
    return np.asarray(y) if np.asarray(y).dtype.kind in "iu" else np.asarray(y, dtype=model.dtype)


def one_batch(name: str, dtype: str, seed: int = 0) -> list[Pair]:
    """Predictions, training outputs, loss, gradients and moving statistics of one batch (same weights)."""
    model, keras_model, _ = build_pair(name, dtype, "sgd")
    (x, y), = make_batches(name, 1, seed=seed)
    x = x.astype(dtype)
    pairs = [Pair("predictions (inference)", model.predict(x), np.asarray(keras_model(x, training=False)), "logits")]
    pairs.append(Pair("outputs (training)", np.asarray(model(x, training=True)),
                      np.asarray(keras_model(x, training=True)), "logits"))
    loss_tf, grads_tf = _keras_loss_and_grads(keras_model, x, _keras_labels(model, y))
    loss = model.train_step(x, y)  # grads at the weights before its update; one more training forward
    pairs.append(Pair("loss", np.asarray(loss), np.asarray(loss_tf), "loss"))
    names = [f"{layer.name}/{key}" for layer in model.layers for key in layer.params]
    grads = [layer.grads[key] for layer in model.layers for key in layer.params]
    for what, grad, grad_tf in zip(names, grads, grads_tf, strict=True):
        pairs.append(Pair(f"gradient {what}", grad, np.asarray(grad_tf), "gradient"))
    for layer, keras_layer in zip(model.layers, keras_model.layers, strict=True):
        for key, statistic in layer.non_trainable_params.items():
            keras_value = next(v for v in keras_layer.non_trainable_variables if v.path.endswith(key))
            pairs.append(Pair(f"{layer.name}/{key} after 2 training forwards", statistic, keras_value.numpy(),
                              "gradient"))
    return pairs


def training(name: str, dtype: str, optimizer: str, steps: int = STEPS, seed: int = 0) -> list[Pair]:
    """Every weight (moving statistics included) after step 1 and step `steps`, and each step's loss."""
    model, keras_model, keras_optimizer = build_pair(name, dtype, optimizer)
    names = [f"{layer.name}/{key}" for layer in model.layers
             for key in (*layer.params, *layer.non_trainable_params)]
    kind = "adam" if optimizer in ADAM_LIKE else optimizer
    losses, losses_tf, pairs = [], [], []
    for step, (x, y) in enumerate(make_batches(name, steps, seed=seed), start=1):
        x = x.astype(dtype)
        loss_tf, grads_tf = _keras_loss_and_grads(keras_model, x, _keras_labels(model, y))
        keras_optimizer.apply_gradients(zip(grads_tf, keras_model.trainable_variables))
        losses_tf.append(float(loss_tf))
        losses.append(model.train_step(x, y))
        if step in (1, steps):
            for what, w, w_tf in zip(names, model.get_weights(), keras_model.get_weights(), strict=True):
                pairs.append(Pair(f"{optimizer} step {step} {what}", w, w_tf, "weights", kind))
    pairs.append(Pair(f"{optimizer} losses of steps 1..{steps}", np.asarray(losses), np.asarray(losses_tf),
                      "loss", kind))
    return pairs
