"""Render a SYNTHETIC stand-in for notMNIST (letters A..J from local fonts) in exactly notMNIST's archive layout.

The real notMNIST cannot be downloaded offline. This writes ``notMNIST_large.tar.gz`` and
``notMNIST_small.tar.gz`` holding ``notMNIST_<large|small>/<letter>/<base64 font name>.png`` (28x28 grey PNGs,
a white glyph on black, like the real set), each glyph drawn with a random font from matplotlib's bundled
fonts and the system's, at a random scale and shift, with a little noise. Like the real archive it contains
a couple of unreadable PNGs (``corrupt=True``) so the skipping code runs. It is not notMNIST: each archive
carries ``notMNIST_<large|small>/SYNTHETIC-README.txt`` saying so, and the loader labels whatever it builds from
such an archive SYNTHETIC.
"""

import base64
import functools
import gzip
import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np

from .download import atomic_write
from .notmnist_layout import IMAGE_SIZE, LETTERS, SYNTHETIC_MARKER

MARKER_TEXT = (b"SYNTHETIC: rendered by scratchnet.data.notmnist_synthetic from local fonts. This is NOT notMNIST;\n"
               b"it only has notMNIST's layout so the real pipeline can run offline.\n")
SYMBOL_FONTS = ("cmex", "cmsy", "Sym", "NonUni", "LastResort", "Math")


def font_files():
    """TrueType fonts on this machine: matplotlib's bundled ones first, then /usr/share/fonts."""
    found = []
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        found += sorted(Path(spec.submodule_search_locations[0], "mpl-data", "fonts", "ttf").glob("*.ttf"))
    found += sorted(Path("/usr/share/fonts").rglob("*.ttf"))
    unique = {}
    for path in found:  # one file per font name; no symbol or fallback fonts (their "letters" are not letters)
        if not any(word in path.stem for word in SYMBOL_FONTS):
            unique.setdefault(path.stem, path)
    return list(unique.values())


@functools.cache
def _font(path, size):
    from PIL import ImageFont

    return ImageFont.truetype(str(path), size)


def _glyph(path, letter, size=40):
    """The letter drawn large and cropped to its ink, as a PIL image (None when the font has no ink for it)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), letter, fill=255, font=_font(path, size))
    box = canvas.getbbox()
    return canvas.crop(box) if box else None


def usable_fonts(paths=None):
    """Fonts that draw ten distinct, non-empty glyphs for A..J (symbol and fallback fonts are left out)."""
    usable = []
    for path in paths if paths is not None else font_files():
        try:
            glyphs = [_glyph(path, letter) for letter in LETTERS]
        except OSError:
            continue
        if all(g is not None for g in glyphs) and len({g.tobytes() for g in glyphs}) == len(LETTERS):
            usable.append(path)
    if not usable:
        raise RuntimeError("notmnist_synthetic: no usable TrueType font found (install matplotlib)")
    return usable


def render(letter, font, rng) -> np.ndarray:
    """One 28x28 uint8 image of ``letter``: random scale (14..26 px box), shift, and Gaussian noise."""
    from PIL import Image

    glyph = _glyph(font, letter)
    box = int(rng.integers(14, 27))
    scale = box / max(glyph.size)
    width, height = (max(1, min(IMAGE_SIZE, round(s * scale))) for s in glyph.size)
    glyph = glyph.resize((width, height), Image.LANCZOS)
    image = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    left = int(rng.integers(0, IMAGE_SIZE - width + 1))
    top = int(rng.integers(0, IMAGE_SIZE - height + 1))
    image.paste(glyph, (left, top))
    pixels = np.asarray(image, np.float32) + rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _png(pixels) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, format="PNG")
    return out.getvalue()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def make_archive(path, top, per_class, rng, fonts, corrupt=True):
    """Write one SYNTHETIC archive ``path`` with ``top/<letter>/*.png``, ``per_class`` images per letter."""
    # A gzip header holds a file name and a time: fixed here, so the same seed gives the same bytes.
    with atomic_write(path) as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w") as tar:
        _add(tar, f"{top}/{SYNTHETIC_MARKER}", MARKER_TEXT)
        for letter in LETTERS:
            for i in range(per_class):
                font = fonts[int(rng.integers(len(fonts)))]
                name = base64.b64encode(f"synthetic-{Path(font).stem}-{i}.ttf".encode()).decode()
                _add(tar, f"{top}/{letter}/{name}.png", _png(render(letter, font, rng)))
        if corrupt:  # the real notMNIST has a few files PIL cannot read
            _add(tar, f"{top}/A/U3ludGhldGljRW1wdHk=.png", b"")
            _add(tar, f"{top}/A/U3ludGhldGljVHJ1bmNhdGVk.png", _png(np.zeros((28, 28), np.uint8))[:40])
    return Path(path)


def make_archives(dest_dir, *, per_class_large=1_110, per_class_small=110, seed=0, fonts=None, corrupt=True):
    """Write SYNTHETIC ``notMNIST_large.tar.gz`` and ``notMNIST_small.tar.gz`` into ``dest_dir``.

    Deterministic for a given seed and font set. Returns (large path, small path).
    """
    rng = np.random.default_rng(seed)
    fonts = usable_fonts(fonts)
    dest_dir = Path(dest_dir)
    large = make_archive(dest_dir / "notMNIST_large.tar.gz", "notMNIST_large", per_class_large, rng, fonts, corrupt)
    small = make_archive(dest_dir / "notMNIST_small.tar.gz", "notMNIST_small", per_class_small, rng, fonts, corrupt)
    return large, small


def main(argv=None) -> int:
    """``python -m scratchnet.data.notmnist_synthetic OUT_DIR``: write the two SYNTHETIC archives."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scratchnet.data.notmnist_synthetic",
                                     description="Render SYNTHETIC notMNIST_large.tar.gz and notMNIST_small.tar.gz "
                                                 "(letters A..J from local fonts, in notMNIST's layout).")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--large", type=int, default=1_110, help="images per letter in the large archive")
    parser.add_argument("--small", type=int, default=110, help="images per letter in the small archive")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in make_archives(args.out_dir, per_class_large=args.large, per_class_small=args.small, seed=args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
