"""The package as users meet it: importing scratchnet is cheap and never pulls in TensorFlow."""

import pkgutil
import subprocess
import sys

import scratchnet


def _modules():
    """Every module of the scratchnet package (tf_reference is a separate package)."""
    return sorted(info.name for info in pkgutil.walk_packages(scratchnet.__path__, "scratchnet."))


def test_import_scratchnet_does_not_import_tensorflow():
    code = "import scratchnet, sys; assert 'tensorflow' not in sys.modules; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_scratchnet_module_imports_tensorflow():
    names = _modules()
    assert "scratchnet.train" in names and "scratchnet.ops.conv" in names
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "leaked = sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith(('tensorflow.', 'keras')))\n"
            "assert not leaked, leaked\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_attributes_resolve():
    assert scratchnet.Sequential is scratchnet.models.Sequential
    assert scratchnet.load_model is scratchnet.models.load_model
    assert callable(scratchnet.zoo.build)
