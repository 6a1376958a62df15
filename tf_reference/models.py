"""TensorFlow twins of the seven models of MODELS.md, with one interface for parity runs.

`build(name, dtype=..., num_classes=...)` returns a `Twin`:

* Keras twins (`KerasTwin`) for the Keras-sourced models ``mlp``, ``emnist_cnn``, ``kaggle_cnn``: a plain
  ``keras.Sequential`` with the source's layers and initialisers (``twin.keras_model``).
* tf.nn twins (`TFNNTwin`) for the TensorFlow-1-style models ``logreg``, ``softmax``, ``notmnist_cnn``,
  ``deep_mnist``: ``tf.Variable`` weights and a forward pass written with ``tf.nn`` ops, line for line as the
  source wrote it (e.g. notmnist_cnn adds its conv biases AFTER pooling).

Every twin's `variables` (and `get_weights()`) come in the order of scratchnet's ``model.get_weights()``
for the zoo model of the same name, so weights copy across by position. Every twin offers:

* ``forward(x, training=False, dropout_masks=None) -> (outputs, logits)``: outputs are what the model
  predicts (probabilities; logreg's sigmoid), logits the last layer's pre-activation values;
* ``loss(labels, outputs, logits)``: the source's mean loss (labels as class ids or one-hot);
* ``gradients(x, labels, ...) -> (loss, logits, [gradient per variable])``;
* ``train_step(x, labels, ...) -> loss``: one step of ``twin.optimizer`` (a Keras optimizer, set by
  `compile` or `make_optimizer`).

Dropout: TensorFlow's random masks cannot be reproduced outside TensorFlow, so for parity a list of
boolean keep-masks (one per dropout layer, in layer order) can be passed as ``dropout_masks``; each is
applied exactly as ``tf.nn.dropout`` does, ``where(mask, x * (1 / (1 - rate)), 0)``.

Weights are created with the MODELS.md initialisers using TensorFlow's RNG; parity runs overwrite them
with scratchnet's weights (`set_weights`), since the two engines' random streams cannot match.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from tf_reference.config import deterministic

tf = deterministic()
import keras  # noqa: E402  (after the deterministic set-up, which must precede the TensorFlow import)

NAMES = ("logreg", "softmax", "mlp", "notmnist_cnn", "emnist_cnn", "kaggle_cnn", "deep_mnist")
KERAS_MODELS = ("mlp", "emnist_cnn", "kaggle_cnn")
TF_NN_MODELS = ("logreg", "softmax", "notmnist_cnn", "deep_mnist")

INPUT_SHAPES = {
    "logreg": (785,),
    "softmax": (784,),
    "mlp": (28, 28, 1),
    "notmnist_cnn": (28, 28, 1),
    "emnist_cnn": (28, 28, 1),
    "kaggle_cnn": (28, 28, 1),
    "deep_mnist": (28, 28, 1),
}
"""Shape of one input example of each model (no batch axis)."""

DEFAULT_OPTIMIZERS = {
    "logreg": ("sgd", 1e-5),
    "softmax": ("sgd", 0.5),
    "mlp": ("adam", 1e-3),
    "notmnist_cnn": ("sgd", 0.05),
    "emnist_cnn": ("adam", 1e-3),
    "kaggle_cnn": ("adam", 1e-3),
    "deep_mnist": ("adam", 1e-4),
}
"""Each source's optimizer and learning rate (MODELS.md)."""


@contextlib.contextmanager
def floatx(dtype: str) -> Iterator[None]:
    """Run a block with Keras's global floatx and dtype policy set to `dtype`, so layers, optimizers'
    learning-rate variables and slots are created in that dtype (a float32 learning rate cast to float64
    would be 0.0010000000474974513, not 0.001)."""
    previous, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(np.dtype(dtype).name)
    keras.config.set_dtype_policy(np.dtype(dtype).name)  # Keras caches the policy at first use
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(previous_policy)


