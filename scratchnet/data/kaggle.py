"""Kaggle's "Digit Recognizer" CSVs: a strict reader, the submission writer, and a tool that makes them from MNIST.

``train.csv``: header ``label,pixel0,...,pixel783`` then one row per image (label 0..9, pixels 0..255);
``test.csv``: the same without the label column. The submission is ``ImageId,Label`` with 1-based ImageId.
Kaggle needs a login, so nothing is downloaded: point ``data_dir`` at your files, or let
``mnist_to_kaggle_csv`` write Kaggle-format files from MNIST (42,000 train + 28,000 test rows = all 70,000).
"""

import logging
import sys
from pathlib import Path

import numpy as np

from . import download as _download
from .download import atomic_write
from .errors import DataError, one_line

log = logging.getLogger(__name__)

PIXELS = 784
PIXEL_HEADER = [f"pixel{i}" for i in range(PIXELS)]
TRAIN_HEADER = ["label"] + PIXEL_HEADER
SEED = 1212  # the 80/20 split of kaggle_cnn (issue 3: seed 1212)


def read_kaggle_csv(path, *, labelled):
    """Read ``train.csv`` (``labelled=True``) or ``test.csv`` -> (x uint8 (n, 28, 28), y uint8 (n,) or None).

    Strict: the exact header, exactly 785 (784) comma-separated integers per row, labels 0..9, pixels 0..255.
    Anything else is a DataError naming the file, the line and what was expected.
    """
    path = Path(path)
    what = "train.csv" if labelled else "test.csv"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found, expected Kaggle's {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)}), expected Kaggle's {what}") from None
    header = TRAIN_HEADER if labelled else PIXEL_HEADER
    expected_header = f"expected the header {header[0]},{header[1]},...,pixel783 ({len(header)} columns)"
    newline = data.find(b"\n")
    first = (data if newline < 0 else data[:newline]).decode("ascii", "replace").strip()
    if not first:
        raise DataError(f"{path}: empty first line, {expected_header}")
    got = [h.strip().strip('"') for h in first.split(",")]
    if got != header:
        raise DataError(f"{path}: line 1: header {_describe_header(got, header)}, {expected_header}")
    body = b"" if newline < 0 else data[newline + 1:].replace(b"\r", b"")
    values = _parse_fast(body, len(header))
    if values is None:
        values = _parse_slow(path, body, header)
    x = values[:, -PIXELS:].astype(np.uint8).reshape(-1, 28, 28)
    return x, (values[:, 0].astype(np.uint8) if labelled else None)


def read_train_csv(path):
    """Kaggle's ``train.csv`` -> (x uint8 (n, 28, 28), y uint8 (n,)); see ``read_kaggle_csv``."""
    return read_kaggle_csv(path, labelled=True)


def read_test_csv(path):
    """Kaggle's ``test.csv`` -> x uint8 (n, 28, 28); see ``read_kaggle_csv``."""
    return read_kaggle_csv(path, labelled=False)[0]


def _describe_header(got, want):
    if len(got) != len(want):
        return f"has {len(got)} columns"
    i = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
    return f"column {i + 1} is {got[i][:20]!r} (not {want[i]!r})"


_DIGIT = np.full(256, -1, np.int16)
_DIGIT[ord("0"):ord("9") + 1] = np.arange(10)


def _parse_fast(body: bytes, columns, chunk=1 << 22):
    """Vectorised parse of a well-formed body (digits, commas, newlines; 1-3 digit values in range), else None.

    Works through ~4 MB pieces cut at line ends to keep memory small. None sends the file to ``_parse_slow``,
    which finds and names the first problem.
    """
    if body and not body.endswith(b"\n"):
        body += b"\n"
    pieces, offset = [], 0
    while offset < len(body):
        cut = body.rfind(b"\n", offset, offset + chunk) + 1 if offset + chunk < len(body) else len(body)
        if cut <= offset:
            return None  # a single line longer than the chunk: not a Kaggle row
        values = _parse_piece(body[offset:cut], columns)
        if values is None:
            return None
        pieces.append(values)
        offset = cut
    return np.concatenate(pieces) if pieces else np.empty((0, columns), np.uint8)


