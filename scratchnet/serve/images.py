"""Turning a request body into an image, and refusing everything that is not a PNG or JPEG of sane size.

The body's first bytes decide what it is (a client's Content-Type is only checked to be an image type we
read); Pillow reads the header before any pixel is decoded, so a small file that would decode into a huge
picture (a decompression bomb) is refused before it costs memory.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from scratchnet import imageprep

#: The largest request body read, in bytes. A phone photo as JPEG is 2-5 MB; a drawing is a few KB.
MAX_BODY_BYTES = 5 * 1024 * 1024
#: The most pixels an uploaded image may have (a 25-megapixel photo); Pillow's own limit is set to it too.
MAX_PIXELS = 25_000_000
#: Content types a body may be sent as. application/octet-stream is for clients that do not know; the
#: form-encoded and text types a cross-site page can send without asking are not among them.
ACCEPTED_TYPES = ("image/png", "image/jpeg", "application/octet-stream")
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


class BadImage(ValueError):
    """A body that is not an image we read. ``status`` is the HTTP status to answer with (415 or 400)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def limit_decoded_size():
    """Lower Pillow's decompression-bomb limit (process-wide) to :data:`MAX_PIXELS`.

    Pillow then warns about images over the limit and refuses those over twice the limit; :func:`decode`
    refuses every image over the limit with its own message, so the warning is only noise and is silenced.
    """
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def accepted_type(content_type: str | None) -> bool:
    """Whether a Content-Type header (parameters allowed) is one of :data:`ACCEPTED_TYPES`."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type in ACCEPTED_TYPES


def sniff(body: bytes) -> str | None:
    """"PNG" or "JPEG" from the first bytes of ``body``; None for anything else."""
    return next((kind for signature, kind in _SIGNATURES.items() if body.startswith(signature)), None)


def decode(body: bytes) -> Image.Image:
    """Decode a PNG or JPEG body into a PIL image (fully loaded).

    Raises :class:`BadImage`: 415 for bytes that are not PNG or JPEG, 400 for one that is too large or
    does not decode (truncated, corrupt).
    """
    kind = sniff(body)
    if kind is None:
        raise BadImage("the body is not a PNG or JPEG image", 415)
    try:
        image = Image.open(io.BytesIO(body), formats=[kind])
        if image.width * image.height > MAX_PIXELS:
            raise BadImage(f"the image is {image.width}x{image.height} pixels, more than the "
                           f"{MAX_PIXELS:,} read here", 400)
        if kind == "JPEG":  # as scratchnet.predict does: let the decoder shrink big photos for free
            image.draft("RGB", (imageprep.WORK_SIZE, imageprep.WORK_SIZE))
        image.load()
    except BadImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BadImage(f"the {kind} image does not decode ({reason})", 400) from None
    return image
