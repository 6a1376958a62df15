"""Data for scratchnet: IDX files, checked downloads, atomic writes, and one loader per dataset.

``scratchnet.data.download`` is the module; its function is ``scratchnet.data.download.download``. The
Keras-style entry points and the ``load(name)`` registry live in ``scratchnet.datasets``; the Kaggle CSV
reader, submission writer and MNIST -> CSV tool in ``scratchnet.data.kaggle`` (``python -m`` runnable).
"""

from .download import atomic_write, atomic_write_bytes, cache_dir
from .emnist import load_emnist
from .errors import DataError, DownloadError
from .fashion_mnist import load_fashion_mnist
from .idx import read_idx, write_idx
from .mnist import load_mnist, load_mnist_with_source
from .notmnist import load_notmnist

__all__ = ["DataError", "DownloadError", "atomic_write", "atomic_write_bytes", "cache_dir", "load_emnist",
           "load_fashion_mnist", "load_mnist", "load_mnist_with_source", "load_notmnist", "read_idx", "write_idx"]
