"""notMNIST (letters A..J in many fonts): the original course pipeline, rebuilt to be safe and repeatable.

Pipeline (as in the source): get ``notMNIST_large.tar.gz`` (247,336,696 bytes) and ``notMNIST_small.tar.gz``
(8,458,043 bytes), checking sizes; extract each safely (``archive.safe_extract``); load every letter folder
A..J, skipping unreadable, empty or wrongly sized PNGs with a per-class report, and normalising a pixel v to
(v - 127.5) / 255; require enough images per class; keep per-class arrays on disk (``.npz``); merge into
balanced train / validation sets (from large) and a test set (from small) of the requested sizes; shuffle
with a seed (133 in the source); optionally drop test images that also occur in train; cache the result as
one ``.npz`` (never pickle).

Offline there is no notMNIST: ``synthetic=True`` runs the very same pipeline on archives rendered by
``notmnist_synthetic`` from the fonts on this machine. Everything made that way is labelled SYNTHETIC (file
names, the ``source`` string, the ``synthetic`` flag in the cache).
"""

import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import download as _download
from . import notmnist_synthetic
from .archive import safe_extract
from .download import atomic_write
from .errors import DataError, DownloadError, one_line
from .notmnist_layout import IMAGE_SIZE, LETTERS, SYNTHETIC_MARKER

log = logging.getLogger(__name__)

PIXEL_DEPTH = 255.0
SEED = 133
MIRRORS = ("https://commondatastorage.googleapis.com/books1000/", "http://yaroslavvb.com/upload/notMNIST/")
ARCHIVES = {"notMNIST_large": 247_336_696, "notMNIST_small": 8_458_043}  # name -> size in bytes
REAL_MIN_IMAGES = {"notMNIST_large": 45_000, "notMNIST_small": 1_800}
REAL_SIZES = (200_000, 10_000, 10_000)  # train, validation, test
SYNTHETIC_SIZES = (10_000, 1_000, 1_000)
SPARE = 10  # synthetic images rendered per class beyond what the requested sizes need


@dataclass
class ClassReport:
    """What loading one letter folder found: how many images were used and which files were skipped."""

    letter: str
    folder: Path
    loaded: int = 0
    skipped: list = field(default_factory=list)  # (file name, reason)

    def __str__(self):
        return f"{self.letter}: {self.loaded} images, {len(self.skipped)} skipped"


@dataclass
class NotMNIST:
    """The merged notMNIST sets: float32 images (n, 28, 28) in [-0.5, 0.5], int labels 0..9 (A..J)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    synthetic: bool
    source: str = ""
    duplicates_removed: int = 0
    reports: list = field(default_factory=list)


def normalise(pixels) -> np.ndarray:
    """uint8 pixels v -> float32 (v - 127.5) / 255, the source's normalisation (range [-0.5, 0.5])."""
    return ((np.asarray(pixels, np.float32) - PIXEL_DEPTH / 2) / PIXEL_DEPTH).astype(np.float32)


