"""Make a folder of realistic "photos" of handwritten digits, to try the predictor on something like real use.

Each photo is a real handwritten MNIST *test* digit (never seen in training) drawn as dark pen ink on light
paper: scaled up to 60..400 px, smoothed into pen strokes, slightly rotated, put off-centre on a canvas of
300..1200 px with paper texture, sensor noise, a lighting gradient and a soft shadow, slightly out of
focus, and saved as a JPEG; a few are stored sideways with an EXIF orientation tag like a phone would.
``--source strokes`` draws digits from hand-made pen strokes with a random wobble instead (no MNIST at all).

    python -m scratchnet.tools.make_photos [--out /tmp/handwriting_photos] [--count 200] [--seed 0]
    python -m scratchnet.tools.make_photos --evaluate [--model PATH]   # also predict them and print accuracy

The folder gets ``NNNN_<label>.jpg`` files and ``labels.csv`` (``file,label``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scratchnet.fileio import atomic_write_bytes

DEFAULT_OUT = Path("/tmp/handwriting_photos")

# Pen strokes for the ten digits in a unit box (x right, y down): lists of polylines.
_STROKES = {
    0: [[(0.5, 0.0), (0.15, 0.2), (0.1, 0.55), (0.25, 0.9), (0.55, 1.0), (0.85, 0.8), (0.9, 0.4),
         (0.75, 0.1), (0.5, 0.0)]],
    1: [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)]],
    2: [[(0.15, 0.25), (0.4, 0.02), (0.75, 0.05), (0.85, 0.3), (0.6, 0.6), (0.1, 1.0), (0.9, 1.0)]],
    3: [[(0.15, 0.1), (0.5, 0.0), (0.8, 0.15), (0.75, 0.4), (0.45, 0.5), (0.8, 0.62), (0.85, 0.85),
         (0.5, 1.0), (0.12, 0.9)]],
    4: [[(0.6, 0.0), (0.1, 0.65), (0.9, 0.65)], [(0.65, 0.3), (0.65, 1.0)]],
    5: [[(0.85, 0.0), (0.25, 0.0), (0.2, 0.45), (0.55, 0.4), (0.85, 0.6), (0.8, 0.9), (0.45, 1.0),
         (0.12, 0.88)]],
    6: [[(0.75, 0.0), (0.35, 0.25), (0.15, 0.65), (0.3, 0.95), (0.6, 1.0), (0.85, 0.75), (0.7, 0.5),
         (0.4, 0.5), (0.2, 0.7)]],
    7: [[(0.1, 0.02), (0.9, 0.0), (0.55, 0.5), (0.4, 1.0)]],
    8: [[(0.5, 0.5), (0.2, 0.3), (0.3, 0.05), (0.6, 0.0), (0.8, 0.2), (0.5, 0.5), (0.15, 0.75), (0.35, 1.0),
         (0.7, 0.98), (0.85, 0.75), (0.5, 0.5)]],
    9: [[(0.8, 0.35), (0.55, 0.5), (0.25, 0.4), (0.25, 0.1), (0.55, 0.0), (0.8, 0.15), (0.8, 0.35),
         (0.7, 1.0)]],
}


def ink_from_mnist(digit: np.ndarray, height: int) -> np.ndarray:
    """A 28x28 MNIST digit (uint8 or float, ink bright) scaled up to ``height`` px with pen-like edges.

    Returns (height, height) float32 ink coverage in [0, 1].
    """
    values = np.asarray(digit, dtype=np.float32)
    if values.max() > 1.0:
        values = values / 255.0
    big = np.asarray(Image.fromarray(values, mode="F").resize((height, height), Image.Resampling.BICUBIC))
    # MNIST is blurry at 28 px; a smooth step turns the scaled-up blur into a stroke with a soft edge.
    return np.clip((big - 0.25) / 0.35, 0.0, 1.0).astype(np.float32)


def ink_from_strokes(label: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Digit ``label`` drawn with a wobbly pen over the hand-made strokes, ``height`` px tall (ink 1)."""
    scale = 4  # draw big and shrink, for anti-aliased edges
    size = height * scale
    width_fraction = rng.uniform(0.55, 0.8)
    slant = rng.uniform(-0.15, 0.25)
    pen = max(1, round(size * rng.uniform(0.07, 0.12)))
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    for line in _STROKES[int(label)]:
        points = []
        for x, y in line:
            x, y = x + rng.normal(0, 0.03), y + rng.normal(0, 0.03)
            x = 0.5 + (x - 0.5) * width_fraction + slant * (0.5 - y)
            points.append((x * 0.8 * size + 0.1 * size, y * 0.8 * size + 0.1 * size))
        draw.line(points, fill=255, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):  # round pen ends
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    image = image.filter(ImageFilter.GaussianBlur(scale / 2)).resize((height, height), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32) / 255.0


