"""A Conv2D layer with a bias and a relu as one op: the convolution, then bias and relu in the same memory.

The twin of `scratchnet.ops.conv.conv2d_bias_relu_forward` / `_backward`, same names, same signature,
same values. The forward adds the bias and applies the relu over the convolution's output, an array this
op made and nobody else has seen, so a training step keeps one activation per such layer instead of two.
The backward, when the cache it was handed held the last reference to that output, writes relu's gradient
over it, so the gradient takes no memory of its own either.
"""
from __future__ import annotations

import sys

import numpy as np

from scratchnet.kernels.activations import bias_add_relu_backward, bias_add_relu_backward_over, bias_add_relu_over
from scratchnet.kernels.conv import conv2d_backward, conv2d_forward_then_bias_relu
from scratchnet.runtime import threads

__all__ = ["conv2d_bias_relu_forward", "conv2d_bias_relu_backward"]


def conv2d_bias_relu_forward(x, kernel, bias, strides=1, padding="valid"):
    """``y = relu(conv2d(x, kernel) + bias)``; returns (y, (the convolution's cache, y)), as the reference.

    On the team path the pieces add the bias and apply the relu to each chunk of output as soon as it is
    computed, while it is in cache (no second pass over the whole output); otherwise after the convolution.
    """
    bias_for_pieces = _bias_for_pieces(x, kernel, bias)
    z, conv_cache, done = conv2d_forward_then_bias_relu(x, kernel, strides, padding, bias_for_pieces)
    y = z if done else bias_add_relu_over(z, bias)
    return y, (conv_cache, y)


def _bias_for_pieces(x, kernel, bias):
    """The bias as the pieces take it (float32, contiguous, one value per output channel), or None when the
    arrays are not those of the team path or the bias is wrong (`bias_add_relu_over` then raises the
    reference's error)."""
    dtype, shape = getattr(x, "dtype", None), getattr(kernel, "shape", ())
    if dtype != np.float32 or len(shape) != 4:
        return None
    bias = np.ascontiguousarray(bias, dtype=np.float32) if isinstance(bias, np.ndarray) else None
    return bias if bias is not None and bias.shape == (shape[3],) else None


def conv2d_bias_relu_backward(dy, cache, need_dx=True):
    """(dx or None, dkernel, dbias) of `conv2d_bias_relu_forward`, as the reference.

    When the caller handed over its last reference to the cache and nothing else holds the output y (no
    view, no other name: the case inside a model's training step), relu's gradient is written over y;
    otherwise it is a new array and y is left as it was.
    """
    conv_cache, y = cache
    del cache
    owns_memory = _owns_memory(y)
    if owns_memory and sys.getrefcount(y) > _SOLE_COUNT:
        threads.release_pieces()  # the worker of the next layer's backward may still hold y as its input
    if owns_memory and sys.getrefcount(y) <= _SOLE_COUNT:  # nobody else can read y: it takes relu's gradient
        dz, dbias = bias_add_relu_backward_over(dy, y)
    else:
        dz, dbias = bias_add_relu_backward(dy, y)
    del y
    dx, dkernel = conv2d_backward(dz, conv_cache, need_dx)
    return dx, dkernel, dbias


def _probe_sole_count():
    array = np.empty(1)  # held by this one local name, as y in conv2d_bias_relu_backward
    return sys.getrefcount(array)


_SOLE_COUNT = _probe_sole_count()
"""What ``sys.getrefcount`` returns for an array that one local name alone holds, measured on this
interpreter (whether a call's argument counts as a reference differs between Python versions)."""


def _owns_memory(array):
    """True if `array` owns its memory, writable and contiguous: not a view, so no view's owner sees a write."""
    return array.base is None and array.flags.writeable and array.flags.c_contiguous
