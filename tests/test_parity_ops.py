"""Op-by-op parity with TensorFlow: every scratchnet op's forward and every gradient against the TF op.

TensorFlow runs in the deterministic set-up of `tf_reference.config` (oneDNN off, op determinism on).
Gradients on the TF side come from `tf.GradientTape` with the same upstream gradient ``dy`` fed to the
scratchnet backward. Every test runs under BOTH engine backends ("numpy" and "numba"), so each
accelerated op (`scratchnet.engine.ACCELERATED`: conv2d, max-pool, relu, bias_add, ...) is checked in both
its readable and its numba form.

Measure: ``max|scratchnet - tf| / max|tf|`` (infinity norms, `tf_reference.compare`); tolerance 1e-10 in
float64 and 1e-5 in float32. Random inputs avoid ReLU's kink and max-pool ties; both are tested on
hand-computed inputs instead.
"""
import zlib

import numpy as np
import pytest

from scratchnet import engine
from tf_reference.compare import assert_close
from tf_reference.config import deterministic

tf = deterministic()

DTYPES = ["float32", "float64"]


@pytest.fixture(params=["numpy", "numba"], autouse=True)
def backend(request):
    """Run every test under both engine backends (the numba one serves the accelerated ops from
    `scratchnet.kernels`, the others from `scratchnet.ops`), restoring the previous backend afterwards."""
    with engine.backend(request.param) as name:
        yield name


def rng_for(*key):
    """A Generator seeded from a test's parameters, so every case has its own fixed data."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def tf_forward_and_gradients(function, inputs, dy):
    """Run `function(*inputs)` in TensorFlow; return its output and the gradients of <output, dy>."""
    tensors = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        y = function(*tensors)
    grads = tape.gradient(y, tensors, output_gradients=tf.constant(dy, dtype=y.dtype))
    return y.numpy(), [g.numpy() for g in grads]


def distinct_values(rng, shape, dtype):
    """Random values in [-1, 1) that are all different (no max-pool ties), as `dtype`."""
    size = int(np.prod(shape))
    values = (rng.permutation(size) + rng.uniform(0.1, 0.9, size)) / size
    return (2 * values - 1).reshape(shape).astype(dtype)


def away_from_zero(rng, shape, dtype, margin=0.05):
    """Standard-normal values with |x| >= margin (ReLU's kink is tested separately)."""
    x = rng.standard_normal(shape)
    x = np.where(np.abs(x) < margin, np.copysign(margin, x) + x, x)
    return x.astype(dtype)


# ------------------------------------------------------------------------------------------------
# dense, bias_add
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_forward_and_gradients_match_tf_matmul(dtype, use_bias):
    rng = rng_for("dense", dtype, use_bias)
    x = rng.standard_normal((5, 7)).astype(dtype)
    kernel = rng.standard_normal((7, 3)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype)
    dy = rng.standard_normal((5, 3)).astype(dtype)

    if use_bias:
        y_tf, (dx_tf, dk_tf, db_tf) = tf_forward_and_gradients(
            lambda a, k, b: tf.matmul(a, k) + b, [x, kernel, bias], dy
        )
        y, cache = engine.dense_forward(x, kernel, bias)
    else:
        y_tf, (dx_tf, dk_tf) = tf_forward_and_gradients(tf.matmul, [x, kernel], dy)
        y, cache = engine.dense_forward(x, kernel)
    dx, dkernel, dbias = engine.dense_backward(dy, cache)

    assert y.dtype == dx.dtype == dkernel.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what="y")
    assert_close(dx, dx_tf, what="dx")
    assert_close(dkernel, dk_tf, what="dkernel")
    if use_bias:
        assert_close(dbias, db_tf, what="dbias")
    else:
        assert dbias is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 6), (2, 5, 3, 4)])
def test_bias_add_forward_and_gradients_match_tf_nn_bias_add(dtype, shape):
    rng = rng_for("bias_add", dtype, shape)
    x = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)

    y_tf, (dx_tf, db_tf) = tf_forward_and_gradients(tf.nn.bias_add, [x, bias], dy)
    y, cache = engine.bias_add_forward(x, bias)
    dx, dbias = engine.bias_add_backward(dy, cache)

    assert y.dtype == dbias.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what="y")
    assert_close(dx, dx_tf, what="dx")
    assert_close(dbias, db_tf, what="dbias")


