"""Which items a shard evaluates: `harness eval --shard K/N` takes the K-th of N balanced shares of every suite.

The share depends on the sample ids only: each suite's items are sorted by sha256("<suite>/<sample id>")
and dealt round-robin, the r-th to shard (r mod N) + 1. So a rerun (or another machine) gets the same
share, the shares of a suite differ in size by at most one, and together they hold every item once.

    index, count = parse_shard("2/3")
    mine = items_of_shard(items, index, count)     # in the suite's own order
    shard_of = assignment("synth_arith", [it.sample_id for it in items], count)   # sample id -> K

harness/merge.py puts the shards' run directories back together.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from core.errors import ConfigError
from suites.base import Item


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N), with 1 <= K <= N; ConfigError otherwise."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not found or not 1 <= int(found[1]) <= int(found[2]):
        raise ConfigError(f"shard must be K/N with 1 <= K <= N, e.g. 2/8 (got {text!r})")
    return int(found[1]), int(found[2])


def shard_key(suite: str, sample_id: str) -> str:
    return hashlib.sha256(f"{suite}/{sample_id}".encode()).hexdigest()


def assignment(suite: str, sample_ids: list[str], count: int) -> dict[str, int]:
    """sample id -> the shard (1..count) that evaluates it."""
    ranked = sorted(sample_ids, key=lambda sid: (shard_key(suite, sid), sid))
    return {sid: rank % count + 1 for rank, sid in enumerate(ranked)}


def items_of_shard(items: list[Item], index: int, count: int) -> list[Item]:
    """The items of shard `index` of `count`, in their suite order."""
    if not items:
        return []
    shard_of = assignment(items[0].suite, [item.sample_id for item in items], count)
    return [item for item in items if shard_of[item.sample_id] == index]


def shard_entry(suite: str, items: list[Item], content_sha256: str, index: int, count: int) -> dict[str, Any]:
    """The manifest's `suites[].shard` of a sharded run: which share it holds, and what the whole suite is
    (its items in order and their hash) so that a merge can check and order the shards."""
    return {"index": index, "count": count, "n_items": len(items), "content_sha256": content_sha256,
            "item_ids": [item.sample_id for item in items]}
