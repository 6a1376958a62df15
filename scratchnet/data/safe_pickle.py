"""A pickle reader that admits only NumPy arrays, for pickled data files that scratchnet did not write itself.

``pickle.load`` can run any function a file names. ``ArrayUnpickler`` refuses every global except the handful
NumPy needs to rebuild plain arrays (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``, in both the
``numpy.core`` and ``numpy._core`` spellings, and ``_codecs.encode`` restricted to latin1 for bytes in
protocol-2 pickles), so a malicious file raises DataError before anything runs.
"""

import gzip
import pickle
from pathlib import Path

import numpy as np

from .errors import DataError, one_line

try:  # NumPy 2 moved numpy.core to numpy._core; pickles written by either name the module they knew.
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray



def _latin1_encode(text, encoding="latin1"):
    """What Python 3 pickles (protocol 2) call to rebuild bytes: ``_codecs.encode(text, "latin1")``, only."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise DataError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}), expected latin1 text")
    return text.encode("latin1")


_ALLOWED = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct  # noqa: SLF001 - what np.save pickles
    _ALLOWED[(_module, "scalar")] = _multiarray.scalar


class ArrayUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` admits only what NumPy arrays need; anything else is a DataError."""

    def __init__(self, file, *, source="<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"{self.source}: refusing to unpickle {module}.{name}, expected only NumPy arrays "
                            f"(the file may be malicious)") from None


def load_array_pickle(path):
    """Read a (possibly gzipped) pickle of NumPy arrays, tuples, lists and numbers, refusing everything else.

    Python 2 pickles are read with ``encoding="latin1"`` (how NumPy arrays pickled by Python 2 decode).
    Object arrays are refused too. Raises DataError naming ``path`` for anything unexpected.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            obj = ArrayUnpickler(f, source=str(path), encoding="latin1").load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found, expected a pickle of NumPy arrays") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is bad data, nothing else
        raise DataError(f"{path}: unreadable pickle ({type(exc).__name__}: {one_line(exc)[:200]}), "
                        f"expected a pickle of NumPy arrays") from None
    _check_no_objects(obj, path)
    return obj


def _check_no_objects(obj, path):
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise DataError(f"{path}: holds an object array, expected numeric NumPy arrays")
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _check_no_objects(item, path)
