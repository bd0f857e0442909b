"""The LLM judge's cache on disk: one JSONL file per judge model, one line per answered call, keyed by
(judge model, prompt hash), so that rescoring a run, or another run with the same responses, never pays
for a call twice. The only module that knows the file's name and line format (`JudgeCacheEntry`).

    cache = JudgeCache.for_model(Path("~/.cache/vlm-math-harness/judge"), "gpt-4o-mini")
    key = cache_key("gpt-4o-mini", prompt_sha256(messages, request_params))
    entry = cache.get(key)          # JudgeCacheEntry or None
    cache.put(JudgeCacheEntry(...))  # appended and flushed at once, under an exclusive lock

Only answered calls are stored (a failed call is tried again next time). Lines are appended under
`fcntl.flock`, so two processes judging at once interleave whole lines; a torn last line (a kill
mid-write) and lines of another schema version are skipped when reading: a cache miss costs a call,
never a wrong verdict.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from pathlib import Path
from typing import Any, TypedDict

from core.errors import storage_error

JUDGE_CACHE_SCHEMA_VERSION = 1
JUDGE_CACHE_SUFFIX = ".judge_cache.jsonl"


class JudgeCacheEntry(TypedDict):
    schema_version: int
    key: str  # cache_key(model, prompt_sha256)
    model: str  # the judge model
    prompt_sha256: str  # of the messages and the request parameters
    text: str  # the judge's reply
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float  # of the call that produced the reply
    created: str  # ISO 8601 UTC


def prompt_sha256(messages: list[dict[str, Any]], request_params: dict[str, Any]) -> str:
    """The hash of everything the judge is asked: the messages and the parameters that shape its reply."""
    canonical = json.dumps({"messages": messages, "params": request_params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key(model: str, prompt_hash: str) -> str:
    return hashlib.sha256(f"{model}\n{prompt_hash}".encode()).hexdigest()


class JudgeCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, JudgeCacheEntry] = {}
        self._load()

    @classmethod
    def for_model(cls, directory: Path, model: str) -> JudgeCache:
        """The cache file of one judge model in `directory` (a readable name plus a hash of the exact name)."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-")[:60] or "model"
        digest = hashlib.sha256(model.encode()).hexdigest()[:8]
        return cls(Path(directory).expanduser() / f"{slug}-{digest}{JUDGE_CACHE_SUFFIX}")

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise storage_error(exc, "read", self.path) from exc
        for raw in data.split(b"\n"):
            try:
                entry = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a torn last line: that call is made again
            if (isinstance(entry, dict) and entry.get("schema_version") == JUDGE_CACHE_SCHEMA_VERSION
                    and isinstance(entry.get("key"), str) and isinstance(entry.get("text"), str)):
                self.entries.setdefault(entry["key"], entry)

    def get(self, key: str) -> JudgeCacheEntry | None:
        return self.entries.get(key)

    def put(self, entry: JudgeCacheEntry) -> None:
        """Store one answered call: appended as one line, flushed, under an exclusive lock."""
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    f.write(line)
                    f.flush()
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        except OSError as exc:
            raise storage_error(exc, "write", self.path) from exc
        self.entries.setdefault(entry["key"], entry)
