"""Optimizers with Keras's names, defaults and exact update formulas: SGD (with momentum) and Adam.

``optimizer.apply(params, grads)`` takes two lists of arrays in the same order (the model's weights in
Keras order) and updates every parameter IN PLACE, then adds one to ``optimizer.iterations``. Per-parameter
state (momentum, Adam's m and v) is created on the first call and can be read and restored with
``get_state()`` / ``set_state(arrays)`` (it is what ``Sequential.save`` stores).

Adam's arithmetic is the op `scratchnet.ops.updates.adam_update`, called through `scratchnet.engine`
(which may run it as one fused pass: the same float operations in the same order, equal bit for bit).

Notes: every coefficient is cast to the parameter's dtype before it touches an array, as Keras casts
the learning rate and betas to the variable's dtype: a float32 model stays float32 (NumPy 2 would
promote float32 arrays combined with float64 NumPy scalars).
"""

import numpy as np

from scratchnet import engine

__all__ = ["Optimizer", "SGD", "Adam", "get", "serialize", "deserialize"]


def _check_rate(value, name, low=0.0, high=None, low_open=False):
    number_types = (int, float, np.integer, np.floating)
    ok = isinstance(value, number_types) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"`{name}` must be a number in {bounds}. Received: {name}={value!r}")
    return float(value)


class Optimizer:
    """Base class: ``apply(params, grads)`` updates in place; subclasses define ``_update``."""

    def __init__(self, learning_rate):
        self.learning_rate = _check_rate(learning_rate, "learning_rate", low_open=True)
        self.iterations = 0
        self._slots = None  # per-parameter state, a list of tuples of arrays, made on the first apply

    def apply(self, params, grads):
        """One update of every array in ``params`` by its gradient in ``grads`` (same order, same shapes)."""
        if len(params) != len(grads):
            raise ValueError(
                f"`params` and `grads` must have the same length. Received: {len(params)} params, "
                f"{len(grads)} grads"
            )
        if self._slots is None:
            self._slots = [self._make_slots(p) for p in params]
        step = self.iterations + 1  # Keras's local_step: 1 on the first update
        coefficients = {}  # the step's scalars, computed once per dtype (not once per parameter)
        for param, grad, slots in zip(params, grads, self._slots):
            if param.dtype not in coefficients:
                coefficients[param.dtype] = self._coefficients(param.dtype.type, step)
            self._update(param, grad.astype(param.dtype, copy=False), slots, coefficients[param.dtype])
        self.iterations = step

    def _make_slots(self, param):
        return ()

    def _coefficients(self, dtype, step):
        """The scalars of update number ``step``, as ``dtype`` scalars (so no array changes dtype)."""
        raise NotImplementedError

    def _update(self, param, grad, slots, coefficients):
        raise NotImplementedError

    def get_state(self):
        """The optimizer's state as a flat list of arrays (copies): the slot arrays, parameter by parameter."""
        return [s.copy() for slots in (self._slots or []) for s in slots]

    def set_state(self, arrays, params, iterations):
        """Restore ``get_state()``'s arrays for ``params`` (which give shapes and dtypes) after ``iterations``."""
        slots = [self._make_slots(p) for p in params]
        flat = [s for group in slots for s in group]
        if len(arrays) != len(flat):
            raise ValueError(f"Expected {len(flat)} optimizer state arrays; received {len(arrays)}")
        for target, value in zip(flat, arrays):
            if target.shape != np.shape(value):
                raise ValueError(
                    f"Optimizer state shape mismatch: expected {target.shape}, received {np.shape(value)}"
                )
            target[...] = value
        self._slots, self.iterations = slots, int(iterations)

    def get_config(self):
        return {"learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    * ``momentum == 0``: ``w -= learning_rate * g`` (plain gradient descent, no state).
    * otherwise: ``v = momentum * v - learning_rate * g``, then ``w += v``, or with ``nesterov=True``
      ``w += momentum * v - learning_rate * g``.

    Notes: Keras's exact formulas (v starts at zero; the products are taken in this order); like Keras,
    the momentum is rounded to float32 before it is cast to the parameter's dtype (visible only in
    float64 models; measured against Keras 3.15).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _check_rate(momentum, "momentum", high=1.0)
        self.nesterov = bool(nesterov)

    def _make_slots(self, param):
        return (np.zeros_like(param),) if self.momentum else ()

    def _coefficients(self, dtype, step):
        return dtype(self.learning_rate), dtype(np.float32(self.momentum))  # rounded as Keras (see Notes)

    def _update(self, param, grad, slots, coefficients):
        learning_rate, momentum = coefficients
        if not slots:
            param -= grad * learning_rate
            return
        (velocity,) = slots
        velocity[...] = velocity * momentum - grad * learning_rate
        if self.nesterov:
            param += velocity * momentum - grad * learning_rate
        else:
            param += velocity

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam, in Keras's form (``epsilon`` is added after the bias corrections are folded into the rate).

    With ``t`` the update number (1 on the first):
    ``alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)``,
    ``m += (g - m) * (1 - beta_1)``, ``v += (g*g - v) * (1 - beta_2)``,
    ``w -= m * alpha / (sqrt(v) + epsilon)``.

    Notes: this is Keras's update, not the paper's ``m_hat / (sqrt(v_hat) + epsilon)``; the two differ
    only through where epsilon enters. Powers and alpha are computed in the parameter's dtype, as Keras,
    from betas first rounded to float32 (Keras casts the Python float through a float32 tensor: in a
    float64 model this moves alpha by about 7e-6 relative, measured against Keras 3.15); the
    ``1 - beta`` factors of the moment updates are not rounded, as in Keras.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1 = _check_rate(beta_1, "beta_1", high=1.0)
        self.beta_2 = _check_rate(beta_2, "beta_2", high=1.0)
        self.epsilon = _check_rate(epsilon, "epsilon")

    def _make_slots(self, param):
        return np.zeros_like(param), np.zeros_like(param)

    def _coefficients(self, dtype, step):
        beta_1, beta_2, t = dtype(np.float32(self.beta_1)), dtype(np.float32(self.beta_2)), dtype(step)
        alpha = dtype(self.learning_rate) * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        return alpha, dtype(1 - self.beta_1), dtype(1 - self.beta_2), dtype(self.epsilon)

    def _update(self, param, grad, slots, coefficients):
        m, v = slots
        engine.adam_update(param, grad, m, v, *coefficients)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


_CLASSES = {"SGD": SGD, "Adam": Adam}


def serialize(optimizer):
    """Return ``{"class_name": ..., "config": {...}}``, JSON-ready."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    """Rebuild an optimizer (without its state) from what ``serialize`` returned."""
    try:
        return _CLASSES[config["class_name"]].from_config(dict(config.get("config", {})))
    except (KeyError, TypeError):
        raise ValueError(f"Unknown optimizer config: {config!r}") from None


def get(identifier):
    """Return an optimizer from a name ("adam", "sgd"), a config dict or an Optimizer (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in ("adam", "sgd"):
        return _CLASSES["Adam" if identifier.lower() == "adam" else "SGD"]()
    raise ValueError(f"Unknown optimizer: {identifier!r}. Known names: ['adam', 'sgd']")
