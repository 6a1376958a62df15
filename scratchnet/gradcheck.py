"""Central-difference gradient checking: does an op's backward agree with its forward?

The analytic gradient of a backward is compared with the numerical derivative of the forward,

    d/dx_i sum(f(x) * dy)  ~=  (sum(f(x + h e_i) * dy) - sum(f(x - h e_i) * dy)) / (2 h),

whose error is O(h^2) from the Taylor series plus O(eps / h) from rounding, so run it in float64
(h = 1e-6 gives errors near 1e-10) on inputs kept away from kinks (ReLU at 0) and ties (max-pooling).
"""

import numpy as np

__all__ = ["numerical_gradient", "relative_error", "check_gradients"]


def numerical_gradient(f, x, dy=None, h=1e-6):
    """Numerical gradient of ``sum(f(x) * dy)`` with respect to x, by central differences.

    Args:
        f: function of x alone returning an array (or scalar).
        x: float array; each element is nudged by ±h in place and restored afterwards (also if f
            raises), so x is unchanged on return.
        dy: weights of f's outputs (the upstream gradient), f(x)'s shape; None means all ones, i.e.
            the gradient of ``sum(f(x))``.
        h: the step.

    Returns:
        x's shape and dtype: the estimate of ``sum_k dy_k * df_k/dx``.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            "`x` must be a floating-point ndarray (it is nudged in place). "
            f"Received: {type(x).__name__} of dtype {getattr(x, 'dtype', None)}"
        )
    if not h > 0:
        raise ValueError(f"`h` must be positive. Received: h={h!r}")
    weight = 1.0 if dy is None else np.asarray(dy)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        try:
            x[index] = original + h
            plus = np.sum(np.asarray(f(x), dtype=np.float64) * weight)
            x[index] = original - h
            minus = np.sum(np.asarray(f(x), dtype=np.float64) * weight)
        finally:
            x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def relative_error(a, b):
    """Scale-free distance between two arrays, in the max (infinity) norm.

    ``max_i |a_i - b_i| / max(max_i (|a_i| + |b_i|), tiny)``: 0 for equal arrays, at most 1, and
    unaffected by multiplying both by a constant. ``tiny`` (the smallest normal float64) keeps
    two all-zero arrays at 0 instead of 0/0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape. Received: {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a) + np.abs(b))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b)) / scale)


def check_gradients(forward, backward, inputs, constants=None, rng=None, h=1e-6):
    """Compare every analytic gradient of an op with its numerical gradient.

    Runs ``y, cache = forward(**inputs, **constants)``, draws a random upstream gradient ``dy``
    (y's shape), runs ``backward(dy, cache)``, and for each input x compares the matching
    gradient with ``numerical_gradient`` of ``sum(forward(...)[0] * dy)`` w.r.t. x.

    Args:
        forward: an op's forward, returning (y, cache).
        backward: its backward, ``backward(dy, cache)`` returning one gradient or a tuple of
            them in the order of ``inputs``; a None gradient (e.g. dbias without a bias) is skipped.
        inputs: the differentiable arguments by name, in the backward's order, e.g.
            ``{"x": x, "kernel": kernel}``. Use float64.
        constants: other keyword arguments of the forward (hyperparameters, labels, masks).
        rng: numpy Generator for dy (default: seed 0).
        h: finite-difference step.

    Returns:
        {input name: relative_error(analytic, numerical)}.

    Example:
        >>> errors = check_gradients(dense_forward, dense_backward, {"x": x, "kernel": w, "bias": b})
        >>> assert max(errors.values()) < 1e-7
    """
    constants = {} if constants is None else dict(constants)
    rng = np.random.default_rng(0) if rng is None else rng
    inputs = {name: None if value is None else np.array(value) for name, value in inputs.items()}

    y, cache = forward(**inputs, **constants)
    dy = rng.standard_normal(np.shape(y)).astype(np.asarray(y).dtype)
    gradients = backward(dy, cache)
    if not isinstance(gradients, tuple):
        gradients = (gradients,)
    if len(gradients) != len(inputs):
        raise ValueError(
            f"The backward returned {len(gradients)} gradients for {len(inputs)} inputs "
            f"({', '.join(inputs)})."
        )

    errors = {}
    for (name, value), analytic in zip(inputs.items(), gradients):
        if analytic is None or value is None:
            continue

        def f(nudged, name=name):
            return forward(**{**inputs, name: nudged}, **constants)[0]

        numerical = numerical_gradient(f, value.copy(), dy, h)
        errors[name] = relative_error(analytic, numerical)
    return errors
