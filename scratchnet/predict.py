"""Read handwritten digits from photos and scans with a trained model: a function and ``python -m scratchnet.predict``.

    python -m scratchnet.predict [--model PATH] IMAGE [IMAGE ...] [--json] [--no-invert] [--no-threshold]
                                 [--no-crop] [--no-center] [--show-input DIR]

Each image is prepared like MNIST by :mod:`scratchnet.imageprep` and one line is printed per image::

    digit.png: 7 (p=0.98)  top-3: 7 0.98, 1 0.01, 9 0.00

Without ``--model`` the model saved by the default training run (``python -m scratchnet.train``) is used.
An image that is missing, unreadable or blank gets a one-line error on stderr and the others are still
read; the exit code is then 1. No image argument is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchnet import imageprep, paths
from scratchnet.fileio import atomic_path

#: The options of :func:`scratchnet.imageprep.prepare` that :func:`predict` passes on.
PREP_OPTIONS = ("exif", "invert", "threshold", "crop", "fit", "center")


class ModelLoadError(ValueError):
    """No model to predict with: the file is missing, does not load, or does not take 28x28 images."""


@dataclass(frozen=True)
class Prediction:
    """What the model read in one image: the digit, its probability and the three most likely digits."""

    image: str
    digit: int
    probability: float
    top3: tuple[tuple[int, float], ...]

    def line(self) -> str:
        """``name: 7 (p=0.98)  top-3: 7 0.98, 1 0.01, 9 0.00``"""
        top = ", ".join(f"{digit} {p:.2f}" for digit, p in self.top3)
        return f"{self.image}: {self.digit} (p={self.probability:.2f})  top-3: {top}"

    def to_json(self) -> str:
        """One JSON object: image, digit, probability, top3 (a list of [digit, probability])."""
        return json.dumps({"image": self.image, "digit": self.digit, "probability": round(self.probability, 6),
                           "top3": [[digit, round(p, 6)] for digit, p in self.top3]})


# ------------------------------------------------------------------------------------------ the model
def load_model_or_explain(path=None, *, say=None):
    """Load the model at ``path``, or the default training run's model when ``path`` is None.

    ``say(line)`` (if given) is told which default model is used. Raises :class:`ModelLoadError` with a
    one-line message saying what to do when there is no model or it does not load.
    """
    from scratchnet.models import load_model

    if path is None:
        path = paths.default_model_path()
        if not path.exists():
            raise ModelLoadError(f"no trained model at {path} (the default); make one with `./run.sh train` "
                                 f"(or `python -m scratchnet.train`), or pass --model PATH")
        if say is not None:
            say(f"using the default model {path}")
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"no model file at {path}")
    try:
        model = load_model(path, compile=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelLoadError(f"cannot load model {path}: {reason}") from None
    input_shape(model)  # refuse models that do not read 28x28 images now, not at the first image
    return model


def input_shape(model) -> tuple[int, ...]:
    """The shape of one example the model takes: (28, 28, 1), (28, 28) or (784,); else ModelLoadError."""
    shape = tuple(getattr(model, "input_shape", None) or (None,))[1:]  # Keras's shape: (None, 28, 28, 1)
    if not shape or int(np.prod(shape)) != imageprep.MNIST_SIZE ** 2:
        raise ModelLoadError(f"the model takes inputs of shape {shape or 'unknown'}; predicting from images "
                             f"needs a model of 28x28 images (input (28, 28, 1), (28, 28) or (784,))")
    return shape


def to_model_input(model, images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) float images reshaped to what ``model`` takes, e.g. (N, 28, 28, 1) or (N, 784), in its dtype.

    A zoo model whose recipe centres pixels (notmnist_cnn: (v - 127.5) / 255) gets them centred the same way.
    """
    from scratchnet import zoo

    images = np.asarray(images)
    dtype = getattr(model, "dtype", "float32")
    x = images.reshape((len(images),) + input_shape(model)).astype(dtype, copy=False)
    name = getattr(model, "name", None)
    if name in zoo.NAMES and zoo.defaults(name).preprocess == "centered":
        x = x - x.dtype.type(0.5)
    return x


