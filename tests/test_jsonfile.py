"""Versioned JSON files: atomic writes, and one line for a file of another schema version."""

from __future__ import annotations

import json

import pytest

from core.errors import RunDirError, SchemaVersionError
from harness.jsonfile import read_versioned_json, write_json_atomic


def test_round_trip_and_no_temporary_file_left(tmp_path):
    path = tmp_path / "thing.json"
    write_json_atomic(path, {"schema_version": 3, "value": "é"})
    assert read_versioned_json(path, 3, "thing") == {"schema_version": 3, "value": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["thing.json"]


@pytest.mark.parametrize(("content", "message"), [
    ({"schema_version": 4}, (r"thing.json: schema version 4 is not supported, newer than this harness reads; "
                             r"upgrade vlm-math-harness to read it \(this harness reads thing schema version 3\)")),
    ({"schema_version": 2}, "schema version 2 is not supported, older than this harness reads"),
    ({"value": 1}, "schema version None is not supported, not a thing file this harness wrote"),
    ({"schema_version": "3"}, "schema version '3' is not supported, not a thing file"),
    ([1, 2], "does not hold a JSON object: not a thing file"),
])
def test_other_versions_get_one_line(tmp_path, content, message):
    path = tmp_path / "thing.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SchemaVersionError, match=message) as caught:
        read_versioned_json(path, 3, "thing")
    assert "\n" not in str(caught.value) and isinstance(caught.value, RunDirError)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(RunDirError, match="thing.json not found in .*: not a thing directory"):
        read_versioned_json(tmp_path / "thing.json", 3, "thing")
    (tmp_path / "thing.json").write_text("{oops")
    with pytest.raises(RunDirError, match="is not valid JSON"):
        read_versioned_json(tmp_path / "thing.json", 3, "thing")
