"""Tests for scratchnet.data.kaggle: strict CSV reading, the submission writer, and MNIST -> Kaggle CSVs."""

import numpy as np
import pytest

from scratchnet import datasets
from scratchnet.data import kaggle
from scratchnet.data.errors import DataError


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
    with pytest.raises(ValueError, match=r"integers 0\.\.9"):
        kaggle.write_submission(tmp_path / "bad.csv", np.array([10]))
    assert not (tmp_path / "bad.csv").exists()


def test_load_kaggle_splits_80_20_with_a_seed_and_labels_the_test_set_from_the_answer_key(tmp_path):
    (x, y), (xt, yt) = tiny_mnist(40, 10)
    kaggle.mnist_to_kaggle_csv(tmp_path, ((x, y), (xt, yt)), n_train=40, n_test=10)
    ds = datasets.load("kaggle", data_dir=tmp_path)
    assert ds.x_train.shape == (32, 28, 28) and ds.x_val.shape == (8, 28, 28) and ds.num_classes == 10
    np.testing.assert_array_equal(ds.x_test, xt)  # test.csv, labelled by test_labels.csv
    np.testing.assert_array_equal(ds.y_test, yt)
    np.testing.assert_array_equal(ds.x_unlabelled, xt)
    assert sorted(np.concatenate([ds.y_train, ds.y_val]).tolist()) == sorted(y.tolist())
    again = datasets.load("kaggle", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.y_val, again.y_val)
    other = datasets.load("kaggle", data_dir=tmp_path, seed=7)
    assert not np.array_equal(ds.y_train, other.y_train)


def test_kaggle_own_files_have_no_labelled_test_set(tmp_path):
    (x, y), (xt, _) = tiny_mnist(10, 5)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", x, y)
    kaggle.write_kaggle_csv(tmp_path / "test.csv", xt)
    ds = datasets.load("kaggle", data_dir=tmp_path)
    assert ds.x_test is None and ds.y_test is None and ds.x_unlabelled.shape == (5, 28, 28)
    assert len(ds.x_val) == 2 and "test=" not in repr(ds)


def test_kaggle_answer_key_must_have_one_label_per_test_row(tmp_path):
    kaggle.mnist_to_kaggle_csv(tmp_path, tiny_mnist(6, 4), n_train=6, n_test=4)
    kaggle.write_submission(tmp_path / "test_labels.csv", np.array([1, 2, 3]))
    with pytest.raises(DataError, match=r"test_labels.csv: 3 labels for the 4 rows of test.csv, expected one"):
        datasets.load("kaggle", data_dir=tmp_path)


def test_load_kaggle_without_a_folder_cuts_mnist_in_memory_and_writes_nothing(tmp_path, monkeypatch):
    (x, y), (xt, yt) = tiny_mnist(30, 20)
    calls = []

    def fake_mnist(data_dir, **kw):
        calls.append((data_dir, kw))
        return ((x, y), (xt, yt)), "tiny MNIST"

    monkeypatch.setattr(kaggle, "load_mnist_with_source", fake_mnist)
    ds = datasets.load("kaggle", cache_dir=tmp_path, download=False)
    assert calls == [(None, {"cache_dir": tmp_path, "download": False, "progress": True})]
    assert "made from MNIST (tiny MNIST)" in ds.source and list(tmp_path.iterdir()) == []
    assert len(ds.x_train) + len(ds.x_val) == 30 and len(ds.x_val) == 6  # the first 60% of the 50 images
    np.testing.assert_array_equal(ds.x_test, xt)  # the rest, with their labels
    np.testing.assert_array_equal(ds.y_test, yt)


def test_kaggle_from_an_mnist_folder_matches_the_csvs_written_from_it(tmp_path):
    from scratchnet.data.folder import FILES
    from scratchnet.data.idx import write_idx

    (x, y), (xt, yt) = tiny_mnist(30, 20)
    for name, array in zip(FILES, (x, y, xt, yt)):
        write_idx(tmp_path / "mnist" / f"{name}.gz", array)
    kaggle.mnist_to_kaggle_csv(tmp_path / "csv", ((x, y), (xt, yt)))
    from_mnist = datasets.load("kaggle", data_dir=tmp_path / "mnist")
    from_csv = datasets.load("kaggle", data_dir=tmp_path / "csv")
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(from_mnist, part), getattr(from_csv, part), err_msg=part)


