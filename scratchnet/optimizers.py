"""Optimizers with Keras's names, defaults and exact update formulas: SGD (with momentum), Adam, AdamW,
RMSprop, and the learning-rate schedules ExponentialDecay, PiecewiseConstantDecay and CosineDecay.

``optimizer.apply(params, grads)`` takes two lists of arrays in the same order (the model's trainable
weights in Keras order) and updates every parameter IN PLACE, then adds one to ``optimizer.iterations``.
Per-parameter state (momentum, Adam's m and v, RMSprop's averages) is created on the first call and can be
read and restored with ``get_state()`` / ``set_state(arrays)`` (it is what ``Sequential.save`` stores).

``learning_rate`` is a number or a schedule (``schedules.ExponentialDecay(...)``): a schedule is called with
the number of updates done so far (0 for the first), as Keras's. Every optimizer takes Keras's
``weight_decay`` (AdamW's default 0.004): before its update, each weight loses
``weight * weight_decay * learning_rate``, as Keras 3 decays weights (decoupled, every weight included).

Adam's and RMSprop's arithmetic are the ops `scratchnet.ops.updates.adam_update` / ``rmsprop_update``,
called through `scratchnet.engine` (which may run Adam as one fused pass: the same float operations in the
same order, equal bit for bit).

Notes: every coefficient is cast to the parameter's dtype before it touches an array, as Keras casts
the learning rate and betas to the variable's dtype: a float32 model stays float32 (NumPy 2 would
promote float32 arrays combined with float64 NumPy scalars).
"""

import math
import types

import numpy as np

from scratchnet import engine

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LearningRateSchedule", "ExponentialDecay",
           "PiecewiseConstantDecay", "CosineDecay", "schedules", "get", "serialize", "deserialize"]


def _check_rate(value, name, low=0.0, high=None, low_open=False):
    number_types = (int, float, np.integer, np.floating)
    ok = isinstance(value, number_types) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"`{name}` must be a number in {bounds}. Received: {name}={value!r}")
    return float(value)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    return value


class LearningRateSchedule:
    """A learning rate that depends on the step: ``schedule(step)`` for ``step = optimizer.iterations``.

    Notes: Keras evaluates its schedules in float32 (its constants become float32 tensors), whatever the
    model's dtype; so do these, and a float64 model then sees the float32-rounded rate, as in Keras.
    """

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase`` the exponent is floored."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _check_count(decay_steps, "decay_steps")
        self.decay_rate = decay_rate
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        f32 = np.float32
        exponent = f32(step) / f32(self.decay_steps)
        if self.staircase:
            exponent = np.floor(exponent)
        return f32(self.initial_learning_rate) * np.power(f32(self.decay_rate), exponent)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``,
    ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}."
            )
        if boundaries != sorted(boundaries):
            raise ValueError(f"`boundaries` must be increasing. Received: boundaries={boundaries}")
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        index = int(np.searchsorted(self.boundaries, step, side="left"))  # first boundary >= step
        return np.float32(self.values[index])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha * initial_learning_rate`` over ``decay_steps``.

    ``rate = initial * ((1 - alpha) * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2 + alpha)``.
    With ``warmup_target``, the rate first climbs linearly from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps`` steps and then decays from ``warmup_target``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _check_count(decay_steps, "decay_steps")
        self.alpha, self.name = alpha, name
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def _decay(self, step, start_rate):
        f32 = np.float32
        fraction = step / f32(self.decay_steps)
        cosine = f32(0.5) * (f32(1.0) + np.cos(f32(math.pi) * fraction))
        return start_rate * (f32(1 - self.alpha) * cosine + f32(self.alpha))

    def __call__(self, step):
        f32 = np.float32
        initial = f32(self.initial_learning_rate)
        if self.warmup_target is None:
            return self._decay(min(f32(step), f32(self.decay_steps)), initial)
        warmup_steps = f32(self.warmup_steps)
        step = min(f32(step), f32(self.decay_steps) + warmup_steps)
        if step < warmup_steps:
            return (f32(self.warmup_target) - initial) * (step / warmup_steps) + initial
        return self._decay(step - warmup_steps, f32(self.warmup_target))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}


def _serialize_schedule(schedule):
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def _deserialize_schedule(config):
    try:
        return _SCHEDULES[config["class_name"]].from_config(dict(config["config"]))
    except (KeyError, TypeError):
        raise ValueError(f"Unknown learning-rate schedule config: {config!r}") from None


schedules = types.SimpleNamespace(
    LearningRateSchedule=LearningRateSchedule, ExponentialDecay=ExponentialDecay,
    PiecewiseConstantDecay=PiecewiseConstantDecay, CosineDecay=CosineDecay,
    serialize=_serialize_schedule, deserialize=_deserialize_schedule,
)
"""Keras's ``keras.optimizers.schedules`` namespace: ``optimizers.schedules.ExponentialDecay(...)``."""


