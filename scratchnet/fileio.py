"""Writing files so that nobody ever sees half of one: a temporary file beside the target, then a rename.

Every file scratchnet writes (models, cached datasets, pictures, reports) goes through ``atomic_write`` or
``atomic_path``: readers see either the old file or the complete new one, and a failure leaves nothing behind.
"""

import contextlib
import os
import tempfile
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files readable only by their owner; finished files get the usual permissions instead.
FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside ``path`` for a writer that wants a file name (savefig, PIL, Keras);
    on success rename it onto ``path``, on any error delete it. The parent folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".part")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it onto ``path``, on any error delete it::

        with atomic_write("weights.npz") as f:
            f.write(data)
    """
    with atomic_path(path) as temporary, open(temporary, mode) as file:
        yield file


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_write(path) as file:
        file.write(data)
    return Path(path)
