"""The fully connected (dense) layer's arithmetic, ``y = x @ kernel + bias``, forward and backward.

Shapes: x is (N, CI), the kernel is (CI, CO), the bias is (CO,), the output is (N, CO).
Dense stays on NumPy's matrix product (BLAS): nothing written by hand is faster or clearer.
"""

from ._checks import check_dy, float_array

__all__ = ["dense_forward", "dense_backward"]


def dense_forward(x, kernel, bias=None):
    """Affine map of a batch of row vectors: ``y[n, co] = sum_ci x[n, ci] * kernel[ci, co] + bias[co]``.

    Args:
        x: (N, CI) float array.
        kernel: (CI, CO); cast to x's dtype.
        bias: (CO,) or None (no bias); cast to x's dtype.

    Returns:
        y: (N, CO), x's dtype.
        cache: (x, kernel, has_bias) for ``dense_backward``.

    Notes: Keras's Dense kernel is (in, out) and applied as ``x @ kernel`` (not ``kernel @ x``).
    """
    x = float_array(x, "x", ndim=2)
    kernel = float_array(kernel, "kernel", ndim=2).astype(x.dtype, copy=False)
    if kernel.shape[0] != x.shape[1]:
        raise ValueError(
            "The kernel's rows must equal x's features (CI). "
            f"Received: x.shape={x.shape}, kernel.shape={kernel.shape}"
        )
    y = x @ kernel
    if bias is not None:
        bias = float_array(bias, "bias", ndim=1).astype(x.dtype, copy=False)
        if bias.shape[0] != kernel.shape[1]:
            raise ValueError(
                "`bias` must have one value per output unit (CO). "
                f"Received: kernel.shape={kernel.shape}, bias.shape={bias.shape}"
            )
        y += bias
    return y, (x, kernel, bias is not None)


def dense_backward(dy, cache, need_dx=True):
    """Gradients of ``y = x @ kernel + bias`` by the chain rule for a matrix product.

    ``dx = dy @ kernel.T`` (N, CI), ``dkernel = x.T @ dy`` (CI, CO), ``dbias = sum_n dy[n]`` (CO,).

    Args:
        dy: (N, CO) gradient of the loss with respect to y.
        cache: from ``dense_forward``.
        need_dx: False skips dx (returned as None): a model's first layer needs no input gradient.

    Returns:
        (dx, dkernel, dbias), x's dtype; dbias is None when the forward had no bias.
    """
    x, kernel, has_bias = cache
    dy = check_dy(dy, (x.shape[0], kernel.shape[1]), x.dtype, "dense_backward")
    dx = dy @ kernel.T if need_dx else None
    dkernel = x.T @ dy
    dbias = dy.sum(axis=0) if has_bias else None
    return dx, dkernel, dbias
