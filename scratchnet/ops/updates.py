"""Optimizer updates as ops: the arithmetic of one step of a weight, the part an optimizer repeats per parameter.

Unlike the forward/backward pairs, an update changes its arrays IN PLACE: that is what an optimizer step is
(the weights and the optimizer's state move on). `scratchnet.optimizers` keeps the state and computes the
step's scalars; it calls these through `scratchnet.engine`.
"""
import numpy as np

__all__ = ["adam_update", "rmsprop_update", "moving_average_update"]


def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """Keras's Adam update of ``param``, with its moments ``m`` and ``v``, all three in place.

    ``m += (grad - m) * (1 - beta_1)``, ``v += (grad * grad - v) * (1 - beta_2)``,
    ``param -= m * alpha / (sqrt(v) + epsilon)``, where ``alpha`` already holds the learning rate and the
    bias corrections (see `scratchnet.optimizers.Adam`).

    Args:
        param, m, v: arrays of one shape and dtype, updated in place; grad: the same shape, in param's dtype.
        alpha, one_minus_beta_1, one_minus_beta_2, epsilon: scalars of param's dtype.

    Returns:
        None.

    Notes: Keras's form, with epsilon added after the bias corrections were folded into alpha (not the
    paper's ``m_hat / (sqrt(v_hat) + epsilon)``).
    """
    m += (grad - m) * one_minus_beta_1
    v += (grad * grad - v) * one_minus_beta_2
    param -= m * alpha / (np.sqrt(v) + epsilon)


def rmsprop_update(param, grad, velocity, learning_rate, rho, one_minus_rho, epsilon, momentum=None,
                   momentum_buffer=None, average_grad=None):
    """Keras's RMSprop update of ``param`` and its running averages, all in place.

    ``velocity = rho * velocity + (1 - rho) * grad^2``; centred (``average_grad`` given):
    ``average_grad = rho * average_grad + (1 - rho) * grad`` and
    ``denominator = velocity - average_grad^2 + epsilon``, else ``denominator = velocity + epsilon``;
    ``increment = learning_rate * grad / sqrt(denominator)``; with momentum (``momentum_buffer`` given):
    ``momentum_buffer = momentum * momentum_buffer + increment`` and ``param -= momentum_buffer``, else
    ``param -= increment``.

    Args:
        param, velocity (and momentum_buffer, average_grad when used): arrays of one shape and dtype,
            updated in place; grad: the same shape, in param's dtype.
        learning_rate, rho, one_minus_rho, epsilon, momentum: scalars of param's dtype.

    Returns:
        None.

    Notes: Keras's form, with epsilon INSIDE the square root (PyTorch adds it outside).
    """
    velocity[...] = rho * velocity + one_minus_rho * (grad * grad)
    if average_grad is not None:
        average_grad[...] = rho * average_grad + one_minus_rho * grad
        denominator = velocity - average_grad * average_grad + epsilon
    else:
        denominator = velocity + epsilon
    increment = learning_rate * grad / np.sqrt(denominator)
    if momentum_buffer is not None:
        momentum_buffer[...] = momentum * momentum_buffer + increment
        param -= momentum_buffer
    else:
        param -= increment


def moving_average_update(moving, value, momentum):
    """An exponential moving average, in place: ``moving = moving * momentum + value * (1 - momentum)``.

    Args:
        moving: array updated in place (e.g. BatchNormalization's moving mean, (C,)).
        value: the new observation, moving's shape (cast to its dtype).
        momentum: a Python float in [0, 1]; ``momentum`` and ``1 - momentum`` are cast to moving's dtype.

    Returns:
        None.

    Notes: Keras's BatchNormalization update, ``moving * momentum + value * (1 - momentum)``, evaluated in
    the same order (``1 - momentum`` in double precision first, then cast).
    """
    dtype = moving.dtype.type
    moving[...] = moving * dtype(momentum) + np.asarray(value, dtype=moving.dtype) * dtype(1.0 - momentum)
