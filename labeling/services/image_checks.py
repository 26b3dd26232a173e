"""Validation of one image file, with its thumbnail: plain Pillow, no Django.

Kept free of Django so that import workers in separate processes can run it without setting up
Django (and without sharing the parent's database connection).
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from core.refusals import Refusal


ORIENTATION = 0x0112  # EXIF tag
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # displayed rotated by 90°: width and height swap


class RejectedImage(Refusal, ValueError):
    """One image file was refused; nothing of it was stored. ``file`` names it where the caller handed in a named
    file (the API's upload), and the message then starts with it. Still a ValueError: a bulk import's readers
    report a bad entry as one."""

    code = "image_rejected"

    def __init__(self, reason: str, file: str | None = None):
        super().__init__(f"{file}: {reason}" if file else reason)
        self.reason, self.file = reason, file

    def details(self) -> dict:
        return {"file": self.file} if self.file else {}


@dataclass
class ValidatedImage:
    data: bytes
    sha256: str
    format: str
    width: int  # after EXIF orientation
    height: int
    thumbnail: bytes


def validate_image_bytes(data: bytes, name: str, limits: dict) -> ValidatedImage:
    """Check one file and make its thumbnail. Raises RejectedImage with a reason a person can act on.

    ``limits`` is settings.TAGRANK_IMPORT: allowed_formats, max_file_bytes, max_pixels, thumbnail_size.
    """
    if len(data) == 0:
        raise RejectedImage("the file is empty")
    if len(data) > limits["max_file_bytes"]:
        raise RejectedImage(f"the file is {len(data):,} bytes, over the limit of {limits['max_file_bytes']:,}")
    max_pixels = limits["max_pixels"]
    size = limits["thumbnail_size"]
    try:
        with warnings.catch_warnings():
            # Pillow only warns between max_pixels and twice that; refuse both.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image = PILImage.open(io.BytesIO(data))
            image_format = image.format
            if image_format not in limits["allowed_formats"]:
                allowed = ", ".join(limits["allowed_formats"])
                raise RejectedImage(f"format {image_format} is not allowed (allowed: {allowed})")
            width, height = image.size
            if width * height > max_pixels:
                raise RejectedImage(
                    f"{width}x{height} pixels is over the limit of {max_pixels:,} (possible decompression bomb)"
                )
            if image_format == "PNG":
                # verify() checks chunk CRCs, which decoding skips; it leaves the file unusable, so reopen.
                image.verify()
                image = PILImage.open(io.BytesIO(data))
            elif image_format == "JPEG":
                # DCT scaling: decode at 1/2, 1/4 or 1/8 when that is still at least the thumbnail size.
                # The whole stream is still read, so truncation is caught as with a full-size decode.
                image.draft("RGB", (size, size))
            with image:
                image.load()  # the one decode: catches truncation and corruption
                if image.getexif().get(ORIENTATION, 1) in TRANSPOSING_ORIENTATIONS:
                    width, height = height, width
                ImageOps.exif_transpose(image, in_place=True)  # no copy when there is nothing to turn
                thumbnail = make_thumbnail(image, size)
    except RejectedImage:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise RejectedImage(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise RejectedImage("not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow reports truncation and corruption this way
        raise RejectedImage(f"corrupt or truncated image: {exc}") from None
    return ValidatedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=image_format,
        width=width,
        height=height,
        thumbnail=thumbnail,
    )


def make_thumbnail(image: PILImage.Image, size: int) -> bytes:
    """A WebP of at most size x size pixels. An RGB ``image`` is shrunk in place (no copy)."""
    thumb = image if image.mode == "RGB" else image.convert("RGB")
    # reducing_gap and WebP method 2 halve the cost against the defaults, with no visible loss at this size.
    thumb.thumbnail((size, size), PILImage.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=82, method=2)
    return out.getvalue()


def read_and_validate(path: Path, name: str, limits: dict) -> ValidatedImage | RejectedImage:
    """For worker processes: the result or the refusal, never an exception (it must cross processes)."""
    try:
        size = path.stat().st_size
        if size > limits["max_file_bytes"]:  # before reading it into memory
            raise RejectedImage(f"the file is {size:,} bytes, over the limit of {limits['max_file_bytes']:,}")
        return validate_image_bytes(path.read_bytes(), name, limits)
    except RejectedImage as exc:
        return exc