# ------------------------------------------------------------------------------------------------
# conv2d
# ------------------------------------------------------------------------------------------------

CONV_CASES = [
    # (x shape NHWC, kernel shape HWIO, strides, padding)
    ((2, 7, 7, 3), (3, 3, 3, 4), 1, "same"),  # odd size, odd kernel: symmetric padding
    ((2, 8, 8, 2), (3, 3, 2, 3), 2, "same"),  # even size, stride 2: the extra pad goes bottom/right
    ((2, 7, 9, 2), (2, 2, 2, 3), 1, "same"),  # even kernel: asymmetric padding
    ((2, 9, 8, 3), (4, 4, 3, 2), 2, "same"),  # even kernel and stride 2
    ((1, 6, 6, 1), (5, 5, 1, 4), 1, "same"),  # the TF1 models' 5x5 SAME
    ((2, 7, 7, 3), (3, 3, 3, 4), 1, "valid"),
    ((2, 9, 9, 2), (5, 5, 2, 3), 2, "valid"),  # emnist_cnn's first layer, smaller: leftovers dropped
    ((2, 8, 7, 2), (2, 3, 2, 3), (2, 1), "valid"),  # non-square kernel and strides
    ((1, 10, 10, 2), (4, 4, 2, 2), 3, "same"),  # stride 3, even kernel
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, k_shape, strides, padding", CONV_CASES)
def test_conv2d_forward_and_gradients_match_tf_nn_conv2d(backend, dtype, x_shape, k_shape, strides, padding):
    rng = rng_for("conv2d", dtype, x_shape, k_shape, strides, padding)
    x = rng.standard_normal(x_shape).astype(dtype)
    kernel = rng.standard_normal(k_shape).astype(dtype)
    tf_strides = [1, *np.broadcast_to(strides, 2), 1]

    def tf_conv(a, k):
        return tf.nn.conv2d(a, k, strides=tf_strides, padding=padding.upper())

    y_expected = tf_conv(tf.constant(x), tf.constant(kernel)).numpy()
    dy = rng.standard_normal(y_expected.shape).astype(dtype)
    y_tf, (dx_tf, dk_tf) = tf_forward_and_gradients(tf_conv, [x, kernel], dy)

    y, cache = engine.conv2d_forward(x, kernel, strides, padding)
    dx, dkernel = engine.conv2d_backward(dy, cache)

    assert y.dtype == dx.dtype == dkernel.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what=f"conv2d y ({backend})")
    assert_close(dx, dx_tf, what=f"conv2d dx ({backend})")
    assert_close(dkernel, dk_tf, what=f"conv2d dkernel ({backend})")


# ------------------------------------------------------------------------------------------------
# max-pool
# ------------------------------------------------------------------------------------------------

POOL_CASES = [
    # (x shape NHWC, pool_size, strides, padding)
    ((2, 8, 8, 3), 2, None, "valid"),
    ((2, 7, 7, 3), 2, None, "same"),  # odd size: a padded (-inf) column/row at the bottom/right
    ((2, 7, 7, 2), 2, None, "valid"),  # odd size: the last row/column is dropped
    ((2, 7, 9, 2), 3, 2, "same"),  # overlapping windows
    ((2, 7, 7, 2), 3, 1, "valid"),  # heavily overlapping windows
    ((1, 5, 6, 2), (2, 3), (1, 2), "same"),  # non-square pool and strides
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, pool_size, strides, padding", POOL_CASES)
def test_max_pool2d_forward_and_gradient_match_tf_nn_max_pool2d(
    backend, dtype, x_shape, pool_size, strides, padding
):
    rng = rng_for("max_pool", dtype, x_shape, pool_size, strides, padding)
    x = distinct_values(rng, x_shape, dtype)
    ksize = list(np.broadcast_to(pool_size, 2))
    tf_strides = ksize if strides is None else list(np.broadcast_to(strides, 2))

    def tf_pool(a):
        return tf.nn.max_pool2d(a, ksize=ksize, strides=tf_strides, padding=padding.upper())

    y_expected = tf_pool(tf.constant(x)).numpy()
    dy = rng.standard_normal(y_expected.shape).astype(dtype)
    y_tf, (dx_tf,) = tf_forward_and_gradients(tf_pool, [x], dy)

    y, cache = engine.max_pool2d_forward(x, pool_size, strides, padding)
    dx = engine.max_pool2d_backward(dy, cache)

    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what=f"max_pool2d y ({backend})")
    assert_close(dx, dx_tf, what=f"max_pool2d dx ({backend})")


