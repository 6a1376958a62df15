"""scratchnet.imageprep: photos of digits drawn here with PIL come out as MNIST-like 28x28 images."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scratchnet import imageprep
from scratchnet.imageprep import ImagePrepError, center_of_mass, prepare
from scratchnet.tools.make_photos import render_photo

# A "4" and a "7" as pen strokes in a unit box (x right, y down).
FOUR = [[(0.62, 0.0), (0.1, 0.65), (0.9, 0.65)], [(0.65, 0.3), (0.65, 1.0)]]
SEVEN = [[(0.1, 0.05), (0.9, 0.0), (0.55, 0.5), (0.4, 1.0)]]


def draw_digit(canvas=(200, 200), box=(50, 30, 150, 170), strokes=SEVEN, ink=0, paper=255, width=None,
               mode="L"):
    """A digit drawn with a pen of ``width`` px inside ``box`` (left, top, right, bottom) on a canvas."""
    image = Image.new(mode, canvas, paper)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    width = width or max(2, (bottom - top) // 10)
    for line in strokes:
        points = [(left + x * (right - left), top + y * (bottom - top)) for x, y in line]
        draw.line(points, fill=ink, width=width, joint="curve")
    return image


def ink_box(image, level=0.05):
    """Height and width of the bounding box of the pixels above ``level``."""
    rows, cols = np.flatnonzero(image.max(axis=1) > level), np.flatnonzero(image.max(axis=0) > level)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def assert_mnist_like(image):
    """28x28 float32 in [0, 1], centre of mass within 1 px of the centre, ink inside the 20 px box."""
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.max() > 0.9
    row, col = center_of_mass(image)
    assert abs(row - 14.0) <= 1.0 and abs(col - 14.0) <= 1.0, (row, col)
    height, width = ink_box(image)
    assert height <= 20 and width <= 20 and max(height, width) >= 19, (height, width)
    assert (image == 0).mean() > 0.5  # the paper is exactly 0, as in MNIST


def save(image, path, **options):
    image.save(path, **options)
    return path


def test_digit_on_white_paper_is_prepared_like_mnist(tmp_path):
    assert_mnist_like(prepare(save(draw_digit(), tmp_path / "seven.png")))


def test_off_centre_digit_on_a_large_canvas_is_found_cropped_and_centred(tmp_path):
    photo = draw_digit(canvas=(3000, 2000), box=(2500, 150, 2700, 450), strokes=FOUR)
    prepared = prepare(save(photo, tmp_path / "corner.png"))
    assert_mnist_like(prepared)
    assert prepared[:, 14:].sum() > 5  # a 4's vertical stroke is on the right: the digit is upright, not lost


def test_exif_orientation_is_honoured(tmp_path):
    upright = draw_digit(canvas=(300, 400), box=(80, 60, 220, 340))
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # stored turned left, as a phone might
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(sideways, tmp_path / "phone.jpg", quality=95, exif=exif.tobytes())
    expected = prepare(upright)
    honoured, ignored = prepare(path), prepare(path, exif=False)
    assert_mnist_like(honoured)
    assert np.abs(honoured - expected).mean() < 0.03
    assert np.abs(ignored - expected).mean() > 0.08


def test_transparent_png_is_flattened_onto_white(tmp_path):
    strokes = draw_digit(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")  # hidden colour black too
    path = save(strokes, tmp_path / "drawing.png")
    prepared = prepare(path)
    assert_mnist_like(prepared)
    assert np.abs(prepared - prepare(draw_digit())).mean() < 0.02


def test_light_ink_on_dark_background_is_not_inverted(tmp_path):
    inverted = draw_digit(ink=255, paper=0)
    assert not imageprep.is_dark_on_light(np.asarray(inverted, np.float32) / 255)
    prepared = prepare(save(inverted, tmp_path / "inverted.png"))
    assert_mnist_like(prepared)
    assert np.abs(prepared - prepare(draw_digit())).mean() < 0.02
    assert np.array_equal(prepare(inverted, invert=False), prepared)  # forcing agrees with the detection
    assert np.array_equal(prepare(draw_digit(), invert=True), prepare(draw_digit()))


def test_photo_with_uneven_light_noise_and_a_small_digit_is_prepared(tmp_path):
    ink = np.asarray(draw_digit(canvas=(60, 60), box=(10, 5, 50, 55), ink=255, paper=0), np.float32) / 255
    photo = render_photo(ink, np.random.default_rng(3), canvas=(1100, 800), rotate=0)
    gray = imageprep.to_grayscale(photo)
    assert imageprep.is_dark_on_light(gray)
    assert_mnist_like(prepare(save(photo, tmp_path / "photo.jpg", quality=70)))


def test_mnist_digit_comes_through_unchanged_apart_from_thresholding():
    ink = np.zeros((28, 28), np.float32)
    ink[4:24, 12:16] = 1.0  # a "1" already prepared like MNIST (20 px tall, centred)
    prepared = prepare(ink)
    assert_mnist_like(prepared)
    assert np.abs(prepared - ink).max() < 0.05


@pytest.mark.parametrize("make", [
    lambda: Image.new("L", (500, 400), 255),
    lambda: render_photo(np.zeros((50, 50), np.float32), np.random.default_rng(0), canvas=(600, 450)),
], ids=["white", "photo_of_blank_paper"])
def test_blank_page_is_a_clear_one_line_error_naming_the_file(tmp_path, make):
    path = save(make(), tmp_path / "blank.jpg", quality=80)
    with pytest.raises(ImagePrepError) as caught:
        prepare(path)
    message = str(caught.value)
    assert str(path) in message and "no ink" in message and "\n" not in message
    assert isinstance(caught.value, ValueError)


def test_missing_and_unreadable_files_are_prep_errors(tmp_path):
    with pytest.raises(ImagePrepError, match="no such file"):
        prepare(tmp_path / "nope.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImagePrepError, match="not an image"):
        prepare(text)
    truncated = tmp_path / "truncated.png"
    buffer = io.BytesIO()
    draw_digit().save(buffer, "PNG")
    truncated.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(ImagePrepError, match=r"truncated\.png"):
        prepare(truncated)


def test_each_stage_can_be_switched_off():
    photo = draw_digit(canvas=(400, 400), box=(20, 20, 120, 160))
    assert ink_box(prepare(photo, crop=False))[0] < 10  # the whole page is fitted: the digit stays small
    assert max(ink_box(prepare(photo, fit=False))) >= 27  # the longer side fills all 28 px
    uncentred = prepare(photo, center=False)
    height, width = ink_box(uncentred)
    rows = np.flatnonzero(uncentred.max(axis=1) > 0.05)
    assert rows[0] == (28 - height) // 2  # the box, not the centre of mass, is centred
    try:  # read the wrong way round, the "ink" is the paper: an error or a different picture
        assert np.abs(prepare(photo, invert=False) - prepare(photo)).mean() > 0.05
    except ImagePrepError:
        pass
    assert prepare(photo, threshold=False).shape == (28, 28)
    with pytest.raises(ValueError, match="invert"):
        prepare(photo, invert="sometimes")


def test_speck_of_dust_does_not_stretch_the_crop():
    photo = draw_digit(canvas=(600, 600), box=(250, 200, 350, 340))
    ImageDraw.Draw(photo).rectangle((20, 20, 21, 21), fill=0)  # a 2x2 px speck far away
    assert_mnist_like(prepare(photo))


def test_otsu_threshold_separates_two_levels():
    values = np.concatenate([np.full(900, 0.1), np.full(100, 0.8)])
    assert 0.1 < imageprep.otsu_threshold(values) <= 0.8


def test_make_photos_tool_writes_labelled_jpegs(tmp_path):
    from scratchnet.tools import make_photos

    assert make_photos.main(["--source", "strokes", "--count", "3", "--out", str(tmp_path / "photos")]) == 0
    lines = (tmp_path / "photos" / "labels.csv").read_text().splitlines()
    assert lines[0] == "file,label" and len(lines) == 4
    for line in lines[1:]:
        name, label = line.split(",")
        assert (tmp_path / "photos" / name).exists() and name.endswith(f"_{label}.jpg")
        assert_mnist_like(prepare(tmp_path / "photos" / name))
    with pytest.raises(SystemExit) as caught:
        make_photos.main(["--count", "0"])
    assert caught.value.code == 2
