"""The exceptions scratchnet raises for bad or unavailable data: DataError and DownloadError."""


class DataError(ValueError):
    """Bad, missing or unreadable data.

    The message is always one line that names the file (or directory) and says what was expected, so the
    train CLI can print ``error: <message>`` and exit with status 1.
    """


class DownloadError(DataError):
    """Every mirror of a file failed (no network, HTTP error, wrong size or checksum)."""


def one_line(text) -> str:
    """Collapse ``text`` (an exception or string) to a single line for an error message."""
    return " ".join(str(text).split())
