"""``python -m scratchnet.train --init-from MODEL --dataset folder:DIR``: fine-tuning on the server's saved drawings.

Real training, kept small: the served test model (kaggle_cnn, one epoch on 20,000 MNIST digits) learns a
made-up hand in which five digits are drawn as shapes it has never seen, and must read them afterwards
without forgetting MNIST; then the bad folders and files, the atomic save, and the server's reload.
"""

import json
import os
import shutil

import numpy as np
import pytest
from test_serve import Client, drawing_png, start, trained_model_file

from scratchnet import datasets, imageprep, train, zoo
from scratchnet.datasets.folder import folder_name
from scratchnet.models import load_model
from scratchnet.serve import Corrections, Reader

# A private hand: digit -> strokes (x, y in 0..1) that look like no MNIST digit of that class.
HAND = {
    "0": [[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]],                        # an X
    "1": [[(0.2, 0.5), (0.8, 0.5)], [(0.5, 0.2), (0.5, 0.8)]],                        # a plus
    "2": [[(0.2, 0.25), (0.8, 0.25), (0.8, 0.75), (0.2, 0.75), (0.2, 0.25)]],          # a square
    "3": [[(0.2, 0.8), (0.5, 0.2), (0.8, 0.8), (0.2, 0.8)]],                           # a triangle
    "4": [[(0.2, 0.3), (0.8, 0.3)], [(0.2, 0.5), (0.8, 0.5)], [(0.2, 0.7), (0.8, 0.7)]],  # three bars
}


def write_hand(folder, per_class=4, seed=0):
    """``per_class`` jittered drawings of each digit of HAND, filed as the server files corrections."""
    rng = np.random.default_rng(seed)
    for label, strokes in HAND.items():
        (folder / folder_name(label)).mkdir(parents=True, exist_ok=True)
        for number in range(1, per_class + 1):
            jittered = [[(x + rng.uniform(-0.05, 0.05), y + rng.uniform(-0.05, 0.05)) for x, y in stroke]
                        for stroke in strokes]
            (folder / label / f"{number:04d}.png").write_bytes(drawing_png(jittered, side=int(rng.integers(200, 400))))
    return folder


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return trained_model_file(tmp_path_factory)


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return write_hand(tmp_path_factory.mktemp("handwriting"))


@pytest.fixture
def untrained(tmp_path):
    """An untrained kaggle_cnn file, for runs that must stop before training."""
    path = tmp_path / "untrained.npz"
    zoo.build("kaggle_cnn", seed=0).save(path)
    return path


def finetune(capsys, *args):
    code = train.main(["--quiet", "--json", *map(str, args)])
    out, err = capsys.readouterr()
    return code, (json.loads(out.strip().splitlines()[-1]) if code == 0 else None), err


# ------------------------------------------------------------------------------------------ reading the folder
def test_folder_dataset_prepares_drawings_as_uint8_mnist_digits(hand):
    ds = datasets.load(f"folder:{hand}", classes=tuple("0123456789"))
    assert ds.x_train.shape == (4 * len(HAND), 28, 28) and ds.x_train.dtype == np.uint8
    assert sorted(set(ds.y_train.tolist())) == [0, 1, 2, 3, 4]
    assert ds.x_test is None and ds.num_classes == 10
    # Prepared exactly like predict and the server (light ink on black, MNIST's framing), then scaled to 0..255.
    first_square = 2 * 4  # files load in sorted order: folders 0, 1, 2, ... and 0001.png first in each
    expected = np.round(imageprep.prepare(hand / "2" / "0001.png") * 255)
    np.testing.assert_array_equal(ds.x_train[first_square], expected)
    assert ds.y_train[first_square] == 2 and ds.x_train.max() == 255 and ds.x_train[:, 0, :].max() == 0


def test_classes_name_the_folders_as_the_server_files_them(untrained, tmp_path, capsys):
    folder = tmp_path / "hand"
    for label in ("T-shirt/top", "Bag"):
        (folder / folder_name(label)).mkdir(parents=True)
        (folder / folder_name(label) / "0001.png").write_bytes(drawing_png())
    code, summary, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{folder}",
                                  "--classes", "fashion-mnist", "--mix", 0, "--repeat", 1, "--epochs", 1, "--no-save")
    assert code == 0, err
    assert summary["drawings"] == 2
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{folder}", "--no-save")
    assert code == 1 and "hand/Bag: not a class of the model" in one_line_error(err)


