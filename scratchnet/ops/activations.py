"""Element-wise activations and the softmax, forward and backward, numerically stable, Keras's defaults.

relu, sigmoid, softmax, and the rest of Keras's common activations: tanh, elu, gelu, leaky_relu, softplus,
silu (Keras's swish) and the ReLU layer's general form (negative slope, ceiling, threshold). Every
function works on arrays of any shape (softmax acts along the last axis) and keeps the dtype.
"""

import math

import numpy as np

from ._checks import check_dy, float_array

__all__ = [
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
]


def relu_forward(x):
    """Rectified linear unit: ``y = max(x, 0)``.

    Returns:
        y: x's shape and dtype; cache: x, for ``relu_backward``.
    """
    x = float_array(x, "x")
    return np.maximum(x, 0), x


def relu_backward(dy, cache):
    """``dx = dy`` where ``x > 0`` and 0 elsewhere.

    Notes: the gradient at exactly x == 0 is 0, as in TensorFlow (``tf.nn.relu``'s gradient
    uses ``x > 0``).
    """
    x = cache
    dy = check_dy(dy, x.shape, x.dtype, "relu_backward")
    return np.where(x > 0, dy, 0).astype(x.dtype, copy=False)


def sigmoid(x):
    """The logistic function ``1 / (1 + exp(-x))`` computed without overflow, x's dtype.

    ``exp`` is only ever taken of ``-|x| <= 0``, so it never overflows:
    for x >= 0, ``1 / (1 + exp(-x))``; for x < 0, the equal ``exp(x) / (1 + exp(x))``.
    """
    e = np.exp(-np.abs(x))  # in (0, 1]
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_forward(x):
    """Logistic sigmoid ``y = 1 / (1 + exp(-x))``, stable at any magnitude (no overflow at ±1000).

    Returns:
        y: x's shape and dtype, in [0, 1]; cache: y, for ``sigmoid_backward``.
    """
    x = float_array(x, "x")
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dy, cache):
    """``dx = dy * y * (1 - y)``, using the forward's output y."""
    y = cache
    dy = check_dy(dy, y.shape, y.dtype, "sigmoid_backward")
    return dy * y * (1 - y)


def softmax_forward(x):
    """Softmax over the last axis: ``y[..., k] = exp(x[..., k]) / sum_j exp(x[..., j])``.

    Stable: the row maximum is subtracted first (softmax does not change under a shift), so every
    exponent is <= 0 and nothing overflows.

    Returns:
        y: x's shape and dtype, rows summing to 1; cache: y, for ``softmax_backward``.
    """
    x = float_array(x, "x")
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    y = e / e.sum(axis=-1, keepdims=True)
    return y, y


def softmax_backward(dy, cache):
    """Vector-Jacobian product of softmax, row by row.

    The Jacobian is ``dy_k/dx_j = y_k (delta_kj - y_j)``, so
    ``dx_j = y_j * (dy_j - sum_k dy_k y_k)`` (the full C x C Jacobian is never built).
    """
    y = cache
    dy = check_dy(dy, y.shape, y.dtype, "softmax_backward")
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def _scalar(value, dtype):
    """``value`` as a NumPy scalar of ``dtype`` (a float64 scalar would promote a float32 array)."""
    return np.dtype(dtype).type(value)


def tanh_forward(x):
    """Hyperbolic tangent ``y = tanh(x)``, in (-1, 1).

    Returns:
        y: x's shape and dtype; cache: y, for ``tanh_backward``.
    """
    x = float_array(x, "x")
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """``dx = dy * (1 - y * y)``, from the forward's output y (as TensorFlow's TanhGrad)."""
    y = cache
    dy = check_dy(dy, y.shape, y.dtype, "tanh_backward")
    return dy * (1 - y * y)


def elu_forward(x, alpha=1.0):
    """Exponential linear unit: ``y = x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Args:
        x: float array, any shape.
        alpha: the value ``y`` tends to, negated, as x goes to -infinity (Keras's default 1.0).

    Returns:
        y: x's shape and dtype; cache: (x, y, alpha), for ``elu_backward``.

    Notes: ``expm1`` keeps small negative x accurate, as ``tf.nn.elu``; Keras computes other alphas as
    ``alpha * tf.nn.elu(x)`` for x <= 0, the same function.
    """
    x = float_array(x, "x")
    alpha = _scalar(alpha, x.dtype)
    y = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    return y, (x, y, alpha)


def elu_backward(dy, cache):
    """``dx = dy`` where ``x > 0``, else ``dy * alpha * exp(x) = dy * (y + alpha)``; at x == 0 that is dy."""
    x, y, alpha = cache
    dy = check_dy(dy, x.shape, x.dtype, "elu_backward")
    return np.where(x > 0, dy, dy * (y + alpha))


