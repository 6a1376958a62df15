"""``python -m tf_reference.export SRC DST``: a scratchnet model file to Keras, or a Keras model to scratchnet.

The direction follows the file names:

* ``python -m tf_reference.export model.npz model.keras`` writes a plain Keras model that
  ``keras.models.load_model("model.keras")`` loads with nothing from this repository installed;
* ``python -m tf_reference.export model.keras model.npz`` (or ``python -m tf_reference.import_keras``)
  writes a scratchnet model that ``scratchnet.load_model("model.npz")`` loads.

After writing, the file is read back by the other engine and both engines predict on a few random inputs;
the largest relative difference of the predictions (max |a - b| / max |b|) is printed and must be within the
parity tolerance of the model's dtype. The compiled loss and optimizer are carried over when both engines
have them (the optimizer's state is not).

Exit status: 0 on success; 1 on bad input (a missing or unreadable file, a model with a layer the other
engine lacks, predictions that disagree), with one line on stderr; 2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np

from scratchnet.fileio import atomic_path

KERAS_SUFFIXES = (".keras",)
SCRATCHNET_SUFFIXES = (".npz",)


class ExportError(Exception):
    """Bad input: reported as one line on stderr with exit status 1."""


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _write_atomically(path: Path, save) -> None:
    """Call ``save(temporary_path)`` next to `path`, then rename it over `path` (no half-written files)."""
    directory = path.resolve().parent
    if not directory.is_dir():
        raise ExportError(f"cannot write {path}: directory {directory} does not exist")
    with atomic_path(path, suffix=path.suffix) as temporary:
        save(str(temporary))


def _probe_inputs(input_shape, dtype, count: int = 8) -> np.ndarray:
    """A few inputs in [0, 1) for checking that both engines predict the same."""
    return np.random.default_rng(0).random((count, *input_shape)).astype(dtype)


def _check_predictions(scratchnet_model, keras_model) -> float:
    from tf_reference.compare import relative_difference, tolerance

    x = _probe_inputs(scratchnet_model.input_shape[1:], scratchnet_model.dtype)
    ours = scratchnet_model.predict(x, verbose=0)
    # Calling the model, not keras_model.predict: predict's data adapter casts inputs to the global floatx
    # (float32 unless changed), which would cost a float64 model its input precision.
    theirs = np.asarray(keras_model(x, training=False))
    difference = relative_difference(ours, theirs)
    if not difference <= tolerance(scratchnet_model.dtype):
        raise ExportError(
            f"the engines disagree on the exported model: predictions differ by {difference:.2e} (relative)"
        )
    return difference


def export_to_keras(source: Path, target: Path) -> str:
    """scratchnet ``.npz`` -> Keras ``.keras``; returns a one-line summary."""
    from scratchnet.models import load_model

    try:
        model = load_model(source)
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot read scratchnet model {source}: {error}") from None
    if not model.built:
        raise ExportError(f"cannot export {source}: the model was saved before it was built (no input shape)")

    import keras

    from tf_reference.transfer import TransferError, to_keras

    try:
        keras_model = to_keras(model)
    except TransferError as error:
        raise ExportError(f"cannot export {source}: {error}") from None
    _write_atomically(target, keras_model.save)
    reloaded = keras.models.load_model(target)
    difference = _check_predictions(model, reloaded)
    return (f"wrote {target}: Keras model {reloaded.name!r}, {len(reloaded.layers)} layers, "
            f"{reloaded.count_params():,} parameters, {model.dtype}; predictions match scratchnet's "
            f"(max relative difference {difference:.1e})")


def import_from_keras(source: Path, target: Path) -> str:
    """Keras ``.keras`` -> scratchnet ``.npz``; returns a one-line summary."""
    if not source.is_file():
        raise ExportError(f"cannot read Keras model {source}: no such file")
    if not zipfile.is_zipfile(source):
        raise ExportError(f"cannot read Keras model {source}: not a .keras archive (a .keras file is a zip file)")
    import keras

    from scratchnet.models import load_model
    from tf_reference.transfer import TransferError, from_keras

    try:
        keras_model = keras.models.load_model(source)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds (ValueError, OSError, BadZipFile, ...)
        raise ExportError(f"cannot read Keras model {source}: {_one_line(error)}") from None
    try:
        model = from_keras(keras_model)
    except TransferError as error:
        raise ExportError(f"cannot import {source}: {error}") from None
    _write_atomically(target, model.save)
    reloaded = load_model(target)
    difference = _check_predictions(reloaded, keras_model)
    return (f"wrote {target}: scratchnet model {reloaded.name!r}, {len(reloaded.layers)} layers, "
            f"{reloaded.count_params():,} parameters, {reloaded.dtype}; predictions match Keras's "
            f"(max relative difference {difference:.1e})")


def main(argv=None, *, direction: str | None = None) -> int:
    """Run the CLI; `direction` "export"/"import" fixes the direction (for ``tf_reference.import_keras``)."""
    prog = "python -m tf_reference.import_keras" if direction == "import" else "python -m tf_reference.export"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="model to read: a scratchnet .npz or a Keras .keras file")
    parser.add_argument("target", type=Path, help="file to write: .keras for Keras, .npz for scratchnet")
    args = parser.parse_args(argv)

    src, dst = args.source.suffix.lower(), args.target.suffix.lower()
    if src in SCRATCHNET_SUFFIXES and dst in KERAS_SUFFIXES and direction != "import":
        run = export_to_keras
    elif src in KERAS_SUFFIXES and dst in SCRATCHNET_SUFFIXES and direction != "export":
        run = import_from_keras
    else:
        wanted = ("SOURCE.keras TARGET.npz" if direction == "import"
                  else "SOURCE.npz TARGET.keras (or SOURCE.keras TARGET.npz)")
        parser.error(f"expected {wanted}; received {args.source} -> {args.target}")
    # Checked before TensorFlow is imported, so a wrong path gets its one line without TF's start-up noise.
    if not args.source.is_file():
        kind = "scratchnet" if src in SCRATCHNET_SUFFIXES else "Keras"
        print(f"error: cannot read {kind} model {args.source}: no such file", file=sys.stderr)
        return 1
    if not args.target.resolve().parent.is_dir():
        print(f"error: cannot write {args.target}: directory {args.target.resolve().parent} does not exist",
              file=sys.stderr)
        return 1
    try:
        print(run(args.source, args.target))
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
