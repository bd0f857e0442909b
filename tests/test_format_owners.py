"""Each on-disk format has one owner module: its file names appear in no other module, what it writes has
the shape of its types, and every command that reads a file of another schema version says so in one
line (exit status 2)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import SchemaVersionError
from harness import checkpoints
from harness.backends.scripted import ScriptedBackend
from harness.checkpoints import CheckpointInfo, TrainLogRow, read_checkpoint, read_train_log
from harness.cli import cli
from harness.config import EvalConfig
from harness.contamination import checkpoint_entry
from harness.run_schema import Manifest, Metrics, Record
from harness.runner import run_eval
from harness.runstore import RunDir
from tests.fixtures.run_fixture import write_checkpoint, write_run
from tests.fixtures.typed_shape import shape_problems
from tests.test_runner import gold_answer

ROOT = Path(__file__).resolve().parents[1]
OWNERS = {"manifest.json": "harness/runstore.py", "records.jsonl": "harness/runstore.py",
          "metrics.json": "harness/runstore.py", "checkpoint.json": "harness/checkpoints.py",
          "train_log.jsonl": "harness/checkpoints.py", "bench.json": "harness/benchstore.py",
          "judge_cache.jsonl": "harness/judge_cache.py", "sweep.json": "harness/sweeps.py"}


def source_files() -> list[str]:
    """The project's tracked code outside the tests: modules, scripts and the report page's assets."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py", "*.js", "*.html", "*.css"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    return [path for path in listed if not path.startswith("tests/")]


@pytest.mark.parametrize("file_name", sorted(OWNERS))
def test_each_file_name_appears_in_its_owner_only(file_name):
    holders = [path for path in source_files() if file_name in (ROOT / path).read_text(encoding="utf-8")]
    assert holders == [OWNERS[file_name]]


def test_what_a_run_writes_has_the_shape_of_its_types(tmp_path):
    cfg = EvalConfig.from_dict({"model": "scripted", "out": str(tmp_path / "run"), "limit": 3})
    run = RunDir(run_eval(cfg, backend=ScriptedBackend(gold_answer), progress=False))
    assert shape_problems(run.read_manifest(), Manifest) == []
    assert [p for r in run.read_records() for p in shape_problems(r, Record)] == []
    assert shape_problems(run.read_metrics(), Metrics) == []


def test_a_checkpoint_record_and_log_round_trip(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", "gspo", [{"step": 1, "reward": 0.5, "wall_s": 1.0}], [])
    assert read_checkpoint(folder)["schema_version"] == checkpoints.CHECKPOINT_SCHEMA_VERSION
    assert read_train_log(folder) == [{"step": 1, "reward": 0.5, "wall_s": 1.0}]
    assert shape_problems(read_train_log(folder)[0], TrainLogRow) == []
    assert read_checkpoint(tmp_path) is None and read_train_log(tmp_path) is None
    assert shape_problems({"step": "one"}, TrainLogRow) == [".step is 'one', not int"]
    assert shape_problems({"schema_version": 1}, CheckpointInfo)  # a record lacking everything else


# --- another schema version: one line from every command that reads the file -----------------------
def _set_version(path: Path, version: int) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": version}))


def _one_error_line(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture
def runs(tmp_path):
    items = {"synth_arith": [{"sample_id": f"q{i}", "correct": i % 2 == 0} for i in range(4)]}
    return write_run(tmp_path, "base", items), write_run(tmp_path, "cand", items)


COMMANDS = {
    "show": lambda run, other, tmp: ["show", run],
    "rescore": lambda run, other, tmp: ["rescore", run],
    "report": lambda run, other, tmp: ["report", other, run, "-o", tmp / "report.html"],
    "gate": lambda run, other, tmp: ["gate", "--baseline", other, "--candidate", run],
    "eval --resume": lambda run, other, tmp: ["eval", "--out", run, "--resume", "--model", "scripted"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("version", "says"), [(99, "newer than this harness reads"),
                                               (0, "older than this harness reads")])
def test_a_manifest_of_another_version_gets_one_line(runs, tmp_path, command, version, says):
    run, other = runs
    _set_version(RunDir(run).manifest_path, version)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    args = [str(a) for a in COMMANDS[command](run, other, tmp_path)]
    _one_error_line(CliRunner().invoke(cli, args), f"schema version {version} is not supported", says)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing rewritten


@pytest.mark.parametrize("command", ["show", "report", "gate"])
def test_metrics_of_another_version_get_one_line(runs, tmp_path, command):
    run, other = runs
    _set_version(RunDir(run).metrics_path, 99)
    args = [str(a) for a in COMMANDS[command](run, other, tmp_path)]
    _one_error_line(CliRunner().invoke(cli, args), "metrics.json: schema version 99 is not supported")


def test_a_checkpoint_record_of_another_version_gets_one_line(tmp_path, runs):
    run, _ = runs
    folder = write_checkpoint(tmp_path / "ckpt", "gspo", [{"step": 1, "reward": 0.5}], [])
    _set_version(folder / checkpoints.CHECKPOINT_FILE, 2)
    for read in (read_checkpoint, read_train_log, lambda f: checkpoint_entry(f, {})):
        with pytest.raises(SchemaVersionError, match="checkpoint.json: schema version 2"):
            read(folder)
    trained = write_run(tmp_path, "trained", {"synth_arith": [{"sample_id": "q0", "correct": True}]},
                        checkpoint={"dir": str(folder), "algo": "gspo", "engine": "trl", "step": 1})
    result = CliRunner().invoke(cli, ["report", str(run), str(trained), "-o", str(tmp_path / "r.html")])
    _one_error_line(result, "checkpoint.json: schema version 2 is not supported")