def make_optimizer(kind: str, learning_rate: float, dtype: str = "float32", **options) -> keras.optimizers.Optimizer:
    """A Keras optimizer, "sgd" (``momentum``, ``nesterov``) or "adam" (``beta_1``, ``beta_2``, ``epsilon``),
    whose learning rate lives in `dtype`."""
    classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}
    if kind.lower() not in classes:
        raise ValueError(f"`kind` must be one of {sorted(classes)}. Received: kind={kind!r}")
    with floatx(dtype):
        return classes[kind.lower()](learning_rate=float(learning_rate), **options)


def apply_dropout(x, rate: float, training: bool, mask=None, layer=None):
    """Dropout as TensorFlow computes it: ``where(mask, x * (1 / (1 - rate)), 0)`` with an injected mask;
    otherwise the Keras `layer` (random mask) or ``tf.nn.dropout`` when training, identity when not."""
    if not training or rate == 0:
        return x
    if mask is not None:
        scale = tf.constant(1.0 / (1.0 - rate), dtype=x.dtype)
        return tf.where(tf.constant(np.asarray(mask, dtype=bool)), x * scale, tf.zeros_like(x))
    if layer is not None:
        return layer(x, training=True)
    return tf.nn.dropout(x, rate=rate)


class Twin:
    """What every TF twin offers to a parity run (see the module docstring)."""

    name: str
    dtype: str
    dropout_rates: tuple[float, ...] = ()
    optimizer: keras.optimizers.Optimizer | None = None

    @property
    def variables(self) -> list[tf.Variable]:
        """The trainable weights in scratchnet's ``get_weights()`` order."""
        raise NotImplementedError

    def forward(self, x, training: bool = False, dropout_masks: Sequence | None = None):
        """Return (outputs, logits) for a batch `x`."""
        raise NotImplementedError

    def loss(self, labels, outputs, logits):
        """The mean loss of a batch (a scalar tensor)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.variables]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Assign `weights` (scratchnet's ``get_weights()`` order), checking count and shapes."""
        variables = self.variables
        if len(weights) != len(variables):
            raise ValueError(f"{self.name}: expected {len(variables)} weight arrays, received {len(weights)}")
        for variable, value in zip(variables, weights):
            value = np.asarray(value)
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"{self.name}: weight {variable.name!r} has shape {tuple(variable.shape)}, "
                    f"received {value.shape}"
                )
            variable.assign(value.astype(self.dtype))

    def compile(self, optimizer: keras.optimizers.Optimizer) -> None:
        self.optimizer = optimizer

    def _check_masks(self, dropout_masks):
        if dropout_masks is None:
            return [None] * len(self.dropout_rates)
        if len(dropout_masks) != len(self.dropout_rates):
            raise ValueError(
                f"{self.name} has {len(self.dropout_rates)} dropout layers; received {len(dropout_masks)} masks"
            )
        return list(dropout_masks)

    def _inputs(self, x):
        return tf.constant(np.asarray(x, dtype=self.dtype))

    def gradients(self, x, labels, training: bool = False, dropout_masks=None):
        """One batch's loss, logits and the gradient of the loss with respect to every variable."""
        x = self._inputs(x)
        with tf.GradientTape() as tape:
            outputs, logits = self.forward(x, training=training, dropout_masks=dropout_masks)
            loss = self.loss(labels, outputs, logits)
        grads = tape.gradient(loss, self.variables)
        return float(loss.numpy()), logits.numpy(), [g.numpy() for g in grads]

    def train_step(self, x, labels, training: bool = True, dropout_masks=None) -> float:
        """One optimizer step on a batch; returns the batch loss BEFORE the update (as Keras does)."""
        if self.optimizer is None:
            raise ValueError(f"{self.name}: call compile(optimizer) before train_step")
        x = self._inputs(x)
        with tf.GradientTape() as tape:
            outputs, logits = self.forward(x, training=training, dropout_masks=dropout_masks)
            loss = self.loss(labels, outputs, logits)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return float(loss.numpy())

    def predict(self, x) -> np.ndarray:
        """The model's outputs (probabilities) for a batch, dropout off."""
        outputs, _ = self.forward(self._inputs(x), training=False)
        return outputs.numpy()

    def predict_logits(self, x) -> np.ndarray:
        """The last layer's pre-activation outputs for a batch, dropout off (scratchnet's ``predict_logits``)."""
        _, logits = self.forward(self._inputs(x), training=False)
        return logits.numpy()