TIE_CASES = {
    # name: (x as an H x W grid, pool_size, strides, padding, expected dx for dy = 1, 2, 3, ... row-major)
    "all equal, 2x2 valid": (
        [[1.0, 1.0, 1.0, 1.0],
         [1.0, 1.0, 1.0, 1.0]],
        2, None, "valid",
        [[1.0, 0.0, 2.0, 0.0],
         [0.0, 0.0, 0.0, 0.0]],
    ),
    "tie in the second row only": (
        [[0.0, 1.0, 5.0, 2.0],
         [3.0, 3.0, 2.0, 5.0]],
        2, None, "valid",
        [[0.0, 0.0, 2.0, 0.0],
         [1.0, 0.0, 0.0, 0.0]],
    ),
    "overlapping windows share a tied maximum": (
        [[2.0, 2.0, 2.0]],
        (1, 2), 1, "valid",  # windows [2, 2] and [2, 2]: each sends its gradient to its first cell
        [[1.0, 2.0, 0.0]],
    ),
    "same padding, tie beside the -inf pad": (
        [[4.0, 4.0, 4.0],
         [4.0, 4.0, 4.0],
         [4.0, 4.0, 4.0]],
        2, None, "same",  # windows cover rows/cols (0-1, 2-pad): first real cell of each window
        [[1.0, 0.0, 2.0],
         [0.0, 0.0, 0.0],
         [3.0, 0.0, 4.0]],
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(TIE_CASES))
def test_max_pool2d_gradient_of_ties_goes_to_the_first_maximum_like_tf(backend, dtype, case):
    """A tied window sends its WHOLE gradient to its first maximum in row-major order (TF's CPU rule)."""
    grid, pool_size, strides, padding, expected = TIE_CASES[case]
    x = np.asarray(grid, dtype=dtype)[np.newaxis, :, :, np.newaxis]
    expected = np.asarray(expected, dtype=dtype)[np.newaxis, :, :, np.newaxis]
    ksize = list(np.broadcast_to(pool_size, 2))
    tf_strides = ksize if strides is None else list(np.broadcast_to(strides, 2))

    def tf_pool(a):
        return tf.nn.max_pool2d(a, ksize=ksize, strides=tf_strides, padding=padding.upper())

    out_shape = tf_pool(tf.constant(x)).shape
    dy = np.arange(1, np.prod(out_shape) + 1, dtype=dtype).reshape(out_shape)
    _, (dx_tf,) = tf_forward_and_gradients(tf_pool, [x], dy)
    np.testing.assert_array_equal(dx_tf, expected, err_msg="TensorFlow itself disagrees with the hand-computed rule")

    y, cache = engine.max_pool2d_forward(x, pool_size, strides, padding)
    dx = engine.max_pool2d_backward(dy, cache)
    np.testing.assert_array_equal(dx, expected)


# ------------------------------------------------------------------------------------------------
# activations, dropout, flatten
# ------------------------------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": tf.nn.relu,
    "sigmoid": tf.nn.sigmoid,
    "softmax": tf.nn.softmax,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_activation_forward_and_gradient_match_tf(dtype, name, scale):
    rng = rng_for("activation", dtype, name, scale)
    x = (scale * away_from_zero(rng, (6, 10), "float64")).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    y_tf, (dx_tf,) = tf_forward_and_gradients(ACTIVATIONS[name], [x], dy)
    y, cache = getattr(engine, f"{name}_forward")(x)
    dx = getattr(engine, f"{name}_backward")(dy, cache)

    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what=f"{name} y")
    assert_close(dx, dx_tf, what=f"{name} dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_gradient_at_exactly_zero_is_zero_like_tf(dtype):
    x = np.array([[-1.0, -0.0, 0.0, 1e-30, 2.0]], dtype=dtype)
    dy = np.array([[10.0, 20.0, 30.0, 40.0, 50.0]], dtype=dtype)
    expected = np.array([[0.0, 0.0, 0.0, 40.0, 50.0]], dtype=dtype)
    if dtype == "float32":
        x[0, 3] = np.float32(1e-30)

    y_tf, (dx_tf,) = tf_forward_and_gradients(tf.nn.relu, [x], dy)
    np.testing.assert_array_equal(dx_tf, expected, err_msg="TensorFlow itself disagrees with the hand-computed rule")
    y, cache = engine.relu_forward(x)
    np.testing.assert_array_equal(y, y_tf)
    np.testing.assert_array_equal(engine.relu_backward(dy, cache), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_dropout_with_tf_mask_matches_tf_dropout_bit_for_bit(dtype, rate):
    """Fed TensorFlow's own keep-mask, scratchnet's dropout gives TF's values and gradient exactly.

    (TF's random stream cannot be reproduced, so the mask is read off TF's output: x has no zeros.)
    """
    rng = rng_for("dropout", dtype, rate)
    x = away_from_zero(rng, (8, 16), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    def tf_dropout(a):
        return tf.nn.experimental.stateless_dropout(a, rate=rate, seed=[7, 11])

    y_tf, (dx_tf,) = tf_forward_and_gradients(tf_dropout, [x], dy)
    mask = y_tf != 0
    assert 0 < mask.mean() < 1

    y, cache = engine.dropout_forward(x, rate, mask=mask, training=True)
    dx = engine.dropout_backward(dy, cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, y_tf)
    np.testing.assert_array_equal(dx, dx_tf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten_matches_keras_flatten_order(dtype):
    import keras

    rng = rng_for("flatten", dtype)
    x = rng.standard_normal((3, 4, 5, 2)).astype(dtype)
    y_keras = keras.layers.Flatten(dtype=dtype)(tf.constant(x)).numpy()
    y, cache = engine.flatten_forward(x)
    np.testing.assert_array_equal(y, y_keras)
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(engine.flatten_backward(dy, cache), dy.reshape(x.shape))


# ------------------------------------------------------------------------------------------------
# losses (mean over the batch), forward and the gradient with respect to their first argument
# ------------------------------------------------------------------------------------------------


def one_hot(ids, classes, dtype):
    return np.eye(classes, dtype=dtype)[ids]


def loss_gradient(backward, dloss, cache):
    """The loss backward's gradient with respect to its first argument (logits or probabilities)."""
    grads = backward(dloss, cache)
    return grads[0] if isinstance(grads, tuple) else grads


def check_loss(name, tf_loss, first, labels, dtype, dloss=0.7):
    """Compare scratchnet's `<name>_forward/_backward` with `tf_loss(labels, first)` (batch mean)."""
    loss_tf, (dfirst_tf,) = tf_forward_and_gradients(lambda a: tf_loss(labels, a), [first], np.asarray(dloss, dtype))
    loss, cache = getattr(engine, f"{name}_forward")(first, labels)
    dfirst = loss_gradient(getattr(engine, f"{name}_backward"), np.asarray(dloss, dtype), cache)
    assert np.asarray(loss).dtype == np.asarray(dfirst).dtype == np.dtype(dtype)
    assert_close(np.asarray(loss), loss_tf, what=f"{name} loss")
    assert_close(dfirst, dfirst_tf, what=f"{name} gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels_kind", ["ids", "one-hot"])
@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_softmax_cross_entropy_matches_tf_nn_with_logits(dtype, labels_kind, scale):
    rng = rng_for("softmax_ce", dtype, labels_kind, scale)
    logits = (scale * rng.standard_normal((6, 5))).astype(dtype)
    ids = rng.integers(0, 5, 6)
    if labels_kind == "ids":
        labels = ids

        def tf_loss(y, a):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=a))
    else:
        labels = one_hot(ids, 5, dtype)

        def tf_loss(y, a):
            return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=a))

    check_loss("softmax_cross_entropy", tf_loss, logits, labels, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 1), (4, 3)])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_sigmoid_binary_cross_entropy_matches_tf_nn_with_logits(dtype, shape, scale):
    rng = rng_for("sigmoid_bce", dtype, shape, scale)
    logits = (scale * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, 2, shape).astype(dtype)

    def tf_loss(y, a):
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=a))

    check_loss("sigmoid_binary_cross_entropy", tf_loss, logits, labels, dtype)


