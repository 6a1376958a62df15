"""The numba twins of the hot ops of scratchnet.ops: same names, same signatures, same values, faster.

conv2d and max-pool (forward/backward) are the engine's hot spots; relu, bias_add, bias_add_relu, the
Conv2D op conv2d_bias_relu (bias and relu written over the convolution's own output) and dropout joined
because profiles of the CNN training steps showed their NumPy versions costing several times one memory
pass; sigmoid and softmax (forward) because at a batch of predictions their NumPy passes cost as much as
the layer's matrix product; adam_update is Adam's three updates in one pass; logistic_regression_gradients
reads a big batch once instead of twice; softmax_cross_entropy_forward does in one pass per row the dozen
NumPy calls that cost a small batch's loss 58 us. dense is the reference's NumPy code run under the thread policy
(one BLAS thread for small products, the worker threads for big ones).

`scratchnet.engine` picks between these and the readable NumPy reference. Importing this package
compiles nothing: each kernel is compiled on its first call for the dtypes it meets (float32 and float64)
and cached on disk (``cache=True``: in ``__pycache__`` next to the module, or under NUMBA_CACHE_DIR).
"""
from scratchnet import runtime

runtime.prepare()  # the thread policy and allocator settings the kernels are tuned for

from scratchnet.kernels._common import GradientHandOver
from scratchnet.kernels.activations import (
    bias_add_backward,
    bias_add_forward,
    bias_add_relu_backward,
    bias_add_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_forward,
    softmax_forward,
)
from scratchnet.kernels.conv import conv2d_backward, conv2d_forward
from scratchnet.kernels.conv_bias_relu import conv2d_bias_relu_backward, conv2d_bias_relu_forward
from scratchnet.kernels.dense import dense_backward, dense_forward
from scratchnet.kernels.dropout import dropout_backward, dropout_forward
from scratchnet.kernels.fused import logistic_regression_gradients
from scratchnet.kernels.losses import softmax_cross_entropy_forward
from scratchnet.kernels.optimizers import adam_update
from scratchnet.kernels.pooling import max_pool2d_backward, max_pool2d_forward
from scratchnet.runtime import threads as _threads

__all__ = [
    "bias_add_relu_forward",
    "bias_add_relu_backward",
    "conv2d_bias_relu_forward",
    "conv2d_bias_relu_backward",
    "dense_forward",
    "dense_backward",
    "dropout_forward",
    "dropout_backward",
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "softmax_forward",
    "bias_add_forward",
    "bias_add_backward",
    "logistic_regression_gradients",
    "softmax_cross_entropy_forward",
    "adam_update",
]


def step(hands_over_gradients=False):
    """A context manager around one training step or forward pass (what `scratchnet.engine.step` returns
    on this backend): BLAS held at one thread for the whole block and, with ``hands_over_gradients``, the
    gradients handed over to the backward ops that can use their memory (`_common.GradientHandOver`).

    The kernels never use BLAS's own threads (each holds BLAS at one thread, or cuts a big product into
    pieces for the worker threads); held once per step, their own holds cost nothing instead of switching
    the thread count back and forth a dozen times a step.
    """
    if hands_over_gradients:
        return _TrainingStep()
    return _threads.serial_blas()


class _TrainingStep:
    """`step` with the gradients handed over: BLAS held at one thread, and a `GradientHandOver` block."""

    __slots__ = ("_blas", "_hand_over")

    def __init__(self):
        self._blas, self._hand_over = _threads.serial_blas(), GradientHandOver()

    def __enter__(self):
        self._blas.__enter__()
        self._hand_over.__enter__()
        return self

    def __exit__(self, *exc_info):
        self._hand_over.__exit__(*exc_info)
        return self._blas.__exit__(*exc_info)

