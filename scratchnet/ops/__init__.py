"""The readable engine: stateless NumPy forward/backward pairs, one module per op family (read this first).

Every op is a pair of free functions (the cs231n contract):

* ``<op>_forward(inputs..., hyperparameters...) -> (y, cache)``
* ``<op>_backward(dy, cache) -> gradients``: one array, or a tuple in the order of the forward's
  array arguments (``dense_backward -> (dx, dkernel, dbias)``).

A backward never modifies ``dy`` or its cache and returns new arrays; the dtype of the forward's
first input is the dtype of every output (float32 stays float32). ``scratchnet.gradcheck`` checks
every backward against central differences. Ops say WHAT is computed; how fast (in place, fused, on
several threads) is the business of the numba twins that `scratchnet.engine` may pick instead.
"""

from .activations import (
    elu_backward,
    elu_forward,
    gelu_backward,
    gelu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    relu_general_backward,
    relu_general_forward,
    sigmoid_backward,
    sigmoid_forward,
    silu_backward,
    silu_forward,
    softmax_backward,
    softmax_forward,
    softplus_backward,
    softplus_forward,
    tanh_backward,
    tanh_forward,
)
from .conv import (
    bias_add_backward,
    bias_add_forward,
    bias_add_relu_backward,
    bias_add_relu_forward,
    conv2d_backward,
    conv2d_bias_relu_backward,
    conv2d_bias_relu_forward,
    conv2d_forward,
    padding_amounts,
)
from .dense import dense_backward, dense_forward
from .dropout import dropout_backward, dropout_forward
from .losses import (
    binary_cross_entropy_backward,
    binary_cross_entropy_forward,
    categorical_cross_entropy_backward,
    categorical_cross_entropy_forward,
    logistic_regression_gradients,
    mean_absolute_error_backward,
    mean_absolute_error_forward,
    mean_squared_error_backward,
    mean_squared_error_forward,
    sigmoid_binary_cross_entropy_backward,
    sigmoid_binary_cross_entropy_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .normalization import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference_backward,
    batch_norm_inference_forward,
)
from .pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    global_max_pool2d_backward,
    global_max_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .reshape import flatten_backward, flatten_forward
from .updates import adam_update, moving_average_update, rmsprop_update

__all__ = [
    "dense_forward",
    "dense_backward",
    "padding_amounts",
    "conv2d_forward",
    "conv2d_backward",
    "bias_add_forward",
    "bias_add_backward",
    "bias_add_relu_forward",
    "bias_add_relu_backward",
    "conv2d_bias_relu_forward",
    "conv2d_bias_relu_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "global_max_pool2d_forward",
    "global_max_pool2d_backward",
    "batch_norm_forward",
    "batch_norm_backward",
    "batch_norm_inference_forward",
    "batch_norm_inference_backward",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "softmax_forward",
    "softmax_backward",
    "tanh_forward",
    "tanh_backward",
    "elu_forward",
    "elu_backward",
    "gelu_forward",
    "gelu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "softplus_forward",
    "softplus_backward",
    "silu_forward",
    "silu_backward",
    "relu_general_forward",
    "relu_general_backward",
    "dropout_forward",
    "dropout_backward",
    "flatten_forward",
    "flatten_backward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "sigmoid_binary_cross_entropy_forward",
    "sigmoid_binary_cross_entropy_backward",
    "categorical_cross_entropy_forward",
    "categorical_cross_entropy_backward",
    "binary_cross_entropy_forward",
    "binary_cross_entropy_backward",
    "mean_squared_error_forward",
    "mean_squared_error_backward",
    "mean_absolute_error_forward",
    "mean_absolute_error_backward",
    "logistic_regression_gradients",
    "adam_update",
    "rmsprop_update",
    "moving_average_update",
]