def random_probabilities(rng, shape, dtype, extreme):
    """Softmax rows; with `extreme`, some entries far below Keras's clip at 1e-7 (and rows near 1)."""
    logits = rng.standard_normal(shape) * (40.0 if extreme else 1.0)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels_kind", ["one-hot", "ids"])
@pytest.mark.parametrize("extreme", [False, True])
def test_categorical_cross_entropy_matches_keras_on_probabilities(dtype, labels_kind, extreme):
    """Keras renormalises the rows and clips to [1e-7, 1 - 1e-7] before the log (probabilities path)."""
    import keras

    rng = rng_for("categorical_ce", dtype, labels_kind, extreme)
    probs = random_probabilities(rng, (6, 5), dtype, extreme)
    ids = rng.integers(0, 5, 6)
    if labels_kind == "one-hot":
        labels = one_hot(ids, 5, dtype)

        def tf_loss(y, p):
            return tf.reduce_mean(keras.losses.categorical_crossentropy(y, p))
    else:
        labels = ids

        def tf_loss(y, p):
            return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, p))

    check_loss("categorical_cross_entropy", tf_loss, probs, labels, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 1), (4, 3)])
@pytest.mark.parametrize("extreme", [False, True])
def test_binary_cross_entropy_matches_keras_on_probabilities(dtype, shape, extreme):
    """Keras clips the probabilities to [1e-7, 1 - 1e-7] before the logs."""
    import keras

    rng = rng_for("binary_ce", dtype, shape, extreme)
    logits = rng.standard_normal(shape) * (40.0 if extreme else 1.0)
    probs = (1 / (1 + np.exp(-logits))).astype(dtype)
    labels = rng.integers(0, 2, shape).astype(dtype)

    def tf_loss(y, p):
        return tf.reduce_mean(keras.losses.binary_crossentropy(y, p))

    check_loss("binary_cross_entropy", tf_loss, probs, labels, dtype)