def render_photo(ink: np.ndarray, rng: np.random.Generator, *, canvas: tuple[int, int] | None = None,
                 rotate: float | None = None) -> Image.Image:
    """Put ``ink`` (h, w coverage in [0, 1]) on a photographed sheet of paper; returns an RGB PIL image.

    Dark blue-black ink on off-white paper with texture, a lighting gradient, a shadow, noise and a little
    blur; the digit is rotated by ``rotate`` degrees (random within +-10 if None) and placed off-centre.
    """
    if canvas is None:
        canvas = (int(rng.integers(300, 1200)), int(rng.integers(300, 1200)))
    width, height = canvas
    angle = rng.uniform(-10, 10) if rotate is None else rotate
    glyph = Image.fromarray(ink.astype(np.float32), mode="F").rotate(angle, Image.Resampling.BICUBIC, expand=True)
    glyph = np.clip(np.asarray(glyph), 0.0, 1.0)
    if glyph.shape[0] >= height or glyph.shape[1] >= width:  # make room
        factor = 0.9 * min(height / glyph.shape[0], width / glyph.shape[1])
        size = (max(1, int(glyph.shape[1] * factor)), max(1, int(glyph.shape[0] * factor)))
        glyph = np.asarray(Image.fromarray(glyph, mode="F").resize(size, Image.Resampling.BOX))
    top = int(rng.integers(0, height - glyph.shape[0] + 1))
    left = int(rng.integers(0, width - glyph.shape[1] + 1))
    coverage = np.zeros((height, width), dtype=np.float32)
    coverage[top:top + glyph.shape[0], left:left + glyph.shape[1]] = glyph

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * cols / width + np.sin(direction) * rows / height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    light = 1.0 - rng.uniform(0.05, 0.35) * ramp
    shadow_x = rng.uniform(0, width)
    light *= 1.0 - rng.uniform(0.0, 0.2) / (1.0 + np.exp(-(cols - shadow_x) / (0.05 * width)))
    texture = np.asarray(Image.fromarray(rng.normal(0, 1, (height // 16 + 2, width // 16 + 2)).astype(np.float32),
                                         mode="F").resize((width, height), Image.Resampling.BICUBIC))

    paper = np.array([rng.uniform(0.85, 0.98), rng.uniform(0.84, 0.97), rng.uniform(0.8, 0.95)], np.float32)
    ink_colour = np.array(rng.choice([[0.08, 0.08, 0.1], [0.1, 0.12, 0.35], [0.25, 0.25, 0.28]]), np.float32)
    strength = rng.uniform(0.8, 1.0)
    page = paper * (1.0 + 0.02 * texture[..., None])
    page = page * (1 - strength * coverage[..., None]) + ink_colour * strength * coverage[..., None]
    page = page * light[..., None] + rng.normal(0, rng.uniform(0.005, 0.03), (height, width, 1))
    image = Image.fromarray((np.clip(page, 0, 1) * 255 + 0.5).astype(np.uint8), mode="RGB")
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))


def save_jpeg(image: Image.Image, path: Path, rng: np.random.Generator, *, exif_rotation: bool = False) -> None:
    """Save as JPEG (quality 60..92), atomically; with ``exif_rotation`` stored sideways plus an EXIF tag."""
    exif = Image.Exif()
    if exif_rotation:
        # Orientation 6 means "rotate 90 degrees clockwise to display"; store the pixels turned the other way.
        image = image.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(60, 93)), exif=exif.tobytes())
    atomic_write_bytes(path, buffer.getvalue())


def make_photos(out: Path, count: int, *, seed: int = 0, source: str = "mnist") -> list[tuple[Path, int]]:
    """Write ``count`` photos and ``labels.csv`` into ``out``; returns [(path, label), ...]."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    if source == "mnist":
        from scratchnet.datasets import mnist

        _, (x_test, y_test) = mnist.load_data(download=False, progress=False)
        picks = rng.choice(len(x_test), size=count, replace=False)
        digits = [(x_test[i], int(y_test[i])) for i in picks]
    else:
        digits = [(None, int(label)) for label in rng.integers(0, 10, size=count)]
    written = []
    for number, (digit, label) in enumerate(digits):
        height = int(rng.integers(60, 400))
        ink = ink_from_mnist(digit, height) if digit is not None else ink_from_strokes(label, height, rng)
        photo = render_photo(ink, rng)
        path = out / f"{number:04d}_{label}.jpg"
        save_jpeg(photo, path, rng, exif_rotation=rng.random() < 0.15)
        written.append((path, label))
    lines = io.StringIO()
    writer = csv.writer(lines)
    writer.writerow(["file", "label"])
    writer.writerows((path.name, label) for path, label in written)
    atomic_write_bytes(out / "labels.csv", lines.getvalue().encode())
    return written


def main(argv=None) -> int:
    """Command line: make the photos, and with ``--evaluate`` predict them and print the accuracy."""
    parser = argparse.ArgumentParser(prog="python -m scratchnet.tools.make_photos", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder to write (default {DEFAULT_OUT})")
    parser.add_argument("--count", type=int, default=200, help="number of photos (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--source", choices=("mnist", "strokes"), default="mnist",
                        help="MNIST test digits (default) or hand-made pen strokes")
    parser.add_argument("--evaluate", action="store_true", help="predict the photos and print the accuracy")
    parser.add_argument("--model", type=Path, default=None, help="model for --evaluate (default: the default model)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    try:
        written = make_photos(args.out, args.count, seed=args.seed, source=args.source)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} photos and labels.csv to {args.out}")
    if not args.evaluate:
        return 0
    from scratchnet import predict as predict_module

    try:
        model = predict_module.load_model_or_explain(args.model)
    except predict_module.ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    results = predict_module.predict(model, [path for path, _ in written])
    correct = sum(result.digit == label for result, (_, label) in zip(results, written))
    print(f"accuracy on {len(written)} photos: {correct / len(written):.1%} ({correct}/{len(written)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
