"""The promises every op makes (docs/architecture.md): checked once, for every op, in one table.

* every backward leaves ``dy`` and its cache untouched and returns new arrays (never views of dy);
* float32 in gives float32 out, forward and backward; float64 likewise;
* ``scratchnet.ops`` re-exports every op and imports neither TensorFlow nor numba.
"""

import subprocess
import sys

import numpy as np
import pytest

import scratchnet.ops as ops


def _random(rng, dtype, shape):
    return rng.standard_normal(shape).astype(dtype)


def _probabilities(rng, dtype):
    e = np.exp(rng.standard_normal((4, 3)))
    return (e / e.sum(axis=1, keepdims=True)).astype(dtype)


IMAGES = (2, 5, 6, 3)  # (N, H, W, C): odd and even spatial sizes
CLASS_IDS = np.array([0, 2, 1, 2])
BINARY_LABELS = np.array([[0.0], [1.0], [1.0], [0.0]])

# (name, forward, backward, make(rng, dtype) -> (positional args, keyword args)), one row per op
# (and per distinct code path of an op).
OP_CASES = [
    ("dense", ops.dense_forward, ops.dense_backward,
     lambda rng, dt: ((_random(rng, dt, (4, 3)), _random(rng, dt, (3, 2)), _random(rng, dt, 2)), {})),
    ("dense_no_bias", ops.dense_forward, ops.dense_backward,
     lambda rng, dt: ((_random(rng, dt, (4, 3)), _random(rng, dt, (3, 2))), {})),
    ("conv2d_same_stride2", ops.conv2d_forward, ops.conv2d_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), _random(rng, dt, (3, 3, 3, 4))),
                      {"strides": 2, "padding": "same"})),
    ("conv2d_valid", ops.conv2d_forward, ops.conv2d_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), _random(rng, dt, (2, 3, 3, 4))), {"padding": "valid"})),
    ("bias_add", ops.bias_add_forward, ops.bias_add_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), _random(rng, dt, 3)), {})),
    ("bias_add_relu", ops.bias_add_relu_forward, ops.bias_add_relu_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), _random(rng, dt, 3)), {})),
    ("max_pool2d_same", ops.max_pool2d_forward, ops.max_pool2d_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES),), {"pool_size": 3, "strides": 2, "padding": "same"})),
    ("max_pool2d_valid", ops.max_pool2d_forward, ops.max_pool2d_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("relu", ops.relu_forward, ops.relu_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("sigmoid", ops.sigmoid_forward, ops.sigmoid_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("softmax", ops.softmax_forward, ops.softmax_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("dropout", ops.dropout_forward, ops.dropout_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), 0.5), {"rng": rng})),
    ("dropout_inference", ops.dropout_forward, ops.dropout_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), 0.5), {"training": False})),
    ("flatten", ops.flatten_forward, ops.flatten_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("softmax_cross_entropy_sparse", ops.softmax_cross_entropy_forward,
     ops.softmax_cross_entropy_backward, lambda rng, dt: ((_random(rng, dt, (4, 3)), CLASS_IDS), {})),
    ("softmax_cross_entropy_one_hot", ops.softmax_cross_entropy_forward,
     ops.softmax_cross_entropy_backward,
     lambda rng, dt: ((_random(rng, dt, (4, 3)), np.eye(3)[CLASS_IDS]), {})),
    ("sigmoid_binary_cross_entropy", ops.sigmoid_binary_cross_entropy_forward,
     ops.sigmoid_binary_cross_entropy_backward,
     lambda rng, dt: ((_random(rng, dt, (4, 1)), BINARY_LABELS), {})),
    ("categorical_cross_entropy_one_hot", ops.categorical_cross_entropy_forward,
     ops.categorical_cross_entropy_backward,
     lambda rng, dt: ((_probabilities(rng, dt), np.eye(3)[CLASS_IDS]), {})),
    ("categorical_cross_entropy_sparse", ops.categorical_cross_entropy_forward,
     ops.categorical_cross_entropy_backward, lambda rng, dt: ((_probabilities(rng, dt), CLASS_IDS), {})),
    ("binary_cross_entropy", ops.binary_cross_entropy_forward, ops.binary_cross_entropy_backward,
     lambda rng, dt: ((_probabilities(rng, dt)[:, :1], BINARY_LABELS), {})),
    ("mean_squared_error", ops.mean_squared_error_forward, ops.mean_squared_error_backward,
     lambda rng, dt: ((_random(rng, dt, (4, 3)), _random(rng, np.float64, (4, 3))), {})),
    ("mean_absolute_error", ops.mean_absolute_error_forward, ops.mean_absolute_error_backward,
     lambda rng, dt: ((_random(rng, dt, (4, 3)), _random(rng, np.float64, (4, 3))), {})),
    ("avg_pool2d_same", ops.avg_pool2d_forward, ops.avg_pool2d_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES),), {"pool_size": 3, "strides": 2, "padding": "same"})),
    ("global_avg_pool2d", ops.global_avg_pool2d_forward, ops.global_avg_pool2d_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("global_max_pool2d", ops.global_max_pool2d_forward, ops.global_max_pool2d_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("batch_norm", ops.batch_norm_forward, ops.batch_norm_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), _random(rng, dt, 3), _random(rng, dt, 3)), {})),
    ("batch_norm_inference", ops.batch_norm_inference_forward, ops.batch_norm_inference_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES), _random(rng, dt, 3), _random(rng, dt, 3), _random(rng, dt, 3),
                       np.abs(_random(rng, dt, 3))), {})),
    ("tanh", ops.tanh_forward, ops.tanh_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("elu", ops.elu_forward, ops.elu_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {"alpha": 0.5})),
    ("gelu", ops.gelu_forward, ops.gelu_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("gelu_tanh", ops.gelu_forward, ops.gelu_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES),), {"approximate": True})),
    ("leaky_relu", ops.leaky_relu_forward, ops.leaky_relu_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("softplus", ops.softplus_forward, ops.softplus_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("silu", ops.silu_forward, ops.silu_backward, lambda rng, dt: ((_random(rng, dt, IMAGES),), {})),
    ("relu_general", ops.relu_general_forward, ops.relu_general_backward,
     lambda rng, dt: ((_random(rng, dt, IMAGES),), {"negative_slope": 0.1, "max_value": 1.0, "threshold": 0.2})),
]
CASE_IDS = [case[0] for case in OP_CASES]


def _arrays_in(obj):
    """Every ndarray inside a (nested) cache of tuples, lists and dicts."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [array for item in obj for array in _arrays_in(item)]
    if isinstance(obj, dict):
        return [array for item in obj.values() for array in _arrays_in(item)]
    return []


def _gradients(result):
    return [g for g in (result if isinstance(result, tuple) else (result,)) if g is not None]


@pytest.mark.parametrize("name, forward, backward, make", OP_CASES, ids=CASE_IDS)
def test_backward_does_not_modify_dy_or_its_cache_and_returns_new_arrays(name, forward, backward, make):
    rng = np.random.default_rng(0)
    args, kwargs = make(rng, np.float64)
    inputs_before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    y, cache = forward(*args, **kwargs)
    dy = rng.standard_normal(np.shape(y))
    dy_before = dy.copy()
    cache_before = [a.copy() for a in _arrays_in(cache)]

    gradients = _gradients(backward(dy, cache))
    gradients_again = _gradients(backward(dy, cache))  # the cache is still good for a second use

    np.testing.assert_array_equal(dy, dy_before)
    for after, before in zip(_arrays_in(cache), cache_before, strict=True):
        np.testing.assert_array_equal(after, before)
    for a, b in zip(args, inputs_before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
    for first, second in zip(gradients, gradients_again, strict=True):
        np.testing.assert_array_equal(first, second)
        assert not np.shares_memory(first, dy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, forward, backward, make", OP_CASES, ids=CASE_IDS)
def test_every_op_keeps_the_dtype_forward_and_backward(name, forward, backward, make, dtype):
    rng = np.random.default_rng(1)
    args, kwargs = make(rng, dtype)
    y, cache = forward(*args, **kwargs)
    assert np.asarray(y).dtype == dtype
    # dy arrives as float64 (as NumPy hands it out): the gradients must still come back in dtype.
    dy = np.ones(np.shape(y), dtype=np.float64)
    for gradient in _gradients(backward(dy, cache)):
        assert gradient.dtype == dtype, name


def test_ops_package_reexports_every_public_function_of_its_modules():
    from scratchnet.ops import activations, conv, dense, dropout, losses, normalization, pooling, reshape, updates

    for module in (activations, conv, dense, dropout, losses, normalization, pooling, reshape, updates):
        for name in module.__all__:
            assert getattr(ops, name) is getattr(module, name)
            assert name in ops.__all__


def test_every_forward_has_a_backward_and_both_are_documented():
    forwards = [name for name in ops.__all__ if name.endswith("_forward")]
    assert len(forwards) == 29
    for name in forwards:
        backward = name.replace("_forward", "_backward")
        assert backward in ops.__all__
        assert getattr(ops, name).__doc__ and getattr(ops, backward).__doc__


def test_importing_ops_imports_neither_tensorflow_nor_numba():
    code = (
        "import sys, scratchnet.ops, scratchnet.gradcheck;"
        "print(sorted({'tensorflow', 'numba'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
