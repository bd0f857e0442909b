"""Image decoding, optional resizing, and the thumbnails a run directory keeps for its reports."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from core.errors import storage_error

THUMBNAIL_PX = 256


class ImageDecodeError(ValueError):
    """Bytes that are not a readable image; the message says why, without Python object reprs."""


def decode(data: bytes, size: tuple[int, int] | None = None) -> Image.Image:
    """Decode to RGB; raises ImageDecodeError on corrupt bytes (the caller records the sample's error)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("RGB")
    except UnidentifiedImageError:
        head = data[:8]
        raise ImageDecodeError(f"not a known image format ({len(data)} bytes starting {head!r})") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or malformed data inside a known format
        reason = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the image", str(exc)) or type(exc).__name__
        raise ImageDecodeError(f"corrupt image data ({reason})") from None
    if size is not None:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return rgb


def thumbnail_name(suite: str, sample_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._") or "item"
    return f"{suite}__{safe}.jpg"


def save_thumbnail(image: Image.Image, folder: Path, name: str) -> str:
    """Write a JPEG of at most THUMBNAIL_PX on its longer side; returns the file name.
    A failed write (disk full) raises StorageError and leaves no temporary file."""
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    tmp = folder / (name + ".tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        thumb.save(tmp, format="JPEG", quality=85)
        tmp.replace(folder / name)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: it was never created
        raise storage_error(exc, "write", folder / name) from exc
    return name