def _class_cross_entropy_from_logits(labels, logits):
    """Mean softmax cross-entropy of logits, labels as class ids (N,) or one-hot (N, C).

    `labels` may be an array or a tensor (inside a ``tf.function`` they are symbolic tensors)."""
    if not tf.is_tensor(labels):
        labels = np.asarray(labels)
    if len(labels.shape) == 1:
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int64), logits=logits)
    else:
        per_example = tf.nn.softmax_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype), logits=logits)
    return tf.reduce_mean(per_example)


# ------------------------------------------------------------------------------------------------
# Keras twins
# ------------------------------------------------------------------------------------------------


class KerasTwin(Twin):
    """A ``keras.Sequential`` twin. Its loss is Keras's own loss function applied to the model's output
    (so a softmax output is read from its logits, as ``fit`` does)."""

    def __init__(self, name: str, keras_model: keras.Sequential, dtype: str):
        self.name = name
        self.keras_model = keras_model
        self.dtype = np.dtype(dtype).name
        self.dropout_rates = tuple(
            layer.rate for layer in keras_model.layers if isinstance(layer, keras.layers.Dropout)
        )

    @property
    def variables(self):
        return list(self.keras_model.trainable_variables)

    def forward(self, x, training=False, dropout_masks=None):
        masks = iter(self._check_masks(dropout_masks))
        outputs = x
        for layer in self.keras_model.layers:
            if isinstance(layer, keras.layers.Dropout):
                outputs = apply_dropout(outputs, layer.rate, training, next(masks), layer)
            else:
                outputs = layer(outputs, training=training)
        # A softmax/sigmoid Keras layer keeps its pre-activation on the output, which Keras's losses use.
        logits = getattr(outputs, "_keras_logits", outputs)
        return outputs, logits

    def loss(self, labels, outputs, logits):
        labels = np.asarray(labels)
        if labels.ndim == 1:
            per_example = keras.losses.sparse_categorical_crossentropy(labels.astype(np.int64), outputs)
        else:
            per_example = keras.losses.categorical_crossentropy(tf.constant(labels, dtype=outputs.dtype), outputs)
        return tf.reduce_mean(per_example)


