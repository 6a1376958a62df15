"""Tests for scratchnet.data.download: cache_dir, atomic writes, and checked downloads from local URLs only."""

import hashlib
import io
import os
import urllib.error

import pytest

from scratchnet.data import download as dl
from scratchnet.data.download import atomic_write, atomic_write_bytes, cache_dir
from scratchnet.data.errors import DataError, DownloadError


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SCRATCHNET_CACHE")
    monkeypatch.setenv("SCRATCHNET_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home"
    monkeypatch.delenv("SCRATCHNET_HOME")
    assert cache_dir() == dl.Path.home() / ".cache" / "scratchnet"


def test_atomic_write_replaces_file_completely(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(path.parent) == ["f.bin"]
    assert oct(path.stat().st_mode & 0o777) == oct(dl.FILE_MODE)


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"half of it")
        raise RuntimeError("disk full")
    assert os.listdir(tmp_path) == []
    atomic_write_bytes(path, b"kept")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"replacement")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"kept" and os.listdir(tmp_path) == ["f.bin"]


@pytest.fixture
def source(tmp_path):
    payload = os.urandom(3000)
    path = tmp_path / "src" / "file.gz"
    path.parent.mkdir()
    path.write_bytes(payload)
    return path, payload


def test_download_from_file_url_verifies_checksums(tmp_path, source):
    path, payload = source
    dest = tmp_path / "cache" / "file.gz"
    got = dl.download(path.as_uri(), dest, sha256=hashlib.sha256(payload).hexdigest(),
                      md5=hashlib.md5(payload).hexdigest(), size=len(payload), progress=False)
    assert got == dest and dest.read_bytes() == payload


def test_download_checksum_mismatch_removes_temp_file_and_raises(tmp_path, source):
    path, _ = source
    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(DownloadError, match="md5 mismatch") as info:
        dl.download([path.as_uri()], dest, md5="0" * 32, progress=False)
    assert isinstance(info.value, DataError) and str(dest) in str(info.value)
    assert os.listdir(dest.parent) == []


def test_download_size_mismatch_raises(tmp_path, source):
    path, payload = source
    dest = tmp_path / "file.gz"
    with pytest.raises(DownloadError, match=f"expected {len(payload) + 1} bytes"):
        dl.download(path.as_uri(), dest, size=len(payload) + 1, progress=False)
    assert not dest.exists() and [p.name for p in tmp_path.iterdir()] == ["src"]


def test_download_tries_mirrors_in_order(tmp_path, source, monkeypatch):
    path, payload = source
    tried = []
    real_urlopen = dl.urlopen

    def opener(url, timeout):
        tried.append(url)
        if "dead" in url:
            raise urllib.error.URLError("Name or service not known")
        return real_urlopen(url, timeout=timeout)

    monkeypatch.setattr(dl, "urlopen", opener)
    dest = tmp_path / "file.gz"
    dl.download(["https://dead.invalid/file.gz", path.as_uri()], dest, md5=hashlib.md5(payload).hexdigest(),
                progress=False)
    assert tried == ["https://dead.invalid/file.gz", path.as_uri()] and dest.read_bytes() == payload


def test_download_all_mirrors_failing_is_one_clear_error(tmp_path, monkeypatch):
    def opener(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(dl, "urlopen", opener)
    dest = tmp_path / "file.gz"
    with pytest.raises(DownloadError) as info:
        dl.download(["https://a.invalid/f", "https://b.invalid/f"], dest, progress=False)
    message = str(info.value)
    assert "\n" not in message and "2 mirror(s)" in message and "a.invalid" in message and "b.invalid" in message
    assert os.listdir(tmp_path) == []


def test_download_connection_dropped_midway_leaves_nothing(tmp_path, monkeypatch):
    class Dropping(io.BytesIO):
        headers = {"Content-Length": "100000"}

        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(10)

    monkeypatch.setattr(dl, "urlopen", lambda url, timeout: Dropping(b"x" * 100))
    with pytest.raises(DownloadError, match="connection reset"):
        dl.download("https://example.invalid/f", tmp_path / "f", progress=False)
    assert os.listdir(tmp_path) == []