def erfc(x):
    """The complementary error function ``erfc(x) = 1 - erf(x)``, element-wise, to double precision.

    NumPy has no erf. SciPy's ``scipy.special.erfc`` is used when SciPy is installed; otherwise the C
    library's ``math.erfc`` is called once per element: the same values, about ten times slower.
    The result is float64; callers cast.
    """
    x = np.asarray(x, dtype=np.float64)
    try:
        from scipy.special import erfc as scipy_erfc
    except ImportError:
        return _erfc_per_element(x).astype(np.float64)
    return scipy_erfc(x)


_erfc_per_element = np.frompyfunc(math.erfc, 1, 1)

_SQRT_HALF = float(np.float32(math.sqrt(0.5)))
"""1/sqrt(2) as TensorFlow's exact gelu uses it: rounded to float32 (0.70710677) even in float64 (see gelu)."""
_SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = float(np.float32(0.044715))
"""The tanh form's cubic coefficient, rounded to float32 as TensorFlow casts it (see gelu)."""


def gelu_forward(x, approximate=False):
    """Gaussian error linear unit ``y = x * Phi(x)``, Phi the standard normal CDF.

    Exact form (Keras's default, ``approximate=False``): ``Phi(x) = erfc(-x * c) / 2`` with
    ``c = 1/sqrt(2)``. Tanh form (``approximate=True``): ``y = x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Returns:
        y: x's shape and dtype; cache: (x, approximate, Phi(x) or the tanh), for ``gelu_backward``.

    Notes: the formulas of ``tf.nn.gelu``, which Keras 3 calls with ``approximate=False`` by default.
    Phi goes through erfc of ``-x * c``, as TensorFlow, which keeps it accurate where it is tiny (x << 0).
    TensorFlow's c (and the tanh form's 0.044715) are rounded to float32, also in float64 (it casts the
    Python constants through float32 tensors); we use the same constants, so float64 models agree to
    1e-10 (the exact ones would move y by up to ~1e-8 relative).
    """
    x = float_array(x, "x")
    if approximate:
        inner = _scalar(_SQRT_TWO_OVER_PI, x.dtype) * (x + _scalar(_GELU_CUBIC, x.dtype) * x**3)
        t = np.tanh(inner)
        return _scalar(0.5, x.dtype) * x * (1 + t), (x, True, t)
    cdf = (0.5 * erfc(-x.astype(np.float64) * _SQRT_HALF)).astype(x.dtype)
    return x * cdf, (x, False, cdf)


def gelu_backward(dy, cache):
    """Derivative of gelu.

    Exact: ``dx = dy * (Phi(x) + x * phi(x))``, phi the normal density, here written with the forward's
    c as ``phi(x) = c / sqrt(pi) * exp(-(c x)^2)`` (the derivative of ``erfc(-c x) / 2``).
    Tanh form: with ``u = sqrt(2/pi) (x + 0.044715 x^3)`` and ``t = tanh(u)``,
    ``dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))``.
    """
    x, approximate, saved = cache
    dy = check_dy(dy, x.shape, x.dtype, "gelu_backward")
    half = _scalar(0.5, x.dtype)
    if approximate:
        t = saved
        du = _scalar(_SQRT_TWO_OVER_PI, x.dtype) * (1 + _scalar(3 * _GELU_CUBIC, x.dtype) * x * x)
        return dy * (half * (1 + t) + half * x * (1 - t * t) * du)
    cx = x * _scalar(_SQRT_HALF, x.dtype)
    density = np.exp(-cx * cx) * _scalar(_SQRT_HALF / math.sqrt(math.pi), x.dtype)
    return dy * (saved + x * density)


def leaky_relu_forward(x, negative_slope=0.2):
    """Leaky ReLU: ``y = x`` where ``x > 0``, else ``negative_slope * x``.

    Returns:
        y: x's shape and dtype; cache: (x, negative_slope), for ``leaky_relu_backward``.

    Notes: Keras 3's default slope is 0.2 (``keras.activations.leaky_relu``, ``tf.nn.leaky_relu``);
    Keras 2's LeakyReLU layer defaulted to 0.3, PyTorch to 0.01. TensorFlow stores the slope as a
    float32 attribute of its LeakyRelu op, so a float64 model multiplies by the float32-rounded slope
    (0.2 -> 0.20000000298); so do we.
    """
    x = float_array(x, "x")
    slope = _scalar(np.float32(negative_slope), x.dtype)
    return np.where(x > 0, x, x * slope), (x, slope)


