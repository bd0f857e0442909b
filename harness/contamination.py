"""Train/eval contamination: fingerprints of training items, and their overlap with evaluation items.

A training item and an evaluation item are the same when any of these match:
- the suite and sample id (training on a benchmark's own split, e.g. MathVista testmini),
- the image: sha256 of the encoded bytes, or of the decoded RGB pixels (catches a re-encoded copy
  with other metadata or container),
- for items without an image, the question text (whitespace and case folded) together with the gold.

The trainer refuses an overlap with the suites it evaluates unless allowed, and stores the training
set's fingerprints beside the checkpoint (`train_fingerprints.json`) so that every later evaluation of
that checkpoint records its own overlap in the run manifest, where reports show it.

    >>> fp = Fingerprints.of(train_items)
    >>> fp.overlap(eval_items)          # sample ids of eval_items seen in training
    ['12', '40']
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkpoints import read_checkpoint, world_size_of
from suites.base import Item

FINGERPRINTS_FILE = "train_fingerprints.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pixel_sha256(image_bytes: bytes) -> str | None:
    """Hash of the decoded RGB pixels and size; None when the bytes do not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image_bytes)) as im:
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return _sha(f"{rgb.width}x{rgb.height}".encode() + rgb.tobytes())


def text_key(item: Item) -> str:
    question = " ".join(item.question.split()).casefold()
    return _sha(f"{question}\x00{item.gold.strip()}".encode())


@dataclass
class Fingerprints:
    ids: dict[str, set[str]] = field(default_factory=dict)  # suite -> sample ids
    images: set[str] = field(default_factory=set)  # byte and pixel hashes
    texts: set[str] = field(default_factory=set)  # text keys of image-less items

    @classmethod
    def of(cls, items: list[Item]) -> Fingerprints:
        fp = cls()
        for item in items:
            fp.ids.setdefault(item.suite, set()).add(item.sample_id)
            if item.image_bytes:
                fp.images.add(_sha(item.image_bytes))
                pixels = pixel_sha256(item.image_bytes)
                if pixels:
                    fp.images.add(pixels)
            else:
                fp.texts.add(text_key(item))
        return fp

    def matches(self, item: Item) -> bool:
        if item.sample_id in self.ids.get(item.suite, ()):
            return True
        if item.image_bytes:
            if _sha(item.image_bytes) in self.images:
                return True
            pixels = pixel_sha256(item.image_bytes)
            return pixels is not None and pixels in self.images
        return text_key(item) in self.texts

    def overlap(self, items: list[Item]) -> list[str]:
        """Sample ids of `items` that were trained on, in their order."""
        return [item.sample_id for item in items if self.matches(item)]

    def to_dict(self) -> dict[str, Any]:
        return {"ids": {s: sorted(v) for s, v in sorted(self.ids.items())}, "images": sorted(self.images),
                "texts": sorted(self.texts)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fingerprints:
        return cls({s: set(v) for s, v in d.get("ids", {}).items()}, set(d.get("images", ())),
                   set(d.get("texts", ())))

    def save(self, folder: Path) -> Path:
        path = Path(folder) / FINGERPRINTS_FILE
        path.write_text(json.dumps(self.to_dict()) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> Fingerprints | None:
        path = Path(folder) / FINGERPRINTS_FILE
        if not path.is_file():
            return None
        return cls.from_dict(json.loads(path.read_text()))


def overlap_summary(by_suite: dict[str, list[str]]) -> dict[str, Any] | None:
    """The manifest/checkpoint form: None when nothing overlaps."""
    hit = {suite: ids for suite, ids in by_suite.items() if ids}
    if not hit:
        return None
    return {"n": sum(len(ids) for ids in hit.values()), "suites": hit}


def checkpoint_entry(model_dir: str | Path | None, items_by_suite: dict[str, list[Item]]) -> dict[str, Any] | None:
    """The run manifest's `checkpoint` key when the evaluated model is a trained checkpoint (its dir
    holds a checkpoint record): what it is, and which evaluated items it was trained on."""
    info = read_checkpoint(model_dir) if model_dir else None
    if info is None:
        return None
    folder = Path(model_dir)
    fingerprints = Fingerprints.load(folder)
    overlap = None
    if fingerprints is not None:
        overlap = overlap_summary({s: fingerprints.overlap(items) for s, items in items_by_suite.items()})
    return {"dir": str(Path(info.get("training_dir") or folder).resolve()), "path": str(folder.resolve()),
            "algo": info.get("algo"), "engine": info.get("engine"),
            "base_model": (info.get("base_model") or {}).get("id"), "step": info.get("steps"),
            "effectively_on_policy": info.get("effectively_on_policy"),
            "world_size": world_size_of(info),
            "global_batch_size": (info.get("distributed") or {}).get("global_batch_size"),
            "reward_mode": info.get("reward_mode") or "recipe",  # older checkpoints: the recipe's rule
            "overlap": overlap,
            "fingerprints": fingerprints is not None}
