"""The numba twins of the hot ops of scratchnet.ops: same names, same signatures, faster.

conv2d and max-pool (forward/backward) are the engine's hot spots; relu and bias_add joined because a
profile of the CNN training steps showed their NumPy backwards costing several times one memory pass.

`scratchnet.engine` picks between these and the readable NumPy reference. Importing this package
compiles nothing: each kernel is compiled on its first call for the dtypes it meets (float32 and float64)
and cached on disk (``cache=True``: in ``__pycache__`` next to the module, or under NUMBA_CACHE_DIR).
"""
from scratchnet.kernels.activations import bias_add_backward, bias_add_forward, relu_backward, relu_forward
from scratchnet.kernels.conv import conv2d_backward, conv2d_forward
from scratchnet.kernels.pooling import max_pool2d_backward, max_pool2d_forward

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "relu_forward",
    "relu_backward",
    "bias_add_forward",
    "bias_add_backward",
]
