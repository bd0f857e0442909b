"""The run directory: manifest.json, records.jsonl, metrics.json and images/. The only module that knows
these names; every reader and writer goes through RunDir, whose files are typed in harness/run_schema.py.

    run = RunDir("runs/r1")
    manifest = run.read_manifest()      # schema version and shape checked: one line of error otherwise
    records = run.read_records()        # list[Record]
    metrics = run.read_metrics()        # Metrics, its schema version checked

Crash safety: records are appended as each item's attempts are in, written and flushed at once (fsync
at most every second), so a killed run loses only the items still in flight; a torn last line is cut
off when the run is reopened. The manifest and metrics are written to a temporary file and renamed, so they are never half written.

Older versions read: a version 1 run (before scoring modes) is upgraded as it is read: its scoring
was `strict`, a record's `answered` is whether it has an extracted answer, its `correct_strict` is its
`correct`, and its `correct_official` is null until `harness rescore` fills it in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import RunDirError, storage_error
from harness.jsonfile import (
    check_schema_version,
    json_object_line,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from harness.run_schema import (
    MANIFEST_SCHEMA_VERSION,
    METRICS_SCHEMA_VERSION,
    OLDEST_READABLE,
    Manifest,
    Metrics,
    Record,
)

MANIFEST_FILE = "manifest.json"
RECORDS_FILE = "records.jsonl"
METRICS_FILE = "metrics.json"
IMAGES_DIR = "images"



# The manifest keys a reader relies on, with their JSON types: anything else is a wrong-shaped file.
MANIFEST_SHAPE: dict[str, type | tuple[type, ...]] = {
    "run_id": str, "status": str, "prompt_format": str, "generation": dict, "suites": list, "config": dict,
    "model": dict, "measurements": dict}
SUITE_ENTRY_SHAPE: dict[str, type | tuple[type, ...]] = {"name": str, "n_items": int, "content_sha256": str}


def check_manifest_shape(manifest: Any, path: Path) -> None:
    """One line naming the first key that is missing or of the wrong type."""
    def kind(value: Any) -> str:
        return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
                bool: "true/false", type(None): "null"}.get(type(value), type(value).__name__)

    if not isinstance(manifest, dict):
        raise RunDirError(f"{path} holds {kind(manifest)}, not a run manifest (an object)")
    problems = [f"{key} is {kind(manifest[key]) if key in manifest else 'missing'}"
                for key, want in MANIFEST_SHAPE.items()
                if key not in manifest or not isinstance(manifest[key], want)]
    if not problems:
        for i, entry in enumerate(manifest["suites"]):
            if not isinstance(entry, dict):
                problems.append(f"suites[{i}] is {kind(entry)}")
                continue
            problems += [f"suites[{i}].{key} is {kind(entry[key]) if key in entry else 'missing'}"
                         for key, want in SUITE_ENTRY_SHAPE.items()
                         if key not in entry or not isinstance(entry[key], want)]
        if not isinstance(manifest["generation"].get("n"), int):
            problems.append("generation.n is missing")
        if not isinstance(manifest["measurements"].get("sessions"), list):
            problems.append("measurements.sessions is missing")
    if problems:
        raise RunDirError(f"{path} is not a valid run manifest: {'; '.join(problems[:3])}")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest_path = self.path / MANIFEST_FILE
        self.records_path = self.path / RECORDS_FILE
        self.metrics_path = self.path / METRICS_FILE
        self.images_dir = self.path / IMAGES_DIR

    # --- manifest -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> Manifest:
        manifest = read_json(self.manifest_path)
        if isinstance(manifest, dict):  # a non-object gets check_manifest_shape's message
            check_schema_version(manifest, self.manifest_path, MANIFEST_SCHEMA_VERSION, "run manifest",
                                 oldest=OLDEST_READABLE)
        check_manifest_shape(manifest, self.manifest_path)
        return upgrade_manifest(manifest)

    def write_manifest(self, manifest: Manifest | dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    # --- records --------------------------------------------------------------------------------
    def iter_records(self) -> Iterator[Record]:
        """Every complete record; a torn final line (a crash mid-write) is skipped."""
        if not self.records_path.exists():
            return
        try:
            f = open(self.records_path, "rb")  # noqa: SIM115 -- closed by the with below; only open() is guarded
        except OSError as exc:
            raise storage_error(exc, "read", self.records_path) from exc
        with f:
            for lineno, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    return  # torn tail: repaired by repair_tail() before appending
                record = json_object_line(raw, f"{self.records_path}:{lineno}", "a record")
                missing = [k for k in ("suite", "sample_id", "attempt") if k not in record]
                if missing:
                    raise RunDirError(f"{self.records_path}:{lineno} lacks {', '.join(missing)}")
                yield upgrade_record(record)

    def read_records(self) -> list[Record]:
        return list(self.iter_records())

    def repair_tail(self) -> int:
        """Cut a torn final line left by a crash; returns the number of bytes removed."""
        if not self.records_path.exists():
            return 0
        try:
            data = self.records_path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep == len(data):
                return 0
            os.truncate(self.records_path, keep)
        except OSError as exc:
            raise storage_error(exc, "repair", self.records_path) from exc
        return len(data) - keep

    def append_records(self, records: list[Record] | list[dict[str, Any]], sync: bool = True) -> None:
        """Append one group of records, written and flushed at once (a killed process loses none of it);
        `sync` also waits until it is on disk (a crash of the machine loses none of it either). If the
        write fails (disk full), the group is cut off again, all of it."""
        data = "".join(json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records)
        size = self.records_path.stat().st_size if self.records_path.exists() else 0
        try:
            with open(self.records_path, "a", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
        except OSError as exc:
            try:
                os.truncate(self.records_path, size)  # no torn line, and the space is free again
            except OSError:
                pass  # repair_tail() cuts a torn line when the run is resumed
            raise storage_error(exc, "write", self.records_path) from exc

    def sync_records(self) -> None:
        """Wait until every record appended so far is on disk."""
        try:
            with open(self.records_path, "a", encoding="utf-8") as f:
                os.fsync(f.fileno())
        except OSError as exc:
            raise storage_error(exc, "write", self.records_path) from exc

    def rewrite_records(self, records: list[Record] | list[dict[str, Any]]) -> None:
        """Replace all records at once (rescore, repair): written aside, then renamed."""
        write_text_atomic(self.records_path, "".join(json.dumps(record, ensure_ascii=False, default=str) + "\n"
                                                     for record in records))

    def drop_duplicates(self) -> int:
        """Keep the first record of each (suite, sample_id, attempt); returns how many were dropped.
        Two writers without a lock (before runs were locked) could leave a key twice."""
        records = self.read_records()
        kept = first_of_each_key(records)
        if len(kept) != len(records):
            self.rewrite_records(kept)
        return len(records) - len(kept)

    def drop_failed_requests(self) -> int:
        """Remove the records of requests the backend gave up on (`request_failed`), so that a resume
        sends them again; returns how many were removed."""
        records = self.read_records()
        kept = [r for r in records if not r.get("request_failed")]
        if len(kept) != len(records):
            self.rewrite_records(kept)
        return len(records) - len(kept)

    # --- metrics --------------------------------------------------------------------------------
    def has_records(self) -> bool:
        return self.records_path.is_file()

    def has_metrics(self) -> bool:
        return self.metrics_path.is_file()

    def write_metrics(self, metrics: Metrics | dict[str, Any]) -> None:
        write_json_atomic(self.metrics_path, metrics)

    def read_metrics(self) -> Metrics:
        metrics = read_json(self.metrics_path)
        check_schema_version(metrics, self.metrics_path, METRICS_SCHEMA_VERSION, "run metrics",
                             oldest=OLDEST_READABLE)
        return upgrade_metrics(metrics)


# --- older versions -------------------------------------------------------------------------------
def upgrade_manifest(manifest: dict[str, Any]) -> Manifest:
    """A version 1 manifest in today's shape: its run was scored strictly."""
    if manifest.get("schema_version") == 1:
        manifest["scoring"] = "strict"
        manifest["config"].setdefault("scoring", "strict")
        manifest["schema_version"] = MANIFEST_SCHEMA_VERSION
    return manifest


