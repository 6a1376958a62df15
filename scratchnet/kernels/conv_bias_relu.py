"""A Conv2D layer with a bias and a relu as one op: the convolution, then bias and relu in the same memory.

The twin of `scratchnet.ops.conv.conv2d_bias_relu_forward` / `_backward`, same names, same signature,
same values. The forward adds the bias and applies the relu over the convolution's output, an array this
op made and nobody else has seen, so a training step keeps one activation per such layer instead of two.
The backward writes relu's gradient over an array nobody needs any more, so the gradient takes no memory
of its own either: over the gradient it was given, in a training step that hands its gradients over
(`scratchnet.engine.step`), freeing the output at once; else over the output, when the cache it was
handed held the last reference to it. In emnist_cnn's training step the first keeps its second
convolution's output and the gradient from being held together: the step's peak went from 265-274 MB to
256 (a fresh process, ten steps).
"""
from __future__ import annotations

import sys

import numpy as np

from scratchnet.kernels._common import gradients_handed_over
from scratchnet.kernels.activations import (
    bias_add_relu_backward,
    bias_add_relu_backward_into_dy,
    bias_add_relu_backward_over,
    bias_add_relu_over,
)
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

    relu's gradient takes no memory of its own when it can go over an array nobody needs any more:

    * over ``dy``, inside a step that hands its gradients over (`scratchnet.engine.step`), when nothing
      but the layer and the model's loop holds dy: the output y is then freed at once, if the cache
      held its last reference, so the step's peak holds one activation less;
    * else over y, when the caller handed over its last reference to the cache and nothing else holds y
      (no view, no other name: the case inside a model's training step);
    * else it is a new array, and dy and y are left as they were.
    """
    conv_cache, y = cache
    del cache
    if _handed_over(dy, y):
        dz, dbias = bias_add_relu_backward_into_dy(dy, y)
        del y  # relu's output: freed here when the cache held its last reference
    else:
        owns_memory = _owns_memory(y)
        if owns_memory and sys.getrefcount(y) > _SOLE_COUNT:
            threads.release_pieces()  # the worker of the next layer's backward may still hold y as its input
        if owns_memory and sys.getrefcount(y) <= _SOLE_COUNT:  # nobody else can read y: it takes relu's gradient
            dz, dbias = bias_add_relu_backward_over(dy, y)
        else:
            dz, dbias = bias_add_relu_backward(dy, y)
        del y
    del dy
    dx, dkernel = conv2d_backward(dz, conv_cache, need_dx)
    return dx, dkernel, dbias


def _handed_over(dy, y):
    """True if relu's gradient may be written over `dy`: gradients handed over in this step, dy y's shape and
    dtype, its memory its own (or that of an array only dy refers to: a reshape, as the ops return their dx)
    and no reference to it but those of the model's loop, the layer and this op (a worker of the last op's
    pieces that still holds it lets go first)."""
    if not gradients_handed_over() or type(dy) is not np.ndarray or dy.shape != y.shape or dy.dtype != y.dtype:
        return False
    for look in range(2):
        if (_owns_memory(dy) or _sole_view(dy)) and sys.getrefcount(dy) <= _HANDED_OVER_COUNT:
            return True
        if look == 0:
            threads.release_pieces()  # the workers of the op that made dy may still hold it (or its base)
    return False


def _sole_view(array):
    """True if `array` is a contiguous, writable view of the whole of an array of its own that nothing else
    refers to (as ``np.empty(...).reshape(...)`` returns)."""
    base = array.base
    return (type(base) is np.ndarray and base.base is None and base.flags.writeable and array.flags.c_contiguous
            and array.flags.writeable and array.nbytes == base.nbytes
            and sys.getrefcount(base) <= 3)  # the view's reference, this name's and the call's


def _probe_sole_count():
    array = np.empty(1)  # held by this one local name, as y in conv2d_bias_relu_backward
    return sys.getrefcount(array)


_SOLE_COUNT = _probe_sole_count()
"""What ``sys.getrefcount`` returns for an array that one local name alone holds, measured on this
interpreter (whether a call's argument counts as a reference differs between Python versions)."""

_HANDED_OVER_COUNT = _SOLE_COUNT + 4
"""The most ``sys.getrefcount(dy)`` may return in `_handed_over` for dy to be handed over: besides
`_handed_over`'s own name (`_SOLE_COUNT`), the names of this op, of the layer's backward and of the model's
loop, and the argument tuple of the loop's ``layer.backward(dy, **options)``. Any other holder makes it
more and keeps dy as it is (tests/test_kernels.py checks that a model's training step does hand dy over)."""


def _owns_memory(array):
    """True if `array` owns its memory, writable and contiguous: not a view, so no view's owner sees a write."""
    return array.base is None and array.flags.writeable and array.flags.c_contiguous