def _parse_piece(piece: bytes, columns):
    chars = np.frombuffer(piece, np.uint8)
    digits = _DIGIT[chars]
    separator = (chars == ord(",")) | (chars == ord("\n"))
    if np.any((digits < 0) & ~separator):
        return None
    ends = np.flatnonzero(separator).astype(np.int32)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    lengths = ends - starts
    if len(ends) % columns or lengths.min() < 1 or lengths.max() > 3:
        return None
    newlines = np.flatnonzero(chars[ends] == ord("\n"))
    if not np.array_equal(newlines, np.arange(columns - 1, len(ends), columns)):
        return None
    padded = np.zeros(len(digits) + 3, np.int16)  # shifted by 3: a digit before the token's start reads 0
    padded[3:] = digits
    value = padded[ends + 2]
    value += np.where(lengths >= 2, 10 * padded[ends + 1], 0).astype(np.int16)
    value += np.where(lengths >= 3, 100 * padded[ends], 0).astype(np.int16)
    values = value.reshape(-1, columns)
    if values[:, -PIXELS:].max(initial=0) > 255 or (columns > PIXELS and values[:, 0].max(initial=0) > 9):
        return None
    return values.astype(np.uint8)


def _parse_slow(path, body: bytes, header):
    """Line-by-line parse that names the first bad line and value (blank lines are skipped)."""
    columns = len(header)
    rows = []
    for number, raw in enumerate(body.split(b"\n"), 2):
        line = raw.decode("ascii", "replace")
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != columns:
            which = "missing" if len(fields) < columns else "extra"
            raise DataError(f"{path}: line {number}: {len(fields)} values ({which} columns), expected {columns}")
        row = []
        for name, field in zip(header, fields):
            try:
                value = int(field)
            except ValueError:
                raise DataError(f"{path}: line {number}: {name} is {field.strip()[:20]!r}, expected an integer") \
                    from None
            limit = 9 if name == "label" else 255
            if not 0 <= value <= limit:
                raise DataError(f"{path}: line {number}: {name} is {value}, expected 0..{limit}")
            row.append(value)
        rows.append(row)
    return np.array(rows, np.int64).reshape(-1, columns)


_TEXT = [str(v).encode() for v in range(256)]
_LEN = np.array([len(t) for t in _TEXT], np.int64)
_DIGITS = np.zeros((256, 3), np.uint8)
for _v, _t in enumerate(_TEXT):
    _DIGITS[_v, :len(_t)] = np.frombuffer(_t, np.uint8)


def _csv_bytes(values, rows_per_piece=4096):
    """uint8 matrix -> CSV body bytes (comma-separated, one row per line), vectorised in pieces."""
    values = np.ascontiguousarray(values, np.uint8)
    return b"".join(_csv_piece(values[i:i + rows_per_piece]) for i in range(0, len(values), rows_per_piece))


def _csv_piece(values):
    flat = values.ravel()
    digits = _LEN[flat]
    ends = np.cumsum(digits + 1, dtype=np.int64)
    starts = ends - digits - 1
    out = np.empty(int(ends[-1]), np.uint8)
    for d in range(3):
        has = digits > d
        out[starts[has] + d] = _DIGITS[flat[has], d]
    out[ends - 1] = ord(",")
    out[ends.reshape(values.shape)[:, -1] - 1] = ord("\n")
    return out.tobytes()


def write_kaggle_csv(path, x, y=None) -> Path:
    """Write images (n, 28, 28) or (n, 784) uint8, and labels when given, as a Kaggle CSV (atomically)."""
    pixels = np.asarray(x).reshape(len(x), PIXELS)
    if pixels.dtype != np.uint8:
        raise TypeError(f"write_kaggle_csv: pixels must be uint8, got {pixels.dtype}")
    columns = pixels if y is None else np.column_stack([np.asarray(y, np.uint8), pixels])
    header = ",".join(PIXEL_HEADER if y is None else TRAIN_HEADER)
    with atomic_write(path) as f:
        f.write(header.encode() + b"\n")
        f.write(_csv_bytes(columns))
    return Path(path)


def write_submission(path, labels) -> Path:
    """Write Kaggle's submission file: ``ImageId,Label`` then ``1,<label>``, ``2,<label>``, ... (atomically)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"write_submission: labels must be a 1-D array of integers 0..9, got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    with atomic_write(path, "w") as f:
        f.write("ImageId,Label\n")
        f.writelines(f"{i},{int(label)}\n" for i, label in enumerate(labels, 1))
    return Path(path)


def read_submission(path):
    """Read a submission file back -> labels in ImageId order (strict: header, consecutive ImageIds)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({one_line(exc)}), expected an ImageId,Label CSV") from None
    if not lines or lines[0].strip() != "ImageId,Label":
        raise DataError(f"{path}: line 1 is not 'ImageId,Label', expected the submission header")
    labels = []
    for number, line in enumerate(lines[1:], 2):
        try:
            image_id, label = (int(v) for v in line.split(","))
        except ValueError:
            raise DataError(f"{path}: line {number} is {line[:30]!r}, expected 'ImageId,Label' integers") from None
        if image_id != number - 1 or not 0 <= label <= 9:
            raise DataError(f"{path}: line {number}: ImageId {image_id}, label {label}, expected ImageId "
                            f"{number - 1} and a label 0..9")
        labels.append(label)
    return np.array(labels, np.uint8)


