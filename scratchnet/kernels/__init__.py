"""The numba twins of the hot ops of scratchnet.ops: same names, same signatures, faster.

conv2d and max-pool (forward/backward) are the engine's hot spots; relu, bias_add, bias_add_relu (a
Conv2D's bias and relu as one op; its in-place form in training) and dropout joined because profiles of the CNN training steps showed
their NumPy versions costing several times one memory pass. dense is the reference's NumPy code run
under the thread policy (one BLAS thread for small products, the worker threads for big ones). Two
modules serve callers other than the engine: `optimizers` (the fused Adam update that
`scratchnet.optimizers.Adam` uses on the numba backend) and `fused` (logistic regression's one-pass
training step, used by `scratchnet.models.Sequential`).

`scratchnet.engine` picks between these and the readable NumPy reference. Importing this package
compiles nothing: each kernel is compiled on its first call for the dtypes it meets (float32 and float64)
and cached on disk (``cache=True``: in ``__pycache__`` next to the module, or under NUMBA_CACHE_DIR).
"""
from scratchnet import runtime

runtime.prepare()  # the thread policy and allocator settings the kernels are tuned for

from scratchnet.kernels.activations import (  # noqa: E402
    bias_add_backward,
    bias_add_forward,
    bias_add_relu_backward,
    bias_add_relu_forward,
    bias_add_relu_inplace_backward,
    bias_add_relu_inplace_forward,
    relu_backward,
    relu_forward,
)
from scratchnet.kernels.conv import conv2d_backward, conv2d_forward
from scratchnet.kernels.dense import dense_backward, dense_forward
from scratchnet.kernels.dropout import dropout_backward, dropout_forward
from scratchnet.kernels.pooling import max_pool2d_backward, max_pool2d_forward

__all__ = [
    "bias_add_relu_forward",
    "bias_add_relu_backward",
    "bias_add_relu_inplace_forward",
    "bias_add_relu_inplace_backward",
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
    "bias_add_forward",
    "bias_add_backward",
]
