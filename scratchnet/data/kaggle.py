"""Kaggle's "Digit Recognizer": a strict CSV reader, the submission writer, the cut from MNIST, and the split.

``train.csv``: header ``label,pixel0,...,pixel783`` then one row per image (label 0..9, pixels 0..255);
``test.csv``: the same without the label column. The submission is ``ImageId,Label`` with 1-based ImageId.
Kaggle needs a login, so nothing is downloaded: point ``data_dir`` at your files, or let the loader cut
Kaggle's two sets from MNIST (Kaggle's images are MNIST's: 42,000 train + 28,000 test rows = all 70,000).
"""

import logging
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .download import atomic_write
from .errors import DataError, one_line
from .folder import has_files
from .mnist import load_mnist, load_mnist_with_source

log = logging.getLogger(__name__)

PIXELS = 784
PIXEL_HEADER = [f"pixel{i}" for i in range(PIXELS)]
TRAIN_HEADER = ["label"] + PIXEL_HEADER
SEED = 1212  # the seed of kaggle_cnn's 80/20 split
TRAIN_CSV, TEST_CSV = "train.csv", "test.csv"
ANSWER_KEY = "test_labels.csv"  # test.csv's labels, as a submission file; written by mnist_to_kaggle_csv


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


def mnist_to_kaggle(mnist_data, *, n_train=None, n_test=None):
    """Cut MNIST the way Kaggle did -> (x_csv_train, y_csv_train, x_csv_test, y_csv_test).

    The images, train then test in the official order (70,000), are cut into ``n_train`` labelled rows for
    ``train.csv`` and the next ``n_test`` for ``test.csv``. The defaults keep Kaggle's proportions: the first
    60% (42,000 of MNIST's 70,000) and the remaining 40% (28,000), so a smaller MNIST folder is cut alike.
    """
    (x_train, y_train), (x_test, y_test) = mnist_data
    x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    if n_train is None:
        n_train = len(x) * 3 // 5
    if n_test is None:
        n_test = len(x) - n_train
    if n_train + n_test > len(x):
        raise ValueError(f"mnist_to_kaggle: {n_train} + {n_test} rows asked, only {len(x)} images")
    return x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test]


def mnist_to_kaggle_csv(out_dir, mnist_data=None, *, n_train=None, n_test=None, **mnist_kwargs) -> dict:
    """Write Kaggle-format ``train.csv``, ``test.csv`` and the answer key ``test_labels.csv`` from MNIST.

    The rows are cut by ``mnist_to_kaggle`` (42,000 + 28,000 for the full MNIST), so loading the folder gives
    the same split as loading ``kaggle`` without one. ``mnist_data`` defaults to ``load_mnist(**mnist_kwargs)``.
    Returns {"train": path, "test": path, "test_labels": path}.
    """
    if mnist_data is None:
        mnist_data = load_mnist(**mnist_kwargs)
    x_train, y_train, x_test, y_test = mnist_to_kaggle(mnist_data, n_train=n_train, n_test=n_test)
    out_dir = Path(out_dir)
    return {"train": write_kaggle_csv(out_dir / TRAIN_CSV, x_train, y_train),
            "test": write_kaggle_csv(out_dir / TEST_CSV, x_test),
            "test_labels": write_submission(out_dir / ANSWER_KEY, y_test)}


def split(x, y, validation_split=0.2, seed=SEED):
    """Shuffle with ``seed`` and hold out ``validation_split`` -> ((x_train, y_train), (x_val, y_val))."""
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(len(y) * validation_split))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


class KaggleDigits(NamedTuple):
    """The kaggle dataset: ``train.csv`` split into train / validation, and ``test.csv``.

    ``x_test`` / ``y_test`` are ``test.csv`` with its labels when they are known (an answer key beside it, or
    a split made from MNIST), else None; ``x_unlabelled`` is ``test.csv`` either way, for the submission.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    x_unlabelled: np.ndarray
    source: str


def load_kaggle(data_dir=None, *, validation_split=0.2, seed=SEED, cache_dir=None, download=True, progress=True,
                verbose=False) -> KaggleDigits:
    """Kaggle's digit recognizer: ``train.csv`` split ``validation_split`` with ``seed``, and ``test.csv``.

    Sources: ``data_dir`` holding Kaggle's ``train.csv`` and ``test.csv`` (and our ``test_labels.csv`` answer
    key, if there is one); or ``data_dir`` holding the four MNIST files; or, without ``data_dir``, MNIST from
    its usual sources (``load_mnist``). From MNIST the two CSVs are cut as ``mnist_to_kaggle`` cuts them, in
    memory, with their labels known. Whatever the source, the same images give the same split: for the full
    MNIST 33,600 train, 8,400 validation, 28,000 test images.
    """
    from_mnist = data_dir is None
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"{folder}: directory not found, expected a folder with Kaggle's train.csv and "
                            f"test.csv (or the four MNIST files)")
        # A folder with neither the CSVs nor MNIST is reported as missing Kaggle's train.csv.
        from_mnist = not ((folder / TRAIN_CSV).exists() or (folder / TEST_CSV).exists()) and has_files(folder)
    if from_mnist:
        mnist_data, mnist_source = load_mnist_with_source(data_dir, cache_dir=cache_dir, download=download,
                                                          progress=progress)
        x, y, x_unlabelled, y_test = mnist_to_kaggle(mnist_data)
        source = f"Kaggle's split made from MNIST ({mnist_source})"
    else:
        x, y = read_kaggle_csv(folder / TRAIN_CSV, labelled=True)
        x_unlabelled, _ = read_kaggle_csv(folder / TEST_CSV, labelled=False)
        y_test = _answer_key(folder / ANSWER_KEY, len(x_unlabelled))
        source = f"folder {folder}" + (f" (with the answer key {ANSWER_KEY})" if y_test is not None else "")
    (x_train, y_train), (x_val, y_val) = split(x, y, validation_split, seed)
    x_test = x_unlabelled if y_test is not None else None
    log.info("Kaggle digits loaded from %s", source)
    if verbose:
        print(f"kaggle: loaded from {source}", file=sys.stderr)
    return KaggleDigits(x_train, y_train, x_val, y_val, x_test, y_test, x_unlabelled, source)


def _answer_key(path, rows):
    """Labels of ``test.csv`` from the answer key ``path`` (None when there is none), one per row."""
    if not path.exists():
        return None
    labels = read_submission(path)
    if len(labels) != rows:
        raise DataError(f"{path}: {len(labels)} labels for the {rows} rows of {TEST_CSV}, expected one per row")
    return labels
