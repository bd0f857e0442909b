"""Runs that are not finished say so everywhere: show, rescore, report and gate (and eval's progress)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harness.backends.scripted import ScriptedBackend
from harness.cli import cli
from harness.config import EvalConfig
from harness.run_state import run_state
from harness.runner import run_eval
from harness.runstore import RunDir
from reports.page import build_report
from tests.fixtures.run_fixture import write_run
from tests.test_runner import gold_answer

HOLD_LOCK = """
import sys, time
from harness.dirlock import DirLock
with DirLock(sys.argv[1], "run directory"):
    print("held", flush=True)
    time.sleep(60)
"""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result) -> str:
    """The one line a failing command prints (stdout is empty)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and not result.stdout.strip(), result.output
    return lines[0]


def killed_run(tmp_path, name="run", done=2):
    """A run stopped after `done` batches of 2 (status left running, as kill -9 leaves it)."""
    cfg = EvalConfig.from_dict({"model": "scripted", "out": str(tmp_path / name), "limit": 6, "batch_size": 2})
    with pytest.raises(RuntimeError):
        run_eval(cfg, backend=ScriptedBackend(gold_answer, fail_after_calls=done), progress=False)
    run = RunDir(tmp_path / name)
    manifest = run.read_manifest()
    run.write_manifest({**manifest, "status": "running", "error": None})
    return run


def finished_run(tmp_path, name="run"):
    cfg = EvalConfig.from_dict({"model": "scripted", "out": str(tmp_path / name), "limit": 6})
    run_eval(cfg, backend=ScriptedBackend(gold_answer), progress=False)
    return RunDir(tmp_path / name)


def test_show_on_an_unfinished_run_says_it_is_unfinished(tmp_path):
    run = killed_run(tmp_path)
    result = invoke("show", run.path)
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"warning: unfinished: 4 of 12 records present and no process is writing it "
                             f"(status running); finish it with harness eval --out {run.path} --resume\n")
    assert "UNFINISHED, PARTIAL NUMBERS" in result.stdout and "not a run directory" not in result.output
    shown = json.loads(invoke("show", run.path, "--json").stdout)
    assert shown["completeness"]["complete"] is False and shown["completeness"]["records_present"] == 4
    assert not run.metrics_path.exists()  # show only reads


def test_show_names_the_process_writing_a_running_run(tmp_path):
    run = killed_run(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = invoke("show", run.path)
        assert result.exit_code == 0
        assert f"warning: running: pid {holder.pid} on host " in result.stderr
        assert "is writing it; 4 of 12 records so far" in result.stderr
        # a second writer is refused with the holder named, and nothing is written
        before = run.records_path.read_bytes()
        line = error_line(invoke("rescore", run.path))
        assert line.startswith(f"error: run directory {run.path} is in use by pid {holder.pid} on host ")
        assert run.records_path.read_bytes() == before and not run.metrics_path.exists()
    finally:
        holder.kill()
        holder.wait()


def test_show_of_a_finished_run_has_no_warning(tmp_path):
    run = finished_run(tmp_path)
    result = invoke("show", run.path)
    assert result.exit_code == 0 and result.stderr == "" and "status finished" in result.stdout


def test_rescore_cli_on_an_unfinished_run_warns_and_writes_partial_metrics(tmp_path):
    run = killed_run(tmp_path)
    result = invoke("rescore", run.path)
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"warning: {run.path}: 4 of 12 records present: the metrics are partial (complete: "
                             f"false); finish the run with harness eval --out {run.path} --resume\n")
    assert "PARTIAL NUMBERS" in result.stdout
    assert run.read_metrics()["completeness"]["complete"] is False
    # show now reads partial metrics.json and still says the run is unfinished
    assert invoke("show", run.path).stderr.startswith("warning: unfinished: 4 of 12 records present")


def test_a_duplicated_run_is_marked_and_counted_once(tmp_path):
    run = finished_run(tmp_path)
    with open(run.records_path, "a") as f:
        f.write(run.records_path.read_text())
    state = run_state(run.path, run.read_manifest(), run.read_records())
    assert state.kind == "duplicated" and state.line.startswith("duplicated: 12 records repeat")
    result = invoke("show", run.path)
    assert result.stderr.startswith("warning: duplicated: 12 records repeat a (suite, sample_id, attempt)")


@pytest.fixture
def report_runs(tmp_path):
    items = {"synth_arith": [{"sample_id": f"s{i}", "correct": i % 2 == 0} for i in range(8)]}
    base = write_run(tmp_path, "base", items)
    partial = write_run(tmp_path, "partial", items)
    records = RunDir(partial).records_path
    lines = records.read_text().splitlines(keepends=True)
    records.write_text("".join(lines[:3]))  # killed after 3 of 8 records
    (partial / "metrics.json").unlink()
    manifest = json.loads((partial / "manifest.json").read_text())
    (partial / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "finished": None}))
    duplicated = write_run(tmp_path, "duplicated", items)
    records = RunDir(duplicated).records_path
    records.write_text(records.read_text() + "".join(records.read_text().splitlines(keepends=True)[:4]))
    return base, partial, duplicated


