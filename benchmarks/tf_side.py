"""The TensorFlow bodies of the benchmarks: Keras twins of the zoo models, run the way users run TensorFlow.

That is: oneDNN ON (TensorFlow's default on x86; ``python -m benchmarks`` and benchmarks/conftest.py set
``TF_ENABLE_ONEDNN_OPTS=1`` before TensorFlow is imported), train steps as ``@tf.function(jit_compile=False)``
doing GradientTape + ``optimizer.apply_gradients`` (no XLA), inputs already tensors. This is deliberately
NOT the deterministic parity set-up of `tf_reference` (oneDNN off), which is slower.

The twins are plain Keras models with the zoo's architecture, returning logits; the losses are the fused
``tf.nn`` cross-entropies from logits (the fast path). Their weights come from TensorFlow's RNG: speed does
not depend on them. Importing this module does not import TensorFlow; the first ``make_*`` call does.
"""
from __future__ import annotations

import functools
import os
import sys

import numpy as np

from benchmarks import workloads


def tensorflow():
    """Import and return TensorFlow (quietly). Does not touch oneDNN: the entry points decide that."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    return tf


def build_twin(name: str):
    """A Keras model with the zoo architecture of ``name``, outputting logits, in the zoo's dtype."""
    tensorflow()
    import keras

    dtype = workloads.dtype(name).name
    plan = workloads.plan(name)
    layers = []
    for info in plan:
        last = info.index == len(plan) - 1
        activation = None if last or info.activation in (None, "linear") else info.activation
        if info.kind == "Conv2D":
            kh, kw, _, co = info.kernel_shape
            layers.append(keras.layers.Conv2D(co, (kh, kw), strides=info.strides, padding=info.padding,
                                              activation=activation, use_bias=_has_bias(info), dtype=dtype))
        elif info.kind == "MaxPooling2D":
            layers.append(keras.layers.MaxPooling2D(info.pool_size, strides=info.strides, padding=info.padding,
                                                    dtype=dtype))
        elif info.kind == "Dense":
            layers.append(keras.layers.Dense(info.kernel_shape[1], activation=activation, use_bias=_has_bias(info),
                                             dtype=dtype))
        elif info.kind == "BiasAdd":
            layers.append(_bias_add_class()(dtype=dtype))
        elif info.kind == "Activation":
            layers.append(keras.layers.Activation(info.activation, dtype=dtype))
        elif info.kind == "Flatten":
            layers.append(keras.layers.Flatten(dtype=dtype))
        elif info.kind == "Dropout":
            layers.append(keras.layers.Dropout(info.rate, dtype=dtype))
        else:
            raise ValueError(f"no TensorFlow twin for layer kind {info.kind!r} of model {name!r}")
    return keras.Sequential([keras.Input(plan[0].input_shape, dtype=dtype), *layers], name=name)


def _has_bias(info):
    """A Conv2D or Dense layer has a bias when it holds more weights than its kernel."""
    return info.num_params > int(np.prod(info.kernel_shape))


@functools.cache
def _bias_add_class():
    import keras

    class BiasAdd(keras.layers.Layer):
        """A bias added on its own (notmnist_cnn adds its conv biases after pooling)."""

        def build(self, input_shape):
            self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

        def call(self, x):
            return x + self.bias

    return BiasAdd


def _optimizer(name):
    import keras

    from scratchnet import zoo

    recipe = zoo.defaults(name)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=recipe.learning_rate)
    return keras.optimizers.Adam(learning_rate=recipe.learning_rate)  # Keras defaults: 0.9, 0.999, 1e-7


def _loss_fn(name):
    tf = tensorflow()
    if name == "logreg":
        def loss(y, logits):
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
    else:
        def loss(y, logits):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    return loss


