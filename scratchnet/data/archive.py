"""Extract tar archives safely: regular files and folders only, never outside the target, never half-done."""

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import DataError, one_line


def _check_member(archive, member):
    name = member.name
    parts = PurePosixPath(name).parts
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DataError(f"{archive}: member {name!r} would be written outside the target folder, expected "
                        f"relative paths only")
    if member.issym() or member.islnk():
        raise DataError(f"{archive}: member {name!r} is a {'symbolic' if member.issym() else 'hard'} link to "
                        f"{member.linkname!r}, expected regular files and folders only")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: member {name!r} is a device, FIFO or other special file, expected regular "
                        f"files and folders only")
    return parts


def safe_extract(archive, dest) -> Path:
    """Extract the tar archive ``archive`` (any compression) into the new folder ``dest``; return ``dest``.

    Every member is checked before anything is written: an absolute path, a ``..`` component, a symbolic or
    hard link, or a special file is a DataError naming the archive and the member. Files are extracted into a
    temporary sibling folder that is renamed to ``dest`` only when all went well (an existing ``dest`` is
    replaced); on any error it is removed.
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    parts = _check_member(archive, member)
                    target = tmp.joinpath(*parts)
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        except FileNotFoundError:
            raise DataError(f"{archive}: file not found, expected a tar archive") from None
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise DataError(f"{archive}: corrupt or truncated archive ({one_line(exc)}), expected a complete "
                            f"tar archive") from None
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