def leaky_relu_backward(dy, cache):
    """``dx = dy`` where ``x > 0``, else ``negative_slope * dy`` (so at x == 0 too, as TensorFlow)."""
    x, slope = cache
    dy = check_dy(dy, x.shape, x.dtype, "leaky_relu_backward")
    return np.where(x > 0, dy, dy * slope)


def softplus_forward(x):
    """Softplus ``y = log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))``.

    The stable form never overflows (exp only of -|x|) and keeps full precision for very negative x,
    where ``log(1 + exp(x))`` would round to 0.

    Returns:
        y: x's shape and dtype; cache: x, for ``softplus_backward``.

    Notes: ``tf.math.softplus`` switches to ``x`` (large x) or ``exp(x)`` (very negative x) beyond
    thresholds; the values agree to rounding.
    """
    x = float_array(x, "x")
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), x


def softplus_backward(dy, cache):
    """``dx = dy * sigmoid(x)`` (the logistic function is softplus's derivative)."""
    x = cache
    dy = check_dy(dy, x.shape, x.dtype, "softplus_backward")
    return dy * sigmoid(x)


def silu_forward(x):
    """Sigmoid linear unit (Keras's ``silu``, also called ``swish``): ``y = x * sigmoid(x)``.

    Returns:
        y: x's shape and dtype; cache: (x, sigmoid(x)), for ``silu_backward``.

    Notes: ``tf.nn.silu`` with beta 1, which Keras's ``silu`` and ``swish`` both call.
    """
    x = float_array(x, "x")
    s = sigmoid(x)
    return x * s, (x, s)


def silu_backward(dy, cache):
    """``dx = dy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)`` (TensorFlow's form of the derivative)."""
    x, s = cache
    dy = check_dy(dy, x.shape, x.dtype, "silu_backward")
    return dy * (s * (1 + x * (1 - s)))


def relu_general_forward(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ReLU with its three options (the ``ReLU`` layer, ``keras.activations.relu``).

    ``y = min(x, max_value)`` where ``x > threshold``, else ``negative_slope * (x - threshold)``.
    With the defaults this is ``max(x, 0)``; ``max_value=6`` gives relu6; a slope alone gives leaky_relu.

    Args:
        x: float array, any shape.
        negative_slope: slope below the threshold (>= 0).
        max_value: the ceiling, or None for none.
        threshold: inputs at or below it are damped (0 with no slope).

    Returns:
        y: x's shape and dtype; cache for ``relu_general_backward``.

    Notes: Keras builds this from ``relu``, ``where(x > threshold)``, ``clip`` (or ``relu6`` when
    max_value is 6 and there is no threshold) and ``leaky_relu`` (slope alone); the backward reproduces
    the gradient TensorFlow gives that graph at the kinks (see ``relu_general_backward``).
    """
    x = float_array(x, "x")
    leaky_only = negative_slope != 0 and max_value is None and threshold == 0
    # Keras computes the slope-only case with tf.nn.leaky_relu (a float32 slope, see leaky_relu_forward)
    slope = _scalar(np.float32(negative_slope) if leaky_only else negative_slope, x.dtype)
    limit = None if max_value is None else _scalar(max_value, x.dtype)
    low = _scalar(threshold, x.dtype)
    above = x if limit is None else np.minimum(x, limit)
    y = np.where(x > low, above, slope * (x - low))
    return y, (x, slope, limit, low)


def relu_general_backward(dy, cache):
    """Gradient of ``relu_general_forward``, with TensorFlow's values at the kinks.

    ``dx = dy`` where ``threshold < x`` and ``x <= max_value``; ``dx = negative_slope * dy`` where
    ``x < threshold``; 0 elsewhere. At the kinks TensorFlow's gradients of Keras's graph are used:
    x == threshold gives 0, except for plain leaky_relu (slope, no threshold, no ceiling), which
    gives ``negative_slope * dy`` at x == 0; x == max_value passes dy (``clip_by_value`` passes at its
    bounds), except relu6 (max_value 6, no threshold), whose gradient is 0 at 6.
    """
    x, slope, limit, low = cache
    dy = check_dy(dy, x.shape, x.dtype, "relu_general_backward")
    leaky_only = slope != 0 and limit is None and low == 0
    if leaky_only:
        return np.where(x > 0, dy, dy * slope)
    passes = x > low
    if limit is not None:
        passes &= (x < limit) if (limit == 6 and low == 0) else (x <= limit)
    below = x < low
    return np.where(passes, dy, np.where(below, dy * slope, 0)).astype(x.dtype, copy=False)