def make_train_step(name: str, n: int | None = None, seed: int = 0):
    """One ``@tf.function`` training step of the twin of ``name`` on a fixed batch; returns the loss."""
    tf = tensorflow()
    n = workloads.batch_size(name) if n is None else n
    model = build_twin(name)
    optimizer = _optimizer(name)
    optimizer.build(model.trainable_variables)
    loss_fn = _loss_fn(name)
    x, y = workloads.make_data(name, n, seed)
    x, y = tf.constant(x), tf.constant(y)
    variables = model.trainable_variables

    @tf.function(jit_compile=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    def train_step():
        return step(x, y).numpy()

    return train_step


def make_inference(name: str, n: int = workloads.INFERENCE_IMAGES, batch: int = workloads.INFERENCE_BATCH,
                   seed: int = 0):
    """Predict ``n`` images in batches of ``batch`` with a ``@tf.function`` forward (softmax/sigmoid)."""
    tf = tensorflow()
    model = build_twin(name)
    x, _ = workloads.make_data(name, n, seed)
    batches = [tf.constant(x[i:i + batch]) for i in range(0, n, batch)]
    activation = tf.nn.sigmoid if name == "logreg" else tf.nn.softmax

    @tf.function(jit_compile=False)
    def forward(x):
        return activation(model(x, training=False))

    def predict():
        return np.concatenate([forward(b).numpy() for b in batches])

    return predict


def make_latency(name: str, seed: int = 0):
    """One image from NumPy to NumPy probabilities through a ``@tf.function`` forward: TF's fastest way."""
    tf = tensorflow()
    model = build_twin(name)
    x, _ = workloads.make_data(name, 1, seed)
    activation = tf.nn.sigmoid if name == "logreg" else tf.nn.softmax

    @tf.function(jit_compile=False)
    def forward(x):
        return activation(model(x, training=False))

    def predict_one():
        return forward(tf.constant(x)).numpy()

    return predict_one


def make_optimizer_update(name: str, seed: int = 0):
    """``optimizer.apply_gradients`` on the twin's weights in a ``@tf.function`` (random gradients)."""
    tf = tensorflow()
    model = build_twin(name)
    variables = model.trainable_variables
    optimizer = _optimizer(name)
    optimizer.build(variables)
    rng = np.random.default_rng(seed)
    grads = [tf.constant((1e-3 * rng.standard_normal(v.shape)).astype(_numpy_dtype(v.dtype))) for v in variables]

    @tf.function(jit_compile=False)
    def update():
        optimizer.apply_gradients(zip(grads, variables))
        return optimizer.iterations

    return lambda: update().numpy()


def _numpy_dtype(dtype):
    """A Keras 3 variable's dtype is a string; a tf.Variable's is a tf.DType."""
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


def make_op(case: workloads.OpCase, direction: str, seed: int = 0):
    """TensorFlow's forward or backward (dx and dkernel / MaxPoolGrad) of one hot op at one shape."""
    tf = tensorflow()
    x_np, kernel_np, dy_np = workloads.op_data(case, seed)
    x, dy = tf.constant(x_np), tf.constant(dy_np)
    strides = [1, *case.strides, 1]
    padding = case.padding.upper()
    if case.op == "conv2d":
        kernel = tf.constant(kernel_np)

        @tf.function(jit_compile=False)
        def forward():
            return tf.nn.conv2d(x, kernel, strides, padding)

        @tf.function(jit_compile=False)
        def backward():
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=dy,
                                                strides=strides, padding=padding)
            dkernel = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
                                                      strides=strides, padding=padding)
            return dx, dkernel
    else:
        ksize = [1, *case.pool_size, 1]
        y = tf.nn.max_pool2d(x, ksize, strides, padding)

        @tf.function(jit_compile=False)
        def forward():
            return tf.nn.max_pool2d(x, ksize, strides, padding)

        @tf.function(jit_compile=False)
        def backward():
            return tf.raw_ops.MaxPoolGrad(orig_input=x, orig_output=y, grad=dy, ksize=ksize, strides=strides,
                                          padding=padding)
    if direction == "forward":
        return lambda: _to_numpy(forward())
    if direction != "backward":
        raise ValueError(f"`direction` must be 'forward' or 'backward'; received: {direction!r}")
    return lambda: _to_numpy(backward())


def _to_numpy(result):
    """Bring results to NumPy, as scratchnet hands them over (cheap on CPU; also waits for completion)."""
    if isinstance(result, tuple):
        return tuple(r.numpy() for r in result)
    return result.numpy()
