"""Every numba-jitted function in the fast path, and the compiler flags it is built with.

fastmath lets LLVM reorder and assume things IEEE arithmetic forbids, so a kernel under it can drift from its
NumPy reference. Each kernel that uses it is listed here with the flags and the reason; any other kernel that
turns it on, or a listed one that changes or disappears, fails the test until this table says why.
The functions are found by walking `scratchnet.kernels` and `scratchnet.runtime` for numba dispatchers and
keyed by function name, so a kernel may move between modules without touching this file.
"""

import importlib
import pkgutil

import numba
import pytest
from numba.core.caching import NullCache
from numba.core.dispatcher import Dispatcher

PACKAGES = ("scratchnet.kernels", "scratchnet.runtime")

FASTMATH = {
    "_sigmoid_dense_rows": (
        {"reassoc"},
        ("the fused logreg pass: reassoc lets the row dot products and the dkernel sums vectorise (their "
         "summation order is free, as in BLAS); no other flag, so NaN, inf and the stable sigmoid stay IEEE"),
    ),
    "_direct16": (
        {"contract"},
        ("the direct convolution: contract lets each multiply and add become one fused multiply-add (one "
         "rounding, as BLAS's sgemm, and half the instructions); the sums keep their order, NaN and inf their "
         "IEEE meaning"),
    ),
    "_direct32": (
        {"contract"},
        "the direct convolution for 32 and 64 channels: as _direct16",
    ),
    "_direct8": (
        {"contract"},
        "the direct convolution for 8 channels: as _direct16",
    ),
    "_dkernel16": (
        {"contract"},
        "the direct kernel gradient of a 16-channel first layer: as _direct16",
    ),
}
"""Function name -> (the fastmath flags it uses, why). Every function not named here uses none."""

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is jitted")


def jitted_functions():
    """{function name: [(module name, dispatcher), ...]} over every module of PACKAGES."""
    found = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules = [package] + [importlib.import_module(info.name)
                               for info in pkgutil.walk_packages(package.__path__, package_name + ".")]
        for module in modules:
            for value in vars(module).values():
                if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__:
                    found.setdefault(value.py_func.__name__, []).append((module.__name__, value))
    return found


def fastmath_flags(dispatcher):
    """The fastmath setting as a set of LLVM flags: {} off, {"fast"} for fastmath=True (every flag)."""
    setting = dispatcher.targetoptions.get("fastmath", False)
    if setting is True:
        return {"fast"}
    return set(setting or ())


def test_the_walk_finds_the_kernels_of_every_package():
    found = jitted_functions()
    modules = {module for entries in found.values() for module, _ in entries}
    assert sum(len(entries) for entries in found.values()) >= 20
    for package in PACKAGES:
        assert any(module.startswith(package + ".") for module in modules), package


def test_fastmath_is_used_exactly_where_the_table_says():
    found = jitted_functions()
    wrong = [
        f"{module}.{name}: fastmath {sorted(fastmath_flags(dispatcher)) or 'off'}, "
        f"the table says {sorted(FASTMATH[name][0]) if name in FASTMATH else 'off'}"
        for name, entries in sorted(found.items())
        for module, dispatcher in entries
        if fastmath_flags(dispatcher) != (FASTMATH[name][0] if name in FASTMATH else set())
    ]
    stale = [f"{name}: in the table but no jitted function has this name" for name in sorted(FASTMATH)
             if name not in found]
    assert not wrong + stale, "\n".join(wrong + stale)


def test_every_fastmath_entry_gives_a_reason():
    for name, (flags, reason) in FASTMATH.items():
        assert flags and flags <= {"fast", "nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"}, name
        assert len(reason.split()) >= 5, name


def test_every_kernel_is_compiled_without_the_gil_and_cached_on_disk():
    """nogil: the worker team runs kernel pieces on its threads. cache: a second process loads the compiled
    kernels from numba's disk cache instead of compiling them again."""
    found = jitted_functions()
    wrong = [
        f"{module}.{name}: nopython={dispatcher.targetoptions.get('nopython')}, "
        f"nogil={dispatcher.targetoptions.get('nogil')}, cache={not isinstance(dispatcher._cache, NullCache)}"
        for name, entries in sorted(found.items())
        for module, dispatcher in entries
        if not (dispatcher.targetoptions.get("nopython") and dispatcher.targetoptions.get("nogil")
                and not isinstance(dispatcher._cache, NullCache))
    ]
    assert not wrong, "\n".join(wrong)