def probabilities(model, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) for model inputs ``x``; outputs that are logits go through a softmax."""
    outputs = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float64)
    if outputs.ndim == 1 or outputs.shape[1] == 1:  # a sigmoid: probability of class 1
        p = np.clip(outputs.reshape(-1), 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    sums = outputs.sum(axis=1)
    if outputs.min() < 0 or not np.allclose(sums, 1.0, atol=1e-3):  # logits, e.g. deep_mnist's last layer
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)
    return outputs


def _result(name: str, p: np.ndarray) -> Prediction:
    """A :class:`Prediction` from one row of probabilities."""
    order = np.argsort(-p, kind="stable")[:3]
    return Prediction(image=name, digit=int(order[0]), probability=float(p[order[0]]),
                      top3=tuple((int(k), float(p[k])) for k in order))


# ------------------------------------------------------------------------------------- the function
def predict(model, images, **prep_options) -> list[Prediction]:
    """Read the digit in each of ``images`` (paths, PIL images or arrays) with ``model``.

    ``prep_options`` go to :func:`scratchnet.imageprep.prepare` (``exif``, ``invert``, ``threshold``,
    ``crop``, ``fit``, ``center``). Raises :class:`scratchnet.imageprep.ImagePrepError` for the first
    image that cannot be prepared. Returns one :class:`Prediction` per image, in order.
    """
    unknown = set(prep_options) - set(PREP_OPTIONS)
    if unknown:
        raise TypeError(f"unknown preparation option(s): {', '.join(sorted(unknown))}; "
                        f"expected some of {', '.join(PREP_OPTIONS)}")
    if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 2):
        images = [images]
    images = list(images)
    if not images:
        return []
    prepared = np.stack([imageprep.prepare(image, **prep_options) for image in images])
    p = probabilities(model, to_model_input(model, prepared))
    return [_result(imageprep.input_name(image), row) for image, row in zip(images, p)]


def save_input(image: np.ndarray, folder: Path, name: str, taken: set | None = None) -> Path:
    """Save a prepared (28, 28) image as the 8-bit PNG ``<folder>/<stem of name>.png``, atomically.

    ``taken`` holds the paths already written in this run; a clash gets ``-2``, ``-3``, ... added (and the
    new path is added to ``taken``). Returns the path written.
    """
    from PIL import Image

    taken = set() if taken is None else taken
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem or "image"
    path, number = folder / f"{stem}.png", 1
    while path in taken:
        number += 1
        path = folder / f"{stem}-{number}.png"
    with atomic_path(path, suffix=".png") as temporary:
        Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(temporary, format="PNG")
    taken.add(path)
    return path


# ---------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.predict",
        description="Read the handwritten digit in each image (photo or scan, PNG or JPEG) with a trained model.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, one digit each")
    parser.add_argument("--model", type=Path, metavar="PATH",
                        help=f"model file (.npz); default: the default training run's, {paths.default_model_path()}")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image instead")
    parser.add_argument("--show-input", type=Path, metavar="DIR",
                        help="save the exact 28x28 image given to the network as DIR/<name>.png")
    stages = parser.add_argument_group("preparation stages (all on by default)")
    stages.add_argument("--no-exif", action="store_true", help="ignore the EXIF orientation tag")
    stages.add_argument("--no-invert", action="store_true",
                        help="never invert (the image already has light ink on a dark background)")
    stages.add_argument("--no-threshold", action="store_true", help="keep the background, only stretch contrast")
    stages.add_argument("--no-crop", action="store_true", help="fit the whole picture, not the ink's bounding box")
    stages.add_argument("--no-fit", action="store_true", help="scale to the full 28 px instead of MNIST's 20 px box")
    stages.add_argument("--no-center", action="store_true", help="centre the box, not the centre of mass")
    return parser


def main(argv=None) -> int:
    """Command line: predict every image; exit 0, 1 if any image or the model failed, 2 on usage errors."""
    args = _parser().parse_args(argv)
    options = dict(exif=not args.no_exif, invert=False if args.no_invert else "auto",
                   threshold=not args.no_threshold, crop=not args.no_crop, fit=not args.no_fit,
                   center=not args.no_center)
    try:
        model = load_model_or_explain(args.model, say=lambda line: print(line, file=sys.stderr))
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    failed, saved = 0, set()
    for name in args.images:
        try:
            prepared = imageprep.prepare(name, **options)
            if args.show_input is not None:
                save_input(prepared, args.show_input, name, saved)
        except (imageprep.ImagePrepError, OSError) as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            failed += 1
            continue
        result = _result(name, probabilities(model, to_model_input(model, prepared[None]))[0])
        print(result.to_json() if args.json else result.line(), flush=True)
    if failed:
        print(f"error: {failed} of {len(args.images)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
