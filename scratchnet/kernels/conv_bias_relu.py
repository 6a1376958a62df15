"""A Conv2D layer with a bias and a relu as one op: the convolution, then bias and relu in the same memory.

The twin of `scratchnet.ops.conv.conv2d_bias_relu_forward` / `_backward`, same names, same signature,
same values. The forward adds the bias and applies the relu over the convolution's output, an array this
op made and nobody else has seen, so a training step keeps one activation per such layer instead of two.
"""
from __future__ import annotations

from scratchnet.kernels.activations import bias_add_relu_backward, bias_add_relu_over
from scratchnet.kernels.conv import conv2d_backward, conv2d_forward

__all__ = ["conv2d_bias_relu_forward", "conv2d_bias_relu_backward"]


def conv2d_bias_relu_forward(x, kernel, bias, strides=1, padding="valid"):
    """``y = relu(conv2d(x, kernel) + bias)``; returns (y, (the convolution's cache, y)), as the reference."""
    z, conv_cache = conv2d_forward(x, kernel, strides, padding)
    y = bias_add_relu_over(z, bias)
    return y, (conv_cache, y)


def conv2d_bias_relu_backward(dy, cache, need_dx=True):
    """(dx or None, dkernel, dbias) of `conv2d_bias_relu_forward`, as the reference.

    The output y is let go of as soon as relu's gradient is read from it, so when the caller handed over
    its last reference to the cache, y is freed before the convolution's backward allocates dx.
    """
    conv_cache, y = cache
    del cache
    dz, dbias = bias_add_relu_backward(dy, y)
    del y
    dx, dkernel = conv2d_backward(dz, conv_cache, need_dx)
    return dx, dkernel, dbias
