"""The run directory: manifest.json, records.jsonl, metrics.json and images/.

Crash safety: records are appended one JSON line at a time and flushed (fsync per batch), so a killed
run loses at most the batch in flight; a torn last line is cut off when the run is reopened. The
manifest and metrics are written to a temporary file and renamed, so they are never half written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import RunDirError

MANIFEST_SCHEMA_VERSION = 1
RECORD_KEYS = (
    "suite", "sample_id", "attempt", "question", "choices", "gold", "image", "prompt_sha256", "response",
    "extracted", "extractor", "correct", "scores", "rewards", "format_ok", "format_failures",
    "n_prompt_tokens", "n_output_tokens", "finish_reason", "latency_s", "batch", "error", "target", "meta",
)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path.name} not found in {path.parent}: not a run directory") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc})") from None


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest_path = self.path / "manifest.json"
        self.records_path = self.path / "records.jsonl"
        self.metrics_path = self.path / "metrics.json"
        self.images_dir = self.path / "images"

    # --- manifest -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict[str, Any]:
        manifest = read_json(self.manifest_path)
        version = manifest.get("schema_version")
        if version != MANIFEST_SCHEMA_VERSION:
            raise RunDirError(f"{self.manifest_path}: schema version {version!r} is not supported "
                              f"(this harness reads version {MANIFEST_SCHEMA_VERSION})")
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.manifest_path, manifest)

    # --- records --------------------------------------------------------------------------------
    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every complete record; a torn final line (a crash mid-write) is skipped."""
        if not self.records_path.exists():
            return
        with open(self.records_path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    return  # torn tail: repaired by repair_tail() before appending
                try:
                    yield json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise RunDirError(f"{self.records_path}:{lineno} is not valid JSON ({exc})") from None

    def read_records(self) -> list[dict[str, Any]]:
        return list(self.iter_records())

    def repair_tail(self) -> int:
        """Cut a torn final line left by a crash; returns the number of bytes removed."""
        if not self.records_path.exists():
            return 0
        data = self.records_path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        with open(self.records_path, "r+b") as f:
            f.truncate(keep)
        return len(data) - keep

    def append_records(self, records: list[dict[str, Any]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.records_path, "a") as f:
            f.writelines(json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records)
            f.flush()
            os.fsync(f.fileno())

    def rewrite_records(self, records: list[dict[str, Any]]) -> None:
        """Replace all records at once (rescore): written aside, then renamed."""
        tmp = self.records_path.with_name("records.jsonl.tmp")
        with open(tmp, "w") as f:
            f.writelines(json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.records_path)

    # --- metrics --------------------------------------------------------------------------------
    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.metrics_path, metrics)

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics_path)


def record_key(record: dict[str, Any]) -> tuple[str, str, int]:
    return record["suite"], record["sample_id"], record["attempt"]
