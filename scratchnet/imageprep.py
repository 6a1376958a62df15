"""Turn a photo or scan of one handwritten digit into a 28x28 float image prepared the way MNIST's were.

MNIST's digits were scanned, cleaned, fitted into a 20x20 pixel box keeping their aspect ratio (anti-aliased,
so strokes have grey edges), and pasted into a 28x28 image so that their centre of mass sits in the middle;
ink is bright (1) and paper dark (0). A network trained on MNIST only sees that kind of picture, so a photo
of a digit on paper has to be brought to it first. :func:`prepare` runs the stages below in order; each one
is a small function of its own and can be switched off:

1. :func:`load_image`           open the file and honour its EXIF orientation (phones store photos sideways)
2. :func:`flatten_transparency` paint a transparent background white, as paper
3. :func:`to_grayscale`         one float channel in [0, 1] (1 = white), photos reduced to a working size
4. :func:`is_dark_on_light` / :func:`invert_image` dark ink on light paper becomes light ink on black
5. :func:`suppress_background`  even out the lighting and zero the paper, keeping anti-aliased ink grey
6. :func:`crop_to_ink`          cut the picture down to the ink's bounding box
7. :func:`fit_to_box`           scale so the longer side is 20 px, keeping the aspect ratio
8. :func:`center_by_mass`       paste into 28x28 with the centre of mass on MNIST's centre

A page without ink raises :class:`ImagePrepError`, a ``ValueError`` whose one-line message names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

#: Side of an MNIST image, in pixels.
MNIST_SIZE = 28
#: Side of the box MNIST fitted each digit into, in pixels.
MNIST_BOX = 20
#: Where MNIST's centres of mass sit, as (row, column) with 0-based pixel indices. Measured on the 10,000
#: MNIST test digits: mean row 13.99, mean column 14.01 (standard deviation 0.29), so (14, 14).
MNIST_CENTER = (14.0, 14.0)
#: Photos are reduced so their longer side is at most this many pixels before anything else (speed).
WORK_SIZE = 1024
#: Ink must differ from the paper by at least this much (on a 0..1 scale) to count as ink.
MIN_CONTRAST = 0.2
#: Fewer ink pixels than this (at the working size) is a blank page.
MIN_INK_PIXELS = 4

_RESAMPLE = Image.Resampling.LANCZOS


class ImagePrepError(ValueError):
    """An image could not be prepared: missing, unreadable, or without ink. The message is one line."""


def input_name(image_or_path) -> str:
    """How an input is named in error messages: its path, or a description of an in-memory image."""
    if isinstance(image_or_path, (str, os.PathLike)):
        return os.fspath(image_or_path)
    return f"<{type(image_or_path).__name__}>"


# ------------------------------------------------------------------------------------------ 1. loading
def load_image(image_or_path, *, exif: bool = True) -> Image.Image:
    """Open an image file (or take a PIL image or a NumPy array) and honour its EXIF orientation.

    Phones save photos in the sensor's orientation and record the rotation in the EXIF ``Orientation``
    tag; ``PIL.ImageOps.exif_transpose`` applies it, so the digit stands upright. Arrays may be (H, W),
    (H, W, 1), (H, W, 3) or (H, W, 4), uint8 in 0..255 or float in [0, 1].
    """
    if isinstance(image_or_path, Image.Image):
        image = image_or_path
    elif isinstance(image_or_path, np.ndarray):
        image = _image_from_array(image_or_path)
    elif isinstance(image_or_path, (str, os.PathLike)):
        image = _open(Path(image_or_path))
    else:
        raise TypeError(f"expected a path, a PIL image or a NumPy array, got {type(image_or_path).__name__}")
    if exif:
        image = ImageOps.exif_transpose(image)
    return image


def _open(path: Path) -> Image.Image:
    """Open and fully decode ``path``, turning every failure into a one-line :class:`ImagePrepError`."""
    if not path.exists():
        raise ImagePrepError(f"{path}: no such file")
    if path.is_dir():
        raise ImagePrepError(f"{path}: is a directory, not an image")
    try:
        image = Image.open(path)
        if image.format == "JPEG":  # let the decoder shrink big photos by 2, 4 or 8 for free
            image.draft("RGB", (WORK_SIZE, WORK_SIZE))
        image.load()
    except UnidentifiedImageError:
        raise ImagePrepError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImagePrepError(f"{path}: cannot read image ({reason})") from None
    return image


def _image_from_array(array: np.ndarray) -> Image.Image:
    """A PIL image from a (H, W[, C]) array, uint8 0..255 or float 0..1."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImagePrepError(f"expected an image array of shape (H, W) or (H, W, 3|4), got {array.shape}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array)


