"""Versioned JSON files, the pattern every on-disk format owner follows (run, checkpoint, bench directory).

    write_json_atomic(path, {"schema_version": 1, ...})          # written aside, fsynced, renamed
    data = read_versioned_json(path, version=1, kind="checkpoint")  # the object, or one line of error

A format owner (harness/runstore.py, harness/checkpoints.py, ...) keeps its file names and a TypedDict
per file to itself, writes through `write_json_atomic`, and reads through `read_versioned_json` (or
`read_json` + `check_schema_version` for a file whose version lives in another file), so a file written
by a newer or an older harness gets a one-line `SchemaVersionError` that says which, never a KeyError
three modules later.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.errors import RunDirError, SchemaVersionError, storage_error


def write_text_atomic(path: Path, text: str) -> None:
    """Write aside and rename; on any failure (disk full, ...) the old file stays and no .tmp is left."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        _remove(tmp)
        raise storage_error(exc, "write", path) from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    """Best effort: a temporary file that cannot even be removed (read-only) was never created."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path, kind: str = "run") -> Any:
    """The parsed file; RunDirError naming the file (and the directory kind) when it is missing or invalid."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path.name} not found in {path.parent}: not a {kind} directory") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise storage_error(exc, "read", path) from exc


def check_schema_version(data: Any, path: Path, version: int, kind: str, oldest: int | None = None) -> None:
    """One line when `data` is not an object holding schema_version == `version` (or, with `oldest`,
    one from `oldest` to `version`, which its owner upgrades as it reads): newer (upgrade the harness),
    older (written before a format change), or none at all (not a file of this kind)."""
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found == version:
        return
    if (oldest is not None and isinstance(found, int) and not isinstance(found, bool)
            and oldest <= found <= version):
        return
    if isinstance(found, int) and not isinstance(found, bool) and found > version:
        why = "newer than this harness reads; upgrade vlm-math-harness to read it"
    elif isinstance(found, int) and not isinstance(found, bool):
        why = "older than this harness reads; read it with the harness version that wrote it"
    elif not isinstance(data, dict):
        raise SchemaVersionError(f"{path} does not hold a JSON object: not a {kind} file")
    else:
        why = f"not a {kind} file this harness wrote"
    raise SchemaVersionError(f"{path}: schema version {found!r} is not supported, {why} "
                             f"(this harness reads {kind} schema version {version})")


def json_object_line(raw: str | bytes, where: str, what: str, error: type[Exception] = RunDirError) -> dict[str, Any]:
    """One line of a JSON-lines file, which must be an object: `where` ("path:lineno") and `what` ("a
    record") name it in the one-line error, raised as `error`."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise error(f"{where} is not {what} (a JSON object)")
    return value


def read_versioned_json(path: Path, version: int, kind: str) -> dict[str, Any]:
    """read_json + check_schema_version: the object, whose schema_version is `version`."""
    data = read_json(path, kind)
    check_schema_version(data, path, version, kind)
    return data