# ------------------------------------------------------------------------------------------------
# Keras's other activations (by the functions Keras's string names resolve to, with their defaults)
# ------------------------------------------------------------------------------------------------


def keras_activations():
    import keras

    a = keras.activations
    return {
        "tanh": (a.tanh, lambda x: engine.tanh_forward(x)),
        "elu": (a.elu, lambda x: engine.elu_forward(x)),
        "elu_alpha_0.5": (lambda x: a.elu(x, alpha=0.5), lambda x: engine.elu_forward(x, alpha=0.5)),
        "gelu": (a.gelu, lambda x: engine.gelu_forward(x)),  # Keras 3 default: approximate=False
        "gelu_tanh": (lambda x: a.gelu(x, approximate=True), lambda x: engine.gelu_forward(x, approximate=True)),
        "leaky_relu": (a.leaky_relu, lambda x: engine.leaky_relu_forward(x)),  # default slope 0.2
        "softplus": (a.softplus, lambda x: engine.softplus_forward(x)),
        "silu": (a.silu, lambda x: engine.silu_forward(x)),
        "swish": (a.swish, lambda x: engine.silu_forward(x)),
        "relu6": (lambda x: a.relu(x, max_value=6.0), lambda x: engine.relu_general_forward(x, max_value=6.0)),
        "relu_options": (
            lambda x: a.relu(x, negative_slope=0.1, max_value=1.5, threshold=0.25),
            lambda x: engine.relu_general_forward(x, negative_slope=0.1, max_value=1.5, threshold=0.25),
        ),
        "relu_slope": (lambda x: a.relu(x, negative_slope=0.3), lambda x: engine.relu_general_forward(x, 0.3)),
    }


KERAS_ACTIVATION_NAMES = ["tanh", "elu", "elu_alpha_0.5", "gelu", "gelu_tanh", "leaky_relu", "softplus", "silu",
                          "swish", "relu6", "relu_options", "relu_slope"]
BACKWARDS = {"tanh": "tanh", "elu": "elu", "gelu": "gelu", "leaky": "leaky_relu", "softplus": "softplus",
             "silu": "silu", "swish": "silu", "relu": "relu_general", "relu6": "relu_general"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", KERAS_ACTIVATION_NAMES)
@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_keras_activation_forward_and_gradient_match_tf(dtype, name, scale):
    keras_function, forward = keras_activations()[name]
    rng = rng_for("keras_activation", dtype, name, scale)
    x = (scale * away_from_zero(rng, (6, 10), "float64")).astype(dtype)
    if name.startswith("relu"):  # keep clear of the threshold and the ceiling as well
        x = np.where(np.abs(x - 0.25) < 0.05, x + 0.1, x)
        x = np.where(np.abs(np.abs(x) - 1.5) < 0.05, x + 0.1, x).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    y_tf, (dx_tf,) = tf_forward_and_gradients(keras_function, [x], dy)
    y, cache = forward(x)
    dx = getattr(engine, BACKWARDS[name.split("_")[0]] + "_backward")(dy, cache)

    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what=f"{name} y")
    assert_close(dx, dx_tf, what=f"{name} dx")


