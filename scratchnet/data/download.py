"""Files on disk that never end up half-written: the cache directory, atomic writes and checked downloads."""

import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..fileio import FILE_MODE, atomic_path, atomic_write, atomic_write_bytes  # noqa: F401 (re-exported)
from .errors import DownloadError, one_line

log = logging.getLogger(__name__)

# Looked up at call time so tests can replace it (no test ever touches the network).
urlopen = urllib.request.urlopen

CHUNK = 1 << 20




def cache_dir() -> Path:
    """The directory scratchnet keeps downloaded and converted data in.

    ``$SCRATCHNET_CACHE`` if set (and not empty), else the scratchnet home (``$SCRATCHNET_HOME``, else
    ``~/.cache/scratchnet``). Not created here.
    """
    env = os.environ.get("SCRATCHNET_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("SCRATCHNET_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "scratchnet"


def download_files(folder, names, mirrors, md5s, progress=True):
    """Download ``<name>.gz`` for each name into ``folder`` (skipping files already there), trying each
    mirror in turn and checking each file against ``md5s[name]``; raises DownloadError when all fail."""
    for name in names:
        target = Path(folder) / f"{name}.gz"
        if not target.is_file():
            download([mirror + target.name for mirror in mirrors], target, md5=md5s[name], progress=progress)


def file_digest(path, algorithm="md5") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(urls, dest, *, sha256=None, md5=None, size=None, progress=True, timeout=10.0) -> Path:
    """Fetch a file to ``dest`` from the first mirror that works, checking its size and checksum.

    ``urls`` is one URL or a list of mirrors tried in order. Each attempt streams into a temporary file in
    ``dest``'s directory (with a tqdm progress bar on stderr when ``progress``), verifies ``size`` (bytes),
    ``sha256`` and ``md5`` when given, and only then renames it onto ``dest``; a failed attempt deletes its
    temporary file. Raises DownloadError (a DataError), one line naming ``dest``, when every mirror fails.
    """
    from tqdm import tqdm

    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise DownloadError(f"{dest}: no download URL given")
    failures = []
    for url in urls:
        log.info("downloading %s -> %s", url, dest)
        try:
            with atomic_write(dest) as out:
                with urlopen(url, timeout=timeout) as response:
                    total = response.headers.get("Content-Length") if response.headers else None
                    total = int(total) if total and total.isdigit() else size
                    hashes = {name: hashlib.new(name) for name, want in (("sha256", sha256), ("md5", md5)) if want}
                    received = 0
                    with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr,
                              disable=not progress, leave=False) as bar:
                        for chunk in iter(lambda: response.read(CHUNK), b""):
                            out.write(chunk)
                            for h in hashes.values():
                                h.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
                if size is not None and received != size:
                    raise ValueError(f"expected {size} bytes, got {received}")
                for name, want in (("sha256", sha256), ("md5", md5)):
                    if want and hashes[name].hexdigest() != want.lower():
                        raise ValueError(f"{name} mismatch: expected {want}, got {hashes[name].hexdigest()}")
            return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"{url}: {one_line(reason)}")
            log.info("download failed: %s", failures[-1])
    raise DownloadError(f"{dest}: could not download from any of {len(urls)} mirror(s) ({'; '.join(failures)})")
