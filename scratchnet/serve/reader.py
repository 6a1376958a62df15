"""The model behind the page: one loaded model, its class names, and one lock so requests take turns.

:class:`Reader` answers the three questions the server asks: what is this model (:meth:`Reader.info`), what
does it read in this image (:meth:`Reader.read`), and "load the file again" (:meth:`Reader.reload`). The
image goes through exactly the preparation ``python -m scratchnet.predict`` uses (``imageprep.prepare``,
``predict.to_model_input``, ``predict.probabilities``), so the page and the command line always agree.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchnet import imageprep, layers, predict

# The class names live in scratchnet.classes, shared with fine-tuning; still importable from here.
from scratchnet.classes import (  # noqa: F401 - re-exported
    DATASET_CLASSES,
    DIGITS,
    EMNIST_BALANCED,
    EMNIST_BYCLASS,
    NOTMNIST,
    UPPER,
    ClassesError,
    model_classes,
)


@dataclass(frozen=True)
class Reading:
    """What the model read in one image, plus what it saw: the prepared input and, if asked, feature maps."""

    probabilities: np.ndarray      # (K,) float64, sums to 1
    classes: tuple[str, ...]
    input: np.ndarray              # (28, 28) float32 in [0, 1], ink 1
    features: np.ndarray | None    # (OH, OW, F) output of the first Conv2D layer, or None
    feature_layer: str | None
    prepare_ms: float
    model_ms: float

    @property
    def index(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def label(self) -> str:
        return self.classes[self.index]


class Reader:
    """A model loaded from ``path`` (None: the default training run's), ready to read images.

    Every use of the model holds ``self.lock``: layers keep their last activations on themselves, so two
    requests must not run the model at once, and a reload must not swap it under a running request.
    """

    def __init__(self, path=None, *, classes: str | None = None, say=None):
        self.lock = threading.Lock()
        self._classes_option = classes
        self._path = None if path is None else Path(path)  # None: the default model, wherever it is then
        self._install(*self._load(say))

    # ------------------------------------------------------------------------------------ loading
    def _load(self, say=None):
        """Load the model file, check it, work out its classes and run it once (numba compiles its kernels
        on the first call, which should not be the user's first drawing). Raises ModelLoadError or
        ClassesError; nothing is changed on ``self``."""
        model = predict.load_model_or_explain(self._path, say=say)
        path = self._path or _default_path()
        blank = predict.to_model_input(model, np.zeros((1, imageprep.MNIST_SIZE, imageprep.MNIST_SIZE)))
        width = predict.probabilities(model, blank).shape[1]
        classes = model_classes(model.name, width, self._classes_option)
        first_conv = next((layer for layer in model.layers if isinstance(layer, layers.Conv2D)), None)
        if first_conv is not None:
            _first_conv_output(model, first_conv, blank)
        return model, path, classes, first_conv

    def _install(self, model, path, classes, first_conv):
        self.model, self.path, self.classes, self._first_conv = model, path, classes, first_conv

    def reload(self):
        """Load the model file again (e.g. after fine-tuning wrote it). The new model is loaded and checked
        before the old one is replaced, so a bad file leaves the old model serving; raises like ``__init__``."""
        loaded = self._load()
        with self.lock:
            self._install(*loaded)
        return self.info()

    # ------------------------------------------------------------------------------------ answers
    def info(self) -> dict:
        """The model's name, file, classes, parameter count and whether it has feature maps to show."""
        with self.lock:
            return {"name": self.model.name, "path": str(self.path), "classes": list(self.classes),
                    "parameters": int(self.model.count_params()),
                    "input_shape": list(predict.input_shape(self.model)),
                    "feature_layer": None if self._first_conv is None else self._first_conv.name}

    def read(self, image, *, features: bool = False) -> Reading:
        """Prepare ``image`` (a PIL image) like ``scratchnet.predict`` does and run the model on it.

        Raises ``imageprep.ImagePrepError`` when the image holds no ink.
        """
        start = time.perf_counter()
        prepared = imageprep.prepare(image)
        prepared_at = time.perf_counter()
        with self.lock:
            x = predict.to_model_input(self.model, prepared[None])
            probabilities = predict.probabilities(self.model, x)[0]
            maps = None
            if features and self._first_conv is not None:
                maps = _first_conv_output(self.model, self._first_conv, x)[0]
            classes, layer = self.classes, None if maps is None else self._first_conv.name
        done = time.perf_counter()
        return Reading(probabilities=probabilities, classes=classes, input=prepared, features=maps,
                       feature_layer=layer, prepare_ms=1000 * (prepared_at - start),
                       model_ms=1000 * (done - prepared_at))


def _first_conv_output(model, first_conv, x):
    """The output of ``first_conv`` for model inputs ``x``: (N, OH, OW, F).

    Runs the layers in front of it (none in the zoo's CNNs) and then the layer itself, each through the
    public layer call, in inference mode.
    """
    for layer in model.layers:
        x = layer(x, training=False)
        if layer is first_conv:
            return np.asarray(x)
    raise ValueError(f"layer {first_conv.name!r} is not in model {model.name!r}")


def _default_path() -> Path:
    from scratchnet import paths

    return paths.default_model_path()
