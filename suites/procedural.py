"""Shared machinery of the procedural suites (synth_charts, synth_arith): seeded drawing, the fixed
train/test partition, PNG encoding and the integer scorer.

Disjointness of train and test holds by construction: every drawn problem has a canonical key (its
structure, e.g. the bar heights of a chart or the template and numbers of a word problem, never the
seed or the decoration), and a hash of that key alone decides which split may hold it. A draw whose key
belongs to the other split is re-drawn. The partition ignores the seed, so the test split of one seed's
world is also disjoint from the train split of any other seed's.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.answers import last_number, numbers_equal, to_float
from core.errors import ConfigError
from suites.base import Item, LoadOptions, Score, ScoringInput, Suite

# One key in TEST_SHARE goes to test. The key spaces are large, so the test split is never short of keys.
TEST_SHARE = 10
MAX_ATTEMPTS = 10_000  # per item; a draw rejected this often means the key space is too small (a bug)


@dataclass
class Draft:
    """One drawn problem before rendering: rendering is the slow part, so only accepted drafts render."""

    key: str  # canonical structure: decides the split and de-duplicates within a split
    question: str
    answer: int
    meta: dict[str, Any] = field(default_factory=dict)
    render: Callable[[], bytes] | None = None  # PNG bytes of the image, for image suites


def split_of(key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_SHARE == 0 else "train"


def generate(suite: str, opts: LoadOptions, sizes: dict[str, int],
             draw: Callable[[random.Random], Draft]) -> list[Item]:
    """The whole split, item by item; item i draws from an RNG seeded by (suite, split, i, seed, attempt).

    String seeds go through SHA-512 in `random.Random`, so the worlds are the same on every platform
    and Python process (no dependence on hash randomisation).
    """
    if opts.split not in sizes:
        raise ConfigError(f"{suite} has no split {opts.split!r}; splits: {', '.join(sizes)}")
    items: list[Item] = []
    seen: set[str] = set()
    for index in range(sizes[opts.split]):
        for attempt in range(MAX_ATTEMPTS):
            rng = random.Random(f"{suite}:{opts.split}:{index}:{opts.seed}:{attempt}")
            draft = draw(rng)
            if draft.key not in seen and split_of(draft.key) == opts.split:
                break
        else:
            raise RuntimeError(f"{suite}: no fresh {opts.split} problem after {MAX_ATTEMPTS} draws")
        seen.add(draft.key)
        items.append(Item(
            suite=suite,
            sample_id=f"{opts.split}-{index:05d}",
            question=draft.question,
            gold=str(draft.answer),
            answer_type="integer",
            image_bytes=draft.render() if draft.render else None,
            meta=draft.meta,
        ))
    return items


def cached(build: Callable[[LoadOptions], list[Item]]) -> Callable[[LoadOptions], list[Item]]:
    """A loader that builds each (split, seed) once per process and hands out copies: the runner, its
    re-scoring and the tests load the same split many times, and a chart split takes a while to draw."""
    @functools.lru_cache(maxsize=4)
    def built(split: str, seed: int) -> tuple[Item, ...]:
        return tuple(build(LoadOptions(split=split, seed=seed)))

    def load(opts: LoadOptions) -> list[Item]:
        return [copy.deepcopy(item) for item in built(opts.split, opts.seed)]

    return load


def suite(name: str, *, version: str, description: str, sizes: dict[str, int],
          draw: Callable[[random.Random], Draft], breakdowns: tuple[str, ...], notes: str) -> Suite:
    """The Suite of a procedural generator: seeded train/test splits of `sizes` drawn by `draw` (built
    once per process, see `cached`), the question as is, integer scoring."""
    return Suite(
        name=name,
        version=version,
        description=description,
        source="procedural",
        splits=dict(sizes),
        default_split="test",
        load=cached(functools.partial(generate, name, sizes=sizes, draw=draw)),
        question_text=question_text,
        score=score_integer,
        breakdowns=breakdowns,
        notes=notes,
    )


def png_bytes(image: Any) -> bytes:
    """PNG with fixed settings and no metadata chunks, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def question_text(item: Item) -> str:
    return item.question


_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")


def _bare_number(text: str) -> str | None:
    """The region as one number (spaces, `$`, thousands commas and a final period tolerated), or None."""
    t = text.strip().replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    return t if _PLAIN_NUMBER.fullmatch(t) else None


def score_integer(inp: ScoringInput) -> Score:
    """GSM8K-style numeric scoring. An answer block or \\boxed{} is read as a whole number when it is one,
    else its last number; a bare response gives its last number. Correct on numeric equality."""
    extracted: str | None = None
    extractor = "none"
    if inp.region_rule == "response":
        extracted = last_number(inp.region)
        if extracted is not None:
            extractor = "response>last_number"
    else:
        extracted = _bare_number(inp.region)
        if extracted is not None:
            extractor = f"{inp.region_rule}>number"
        else:
            extracted = last_number(inp.region)
            if extracted is not None:
                extractor = f"{inp.region_rule}>last_number"
    value, gold = to_float(extracted), to_float(inp.target.gold)
    correct = value is not None and gold is not None and numbers_equal(value, gold)
    return Score(extracted=extracted, extractor=extractor if extracted is not None else "none",
                 correct=correct)