def _check_learning_rate(value):
    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, dict):
        return _deserialize_schedule(value)
    return _check_rate(value, "learning_rate", low_open=True)


class Optimizer:
    """Base class: ``apply(params, grads)`` updates in place; subclasses define ``_update``."""

    def __init__(self, learning_rate, weight_decay=None):
        self._learning_rate = _check_learning_rate(learning_rate)
        self.weight_decay = None if weight_decay is None else _check_rate(weight_decay, "weight_decay")
        self.iterations = 0
        self._slots = None  # per-parameter state, a list of tuples of arrays, made on the first apply

    @property
    def learning_rate(self):
        """The learning rate of the next update: the number given, or the schedule at ``iterations``."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(self._learning_rate, LearningRateSchedule) and not isinstance(value, LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                "constructor argument, hence its learning rate is not settable. If you need the learning rate "
                "to be settable, you should instantiate the optimizer with a float `learning_rate` argument."
            )
        self._learning_rate = _check_learning_rate(value)

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
            if self.weight_decay is not None:  # Keras 3's decoupled decay, before the update, same rate
                weight_decay, learning_rate = self._decay_coefficients(param.dtype.type)
                param -= param * weight_decay * learning_rate
            self._update(param, grad.astype(param.dtype, copy=False), slots, coefficients[param.dtype])
        self.iterations = step

    def _decay_coefficients(self, dtype):
        """(weight_decay, learning_rate) in ``dtype``: Keras casts weight_decay through float32."""
        return dtype(np.float32(self.weight_decay)), dtype(self.learning_rate)

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
        rate = self._learning_rate
        config = {"learning_rate": _serialize_schedule(rate) if isinstance(rate, LearningRateSchedule) else rate}
        if self.weight_decay is not None:
            config["weight_decay"] = self.weight_decay
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)  # a schedule's config dict is rebuilt by _check_learning_rate

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

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None):
        super().__init__(learning_rate, weight_decay)
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

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=None):
        super().__init__(learning_rate, weight_decay)
        if amsgrad:
            raise ValueError("amsgrad=True is not supported by scratchnet's Adam. Received: amsgrad=True")
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


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras 3's AdamW): each update first does
    ``w -= w * weight_decay * learning_rate``, then Adam's step.

    Notes: Keras's default ``weight_decay=0.004``, applied to every weight (biases too: Keras excludes
    nothing unless told), with the step's learning rate; Keras casts weight_decay through float32, and
    so does this (visible only in float64 models).
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)


class RMSprop(Optimizer):
    """RMSprop in Keras's form: a running average of squared gradients divides each step.

    ``velocity = rho * velocity + (1 - rho) * g^2``; ``step = learning_rate * g / sqrt(velocity + epsilon)``
    (``centered``: ``sqrt(velocity - average_g^2 + epsilon)`` with ``average_g`` the running mean of g);
    ``w -= step``, or with ``momentum``: ``buffer = momentum * buffer + step``, ``w -= buffer``.

    Notes: Keras's defaults (learning_rate 0.001, rho 0.9, epsilon 1e-7) and arithmetic: epsilon inside the
    square root (PyTorch adds it outside, and its default rho is 0.99); the coefficients are not rounded
    through float32 (measured against Keras 3.15 in float64).
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None):
        super().__init__(learning_rate, weight_decay)
        self.rho = _check_rate(rho, "rho", high=1.0)
        self.momentum = _check_rate(momentum, "momentum", high=1.0)
        self.epsilon = _check_rate(epsilon, "epsilon")
        self.centered = bool(centered)

    def _make_slots(self, param):
        slots = [np.zeros_like(param)]  # velocity
        if self.momentum > 0:
            slots.append(np.zeros_like(param))
        if self.centered:
            slots.append(np.zeros_like(param))
        return tuple(slots)

    def _coefficients(self, dtype, step):
        return (dtype(self.learning_rate), dtype(self.rho), dtype(1 - self.rho), dtype(self.epsilon),
                dtype(self.momentum))

    def _update(self, param, grad, slots, coefficients):
        velocity, rest = slots[0], list(slots[1:])
        momentum_buffer = rest.pop(0) if self.momentum > 0 else None
        average_grad = rest.pop(0) if self.centered else None
        learning_rate, rho, one_minus_rho, epsilon, momentum = coefficients
        engine.rmsprop_update(param, grad, velocity, learning_rate, rho, one_minus_rho, epsilon, momentum,
                              momentum_buffer, average_grad)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


_CLASSES = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop}


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
    """Return an optimizer from a name ("adam", "sgd", "rmsprop", "adamw", any case, Keras's defaults), a
    config dict or an Optimizer (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    by_name = {name.lower(): cls for name, cls in _CLASSES.items()}
    if isinstance(identifier, str) and identifier.lower() in by_name:
        return by_name[identifier.lower()]()
    raise ValueError(f"Unknown optimizer: {identifier!r}. Known names: {sorted(by_name)}")