def test_report_banner_is_not_green_for_partial_or_duplicated_runs(report_runs, tmp_path):
    base, partial, duplicated = report_runs
    page = build_report([base, partial, duplicated], tmp_path / "r.html").read_text()
    assert 'class="banner ok"' not in page and 'class="banner warn" id="comparability"' in page
    assert "unfinished: 3 of 8 records present and no process is writing it" in page
    assert "duplicated: 4 records repeat a (suite, sample_id, attempt)" in page
    header = page[page.index('<header class="top">'):page.index("</header>")]
    assert 'class="tag state-unfinished"' in header and 'class="tag state-duplicated"' in header
    clean = build_report([base, base], tmp_path / "ok.html").read_text()
    assert 'class="banner ok"' in clean and "state-" not in clean[clean.index("<body>"):clean.index("<script")]


def test_gate_refuses_partial_runs_unless_allowed(report_runs):
    base, partial, duplicated = report_runs
    for cand, kind in ((partial, "unfinished"), (duplicated, "duplicated")):
        result = invoke("gate", "--baseline", base, "--candidate", cand)
        assert result.exit_code == 2
        line = error_line(result)
        assert line.startswith(f"error: run {RunDir(cand).read_manifest()['run_id']} is not finished ({kind}: ")
        assert line.endswith("or pass --allow-partial to gate on the items both runs have")
        allowed = invoke("gate", "--baseline", base, "--candidate", cand, "--allow-partial")
        assert allowed.exit_code == 0, allowed.output
        assert f"{kind}: " in allowed.stdout  # listed among the warnings
    as_json = invoke("gate", "--baseline", base, "--candidate", partial, "--json")
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["verdict"] == "error"


def test_eval_logs_progress_on_stderr_when_not_a_terminal(tiny_model_dir, tmp_path):
    result = invoke("eval", "--model", tiny_model_dir, "--suite", "synth_arith", "--limit", "4", "--batch-size", "2",
                    "--max-new-tokens", "4", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("evaluating synth_arith: 4/4 (100%), ") and "items/s, done in" in lines[-1]
    assert any("ETA" in line for line in lines) and result.stdout.strip() == str(tmp_path / "run")
    quiet = invoke("eval", "--out", tmp_path / "run", "--resume", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == f"{tmp_path / 'run'}: the run is already finished; nothing to do\n"


def test_rescore_of_a_read_only_run_is_one_line(tmp_path):
    run = finished_run(tmp_path)
    files = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with read_only(run.path):
        line = error_line(invoke("rescore", run.path))
    assert line.startswith(f"error: cannot lock the run directory {run.path}: ")
    assert line.endswith(("Read-only file system", "permission denied (Permission denied)"))
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == files


def test_report_to_an_unwritable_path_is_one_line(report_runs, tmp_path):
    base, _, _ = report_runs
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    line = error_line(invoke("report", base, base, "-o", blocker / "report.html"))
    assert line == f"error: cannot create the folder {blocker}: a file of that name exists (File exists)"
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        line = error_line(invoke("report", base, base, "-o", folder / "report.html"))
    assert line.startswith(f"error: cannot write {folder / 'report.html'}: ")
    assert list(folder.iterdir()) == []


class read_only:
    """A folder made read-only for this process: a read-only bind mount as root (root ignores modes),
    else chmod a-w."""

    def __init__(self, folder):
        self.folder = folder

    def __enter__(self):
        if os.geteuid() == 0:
            for args in (["mount", "--bind", self.folder, self.folder],
                         ["mount", "-o", "remount,bind,ro", self.folder, self.folder]):
                if subprocess.run([str(a) for a in args], capture_output=True, check=False).returncode:
                    self.__exit__()
                    pytest.skip("cannot make a read-only bind mount here")
            self.mounted = True
        else:
            self.mode = self.folder.stat().st_mode
            self.folder.chmod(0o555)
        return self.folder

    def __exit__(self, *exc):
        if os.geteuid() == 0:
            subprocess.run(["umount", str(self.folder)], capture_output=True, check=False)
        else:
            self.folder.chmod(self.mode)


@pytest.mark.parametrize("content", ["[]", '{"schema_version": 1}', '{"schema_version": 1, "suites": 3}'])
def test_a_wrong_shaped_manifest_is_one_line_for_show_resume_and_rescore(tmp_path, content):
    run = finished_run(tmp_path)
    run.manifest_path.write_text(content)
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    for args in (["show", run.path], ["show", run.path, "--json"], ["rescore", run.path],
                 ["eval", "--out", run.path, "--resume"]):
        line = error_line(invoke(*args))
        assert line.startswith(f"error: {run.manifest_path}"), (args, line)
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before