def test_load_kaggle_named_folder_must_exist_and_hold_both_files(tmp_path):
    with pytest.raises(DataError, match="directory not found"):
        kaggle.load_kaggle(tmp_path / "nope")
    with pytest.raises(DataError, match=r"train.csv: file not found, expected Kaggle's train.csv"):
        kaggle.load_kaggle(tmp_path)  # neither the CSVs nor MNIST
    kaggle.write_kaggle_csv(tmp_path / "train.csv", *tiny_mnist(2, 0)[0])
    with pytest.raises(DataError, match=r"test.csv: file not found, expected Kaggle's test.csv"):
        kaggle.load_kaggle(tmp_path)


def test_kaggle_tool_writes_csvs_from_an_mnist_folder(tmp_path, capsys):
    from scratchnet.data.folder import FILES
    from scratchnet.data.idx import write_idx

    (x, y), (xt, yt) = tiny_mnist(5, 3)
    for name, array in zip(FILES, (x, y, xt, yt)):
        write_idx(tmp_path / "mnist" / f"{name}.gz", array)
    assert datasets.kaggle.main([str(tmp_path / "out"), "--data-dir", str(tmp_path / "mnist"), "--train-rows", "6",
                                 "--test-rows", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "out" / "train.csv")
    np.testing.assert_array_equal(kaggle.read_train_csv(tmp_path / "out" / "train.csv")[1], np.append(y, yt[0]))
    assert datasets.kaggle.main([str(tmp_path / "out2"), "--data-dir", str(tmp_path / "missing")]) == 1
    assert "error: " in capsys.readouterr().err and not (tmp_path / "out2").exists()


@pytest.fixture(scope="module")
def real_mnist():
    try:
        return datasets.mnist.load_data(download=False, progress=False)
    except DataError as error:
        pytest.skip(f"MNIST is not on this machine: {error}")


def test_kaggle_validation_and_test_sets_are_the_same_whichever_way_they_are_loaded(real_mnist, tmp_path):
    """datasets.load, datasets.kaggle.load_data, the train CLI's data and the CSV files cut from the same MNIST
    all give one split: 33,600 train / 8,400 validation from the first 42,000 images, test the other 28,000."""
    from scratchnet import train, zoo

    (x_mnist, y_mnist), (xt_mnist, yt_mnist) = real_mnist
    ds = datasets.load("kaggle")
    (x_train, y_train), (x_val, y_val), x_unlabelled = datasets.kaggle.load_data()
    cli = train.load_data(zoo.defaults("kaggle_cnn"))
    kaggle.mnist_to_kaggle_csv(tmp_path, real_mnist)
    files = datasets.load("kaggle", data_dir=tmp_path)

    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (33_600, 8_400, 28_000)
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(cli[part], getattr(ds, part), err_msg=f"train CLI's {part}")
        np.testing.assert_array_equal(getattr(files, part), getattr(ds, part), err_msg=f"CSV files' {part}")
    for mine, theirs in ((x_train, ds.x_train), (y_train, ds.y_train), (x_val, ds.x_val), (y_val, ds.y_val),
                         (x_unlabelled, ds.x_test)):
        np.testing.assert_array_equal(mine, theirs)
    # train + validation are the first 42,000 MNIST training images; the test set is all the others
    rows = lambda x: {image.tobytes() for image in x}  # noqa: E731
    assert rows(ds.x_train) | rows(ds.x_val) == rows(x_mnist[:42_000])
    assert sorted(np.concatenate([ds.y_train, ds.y_val]).tolist()) == sorted(y_mnist[:42_000].tolist())
    np.testing.assert_array_equal(ds.x_test, np.concatenate([x_mnist[42_000:], xt_mnist]))
    np.testing.assert_array_equal(ds.y_test, np.concatenate([y_mnist[42_000:], yt_mnist]))