def test_folder_labels_follow_the_model_classes_not_the_alphabet(tmp_path):
    (tmp_path / "C").mkdir()
    (tmp_path / "C" / "0001.png").write_bytes(drawing_png())
    ds = datasets.load(f"folder:{tmp_path}", classes=tuple("ABCDEFGHIJ"))
    assert ds.y_train.tolist() == [2]


# ------------------------------------------------------------------------------------------ learning a hand
def test_finetuning_learns_the_drawings_without_forgetting_mnist(model_path, hand, tmp_path, capsys):
    copy = tmp_path / "model.npz"
    shutil.copy(model_path, copy)
    code, summary, err = finetune(capsys, "--init-from", copy, "--dataset", f"folder:{hand}", "--mix", 1000,
                                  "--epochs", 2)
    assert code == 0, err
    print(f"drawings {summary['drawings_accuracy_before']:.2%} -> {summary['drawings_accuracy_after']:.2%}, "
          f"MNIST test {summary['test_accuracy_before']:.2%} -> {summary['test_accuracy_after']:.2%}")
    assert summary["drawings"] == 4 * len(HAND) and summary["mix"] == 1000 and summary["mix_dataset"] == "mnist"
    assert summary["drawings_accuracy_before"] < 0.5
    assert summary["drawings_accuracy_after"] >= 0.9
    assert summary["test_accuracy_after"] > summary["test_accuracy_before"] - 0.03
    assert summary["saved_to"] == str(copy)
    assert "Reload" in err and "fine-tuning kaggle_cnn" in err

    # The file written is the trained model: it reads the drawings as the summary says.
    drawn = datasets.load(f"folder:{hand}", classes=tuple("0123456789"))
    model = load_model(copy)
    predicted = model.predict(drawn.x_train[..., None].astype(np.float32) / 255, verbose=0).argmax(axis=1)
    assert np.mean(predicted == drawn.y_train) == pytest.approx(summary["drawings_accuracy_after"])


def test_the_server_reload_reads_the_drawings_after_finetuning(model_path, hand, tmp_path, capsys):
    copy = tmp_path / "served.npz"
    shutil.copy(model_path, copy)
    server = start(Reader(copy), Corrections(tmp_path / "corrections"))
    client = Client(server.server_address[1])
    try:
        square = (hand / "2" / "0001.png").read_bytes()
        status, before = client.predict(square)
        assert status == 200
        code, summary, err = finetune(capsys, "--init-from", copy, "--dataset", f"folder:{hand}", "--mix", 500,
                                      "--epochs", 2, "--mix-dataset", "mnist")
        assert code == 0, err
        status, _ = client.predict(square)
        assert status == 200
        status, info = client.json("POST", "/api/reload")
        assert status == 200 and info["name"] == "kaggle_cnn"
        status, after = client.predict(square)
        assert status == 200
        assert after["label"] == "2"
        assert after["probabilities"][2] > before["probabilities"][2]
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------ saving
def test_the_model_file_is_replaced_atomically_and_kept_on_failure(untrained, hand, tmp_path, capsys, monkeypatch):
    original = untrained.read_bytes()
    inode = untrained.stat().st_ino

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(untrained))

    monkeypatch.setattr(np, "savez", disk_full)
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{hand}", "--mix", 0,
                            "--repeat", 1, "--epochs", 1)
    assert code == 1 and "No space left on device" in err
    assert untrained.read_bytes() == original and sorted(os.listdir(untrained.parent)) == ["untrained.npz"]

    monkeypatch.undo()
    code, summary, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{hand}", "--mix", 0,
                                  "--repeat", 1, "--epochs", 1)
    assert code == 0, err
    assert untrained.stat().st_ino != inode  # a new file renamed into place, not the old one rewritten
    assert untrained.read_bytes() != original
    assert sorted(os.listdir(untrained.parent)) == ["untrained.npz"]  # no temporary file left behind


def test_save_writes_elsewhere_and_no_save_writes_nothing(untrained, hand, tmp_path, capsys):
    original = untrained.read_bytes()
    target = tmp_path / "tuned.npz"
    code, summary, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{hand}", "--mix", 0,
                                  "--repeat", 1, "--epochs", 1, "--save", target)
    assert code == 0, err
    assert summary["saved_to"] == str(target) and target.exists() and untrained.read_bytes() == original
    assert "Reload" not in err
    code, summary, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{hand}", "--mix", 0,
                                  "--repeat", 1, "--epochs", 1, "--no-save")
    assert code == 0, err
    assert summary["saved_to"] is None and untrained.read_bytes() == original


