"""Tests for scratchnet.data.kaggle: strict CSV reading, the submission writer, and MNIST -> Kaggle CSVs."""

import numpy as np
import pytest

from scratchnet import datasets
from scratchnet.data import DataError
from scratchnet.data import kaggle


def tiny_mnist(n_train=6, n_test=4):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (n_train + n_test, 28, 28), dtype=np.uint8)
    x[0, 0, 0], x[1, 0, 0] = 255, 0
    y = rng.integers(0, 10, n_train + n_test, dtype=np.uint8)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def test_mnist_to_kaggle_csv_round_trips_exactly(tmp_path):
    (x, y), (xt, yt) = tiny_mnist()
    paths = kaggle.mnist_to_kaggle_csv(tmp_path, ((x, y), (xt, yt)), n_train=7, n_test=3)
    header = paths["train"].read_text().splitlines()[0]
    assert header.startswith("label,pixel0,pixel1,") and header.endswith(",pixel783")
    assert paths["test"].read_text().splitlines()[0].startswith("pixel0,")
    gx, gy = kaggle.read_train_csv(paths["train"])
    np.testing.assert_array_equal(gx, np.concatenate([x, xt[:1]]))
    np.testing.assert_array_equal(gy, np.concatenate([y, yt[:1]]))
    np.testing.assert_array_equal(kaggle.read_test_csv(paths["test"]), xt[1:])
    np.testing.assert_array_equal(kaggle.read_submission(paths["test_labels"]), yt[1:])


def test_csv_writer_matches_numpy_savetxt(tmp_path):
    values = np.random.default_rng(0).integers(0, 256, (5, 785), dtype=np.uint8)
    values[:, 0] %= 10
    path = kaggle.write_kaggle_csv(tmp_path / "t.csv", values[:, 1:], values[:, 0])
    expected = tmp_path / "e.csv"
    np.savetxt(expected, values, fmt="%d", delimiter=",", header=",".join(kaggle.TRAIN_HEADER), comments="")
    assert path.read_bytes() == expected.read_bytes()


def test_reader_accepts_crlf_and_missing_final_newline(tmp_path):
    (x, y), _ = tiny_mnist(2, 0)
    path = kaggle.write_kaggle_csv(tmp_path / "train.csv", x, y)
    text = path.read_text().rstrip("\n").replace("\n", "\r\n")
    path.write_text(text, newline="")
    gx, gy = kaggle.read_train_csv(path)
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)


def test_reader_header_only_gives_empty_arrays(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text(",".join(kaggle.PIXEL_HEADER) + "\n")
    assert kaggle.read_test_csv(path).shape == (0, 28, 28)


def test_submission_is_one_based_image_id(tmp_path):
    path = kaggle.write_submission(tmp_path / "submission.csv", np.array([3, 0, 9]))
    assert path.read_text() == "ImageId,Label\n1,3\n2,0\n3,9\n"
    with pytest.raises(ValueError, match="integers 0..9"):
        kaggle.write_submission(tmp_path / "bad.csv", np.array([10]))
    assert not (tmp_path / "bad.csv").exists()


def test_load_kaggle_splits_80_20_with_a_seed(tmp_path):
    (x, y), (xt, yt) = tiny_mnist(40, 10)
    kaggle.mnist_to_kaggle_csv(tmp_path, ((x, y), (xt, yt)), n_train=40, n_test=10)
    ds = datasets.load("kaggle", data_dir=tmp_path)
    assert ds.x_train.shape == (32, 28, 28) and ds.x_test.shape == (8, 28, 28)
    assert ds.x_unlabelled.shape == (10, 28, 28) and ds.num_classes == 10
    again = datasets.load("kaggle", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.y_train, again.y_train)


def test_load_kaggle_offline_makes_csvs_from_mnist_once(tmp_path, monkeypatch):
    calls = []
    real = kaggle.mnist_to_kaggle_csv

    def small(folder, **kw):
        calls.append((folder, kw))
        return real(folder, tiny_mnist(30, 20), n_train=40, n_test=10)

    monkeypatch.setattr(kaggle, "mnist_to_kaggle_csv", small)
    ds = datasets.load("kaggle", cache_dir=tmp_path, download=False)
    assert calls[0][0] == tmp_path / "kaggle" and calls[0][1]["download"] is False
    assert "made from MNIST" in ds.source and len(ds.x_train) == 32
    datasets.load("kaggle", cache_dir=tmp_path)
    assert len(calls) == 1


def test_load_kaggle_named_folder_must_exist_and_hold_both_files(tmp_path):
    with pytest.raises(DataError, match="directory not found"):
        kaggle.load_kaggle(tmp_path / "nope")
    kaggle.write_kaggle_csv(tmp_path / "train.csv", *tiny_mnist(2, 0)[0])
    with pytest.raises(DataError, match=r"test.csv: file not found, expected Kaggle's test.csv"):
        kaggle.load_kaggle(tmp_path)


def test_kaggle_tool_writes_csvs_from_an_mnist_folder(tmp_path, capsys):
    from scratchnet.data import write_idx
    from scratchnet.data.folder import FILES

    (x, y), (xt, yt) = tiny_mnist(5, 3)
    for name, array in zip(FILES, (x, y, xt, yt)):
        write_idx(tmp_path / "mnist" / f"{name}.gz", array)
    assert kaggle.main([str(tmp_path / "out"), "--data-dir", str(tmp_path / "mnist"), "--train-rows", "6",
                        "--test-rows", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "out" / "train.csv")
    np.testing.assert_array_equal(kaggle.read_train_csv(tmp_path / "out" / "train.csv")[1], np.append(y, yt[0]))
    assert kaggle.main([str(tmp_path / "out2"), "--data-dir", str(tmp_path / "missing")]) == 1
    assert "error: " in capsys.readouterr().err and not (tmp_path / "out2").exists()
