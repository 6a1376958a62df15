"""Argument checks shared by the ops: clear ValueErrors that name the argument and echo it."""

import numpy as np


def positive_int(value, name):
    """Return ``value`` as an int if it is a positive integer, else raise a ValueError naming it."""
    if type(value) is int and value > 0:  # the common case, checked first: ops run this every step
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def int_pair(value, name):
    """Turn an int or a pair of ints (as Keras accepts for kernel_size/strides) into (rows, cols)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"`{name}` must be an int or a tuple of 2 ints. Received: {name}={value!r}"
            )
        try:
            return positive_int(value[0], name), positive_int(value[1], name)
        except ValueError:
            raise ValueError(
                f"`{name}` must contain positive integers. Received: {name}={value!r}"
            ) from None
    value = positive_int(value, name)
    return value, value


def padding_mode(padding):
    """Return "same" or "valid" (case-insensitive, as Keras), else raise a ValueError."""
    if isinstance(padding, str) and padding.lower() in ("same", "valid"):
        return padding.lower()
    raise ValueError(f'`padding` must be "same" or "valid". Received: padding={padding!r}')


def float_array(x, name, ndim=None):
    """Return ``x`` as a floating-point ndarray (no copy when it is one), checking its rank."""
    x = np.asarray(x)
    if x.dtype.kind != "f":  # float16/32/64/longdouble; the same test as np.issubdtype(.., np.floating), faster
        raise ValueError(
            f"`{name}` must be a floating-point array (float32 or float64). "
            f"Received: {name}.dtype={x.dtype}"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"`{name}` must have {ndim} dimensions. Received: {name}.shape={x.shape}"
        )
    return x


def check_dy(dy, expected_shape, dtype, op):
    """Return ``dy`` as an array of ``dtype``, checking it has the shape the forward produced."""
    dy = np.asarray(dy)
    if dy.shape != tuple(expected_shape):
        raise ValueError(
            f"`dy` of {op} must have the forward output's shape {tuple(expected_shape)}. "
            f"Received: dy.shape={dy.shape}"
        )
    return dy.astype(dtype, copy=False)


def training_cache(cache, op):
    """Return ``cache``, or raise a ValueError when it is None: a forward with training=False keeps nothing."""
    if cache is None:
        raise ValueError(
            f"{op} needs the cache of a forward run with training=True. Received: cache=None "
            "(a forward with training=False, as in predict and evaluate, keeps nothing for a backward)"
        )
    return cache
