"""Keras's ``keras.utils`` helpers that MNIST scripts call: ``to_categorical`` and ``set_random_seed``.

    >>> import scratchnet as keras
    >>> keras.utils.set_random_seed(42)        # the models built after this are reproducible
    >>> y_train = keras.utils.to_categorical(y_train, 10)
"""

import random

import numpy as np

__all__ = ["to_categorical", "set_random_seed", "get_random_seed", "next_model_seed"]


def to_categorical(x, num_classes=None):
    """One-hot rows for integer class ids: ``to_categorical([1, 0], 3) -> [[0, 1, 0], [1, 0, 0]]``.

    Args:
        x: array-like of integer class ids, any shape; a trailing axis of size 1 is dropped, so labels of
            shape (N, 1) give (N, num_classes), as Keras.
        num_classes: the number of classes; by default ``max(x) + 1``.

    Returns:
        float64 array of shape ``x.shape + (num_classes,)`` (Keras returns float64 for NumPy input too).
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        ids = x.astype(np.int64) if x.dtype.kind == "f" else None
        if ids is None or not np.array_equal(ids, x):
            raise ValueError(f"`x` must hold integer class ids. Received: x.dtype={x.dtype}")
        x = ids
    x = x.astype(np.int64, copy=False)
    shape = x.shape[:-1] if x.ndim > 1 and x.shape[-1] == 1 else x.shape
    ids = x.reshape(-1)
    if num_classes is None:
        num_classes = int(ids.max()) + 1 if ids.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"Class ids must lie in [0, {num_classes}) for num_classes={num_classes}. "
                         f"Received: ids in [{ids.min()}, {ids.max()}]")
    one_hot = np.zeros((ids.size, int(num_classes)))
    one_hot[np.arange(ids.size), ids] = 1.0
    return one_hot.reshape(*shape, int(num_classes))


# The seed set by set_random_seed, and a generator drawing one seed per model built afterwards.
_GLOBAL = {"seed": None, "model_seeds": None}


def set_random_seed(seed):
    """Make what follows reproducible, as ``keras.utils.set_random_seed``.

    What it seeds:

    * Python's ``random`` module and NumPy's global generator (``np.random.seed``), as Keras does, so a
      script's own ``np.random.shuffle`` / ``random.random`` calls repeat;
    * the seed of every scratchnet model built afterwards WITHOUT an explicit ``seed=``: the k-th such
      ``Sequential`` gets the k-th number drawn from a generator seeded with ``seed``. Its initial
      weights, dropout masks and ``fit``'s shuffling all derive from that model seed, so two runs of a
      script give the same models, and two models of one run differ (as two Keras models do).

    A model given ``seed=`` keeps it. Without any call, every unseeded model uses seed 0: scratchnet is
    reproducible by default, where Keras is not.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer. Received: seed={seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - Keras seeds NumPy's global generator too
    _GLOBAL["seed"] = seed
    _GLOBAL["model_seeds"] = np.random.default_rng(seed)


def get_random_seed():
    """The seed last given to ``set_random_seed`` (None if it was never called)."""
    return _GLOBAL["seed"]


def next_model_seed():
    """The seed of a model built without ``seed=``: 0, or the next draw after ``set_random_seed``."""
    generator = _GLOBAL["model_seeds"]
    return 0 if generator is None else int(generator.integers(2**31))
