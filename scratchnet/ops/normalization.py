"""Batch normalisation over the last (channel) axis, in training and in inference mode, forward and backward.

Shapes: x is (N, C) or (N, H, W, C), any rank with the channels last; gamma, beta and the statistics are
(C,). The statistics are taken over every axis but the last: M = N (dense) or N * H * W (images) values
per channel.

Two ops, because the two modes differentiate differently:

* ``batch_norm_forward`` (training): the batch's own mean and variance normalise it, so they depend on x
  and the backward carries the gradient through them;
* ``batch_norm_inference_forward``: fixed statistics (the layer's moving averages), so the op is a
  per-channel affine map of x.

The moving averages themselves are an optimizer-style in-place update, ``updates.moving_average_update``,
which the layer applies to the batch statistics that ``batch_norm_forward`` leaves in its cache.
"""

from collections import namedtuple

import numpy as np

from ._checks import check_dy, float_array

__all__ = [
    "batch_norm_forward",
    "batch_norm_backward",
    "batch_norm_inference_forward",
    "batch_norm_inference_backward",
]

BatchNormCache = namedtuple("BatchNormCache", "x_hat inv_std gamma has_gamma has_beta mean variance")
"""What ``batch_norm_forward`` keeps: the normalised x, ``1 / sqrt(variance + epsilon)`` (C,), gamma (C,)
(ones when there is none), whether gamma and beta were given, and the batch statistics ``mean`` and
``variance`` (C,) that a layer folds into its moving averages."""


def _channel_vector(value, name, channels, dtype):
    """gamma/beta/statistics: a (C,) vector in x's dtype (None stays None)."""
    if value is None:
        return None
    value = float_array(value, name, ndim=1)
    if value.shape[0] != channels:
        raise ValueError(
            f"`{name}` must have one value per channel ({channels}, the last axis of x). "
            f"Received: {name}.shape={value.shape}"
        )
    return value.astype(dtype, copy=False)


def _check_x(x):
    x = float_array(x, "x")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"`x` must be a batch (N, ..., C) with at least one example. Received: x.shape={x.shape}")
    return x


def batch_norm_forward(x, gamma=None, beta=None, epsilon=1e-3):
    """Training-mode batch normalisation: each channel normalised by the batch's own statistics.

    ``mean = sum x / M``, ``variance = sum (x - mean)^2 / M`` (over all axes but the last),
    ``x_hat = (x - mean) / sqrt(variance + epsilon)``, ``y = gamma * x_hat + beta``.

    Args:
        x: (N, ..., C) float array.
        gamma: (C,) scale, or None (Keras's ``scale=False``: no scale).
        beta: (C,) offset, or None (``center=False``).
        epsilon: added to the variance (Keras's default 1e-3, not PyTorch's 1e-5).

    Returns:
        y: x's shape and dtype.
        cache: a ``BatchNormCache``; ``cache.mean`` and ``cache.variance`` are the batch statistics (C,).

    Notes: as Keras's BatchNormalization in training: the biased variance (divided by M, not M - 1) is
    used both to normalise and for the moving variance, computed in two passes as ``tf.nn.moments``;
    TensorFlow then evaluates ``x * inv + (beta - mean * inv)`` with ``inv = gamma * rsqrt(variance +
    epsilon)``, the same numbers to rounding.
    """
    x = _check_x(x)
    channels = x.shape[-1]
    has_gamma, has_beta = gamma is not None, beta is not None
    gamma = _channel_vector(gamma, "gamma", channels, x.dtype)
    beta = _channel_vector(beta, "beta", channels, x.dtype)
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    centred = x - mean
    variance = (centred * centred).mean(axis=axes)
    inv_std = 1 / np.sqrt(variance + x.dtype.type(epsilon))
    x_hat = centred * inv_std
    gamma = np.ones(channels, dtype=x.dtype) if gamma is None else gamma
    y = x_hat * gamma if has_gamma else x_hat.copy()
    if has_beta:
        y += beta
    return y, BatchNormCache(x_hat, inv_std, gamma, has_gamma, has_beta, mean, variance)


def batch_norm_backward(dy, cache):
    """Gradients of training-mode batch normalisation, through the batch statistics.

    ``dbeta = sum dy``, ``dgamma = sum dy * x_hat`` (sums over all axes but the last), and, because
    the mean and the variance are functions of x,
    ``dx = gamma * inv_std / M * (M * dy - dbeta - x_hat * dgamma)``.

    Returns:
        (dx, dgamma, dbeta): x's shape, (C,), (C,), x's dtype; dgamma/dbeta are None where the forward
        had no gamma/beta.
    """
    x_hat, inv_std, gamma, has_gamma, has_beta = cache[:5]
    dy = check_dy(dy, x_hat.shape, x_hat.dtype, "batch_norm_backward")
    axes = tuple(range(x_hat.ndim - 1))
    count = x_hat.size // x_hat.shape[-1]  # M
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx = (gamma * inv_std / x_hat.dtype.type(count)) * (count * dy - dbeta - x_hat * dgamma)
    return dx, dgamma if has_gamma else None, dbeta if has_beta else None


def batch_norm_inference_forward(x, gamma, beta, moving_mean, moving_variance, epsilon=1e-3):
    """Inference-mode batch normalisation: fixed per-channel statistics, an affine map of x.

    ``y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta``.

    Args:
        x: (N, ..., C) float array.
        gamma, beta: (C,) or None (no scale / no offset).
        moving_mean, moving_variance: (C,), the statistics to normalise with.
        epsilon: added to the variance (Keras's default 1e-3).

    Returns:
        y: x's shape and dtype; cache for ``batch_norm_inference_backward``.

    Notes: what Keras's BatchNormalization computes in ``predict``/``evaluate`` (``training=False``) and
    for a frozen layer (``trainable=False``); no statistic is updated.
    """
    x = _check_x(x)
    channels = x.shape[-1]
    has_gamma, has_beta = gamma is not None, beta is not None
    gamma = _channel_vector(gamma, "gamma", channels, x.dtype)
    beta = _channel_vector(beta, "beta", channels, x.dtype)
    mean = _channel_vector(moving_mean, "moving_mean", channels, x.dtype)
    variance = _channel_vector(moving_variance, "moving_variance", channels, x.dtype)
    inv_std = 1 / np.sqrt(variance + x.dtype.type(epsilon))
    x_hat = (x - mean) * inv_std
    y = x_hat * gamma if has_gamma else x_hat.copy()
    if has_beta:
        y += beta
    gamma = np.ones(channels, dtype=x.dtype) if gamma is None else gamma
    return y, (x_hat, inv_std, gamma, has_gamma, has_beta)


def batch_norm_inference_backward(dy, cache):
    """``dx = dy * gamma * inv_std``, ``dgamma = sum dy * x_hat``, ``dbeta = sum dy`` (statistics are constants).

    Returns:
        (dx, dgamma, dbeta), x's dtype; dgamma/dbeta are None where the forward had none.
    """
    x_hat, inv_std, gamma, has_gamma, has_beta = cache
    dy = check_dy(dy, x_hat.shape, x_hat.dtype, "batch_norm_inference_backward")
    axes = tuple(range(x_hat.ndim - 1))
    dx = dy * (gamma * inv_std)
    dgamma = (dy * x_hat).sum(axis=axes) if has_gamma else None
    dbeta = dy.sum(axis=axes) if has_beta else None
    return dx, dgamma, dbeta