RELU_KINKS = [
    # (keras.activations.relu options, x values sitting exactly on the kinks)
    ({}, [-1.0, 0.0, 2.0]),
    ({"negative_slope": 0.5}, [-2.0, 0.0, 3.0]),
    ({"max_value": 6.0}, [0.0, 6.0, 7.0]),
    ({"max_value": 2.0}, [0.0, 1.0, 2.0, 3.0]),
    ({"threshold": 1.0}, [0.0, 1.0, 1.5]),
    ({"negative_slope": 0.5, "threshold": 1.0}, [0.0, 1.0, 2.0]),
    ({"negative_slope": 0.5, "max_value": 2.0}, [-1.0, 0.0, 2.0, 2.5]),
    ({"negative_slope": 0.5, "max_value": 6.0}, [-1.0, 0.0, 6.0, 7.0]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options, values", RELU_KINKS)
def test_relu_options_gradient_at_the_kinks_is_tfs(dtype, options, values):
    import keras

    x = np.array([values], dtype=dtype)
    dy = np.arange(1, x.size + 1, dtype=dtype).reshape(x.shape)
    y_tf, (dx_tf,) = tf_forward_and_gradients(lambda a: keras.activations.relu(a, **options), [x], dy)
    y, cache = engine.relu_general_forward(x, **options)
    np.testing.assert_array_equal(y, y_tf)
    np.testing.assert_array_equal(engine.relu_general_backward(dy, cache), dx_tf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_and_elu_gradients_at_zero_are_tfs(dtype):
    import keras

    x = np.array([[0.0, -0.0]], dtype=dtype)
    dy = np.array([[3.0, 5.0]], dtype=dtype)
    for keras_function, name in ((keras.activations.leaky_relu, "leaky_relu"), (keras.activations.elu, "elu")):
        _, (dx_tf,) = tf_forward_and_gradients(keras_function, [x], dy)
        _, cache = getattr(engine, f"{name}_forward")(x)
        np.testing.assert_array_equal(getattr(engine, f"{name}_backward")(dy, cache), dx_tf, err_msg=name)


# ------------------------------------------------------------------------------------------------
# average pooling, global pooling
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, pool_size, strides, padding", POOL_CASES)
def test_avg_pool2d_forward_and_gradient_match_tf_nn_avg_pool2d(dtype, x_shape, pool_size, strides, padding):
    rng = rng_for("avg_pool", dtype, x_shape, pool_size, strides, padding)
    x = rng.standard_normal(x_shape).astype(dtype)
    ksize = list(np.broadcast_to(pool_size, 2))
    tf_strides = ksize if strides is None else list(np.broadcast_to(strides, 2))

    def tf_pool(a):
        return tf.nn.avg_pool2d(a, ksize=ksize, strides=tf_strides, padding=padding.upper())

    dy = rng.standard_normal(tf_pool(tf.constant(x)).shape).astype(dtype)
    y_tf, (dx_tf,) = tf_forward_and_gradients(tf_pool, [x], dy)
    y, cache = engine.avg_pool2d_forward(x, pool_size, strides, padding)
    dx = engine.avg_pool2d_backward(dy, cache)

    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what="avg_pool2d y")
    assert_close(dx, dx_tf, what="avg_pool2d dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pooling_forward_and_gradient_match_keras_layers(dtype, kind):
    import keras

    rng = rng_for("global_pool", dtype, kind)
    x = distinct_values(rng, (3, 5, 4, 6), dtype)
    dy = rng.standard_normal((3, 6)).astype(dtype)
    layer = (keras.layers.GlobalAveragePooling2D if kind == "avg" else keras.layers.GlobalMaxPooling2D)(dtype=dtype)
    y_tf, (dx_tf,) = tf_forward_and_gradients(layer, [x], dy)
    y, cache = getattr(engine, f"global_{kind}_pool2d_forward")(x)
    dx = getattr(engine, f"global_{kind}_pool2d_backward")(dy, cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what=f"global_{kind}_pool2d y")
    assert_close(dx, dx_tf, what=f"global_{kind}_pool2d dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_pool2d_splits_ties_like_tf_reduce_max(dtype):
    import keras

    grid = np.array([[1.0, 3.0, 0.0, 3.0],
                     [2.0, 3.0, 3.0, 0.0]], dtype=dtype)
    x = grid.reshape(1, 2, 4, 1)
    dy = np.array([[12.0]], dtype=dtype)
    expected = np.array([[0, 3, 0, 3], [0, 3, 3, 0]], dtype=dtype).reshape(x.shape)
    _, (dx_tf,) = tf_forward_and_gradients(keras.layers.GlobalMaxPooling2D(dtype=dtype), [x], dy)
    np.testing.assert_array_equal(dx_tf, expected, err_msg="TensorFlow itself disagrees with the hand-computed rule")
    _, cache = engine.global_max_pool2d_forward(x)
    np.testing.assert_array_equal(engine.global_max_pool2d_backward(dy, cache), expected)


# ------------------------------------------------------------------------------------------------
# batch normalisation
# ------------------------------------------------------------------------------------------------


def tf_batch_norm_training(x, gamma, beta, epsilon=1e-3):
    """What Keras's BatchNormalization computes in training: tf.nn.moments, then tf.nn.batch_normalization."""
    axes = list(range(len(x.shape) - 1))
    mean, variance = tf.nn.moments(x, axes)
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 5), (4, 5, 6, 3)])
def test_batch_norm_training_forward_gradients_and_statistics_match_tf(dtype, shape):
    rng = rng_for("batch_norm", dtype, shape)
    x = (2.0 + 3.0 * rng.standard_normal(shape)).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, shape[-1]).astype(dtype)
    beta = rng.standard_normal(shape[-1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)

    y_tf, (dx_tf, dgamma_tf, dbeta_tf) = tf_forward_and_gradients(tf_batch_norm_training, [x, gamma, beta], dy)
    mean_tf, variance_tf = tf.nn.moments(tf.constant(x), list(range(len(shape) - 1)))
    y, cache = engine.batch_norm_forward(x, gamma, beta, epsilon=1e-3)
    dx, dgamma, dbeta = engine.batch_norm_backward(dy, cache)

    assert y.dtype == dx.dtype == dgamma.dtype == dbeta.dtype == np.dtype(dtype)
    assert_close(y, y_tf, what="batch_norm y")
    assert_close(cache.mean, mean_tf.numpy(), what="batch mean")
    assert_close(cache.variance, variance_tf.numpy(), what="batch variance")
    assert_close(dx, dx_tf, what="batch_norm dx")
    assert_close(dgamma, dgamma_tf, what="batch_norm dgamma")
    assert_close(dbeta, dbeta_tf, what="batch_norm dbeta")


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_inference_forward_and_gradients_match_tf(dtype):
    rng = rng_for("batch_norm_inference", dtype)
    x = rng.standard_normal((4, 5, 6, 3)).astype(dtype)
    gamma, beta, mean = (rng.standard_normal(3).astype(dtype) for _ in range(3))
    variance = rng.uniform(0.5, 2.0, 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    def tf_inference(a, g, b):
        return tf.nn.batch_normalization(a, tf.constant(mean), tf.constant(variance), b, g, 1e-3)

    y_tf, (dx_tf, dgamma_tf, dbeta_tf) = tf_forward_and_gradients(tf_inference, [x, gamma, beta], dy)
    y, cache = engine.batch_norm_inference_forward(x, gamma, beta, mean, variance, epsilon=1e-3)
    dx, dgamma, dbeta = engine.batch_norm_inference_backward(dy, cache)
    assert_close(y, y_tf, what="batch_norm_inference y")
    assert_close(dx, dx_tf, what="batch_norm_inference dx")
    assert_close(dgamma, dgamma_tf, what="batch_norm_inference dgamma")
    assert_close(dbeta, dbeta_tf, what="batch_norm_inference dbeta")


# ------------------------------------------------------------------------------------------------
# mean squared / absolute error
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error"])
@pytest.mark.parametrize("shape", [(6, 1), (4, 3)])
def test_regression_losses_match_keras(dtype, name, shape):
    import keras

    rng = rng_for("regression_loss", dtype, name, shape)
    labels = rng.standard_normal(shape).astype(dtype)
    predictions = (labels + rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)).astype(dtype)
    keras_loss = {"mean_squared_error": keras.losses.MeanSquaredError(dtype=dtype),
                  "mean_absolute_error": keras.losses.MeanAbsoluteError(dtype=dtype)}[name]
    check_loss(name, lambda y, p: keras_loss(tf.constant(y), p), predictions, labels, dtype)
