"""Tests for scratchnet.data.notmnist: the whole pipeline on SYNTHETIC archives in notMNIST's exact layout."""

import io
import tarfile

import numpy as np
import pytest

from scratchnet import datasets
from scratchnet.data import notmnist as nm
from scratchnet.data import notmnist_synthetic as syn
from scratchnet.data.archive import safe_extract
from scratchnet.data.errors import DataError

SIZES = (200, 40, 50)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notmnist")
    syn.make_archives(folder, per_class_large=26, per_class_small=6, seed=5)
    return folder


def test_synthetic_archives_have_notmnist_layout(archives):
    with tarfile.open(archives / "notMNIST_small.tar.gz") as tar:
        names = tar.getnames()
    pngs = [n for n in names if n.endswith(".png")]
    assert {n.split("/")[1] for n in pngs} == set("ABCDEFGHIJ")
    assert all(n.startswith("notMNIST_small/") for n in names)
    assert len(pngs) == 10 * 6 + 2  # plus the two unreadable PNGs, as in the real set
    assert set(names) - set(pngs) == {"notMNIST_small/SYNTHETIC-README.txt"}  # labelled as synthetic


def test_synthetic_archives_are_deterministic(tmp_path):
    fonts = syn.usable_fonts()[:3]
    a = syn.make_archive(tmp_path / "a.tar.gz", "notMNIST_small", 2, np.random.default_rng(1), fonts)
    b = syn.make_archive(tmp_path / "b.tar.gz", "notMNIST_small", 2, np.random.default_rng(1), fonts)
    assert a.read_bytes() == b.read_bytes()


def test_pipeline_runs_end_to_end_on_synthetic_archives(archives, tmp_path):
    d = nm.load_notmnist(archives, sizes=SIZES, min_images=(0, 0), cache_dir=tmp_path)
    assert d.x_train.shape == (200, 28, 28) and d.x_val.shape == (40, 28, 28) and d.x_test.shape == (50, 28, 28)
    assert d.x_train.dtype == np.float32 and d.x_train.min() >= -0.5 and d.x_train.max() <= 0.5
    assert np.bincount(d.y_train, minlength=10).tolist() == [20] * 10  # balanced
    assert np.bincount(d.y_test, minlength=10).tolist() == [5] * 10
    assert d.y_train[:20].tolist() != sorted(d.y_train[:20].tolist())  # shuffled
    skipped = {r.letter: len(r.skipped) for r in d.reports[:10]}
    assert skipped["A"] == 2 and sum(skipped.values()) == 2


def test_pipeline_is_reproducible_with_a_seed(archives, tmp_path):
    a = nm.load_notmnist(archives, sizes=SIZES, seed=133, min_images=(0, 0), cache_dir=tmp_path)
    b = nm.load_notmnist(archives, sizes=SIZES, seed=133, min_images=(0, 0), cache_dir=tmp_path)
    c = nm.load_notmnist(archives, sizes=SIZES, seed=134, min_images=(0, 0), cache_dir=tmp_path)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, c.y_train)


def test_archives_made_synthetic_are_labelled_synthetic_wherever_they_are(archives, tmp_path):
    d = nm.load_notmnist(archives, sizes=SIZES, cache_dir=tmp_path)  # no synthetic=True: found by its marker
    assert d.synthetic and d.source.startswith("SYNTHETIC")


def test_real_data_needs_45000_images_per_class_by_default(archives, tmp_path):
    folder = tmp_path / "unmarked"
    for name in ("notMNIST_large", "notMNIST_small"):
        safe_extract(archives / f"{name}.tar.gz", folder / f"{name}.x")
        (folder / f"{name}.x" / name).rename(folder / name)
        (folder / name / "SYNTHETIC-README.txt").unlink()
    with pytest.raises(DataError, match=r"only 26 readable images \(2 skipped\), expected at least 45000"):
        nm.load_notmnist(folder, sizes=SIZES, cache_dir=tmp_path)
    d = nm.load_notmnist(folder, sizes=SIZES, cache_dir=tmp_path, min_images=(26, 6))
    assert not d.synthetic and d.source == f"folder {folder}"


def test_duplicates_between_train_and_test_are_removed_and_counted():
    x_train = np.zeros((3, 28, 28), np.float32)
    x_train[1] = 0.5
    x_test = np.stack([x_train[1], np.full((28, 28), 0.25, np.float32), x_train[0]])
    x, y, removed = nm.remove_duplicates(x_train, x_test, np.array([1, 2, 3]))
    assert removed == 2 and y.tolist() == [2]


def test_synthetic_dataset_is_cached_as_npz_and_labelled_synthetic(tmp_path):
    ds = datasets.load("notmnist-synthetic", cache_dir=tmp_path, sizes=(100, 20, 20), dedup=True)
    assert ds.synthetic and "SYNTHETIC" in ds.source and ds.name == "notmnist-synthetic"
    assert ds.classes == tuple("ABCDEFGHIJ") and ds.x_val.shape == (20, 28, 28)
    cached = list((tmp_path / "notmnist-synthetic").glob("notMNIST-SYNTHETIC-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as z:
        assert bool(z["synthetic"])
    again = datasets.load("notmnist-synthetic", cache_dir=tmp_path, sizes=(100, 20, 20), dedup=True)
    assert "merged sets" in again.source
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_real_notmnist_offline_points_to_the_synthetic_set(tmp_path):
    with pytest.raises(DataError, match="notmnist-synthetic"):
        datasets.load("notmnist", cache_dir=tmp_path, download=False)


def tar_with(path, member, data=b"x", kind=tarfile.REGTYPE, linkname=""):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("notMNIST_small/A/ok.png")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
        info = tarfile.TarInfo(member)
        info.type, info.linkname = kind, linkname
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


@pytest.mark.parametrize("member, kind, linkname, message", [
    ("../escape.png", tarfile.REGTYPE, "", "outside the target folder"),
    ("notMNIST_small/../../escape.png", tarfile.REGTYPE, "", "outside the target folder"),
    ("/tmp/absolute.png", tarfile.REGTYPE, "", "outside the target folder"),
    ("notMNIST_small/A/link.png", tarfile.SYMTYPE, "/etc/passwd", "symbolic link"),
    ("notMNIST_small/A/hard.png", tarfile.LNKTYPE, "notMNIST_small/A/ok.png", "hard link"),
    ("notMNIST_small/A/fifo", tarfile.FIFOTYPE, "", "special file"),
])
def test_safe_extract_refuses_dangerous_members_and_leaves_nothing(tmp_path, member, kind, linkname, message):
    archive = tar_with(tmp_path / "a.tar.gz", member, kind=kind, linkname=linkname)
    with pytest.raises(DataError, match=message) as info:
        safe_extract(archive, tmp_path / "out" / "x")
    assert str(archive) in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "escape.png").exists()


def test_synthetic_tool_writes_both_archives(tmp_path, capsys):
    assert syn.main([str(tmp_path), "--large", "2", "--small", "1"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "notMNIST_large.tar.gz"),
                                               str(tmp_path / "notMNIST_small.tar.gz")]