def _keras_mlp(num_classes):
    return [
        keras.layers.Flatten(),
        keras.layers.Dense(50, activation="relu"),
        keras.layers.Dense(50, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ]


def _keras_emnist_cnn(num_classes):
    return [
        keras.layers.Conv2D(32, 5, strides=2, activation="relu", padding="valid"),
        keras.layers.Conv2D(64, 3, activation="relu", padding="valid"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(num_classes, activation="softmax"),
    ]


def _keras_kaggle_cnn(num_classes):
    def scaling():
        return keras.initializers.VarianceScaling()  # scale 1, fan_in, truncated normal

    return [
        keras.layers.Conv2D(8, 5, strides=1, activation="relu", kernel_initializer=scaling()),
        keras.layers.MaxPooling2D(2, strides=2),
        keras.layers.Conv2D(16, 5, strides=1, activation="relu", kernel_initializer=scaling()),
        keras.layers.MaxPooling2D(2, strides=2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=scaling()),
    ]


# ------------------------------------------------------------------------------------------------
# tf.nn twins (TensorFlow 1 style)
# ------------------------------------------------------------------------------------------------


class TFNNTwin(Twin):
    """A twin written with tf.nn ops on plain ``tf.Variable`` weights, as the TF1 sources did."""

    output_activation = "softmax"

    def __init__(self, name: str, weights: list[tf.Variable], dtype: str, dropout_rates=()):
        self.name = name
        self._variables = weights
        self.dtype = np.dtype(dtype).name
        self.dropout_rates = tuple(dropout_rates)

    @property
    def variables(self):
        return list(self._variables)

    def logits(self, x, training, masks):
        raise NotImplementedError

    def forward(self, x, training=False, dropout_masks=None):
        logits = self.logits(x, training, self._check_masks(dropout_masks))
        if self.output_activation == "sigmoid":
            return tf.nn.sigmoid(logits), logits
        return tf.nn.softmax(logits), logits

    def loss(self, labels, outputs, logits):
        return _class_cross_entropy_from_logits(labels, logits)


class LogregTwin(TFNNTwin):
    """logreg: p = sigmoid(X @ w), mean binary cross-entropy computed from the logits (stable)."""

    output_activation = "sigmoid"

    def logits(self, x, training, masks):
        (w,) = self._variables
        return tf.matmul(x, w)

    def loss(self, labels, outputs, logits):
        labels = tf.constant(np.asarray(labels, dtype=self.dtype).reshape(logits.shape))
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class SoftmaxTwin(TFNNTwin):
    """softmax: logits = x @ W + b ("MNIST for ML beginners")."""

    def logits(self, x, training, masks):
        w, b = self._variables
        return tf.matmul(x, w) + b


class NotMNISTTwin(TFNNTwin):
    """notmnist_cnn: conv -> max-pool -> + bias -> relu, twice; dense 64 + relu; dense logits.

    As the Udacity assignment: ``hidden = tf.nn.relu(pool + layer1_biases)`` (bias AFTER pooling).
    """

    def logits(self, x, training, masks):
        w1, b1, w2, b2, w3, b3, w4, b4 = self._variables
        conv = tf.nn.conv2d(x, w1, strides=[1, 1, 1, 1], padding="SAME")
        pool = tf.nn.max_pool2d(conv, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
        hidden = tf.nn.relu(pool + b1)
        conv = tf.nn.conv2d(hidden, w2, strides=[1, 1, 1, 1], padding="SAME")
        pool = tf.nn.max_pool2d(conv, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
        hidden = tf.nn.relu(pool + b2)
        reshape = tf.reshape(hidden, [tf.shape(hidden)[0], -1])
        hidden = tf.nn.relu(tf.matmul(reshape, w3) + b3)
        return tf.matmul(hidden, w4) + b4


class DeepMNISTTwin(TFNNTwin):
    """deep_mnist: ("Deep MNIST for experts") conv+bias, relu, pool, twice; fc 1024 relu; dropout; logits.

    The source's ``tf.nn.dropout(h_fc1, keep_prob=0.5)`` is rate 0.5 here, off when predicting.
    """

    def logits(self, x, training, masks):
        w1, b1, w2, b2, w3, b3, w4, b4 = self._variables
        h_conv1 = tf.nn.relu(tf.nn.conv2d(x, w1, strides=[1, 1, 1, 1], padding="SAME") + b1)
        h_pool1 = tf.nn.max_pool2d(h_conv1, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
        h_conv2 = tf.nn.relu(tf.nn.conv2d(h_pool1, w2, strides=[1, 1, 1, 1], padding="SAME") + b2)
        h_pool2 = tf.nn.max_pool2d(h_conv2, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
        h_pool2_flat = tf.reshape(h_pool2, [tf.shape(h_pool2)[0], -1])
        h_fc1 = tf.nn.relu(tf.matmul(h_pool2_flat, w3) + b3)
        h_fc1_drop = apply_dropout(h_fc1, self.dropout_rates[0], training, masks[0])
        return tf.matmul(h_fc1_drop, w4) + b4


def _variable(initial, name):
    return tf.Variable(initial, name=name)


def _truncated_normal(shape, dtype, stddev=0.1):
    """The TF1 sources' ``tf.truncated_normal(shape, stddev=0.1)``: NOT rescaled (unlike VarianceScaling)."""
    return tf.random.truncated_normal(shape, stddev=stddev, dtype=dtype)


def _tf_nn_twin(name, dtype, num_classes):
    d = tf.as_dtype(dtype)
    if name == "logreg":
        return LogregTwin(name, [_variable(tf.zeros((785, 1), d), "w")], dtype)
    if name == "softmax":
        return SoftmaxTwin(name, [_variable(tf.zeros((784, num_classes), d), "W"),
                                  _variable(tf.zeros((num_classes,), d), "b")], dtype)
    if name == "notmnist_cnn":
        depth, hidden = 16, 64
        weights = [
            _variable(_truncated_normal((5, 5, 1, depth), d), "layer1_weights"),
            _variable(tf.zeros((depth,), d), "layer1_biases"),
            _variable(_truncated_normal((5, 5, depth, depth), d), "layer2_weights"),
            _variable(tf.ones((depth,), d), "layer2_biases"),
            _variable(_truncated_normal((7 * 7 * depth, hidden), d), "layer3_weights"),
            _variable(tf.ones((hidden,), d), "layer3_biases"),
            _variable(_truncated_normal((hidden, num_classes), d), "layer4_weights"),
            _variable(tf.ones((num_classes,), d), "layer4_biases"),
        ]
        return NotMNISTTwin(name, weights, dtype)
    if name == "deep_mnist":
        weights = [
            _variable(_truncated_normal((5, 5, 1, 32), d), "W_conv1"),
            _variable(tf.fill((32,), tf.constant(0.1, d)), "b_conv1"),
            _variable(_truncated_normal((5, 5, 32, 64), d), "W_conv2"),
            _variable(tf.fill((64,), tf.constant(0.1, d)), "b_conv2"),
            _variable(_truncated_normal((7 * 7 * 64, 1024), d), "W_fc1"),
            _variable(tf.fill((1024,), tf.constant(0.1, d)), "b_fc1"),
            _variable(_truncated_normal((1024, num_classes), d), "W_fc2"),
            _variable(tf.fill((num_classes,), tf.constant(0.1, d)), "b_fc2"),
        ]
        return DeepMNISTTwin(name, weights, dtype, dropout_rates=(0.5,))
    raise AssertionError(name)


# ------------------------------------------------------------------------------------------------


def build(name: str, *, dtype: str = "float32", num_classes: int | None = None, seed: int = 0,
          compile: bool = True) -> Twin:
    """The TF twin of zoo model `name` in `dtype`, compiled with its source's optimizer (`DEFAULT_OPTIMIZERS`).

    `num_classes` defaults to 62 for emnist_cnn (EMNIST ByClass) and 10 otherwise (ignored by logreg).
    `seed` seeds TensorFlow's initialisers (``keras.utils.set_random_seed``; with op determinism on, TF's
    random ops refuse to run unseeded).
    """
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(NAMES)}")
    dtype = np.dtype(dtype).name
    if num_classes is None:
        num_classes = 62 if name == "emnist_cnn" else 10
    keras.utils.set_random_seed(seed)
    if name in KERAS_MODELS:
        with floatx(dtype):
            layers = globals()[f"_keras_{name}"](num_classes)
            keras_model = keras.Sequential([keras.Input(INPUT_SHAPES[name]), *layers], name=name)
        twin: Twin = KerasTwin(name, keras_model, dtype)
    else:
        twin = _tf_nn_twin(name, dtype, num_classes)
    if compile:
        kind, learning_rate = DEFAULT_OPTIMIZERS[name]
        twin.compile(make_optimizer(kind, learning_rate, dtype))
    return twin
