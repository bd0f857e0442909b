"""Reading benchmark files for the suites: JSON lists, JSON Lines, Hugging Face parquet and hub sets.

A file that cannot be read at all raises `DataError` (the message ends with the suite's --data-dir
help). A single row that is not an object comes back as an error string in its place, so that the
loader can record it as a failed item instead of dropping it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import DataError
from suites.base import Item

Row = dict[str, Any] | str  # a row, or the reason it could not be read


def read_json(path: Path, help_text: str | None = None, what: str = "") -> Any:
    """A whole JSON file; an unreadable one is a one-line DataError (`what` names it, e.g. "predictions ")."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {what}{path.name}: {exc}" + (f"; {help_text}" if help_text else "")) from exc


def read_json_list(path: Path, help_text: str) -> list[Row]:
    data = read_json(path, help_text)
    if not isinstance(data, list):
        raise DataError(f"{path.name} must hold a JSON list of rows (got {type(data).__name__}); {help_text}")
    return [row if isinstance(row, dict) else f"row is a {type(row).__name__}, not an object" for row in data]


def read_jsonl(path: Path, help_text: str) -> list[tuple[int, Row]]:
    """(line index, row) for every non-blank line; a line that is not a JSON object gives its error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path.name}: {exc}; {help_text}") from exc
    rows: list[tuple[int, Row]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((index, f"line {index + 1} is not JSON ({exc.msg})"))
            continue
        rows.append((index, row if isinstance(row, dict) else f"line {index + 1} is not a JSON object"))
    return rows


def find_parquet(data_dir: Path, split: str) -> list[Path]:
    """Parquet shards of one split anywhere under data_dir: `<split>-00000-of-00001.parquet` (the
    hub's naming) or `<split>.parquet`."""
    if not data_dir.is_dir():
        return []
    found = set(data_dir.rglob(f"{split}-*.parquet")) | set(data_dir.rglob(f"{split}.parquet"))
    return sorted(found)


def read_parquet(paths: list[Path], help_text: str) -> list[dict[str, Any]]:
    """All rows of the shards, in order. Image columns stay as the hub stores them: {bytes, path}."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            rows.extend(pq.read_table(path).to_pylist())
        except Exception as exc:  # pyarrow raises many kinds for a bad file
            raise DataError(f"cannot read {path.name}: {exc}; {help_text}") from exc
    return rows


def local_split_rows(data_dir: Path, split: str, label: str, help_text: str) -> list[tuple[int, Any]]:
    """Rows of `<split>.jsonl` in data_dir, else of its `<split>-*.parquet` files, numbered from 0."""
    jsonl = data_dir / f"{split}.jsonl"
    if jsonl.is_file():
        return read_jsonl(jsonl, help_text)
    parquets = find_parquet(data_dir, split)
    if parquets:
        return list(enumerate(read_parquet(parquets, help_text)))
    raise DataError(f"no {label} {split} split found in {data_dir}; {help_text}")


def hub_rows(hub_id: str, config: str | None, split: str, revision: str, help_text: str,
             image_column: str | None = None) -> list[dict[str, Any]]:
    """Rows of a hub data set at a pinned revision (from the local cache when offline). Image
    columns are read undecoded, so the item keeps the bytes the data set ships."""
    try:
        import datasets

        ds = datasets.load_dataset(hub_id, config, split=split, revision=revision)
        if image_column and isinstance(ds.features.get(image_column), datasets.Image):
            ds = ds.cast_column(image_column, datasets.Image(decode=False))
        return list(ds)
    except Exception as exc:  # offline, missing, or a changed hub layout: all the same to the user
        raise DataError(f"could not load {hub_id}@{revision[:7]} from the hub or its cache "
                        f"({type(exc).__name__}); {help_text}") from exc


def read_image_file(relative: Any, roots: tuple[Path, ...], where: str) -> tuple[bytes | None, str | None]:
    """(bytes, None) of image file `relative` under the first of `roots` that holds it, else (None, why):
    an unreadable file or, naming `where` it was looked for, a missing one. Never raises."""
    for root in roots:
        candidate = root / str(relative)
        if candidate.is_file():
            try:
                return candidate.read_bytes(), None
            except OSError as exc:
                return None, f"cannot read image {relative}: {exc.strerror}"
    return None, f"image {relative} not found {where}"


def make_ids_unique(items: list[Item]) -> list[Item]:
    """A repeated sample id would merge two samples' records: later copies get a suffix and an error."""
    seen: dict[str, int] = {}
    for item in items:
        count = seen.get(item.sample_id, 0)
        seen[item.sample_id] = count + 1
        if count:
            item.error = item.error or f"duplicate sample id {item.sample_id!r}"
            item.sample_id = f"{item.sample_id}~{count}"
    return items