def upgrade_record(record: dict[str, Any]) -> Record:
    """A record written before scoring modes: `answered` and `correct_strict` follow from it, the
    official verdict is unknown (null) until the run is rescored."""
    if "correct" in record and "answered" not in record:
        record["answered"] = record.get("extracted") is not None
        record["correct_strict"] = record["correct"]
        record["correct_official"] = None
    return record


def upgrade_metrics(metrics: dict[str, Any]) -> Metrics:
    """A version 1 metrics file in today's shape: strict accuracy, the rest unknown (null)."""
    if metrics.get("schema_version") == 1:
        for suite in (metrics.get("suites") or {}).values():
            suite.setdefault("accuracy_strict", suite.get("accuracy"))
            suite.setdefault("accuracy_official", None)
            suite.setdefault("no_answer_rate", None)
        metrics.setdefault("scoring", "strict")
        metrics["schema_version"] = METRICS_SCHEMA_VERSION
    return metrics


def record_key(record: dict[str, Any]) -> tuple[str, str, int]:
    return record["suite"], record["sample_id"], record["attempt"]


def first_of_each_key(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records in file order, without later repeats of a (suite, sample_id, attempt)."""
    seen: set[tuple[str, str, int]] = set()
    out = []
    for record in records:
        key = record_key(record)
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out
