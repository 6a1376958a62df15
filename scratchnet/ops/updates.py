"""Optimizer updates as ops: the arithmetic of one step of a weight, the part an optimizer repeats per parameter.

Unlike the forward/backward pairs, an update changes its arrays IN PLACE: that is what an optimizer step is
(the weights and the optimizer's state move on). `scratchnet.optimizers` keeps the state and computes the
step's scalars; it calls these through `scratchnet.engine`.
"""
import numpy as np

__all__ = ["adam_update"]


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
