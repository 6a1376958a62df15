"""The one dispatch point: every op of `scratchnet.ops`, with the hot ones served by the numba kernels.

Layers call ops through this module at call time, e.g. ``engine.conv2d_forward(x, kernel, 1, "same")``,
so switching the backend takes effect at once:

* ``"numba"`` (the default): the ops named in `ACCELERATED` (conv2d, conv2d_bias_relu, max-pool, relu,
  sigmoid and softmax forward, bias_add, bias_add_relu, dropout, adam_update, logistic_regression_gradients,
  and dense, whose twin only applies the thread policy) come from `scratchnet.kernels` (compiled on first
  call and cached on disk); every other op comes from `scratchnet.ops`.
* ``"numpy"``: every op comes from the readable reference `scratchnet.ops`.

Choose with ``engine.set_backend("numpy")``, for a block with ``with engine.backend("numpy"): ...``, or
for a whole process with the environment variable ``SCRATCHNET_BACKEND=numpy``.

Everything that makes the numba backend fast (threads, in-place writes, fusion, BLAS bindings, allocator
settings) is chosen inside `scratchnet.kernels` and `scratchnet.runtime`; this module only dispatches.

Notes: importing this module compiles nothing and imports neither numba nor the ops: an op is looked
up on first use and then bound as
a plain module attribute, so a call through the engine costs one attribute lookup. Always call
``engine.<op>(...)``: ``from scratchnet.engine import conv2d_forward`` would freeze the backend of
that moment.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

BACKENDS = ("numba", "numpy")
"""The backends `set_backend` accepts."""

ACCELERATED = (
    "dense_forward",
    "dense_backward",
    "dropout_forward",
    "dropout_backward",
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "softmax_forward",
    "bias_add_forward",
    "bias_add_backward",
    "bias_add_relu_forward",
    "bias_add_relu_backward",
    "conv2d_bias_relu_forward",
    "conv2d_bias_relu_backward",
    "logistic_regression_gradients",
    "softmax_cross_entropy_forward",
    "adam_update",
)
"""Op names the numba backend takes from `scratchnet.kernels` instead of `scratchnet.ops`."""

_CONTROL_NAMES = frozenset(
    {"BACKENDS", "ACCELERATED", "set_backend", "get_backend", "backend", "op_names", "implementation", "step"}
)


def _check_backend(name: Any, source: str = "backend") -> str:
    if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
        raise ValueError(f"`{source}` must be one of {BACKENDS}; received: {name!r}")
    return name.strip().lower()


_backend = _check_backend(os.environ.get("SCRATCHNET_BACKEND") or "numba", "SCRATCHNET_BACKEND")
_bound: set[str] = set()  # op names currently bound as module attributes (cleared on a switch)
_kernels = None  # scratchnet.kernels, once `step` has imported it


def get_backend() -> str:
    """Return the name of the current backend, "numba" or "numpy"."""
    return _backend


def set_backend(name: str) -> str:
    """Make `name` ("numba" or "numpy", case-insensitive) the backend of every later engine call.

    Returns the previous backend's name, so a caller can restore it.
    """
    global _backend
    new = _check_backend(name)
    previous = _backend
    if new != previous:
        _unbind()
        _backend = new
    return previous


@contextlib.contextmanager
def backend(name: str) -> Iterator[str]:
    """Run a block with backend `name`, restoring the previous backend afterwards (even on error)."""
    previous = set_backend(name)
    try:
        yield get_backend()
    finally:
        set_backend(previous)


def step(hands_over_gradients: bool = False) -> contextlib.AbstractContextManager:
    """A context manager around one training step or forward pass of a model, or a loop of them (predict).

    The block is one unit of work: the backend may hold what its ops share for the whole block instead of
    taking and giving it back op by op (the numba backend holds BLAS at one thread; the NumPy reference
    holds nothing). Nothing computed changes.

    ``hands_over_gradients=True`` is a promise about the block's backward: each gradient given to a layer
    (its ``dy``) is used by that layer's ops and by nobody after them, and is held by nothing but the
    model's loop and the layer (a model's training step: each layer's dy is the output of the layer above,
    used once). A backward op whose docstring says so may then write its result over the ``dy`` it was
    given, when no other reference to it exists, instead of taking memory of its own (the numba backend's
    `conv2d_bias_relu_backward`; the NumPy reference never does). The values computed are the same.
    """
    global _kernels
    if _backend == "numba":
        if _kernels is None:  # looked up once: a model enters a step once per batch
            _kernels = importlib.import_module("scratchnet.kernels")
        return _kernels.step(hands_over_gradients)
    return contextlib.nullcontext()


def op_names() -> tuple[str, ...]:
    """Every op name the engine serves: those `scratchnet.ops` exports plus the accelerated ones."""
    ops = importlib.import_module("scratchnet.ops")
    exported = getattr(ops, "__all__", None)
    if exported is None:
        exported = [n for n in vars(ops) if n.endswith(("_forward", "_backward")) and not n.startswith("_")]
    return tuple(sorted(set(exported) | set(ACCELERATED)))


def implementation(name: str, backend_name: str | None = None) -> Callable[..., Any]:
    """Return the function that serves op `name` under `backend_name` (default: the current backend)."""
    chosen = _backend if backend_name is None else _check_backend(backend_name)
    if chosen == "numba" and name in ACCELERATED:
        module = importlib.import_module("scratchnet.kernels")
    else:
        module = importlib.import_module("scratchnet.ops")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(
            f"scratchnet.engine has no op {name!r} (not found in {module.__name__})"
        ) from None


def _unbind() -> None:
    """Forget the ops bound for the current backend so the next access resolves them afresh."""
    module_globals = globals()
    for name in _bound:
        module_globals.pop(name, None)
    _bound.clear()


def __getattr__(name: str) -> Callable[..., Any]:
    """Resolve an op on first access and bind it, so later accesses are plain attribute lookups."""
    if name.startswith("__") or name in _CONTROL_NAMES:
        raise AttributeError(f"module 'scratchnet.engine' has no attribute {name!r}")
    function = implementation(name)
    globals()[name] = function
    _bound.add(name)
    return function


def __dir__() -> list[str]:
    names = set(globals()) | set(ACCELERATED)
    with contextlib.suppress(ImportError):
        names |= set(op_names())
    return sorted(names)
