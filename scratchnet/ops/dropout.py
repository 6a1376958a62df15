"""Dropout with Keras's semantics (inverted dropout), forward and backward.

In training each unit is kept with probability ``1 - rate`` and the kept units are scaled by
``1 / (1 - rate)``, so the expected value of every unit is unchanged and nothing needs rescaling
at inference, where dropout is the identity.
"""

import numpy as np

from ._checks import check_dy, float_array

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, rate, rng=None, mask=None, training=True):
    """Inverted dropout: ``y = where(mask, x * 1/(1 - rate), 0)`` in training, ``y = x`` otherwise.

    Args:
        x: float array of any shape.
        rate: fraction of units DROPPED, in [0, 1).
        rng: a ``numpy.random.Generator``; the keep-mask is ``rng.random(x.shape) >= rate``.
        mask: optional boolean keep-mask (True = kept), broadcastable to x's shape; when given it
            is used instead of drawing one (so two engines can be fed the same mask).
        training: False (inference) or ``rate == 0`` makes dropout the identity.

    Returns:
        y: x's shape and dtype (x itself when dropout is the identity).
        cache: (keep-mask or None, scale, x.shape, x.dtype) for ``dropout_backward``.

    Notes: Keras's ``Dropout(rate)`` drops ``rate``; TF1's ``tf.nn.dropout(keep_prob)`` meant the
    opposite. As in ``tf.nn.dropout``, x is multiplied by the scale (cast to x's dtype) first and
    then the dropped units are zeroed. TensorFlow's random stream cannot be reproduced: for parity
    pass the same ``mask`` to both engines.
    """
    x = float_array(x, "x")
    is_number = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool)
    if not is_number or not 0 <= rate < 1:
        raise ValueError(f"`rate` must be a number in [0, 1). Received: rate={rate!r}")
    if not training or rate == 0:
        return x, (None, None, x.shape, x.dtype)
    if mask is None:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                "dropout_forward needs `rng` (a numpy.random.Generator) or an explicit `mask` "
                f"when training with rate > 0. Received: rng={rng!r}"
            )
        mask = rng.random(x.shape) >= rate
    else:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise ValueError(f"`mask` must be a boolean array. Received: mask.dtype={mask.dtype}")
        try:
            fits = np.broadcast_shapes(mask.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"`mask` must be broadcastable to x's shape {x.shape}. "
                f"Received: mask.shape={mask.shape}"
            )
    scale = np.asarray(1.0 / (1.0 - rate), dtype=x.dtype)
    y = np.where(mask, x * scale, 0).astype(x.dtype, copy=False)
    return y, (mask, scale, x.shape, x.dtype)


def dropout_backward(dy, cache):
    """``dx = where(mask, dy / (1 - rate), 0)``: the kept units pass the scaled gradient; a new array."""
    mask, scale, x_shape, dtype = cache
    dy = check_dy(dy, x_shape, dtype, "dropout_backward")
    if mask is None:
        return dy.copy()
    return np.where(mask, dy * scale, 0).astype(dtype, copy=False)
