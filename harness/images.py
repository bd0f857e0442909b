"""Image decoding, optional resizing, and the thumbnails a run directory keeps for its reports."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

THUMBNAIL_PX = 256


def decode(data: bytes, size: tuple[int, int] | None = None) -> Image.Image:
    """Decode to RGB (raises on corrupt bytes: the caller records that as the sample's error)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        rgb = im.convert("RGB")
    if size is not None:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return rgb


def thumbnail_name(suite: str, sample_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._") or "item"
    return f"{suite}__{safe}.jpg"


def save_thumbnail(image: Image.Image, folder: Path, name: str) -> str:
    """Write a JPEG of at most THUMBNAIL_PX on its longer side; returns the file name."""
    folder.mkdir(parents=True, exist_ok=True)
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    tmp = folder / (name + ".tmp")
    thumb.save(tmp, format="JPEG", quality=85)
    tmp.replace(folder / name)
    return name