def mnist_to_kaggle_csv(out_dir, mnist_data=None, *, n_train=42_000, n_test=28_000, **mnist_kwargs) -> dict:
    """Write Kaggle-format ``train.csv``, ``test.csv`` and the answer key ``test_labels.csv`` from MNIST.

    The 70,000 MNIST images (train then test, official order) are cut into ``n_train`` labelled rows and the
    next ``n_test`` unlabelled ones, as Kaggle's competition did. ``mnist_data`` defaults to
    ``load_mnist(**mnist_kwargs)``.
    Returns {"train": path, "test": path, "test_labels": path}.
    """
    if mnist_data is None:
        from .mnist import load_mnist

        mnist_data = load_mnist(**mnist_kwargs)
    (x_train, y_train), (x_test, y_test) = mnist_data
    x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    if n_train + n_test > len(x):
        raise ValueError(f"mnist_to_kaggle_csv: {n_train} + {n_test} rows asked, only {len(x)} images")
    out_dir = Path(out_dir)
    paths = {"train": write_kaggle_csv(out_dir / "train.csv", x[:n_train], y[:n_train]),
             "test": write_kaggle_csv(out_dir / "test.csv", x[n_train:n_train + n_test]),
             "test_labels": write_submission(out_dir / "test_labels.csv", y[n_train:n_train + n_test])}
    return paths


def split(x, y, validation_split=0.2, seed=SEED):
    """Shuffle with ``seed`` and hold out ``validation_split`` -> ((x_train, y_train), (x_val, y_val))."""
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(len(y) * validation_split))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def load_kaggle(data_dir=None, *, validation_split=0.2, seed=SEED, cache_dir=None, download=True, progress=True,
                verbose=False):
    """Kaggle digit recognizer -> (train, held_out, x_unlabelled, source).

    ``train`` and ``held_out`` are (x uint8 (n, 28, 28), y uint8) from ``train.csv`` split 80/20 with ``seed``
    (33,600 / 8,400 for the real file); ``x_unlabelled`` is ``test.csv`` (28,000 images, for the submission).
    Without ``data_dir``, ``<cache_dir>/kaggle/`` is used, written from MNIST by ``mnist_to_kaggle_csv`` the
    first time (so the pipeline runs offline; the source says so).
    """
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: directory not found, expected a folder with Kaggle's train.csv and test.csv")
        source = f"folder {folder}"
    else:
        cache = Path(cache_dir).expanduser() if cache_dir is not None else _download.cache_dir()
        folder = cache / "kaggle"
        if not ((folder / "train.csv").is_file() and (folder / "test.csv").is_file()):
            log.info("writing Kaggle-format CSVs from MNIST into %s", folder)
            mnist_to_kaggle_csv(folder, cache_dir=cache_dir, download=download, progress=progress)
        source = f"Kaggle-format CSVs made from MNIST in {folder}"
    x, y = read_kaggle_csv(folder / "train.csv", labelled=True)
    x_unlabelled, _ = read_kaggle_csv(folder / "test.csv", labelled=False)
    train, held_out = split(x, y, validation_split, seed)
    log.info("Kaggle digits loaded from %s", source)
    if verbose:
        print(f"kaggle: loaded from {source}", file=sys.stderr)
    return train, held_out, x_unlabelled, source


def main(argv=None) -> int:
    """``python -m scratchnet.data.kaggle OUT_DIR``: write Kaggle-format CSVs from MNIST (exit 1 on bad data)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scratchnet.data.kaggle",
                                     description="Write Kaggle digit-recognizer CSVs (train.csv, test.csv, "
                                                 "test_labels.csv) from MNIST, so the Kaggle pipeline runs offline.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--data-dir", type=Path, help="folder with the four MNIST files (default: usual sources)")
    parser.add_argument("--train-rows", type=int, default=42_000)
    parser.add_argument("--test-rows", type=int, default=28_000)
    args = parser.parse_args(argv)
    try:
        from .mnist import load_mnist

        data = load_mnist(args.data_dir)
        paths = mnist_to_kaggle_csv(args.out_dir, data, n_train=args.train_rows, n_test=args.test_rows)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