def load_letter(folder, letter=None, *, min_images=0):
    """Load every PNG of one letter folder -> (float32 images (n, 28, 28) normalised, ClassReport).

    Unreadable, empty, non-PNG or non-28x28 files are skipped and listed in the report (the real notMNIST has
    a few). Fewer than ``min_images`` usable images is a DataError naming the folder.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    report = ClassReport(letter or folder.name, folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: letter folder not found, expected a folder of 28x28 PNG images")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for path in files:
        try:
            with Image.open(path) as im:
                if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                    report.skipped.append((path.name, f"size {im.size[0]}x{im.size[1]}, expected 28x28"))
                    continue
                im = im.convert("L") if im.mode != "L" else im
                images[report.loaded] = np.asarray(im, np.uint8)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
            report.skipped.append((path.name, f"unreadable ({one_line(exc)[:60]})"))
            continue
        report.loaded += 1
    if report.skipped:
        log.info("notMNIST %s: skipped %d unreadable images in %s", report.letter, len(report.skipped), folder)
    if report.loaded < min_images:
        raise DataError(f"{folder}: only {report.loaded} readable images ({len(report.skipped)} skipped), "
                        f"expected at least {min_images}")
    return normalise(images[:report.loaded]), report


def letter_arrays(root, *, min_images=0, work_dir=None):
    """Load folders ``root/A`` .. ``root/J`` -> ({letter: images}, [ClassReport]).

    With ``work_dir`` each class is also kept as ``<work_dir>/<letter>.npz`` and reused (the source pickled
    them; we never pickle).
    """
    arrays, reports = {}, []
    for letter in LETTERS:
        cached = Path(work_dir) / f"{letter}.npz" if work_dir is not None else None
        if cached is not None and cached.is_file():
            with np.load(cached, allow_pickle=False) as z:
                arrays[letter] = z["images"]
                reports.append(ClassReport(letter, Path(root) / letter, int(z["loaded"]),
                                           [tuple(s.split("\t", 1)) for s in z["skipped"].tolist()]))
            continue
        arrays[letter], report = load_letter(Path(root) / letter, letter, min_images=min_images)
        reports.append(report)
        if cached is not None:
            with atomic_write(cached) as f:
                np.savez(f, images=arrays[letter], loaded=report.loaded,
                         skipped=np.array(["\t".join(s) for s in report.skipped], dtype=str))
    return arrays, reports


def merge(arrays, size, val_size=0, rng=None):
    """Balanced sets from per-class arrays, as the source's ``merge_datasets``.

    Each class is shuffled; its first ``val_size / 10`` images go to validation and the next
    ``size / 10`` to the main set. Returns (x, y, x_val, y_val) in class order (shuffle afterwards).
    """
    rng = rng or np.random.default_rng(SEED)
    classes = len(arrays)
    if size % classes or val_size % classes:
        raise ValueError(f"merge: sizes {size} and {val_size} must be multiples of the {classes} classes")
    per, per_val = size // classes, val_size // classes
    x = np.empty((size, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    x_val = np.empty((val_size, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for label, (letter, images) in enumerate(arrays.items()):
        if len(images) < per + per_val:
            raise DataError(f"notMNIST class {letter}: {len(images)} images, expected at least {per + per_val} "
                            f"for the requested sizes")
        order = rng.permutation(len(images))
        x_val[label * per_val:(label + 1) * per_val] = images[order[:per_val]]
        x[label * per:(label + 1) * per] = images[order[per_val:per_val + per]]
    y = np.repeat(np.arange(classes, dtype=np.uint8), per)
    y_val = np.repeat(np.arange(classes, dtype=np.uint8), per_val)
    return x, y, x_val, y_val


def shuffle(x, y, rng):
    """The same random permutation applied to images and labels."""
    order = rng.permutation(len(y))
    return x[order], y[order]


def remove_duplicates(x_train, x_test, y_test):
    """Drop test images that are byte-for-byte equal to a training image -> (x_test, y_test, removed)."""
    seen = {row.tobytes() for row in x_train}
    keep = np.array([row.tobytes() not in seen for row in x_test], bool)
    return x_test[keep], y_test[keep], int((~keep).sum())


def build(large_dir, small_dir, *, sizes=REAL_SIZES, seed=SEED, min_images=(0, 0), dedup=False, work_dir=None,
          synthetic=False, source=""):
    """Run the pipeline from extracted folders (``<large_dir>/A..J``, ``<small_dir>/A..J``) -> NotMNIST."""
    train_size, val_size, test_size = sizes
    work = Path(work_dir) if work_dir is not None else None
    large, large_reports = letter_arrays(large_dir, min_images=min_images[0],
                                         work_dir=work / "large" if work else None)
    small, small_reports = letter_arrays(small_dir, min_images=min_images[1],
                                         work_dir=work / "small" if work else None)
    rng = np.random.default_rng(seed)
    x_train, y_train, x_val, y_val = merge(large, train_size, val_size, rng)
    x_test, y_test, _, _ = merge(small, test_size, 0, rng)
    x_train, y_train = shuffle(x_train, y_train, rng)
    x_val, y_val = shuffle(x_val, y_val, rng)
    x_test, y_test = shuffle(x_test, y_test, rng)
    removed = 0
    if dedup:
        x_test, y_test, removed = remove_duplicates(x_train, x_test, y_test)
        log.info("notMNIST: removed %d test images that also occur in train", removed)
    return NotMNIST(x_train, y_train, x_val, y_val, x_test, y_test, synthetic, source, removed,
                    large_reports + small_reports)


KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def save(path, data: NotMNIST):
    """Cache merged sets as one ``.npz`` (atomic; no pickle)."""
    with atomic_write(path) as f:
        np.savez(f, **{k: getattr(data, k) for k in KEYS}, synthetic=data.synthetic,
                 duplicates_removed=data.duplicates_removed)


def load_saved(path, source=""):
    """Read a ``save``d ``.npz`` (``allow_pickle=False``), checking its arrays -> NotMNIST."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in KEYS}
            synthetic, removed = bool(z["synthetic"]), int(z["duplicates_removed"])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"{path}: unreadable notMNIST cache ({one_line(exc)[:80]}), expected a .npz with "
                        f"{', '.join(KEYS)}; delete it to rebuild") from None
    for part in ("train", "val", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.float32 or x.shape[1:] != (28, 28) or len(x) != len(y) or y.ndim != 1:
            raise DataError(f"{path}: x_{part}/y_{part} have shapes {x.shape}/{y.shape}, expected float32 "
                            f"(n, 28, 28) and (n,); delete it to rebuild")
    return NotMNIST(**arrays, synthetic=synthetic, source=source, duplicates_removed=removed)


def _archives_in(folder):
    return {name: Path(folder) / f"{name}.tar.gz" for name in ARCHIVES}


def _extracted(root, name):
    """The folder holding A..J for archive ``name`` under ``root`` (``root/name/A`` or ``root/name/name/A``)."""
    for candidate in (Path(root) / name, Path(root) / name / name):
        if all((candidate / letter).is_dir() for letter in LETTERS):
            return candidate
    return None


def load_notmnist(data_dir=None, *, sizes=None, seed=SEED, dedup=False, synthetic=False, min_images=None,
                  cache_dir=None, download=True, progress=True, verbose=False) -> NotMNIST:
    """notMNIST's merged train / validation / test sets (see the module docstring for the pipeline).

    ``data_dir``: a folder with ``notMNIST_large.tar.gz`` and ``notMNIST_small.tar.gz`` or with the extracted
    ``notMNIST_large/A..J`` and ``notMNIST_small/A..J``. Otherwise the archives are taken from (or downloaded
    into, size-checked) ``<cache_dir>/notmnist``. ``synthetic=True`` instead renders a SYNTHETIC stand-in
    with ``notmnist_synthetic`` (offline); archives it made are recognised by their marker file wherever they
    are, and labelled SYNTHETIC. ``sizes`` = (train, validation, test), multiples of 10; defaults
    (200000, 10000, 10000) for the real data and (10000, 1000, 1000) for the synthetic one. ``min_images`` =
    (per class in large, per class in small), default (45000, 1800) for the real data as in the source.
    Merged sets are cached as ``.npz`` for archives kept in the cache (not for a ``data_dir``).
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _download.cache_dir()
    if synthetic:
        where = _synthetic_archives(cache, tuple(sizes or SYNTHETIC_SIZES), seed)
        source = f"SYNTHETIC notMNIST rendered from local fonts into {where}"
    elif data_dir is not None:
        where = Path(data_dir).expanduser()
        if not where.is_dir():
            raise DataError(f"{where}: directory not found, expected a folder with notMNIST_large.tar.gz and "
                            f"notMNIST_small.tar.gz (or their extracted folders)")
        source = f"folder {where}"
    else:
        where = cache / "notmnist"
        source = f"cache {where}"
        _fetch_archives(where, download, progress)
    if data_dir is not None:
        _require_archives(where)

    keep = data_dir is None  # merged sets are cached only for archives kept in the cache
    merged = _merged_path(cache, synthetic, sizes, seed, dedup)
    if keep and merged.is_file():
        data = load_saved(merged, source=f"{source} (merged sets {merged.name})")
    else:
        with tempfile.TemporaryDirectory(dir=_scratch_dir(cache)) as scratch:
            # archives in the cache are extracted beside them once; a user's folder only into a scratch folder
            extract_root = where if keep else Path(scratch)
            folders = {name: _folder_for(where, name, extract_root) for name in ARCHIVES}
            if not synthetic and any((f / SYNTHETIC_MARKER).is_file() for f in folders.values()):
                synthetic, source = True, f"SYNTHETIC notMNIST (made by notmnist_synthetic) from {source}"
                keep, merged = False, None
            sizes = tuple(sizes or (SYNTHETIC_SIZES if synthetic else REAL_SIZES))
            min_images = tuple(min_images or ((0, 0) if synthetic else REAL_MIN_IMAGES.values()))
            work = where / "classes" if keep else None  # per-class arrays of these archives, reused
            try:
                data = build(folders["notMNIST_large"], folders["notMNIST_small"], sizes=sizes, seed=seed,
                             min_images=min_images, dedup=dedup, work_dir=work, synthetic=synthetic, source=source)
            except DataError as exc:  # name the user's archive, not the scratch folder it was extracted to
                message = str(exc)
                for name, path in _archives_in(where).items():
                    message = message.replace(f"{scratch}/{name}.extracted/", f"{path}:")
                raise DataError(message) from None
        if keep:
            save(merged, data)
    log.info("notMNIST loaded from %s", data.source)
    if verbose:
        print(f"notmnist: loaded from {data.source}", file=sys.stderr)
        for report in data.reports:
            print(f"  {report}", file=sys.stderr)
    return data


def _scratch_dir(cache):
    path = cache / "notmnist"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _synthetic_archives(cache, sizes, seed):
    """The folder of SYNTHETIC archives for these sizes and seed, rendered first if missing."""
    large_n = (sizes[0] + sizes[1]) // 10 + SPARE
    small_n = sizes[2] // 10 + SPARE
    where = cache / "notmnist-synthetic" / f"seed{seed}-{large_n}-{small_n}"
    if not all(p.is_file() for p in _archives_in(where).values()):
        notmnist_synthetic.make_archives(where, per_class_large=large_n, per_class_small=small_n, seed=seed)
    return where


def _fetch_archives(where, download, progress):
    """Download (size-checked) the archives missing from the cache folder ``where``."""
    for name, path in _archives_in(where).items():
        if path.is_file() or _extracted(where, name) is not None:
            continue
        if not download:
            raise DataError(f"{where}: no {path.name} and no {name}/A..J folders, expected the notMNIST archives; "
                            f"pass --data-dir, allow the download, or use the synthetic set (notmnist-synthetic)")
        try:
            _download.download([m + path.name for m in MIRRORS], path, size=ARCHIVES[name], progress=progress)
        except DownloadError as exc:
            raise DataError(f"{exc}; pass --data-dir with the notMNIST archives or use the synthetic set "
                            f"(notmnist-synthetic)") from None


def _require_archives(where):
    for name, path in _archives_in(where).items():
        if not path.is_file() and _extracted(where, name) is None:
            raise DataError(f"{where}: no {path.name} and no {name}/A..J folders, expected the notMNIST archives; "
                            f"pass another --data-dir or use the synthetic set (notmnist-synthetic)")


def _merged_path(cache, synthetic, sizes, seed, dedup):
    sizes = tuple(sizes or (SYNTHETIC_SIZES if synthetic else REAL_SIZES))
    folder, prefix = ("notmnist-synthetic", "notMNIST-SYNTHETIC") if synthetic else ("notmnist", "notMNIST")
    return cache / folder / f"{prefix}-{sizes[0]}-{sizes[1]}-{sizes[2]}-seed{seed}{'-dedup' if dedup else ''}.npz"


def _folder_for(where, name, extract_root):
    """The A..J folder of archive ``name``: already extracted in ``where`` or ``extract_root``, else extracted."""
    found = _extracted(where, name) or _extracted(extract_root / f"{name}.extracted", name)
    if found is None:
        path = _archives_in(where)[name]
        found = _extracted(safe_extract(path, extract_root / f"{name}.extracted"), name)
        if found is None:
            raise DataError(f"{path}: archive has no {name}/A..J folders, expected notMNIST's layout")
    return found
