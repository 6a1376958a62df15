"""scratchnet.predict: the function and the CLI read digits from image files and fail one image at a time."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scratchnet import predict as predict_module
from scratchnet import zoo
from scratchnet.predict import Prediction, main, predict, probabilities
from scratchnet.tools.make_photos import ink_from_mnist, render_photo, save_jpeg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def draw_seven(path, canvas=(240, 200)):
    """A dark "7" on white paper, saved at ``path``."""
    image = Image.new("L", canvas, 255)
    ImageDraw.Draw(image).line([(60, 30), (160, 25), (120, 100), (100, 175)], fill=20, width=12)
    image.save(path)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained (but valid) mlp saved to disk: enough to test the plumbing."""
    path = tmp_path_factory.mktemp("model") / "mlp.npz"
    zoo.build("mlp", seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def trained():
    """A small mlp trained for 2 epochs on 30,000 real MNIST digits (about 2 s), and the MNIST test set."""
    from scratchnet.datasets import DataError, mnist

    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data(download=False, progress=False)
    except DataError as error:
        pytest.skip(f"MNIST not available offline: {error}")
    model = zoo.build("mlp", seed=0)
    model.fit(x_train[:30000, ..., None].astype(np.float32) / 255, y_train[:30000], batch_size=32, epochs=2,
              verbose=0)
    return model, x_test, y_test


def run_cli(*args, env=None):
    """Run ``python -m scratchnet.predict`` in a child process; returns (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "scratchnet.predict", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=dict(os.environ, **(env or {})), timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_predictions_on_photos_of_mnist_digits_match_predictions_on_the_originals(trained, tmp_path):
    model, x_test, y_test = trained
    rng = np.random.default_rng(7)
    picks = rng.choice(len(x_test), size=100, replace=False)
    paths = []
    for number, index in enumerate(picks):
        ink = ink_from_mnist(x_test[index], int(rng.integers(80, 260)))
        canvas = (int(rng.integers(300, 700)), int(rng.integers(300, 700)))
        photo = render_photo(ink, rng, canvas=canvas, rotate=0)  # pasted as it is: same digit, other setting
        path = tmp_path / f"{number:03d}.jpg"
        save_jpeg(photo, path, rng, exif_rotation=number % 10 == 0)
        paths.append(path)
    on_photos = np.array([result.digit for result in predict(model, paths)])
    on_originals = model.predict(x_test[picks, ..., None].astype(np.float32) / 255).argmax(axis=1)
    assert (on_photos == on_originals).mean() >= 0.95
    assert (on_photos == y_test[picks]).mean() >= 0.8


def test_predict_returns_digit_probability_and_sorted_top3(model_path, tmp_path):
    model = predict_module.load_model_or_explain(model_path)
    results = predict(model, [draw_seven(tmp_path / "a.png"), draw_seven(tmp_path / "b.png", (800, 600))])
    assert len(results) == 2 and all(isinstance(result, Prediction) for result in results)
    for result in results:
        digits, ps = zip(*result.top3)
        assert result.digit == digits[0] and result.probability == ps[0]
        assert list(ps) == sorted(ps, reverse=True) and len(set(digits)) == 3 and sum(ps) <= 1 + 1e-6
    with pytest.raises(TypeError, match="unknown preparation"):
        predict(model, [tmp_path / "a.png"], sharpen=True)


def test_logits_are_turned_into_probabilities():
    class LogitModel:
        input_shape = (None, 784)

        def predict(self, x, batch_size=32, verbose="auto"):
            return np.array([[2.0, -1.0, 0.5]])

    p = probabilities(LogitModel(), np.zeros((1, 784), np.float32))
    assert np.allclose(p.sum(axis=1), 1.0) and p.argmax() == 0 and (p > 0).all()


def test_cli_prints_one_line_per_image_and_keeps_going_after_a_missing_file(model_path, tmp_path, capsys):
    good = draw_seven(tmp_path / "digit.png")
    blank = tmp_path / "blank.png"
    Image.new("L", (300, 300), 255).save(blank)
    code = main(["--model", str(model_path), str(good), str(tmp_path / "missing.png"), str(blank), str(good)])
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{good}: ") and "(p=" in line and "top-3: " in line
                                   for line in lines)
    errors = err.splitlines()
    assert any("missing.png: no such file" in line for line in errors)
    assert any("blank.png: no ink found" in line for line in errors)
    assert all(line.startswith("error: ") for line in errors)


def test_cli_json_prints_one_parseable_object_per_image(model_path, tmp_path, capsys):
    paths = [draw_seven(tmp_path / f"{k}.png") for k in range(3)]
    assert main(["--model", str(model_path), "--json", *map(str, paths)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["image"] for record in records] == [str(path) for path in paths]
    for record in records:
        assert 0 <= record["digit"] <= 9 and 0 <= record["probability"] <= 1 and len(record["top3"]) == 3


def test_cli_show_input_saves_the_28x28_image_fed_to_the_network(model_path, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    paths = [draw_seven(first / "seven.png"), draw_seven(second / "seven.png")]
    shown = tmp_path / "shown"
    assert main(["--model", str(model_path), "--show-input", str(shown), *map(str, paths)]) == 0
    saved = sorted(p.name for p in shown.iterdir())
    assert saved == ["seven-2.png", "seven.png"]  # same name twice: the second gets a suffix
    with Image.open(shown / "seven.png") as image:
        assert image.size == (28, 28) and image.mode == "L"


def test_cli_without_images_prints_usage_and_exits_2():
    code, out, err = run_cli()
    assert code == 2 and "usage:" in err and "Traceback" not in err


def test_cli_without_model_uses_the_default_or_says_how_to_make_one(model_path, tmp_path):
    image = draw_seven(tmp_path / "seven.png")
    code, out, err = run_cli(image, env={"SCRATCHNET_HOME": str(tmp_path / "empty")})
    assert code == 1 and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and "python -m scratchnet.train" in err and "./run.sh train" in err

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "default.npz").write_bytes(model_path.read_bytes())
    code, out, err = run_cli(image, env={"SCRATCHNET_HOME": str(home)})
    assert code == 0 and "using the default model" in err and out.startswith(f"{image}: ")


def test_cli_model_that_does_not_load_is_one_line_and_exit_1(tmp_path, capsys):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 this is not a zip")
    image = draw_seven(tmp_path / "seven.png")
    assert main(["--model", str(broken), str(image)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: cannot load model")
    assert main(["--model", str(tmp_path / "nope.npz"), str(image)]) == 1
    assert "no model file" in capsys.readouterr().err


def test_a_model_that_does_not_take_28x28_images_is_refused(tmp_path, capsys):
    path = tmp_path / "logreg.npz"
    zoo.build("logreg").save(path)  # 785 inputs: raw pixels with a ones column
    assert main(["--model", str(path), str(draw_seven(tmp_path / "seven.png"))]) == 1
    assert "28x28" in capsys.readouterr().err