# ----------------------------------------------------------------------------- 2. transparency, 3. gray
def flatten_transparency(image: Image.Image) -> Image.Image:
    """Composite an image with an alpha channel onto white paper; other images are returned unchanged.

    Drawing programs often save black strokes on a fully transparent background whose hidden colour is
    also black, so simply dropping the alpha channel would give a black page.
    """
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image
    rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, rgba).convert("RGB")


def to_grayscale(image: Image.Image, *, max_side: int = WORK_SIZE) -> np.ndarray:
    """One float32 channel in [0, 1] (0 black, 1 white), reduced so the longer side is at most ``max_side``.

    Returns (H, W) float32.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.clip(values / top, 0.0, 1.0).astype(np.float32), mode="F")
    else:
        image = image.convert("L")
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)  # an area average: the right filter for shrinking
    gray = np.asarray(image, dtype=np.float32)
    return gray if image.mode == "F" else gray / np.float32(255.0)


# ------------------------------------------------------------------------------------------ 4. polarity
def is_dark_on_light(gray: np.ndarray) -> bool:
    """Whether the ink is darker than the paper (then the image must be inverted to look like MNIST).

    The paper is what covers most of every neighbourhood, so a median over a wide window finds it under any
    lighting. The ink is whichever way round the image departs from that paper by more than its noise:
    the summed contrast of pixels more than 3 noise deviations darker is compared with that of pixels more
    than 3 deviations lighter. Works on a copy at most 256 px wide; a tie goes to a light border (paper).
    """
    small = _shrink(gray, 256)
    departure = small - _median_background(small)
    noise = 1.4826 * float(np.median(np.abs(departure - np.median(departure))))
    darker = float(np.clip(-departure - 3 * noise, 0.0, None).sum())
    lighter = float(np.clip(departure - 3 * noise, 0.0, None).sum())
    if abs(darker - lighter) <= 1e-3 * small.size:
        frame = max(1, round(0.05 * min(small.shape)))
        border = np.concatenate([small[:frame].ravel(), small[-frame:].ravel(),
                                 small[:, :frame].ravel(), small[:, -frame:].ravel()])
        return float(np.median(border)) > 0.5
    return darker > lighter


def _median_background(a: np.ndarray) -> np.ndarray:
    """The paper under ``a`` (H, W) whatever the ink's colour: a median over windows half the image wide.

    Computed on a copy at most 64 px wide and scaled back up, since lighting changes slowly.
    """
    small = _shrink(a, 64)
    window = max(3, (min(small.shape) // 2) | 1)
    pad = window // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(small, pad, mode="edge"), (window, window))
    median = np.median(windows, axis=(-2, -1)).astype(np.float32)
    return np.asarray(Image.fromarray(median, mode="F").resize(a.shape[::-1], Image.Resampling.BILINEAR))


def _shrink(a: np.ndarray, max_side: int) -> np.ndarray:
    """``a`` (H, W) averaged down so its longer side is at most ``max_side`` (unchanged if already smaller)."""
    height, width = a.shape
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return a
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))


def invert_image(gray: np.ndarray) -> np.ndarray:
    """Swap black and white: ``1 - gray``."""
    return (np.float32(1.0) - gray).astype(np.float32)


# ---------------------------------------------------------------------------------------- 5. background
def estimate_background(ink: np.ndarray) -> np.ndarray:
    """The paper's brightness under uneven lighting: a grey-level opening with a window larger than a stroke.

    ``ink`` is (H, W) with ink bright. An opening (minimum filter, then maximum filter, over a square
    window half as wide as the image) wipes out anything narrower than the window (the pen strokes) and
    keeps slow changes such as a shadow or a lighting gradient. Computed on a copy at most 128 px wide and
    scaled back up, because lighting is smooth. Returns (H, W) float32.
    """
    height, width = ink.shape
    small = _shrink(ink, 128)
    window = max(3, (min(small.shape) // 2) | 1)
    opened = _max_filter(_min_filter(small, window), window)
    background = Image.fromarray(opened.astype(np.float32), mode="F").resize((width, height),
                                                                             Image.Resampling.BILINEAR)
    return np.asarray(background, dtype=np.float32)


def _min_filter(a: np.ndarray, size: int) -> np.ndarray:
    """Minimum over a ``size`` x ``size`` window (edges padded by repetition); separable, rows then columns."""
    pad = size // 2
    padded = np.pad(a, pad, mode="edge")
    rows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=0).min(axis=-1)
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1).min(axis=-1)


def _max_filter(a: np.ndarray, size: int) -> np.ndarray:
    """Maximum over a ``size`` x ``size`` window: ``-min(-a)``."""
    return -_min_filter(-a, size)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut of [0, 1] that best separates two classes (maximal between-class variance)."""
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    counts = counts.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1e-12)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1e-12)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def suppress_background(ink: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Zero the paper and scale the ink so its core is 1, keeping the grey anti-aliased edges of strokes.

    ``ink`` is (H, W) float in [0, 1] with ink bright. Steps: subtract :func:`estimate_background` (uneven
    lighting); call "core ink" what lies above Otsu's threshold (raised, if needed, above the paper's noise
    and to at least ``MIN_CONTRAST``); keep fainter pixels only next to core ink (a hysteresis threshold, so
    paper texture does not survive but stroke edges do); map that lower threshold to 0 and the core's
    median brightness to 1. Raises :class:`ImagePrepError` when there is no ink. Returns (H, W) float32.
    """
    contrast = np.clip(ink - estimate_background(ink), 0.0, 1.0)
    paper = float(np.median(contrast))
    noise = 1.4826 * float(np.median(np.abs(contrast - paper)))  # robust standard deviation of the paper
    high = max(otsu_threshold(contrast), paper + 6.0 * noise, paper + MIN_CONTRAST)
    core = contrast > high
    if int(core.sum()) < MIN_INK_PIXELS:
        raise ImagePrepError(f"{name}: no ink found (a blank page?)")
    low = max(paper + 3.0 * noise, paper + 0.5 * (high - paper))
    near_core = np.asarray(Image.fromarray(core.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    level = max(float(np.median(contrast[core])), high + 1e-3)
    scaled = np.clip((contrast - low) / (level - low), 0.0, 1.0)
    return np.where(near_core, scaled, 0.0).astype(np.float32)


def stretch_contrast(ink: np.ndarray, *, name: str = "image") -> np.ndarray:
    """The no-threshold alternative to :func:`suppress_background`: map darkest to 0 and brightest to 1."""
    lowest, highest = float(ink.min()), float(ink.max())
    if highest - lowest < MIN_CONTRAST:
        raise ImagePrepError(f"{name}: no ink found (a blank page?)")
    return ((ink - lowest) / (highest - lowest)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- 6. crop
def crop_to_ink(ink: np.ndarray, *, level: float = 0.0, margin: int = 0, name: str = "image") -> np.ndarray:
    """Cut ``ink`` (H, W) down to the bounding box of the pixels brighter than ``level``, plus ``margin`` px.

    MNIST fitted the digit itself, not the page, into its 20x20 box, so the crop is tight by default. Specks
    of one or two pixels do not stretch the box: a 3x3 opening removes them first, unless it would remove
    most of the ink (thin strokes of a small image).
    """
    mask = ink > level
    if not mask.any():
        raise ImagePrepError(f"{name}: no ink found (a blank page?)")
    mask_image = Image.fromarray(mask.astype(np.uint8) * 255)
    opened = np.asarray(mask_image.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))) > 0
    if opened.sum() >= 0.5 * mask.sum():
        mask = opened
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom = max(0, rows[0] - margin), min(ink.shape[0], rows[-1] + 1 + margin)
    left, right = max(0, cols[0] - margin), min(ink.shape[1], cols[-1] + 1 + margin)
    return ink[top:bottom, left:right]


# ----------------------------------------------------------------------------------------------- 7. fit
def fit_to_box(ink: np.ndarray, box: int = MNIST_BOX) -> np.ndarray:
    """Resize (H, W) so the longer side is ``box`` px, keeping the aspect ratio (MNIST: 20 px).

    Lanczos resampling anti-aliases like MNIST's own normalisation and keeps strokes crisp (the "sharpen"
    step of the classic recipe); its small overshoots are clipped back to [0, 1].
    Returns (h, w) float32 with max(h, w) == box.
    """
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, min(box, round(width * scale))), max(1, min(box, round(height * scale))))
    resized = Image.fromarray(ink.astype(np.float32), mode="F").resize(size, _RESAMPLE, reducing_gap=3.0)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


# -------------------------------------------------------------------------------------------- 8. centre
def center_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """The ink-weighted mean (row, column) of a (H, W) image, in 0-based pixel indices."""
    total = float(ink.sum())
    if total <= 0:
        return ((ink.shape[0] - 1) / 2, (ink.shape[1] - 1) / 2)
    rows = np.arange(ink.shape[0], dtype=np.float64)
    cols = np.arange(ink.shape[1], dtype=np.float64)
    return (float(ink.sum(axis=1) @ rows) / total, float(ink.sum(axis=0) @ cols) / total)


def center_by_mass(ink: np.ndarray, size: int = MNIST_SIZE, *, by_mass: bool = True) -> np.ndarray:
    """Paste ``ink`` (h, w) into a black ``size`` x ``size`` image with its centre of mass on MNIST's centre.

    The shift is a whole number of pixels, like MNIST's, and is limited so no ink falls off the canvas.
    With ``by_mass=False`` the box itself is centred instead (the geometric centre). Returns (size, size)
    float32.
    """
    height, width = ink.shape
    if height > size or width > size:
        raise ValueError(f"ink of shape {ink.shape} does not fit in {size}x{size}")
    if by_mass:
        row, col = center_of_mass(ink)
        target = MNIST_CENTER if size == MNIST_SIZE else ((size - 1) / 2, (size - 1) / 2)
        top, left = round(target[0] - row), round(target[1] - col)
    else:
        top, left = (size - height) // 2, (size - width) // 2
    top = min(max(top, 0), size - height)
    left = min(max(left, 0), size - width)
    canvas = np.zeros((size, size), dtype=np.float32)
    canvas[top:top + height, left:left + width] = ink
    return canvas


# ------------------------------------------------------------------------------------------- together
def prepare(image_or_path, *, exif: bool = True, invert="auto", threshold: bool = True, crop: bool = True,
            fit: bool = True, center: bool = True, box: int = MNIST_BOX, size: int = MNIST_SIZE,
            margin: int = 0) -> np.ndarray:
    """Prepare one photo, scan or drawing of a digit like MNIST: float32 (28, 28) in [0, 1], ink 1, paper 0.

    ``image_or_path``: a path (PNG, JPEG, anything Pillow reads), a PIL image, or an array (see
    :func:`load_image`). Every stage can be switched off:

    * ``exif``: honour the EXIF orientation tag.
    * ``invert``: ``"auto"`` detects dark ink on light paper and inverts it; ``True`` always inverts;
      ``False`` never does (the image already has light ink on a dark background).
    * ``threshold``: suppress the background (lighting, paper texture); off, contrast is only stretched.
    * ``crop``: cut to the ink's bounding box (plus ``margin`` px); off, the whole picture is fitted.
    * ``fit``: scale the longer side to ``box`` (20) px like MNIST; off, to the full ``size`` (28) px.
    * ``center``: place the centre of mass on MNIST's centre; off, centre the box geometrically.

    Raises :class:`ImagePrepError` (one line naming the input) for a missing, unreadable or blank image.
    """
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}")
    name = input_name(image_or_path)
    image = flatten_transparency(load_image(image_or_path, exif=exif))
    gray = to_grayscale(image)
    if invert is True or (invert == "auto" and is_dark_on_light(gray)):
        gray = invert_image(gray)
    ink = suppress_background(gray, name=name) if threshold else stretch_contrast(gray, name=name)
    if crop:
        ink = crop_to_ink(ink, level=0.0 if threshold else 0.25, margin=margin, name=name)
    ink = fit_to_box(ink, box if fit else size)
    return center_by_mass(ink, size, by_mass=center)