# ------------------------------------------------------------------------------------------ refusals
def one_line_error(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_an_unknown_class_folder_is_one_line_listing_the_classes(untrained, tmp_path, capsys):
    folder = write_hand(tmp_path / "hand", per_class=1)
    (folder / "seven").mkdir()
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{folder}")
    line = one_line_error(err)
    assert code == 1 and "seven" in line and "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in line
    assert untrained.stat().st_size > 0


@pytest.mark.parametrize("make", ["empty", "missing", "only_empty_class_folders"])
def test_a_folder_without_drawings_is_one_line(untrained, tmp_path, capsys, make):
    folder = tmp_path / "hand"
    if make != "missing":
        folder.mkdir()
    if make == "only_empty_class_folders":
        (folder / "3").mkdir()
        (folder / "3" / "notes.txt").write_text("not a drawing")
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{folder}")
    line = one_line_error(err)
    assert code == 1 and str(folder) in line


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n truncated", b"<html>not an image</html>"])
def test_a_corrupt_image_file_is_one_line_naming_it(untrained, tmp_path, capsys, content):
    folder = write_hand(tmp_path / "hand", per_class=1)
    bad = folder / "3" / "0002.png"
    bad.write_bytes(content)
    before = untrained.read_bytes()
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{folder}")
    line = one_line_error(err)
    assert code == 1 and str(bad) in line
    assert untrained.read_bytes() == before


def test_a_blank_drawing_is_one_line_naming_it(untrained, tmp_path, capsys):
    folder = write_hand(tmp_path / "hand", per_class=1)
    blank = folder / "1" / "0002.png"
    blank.write_bytes(drawing_png(strokes=[]))
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{folder}")
    assert code == 1 and str(blank) in one_line_error(err)


def test_usage_errors_exit_2(untrained, hand, tmp_path, capsys):
    code, _, err = finetune(capsys, "--init-from", untrained, "--model", "mlp", "--dataset", f"folder:{hand}")
    assert code == 2 and "--model mlp:" in err and "kaggle_cnn" in err
    code, _, err = finetune(capsys, "--dataset", f"folder:{hand}")
    assert code == 2 and "--init-from" in err
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", "folder:")
    assert code == 2 and "folder:DIR" in err
    code, _, err = finetune(capsys, "--init-from", untrained, "--mix", "-1")
    assert code == 2 and "--mix" in err
    code, _, err = finetune(capsys, "--init-from", untrained, "--mix", 100)
    assert code == 2 and "--mix needs --dataset folder:DIR" in err
    code, _, err = finetune(capsys, "--model", "mlp", "--repeat", 5)
    assert code == 2 and "--repeat is a fine-tuning option" in err
    code, _, err = finetune(capsys, "--init-from", untrained, "--dataset", f"folder:{hand}", "--classes", "a,b")
    assert code == 2 and "--classes a,b: 2 classes, but the model has 10 outputs" in err
    code, _, err = finetune(capsys, "--init-from", untrained, "--plots", tmp_path)
    assert code == 2 and "--plots" in err


def test_a_missing_or_bad_model_file_is_one_line(tmp_path, hand, capsys):
    code, _, err = finetune(capsys, "--init-from", tmp_path / "nothing.npz", "--dataset", f"folder:{hand}")
    assert code == 1 and "nothing.npz" in one_line_error(err)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    code, _, err = finetune(capsys, "--init-from", junk, "--dataset", f"folder:{hand}")
    assert code == 1 and "junk.npz" in one_line_error(err)


def test_help_documents_the_finetuning_options(capsys):
    assert train.main(["--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--init-from", "--repeat", "--mix", "--mix-dataset", "folder:DIR"):
        assert option in out


def test_without_a_folder_it_goes_on_training_on_the_models_dataset(untrained, capsys):
    original = untrained.read_bytes()
    code, summary, err = finetune(capsys, "--init-from", untrained, "--epochs", 1, "--steps", 60, "--no-save")
    assert code == 0, err
    assert summary["dataset"] == "mnist" and summary["steps"] == 60 and "drawings" not in summary
    assert summary["test_accuracy_after"] > summary["test_accuracy_before"] + 0.3
    assert untrained.read_bytes() == original
