"""From an item and a prompt format to the chat messages a backend receives."""

from __future__ import annotations

import hashlib
from typing import Any

from core.formats import PromptFormat
from suites.base import Item, Suite


def prompt_text(item: Item, suite: Suite, fmt: PromptFormat) -> str:
    """The user turn's text. `official` sends the data set's own query when it has one; the other
    formats send the question (with its choices and unit) followed by the format's instruction."""
    if fmt.name == "official":
        return item.query or suite.question_text(item)
    return f"{suite.question_text(item)}\n\n{fmt.instruction}"


def messages(text: str, with_image: bool) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "image"}] if with_image else []
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def prompt_sha256(text: str, image_bytes: bytes | None) -> str:
    """Identifies what the model was shown: the text and the exact image bytes sent."""
    h = hashlib.sha256(text.encode())
    h.update(hashlib.sha256(image_bytes or b"").digest())
    return h.hexdigest()
