"""Two `harness eval --resume` of one run at once, as real processes: one finishes it, the other stops at
the lock with one line; and a run that already holds duplicated records is repaired by `--resume`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from harness.backends.scripted import ScriptedBackend
from harness.config import EvalConfig
from harness.runner import run_eval
from harness.runstore import RunDir

pytestmark = pytest.mark.slow


def _harness(*args) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def _keys(run: RunDir) -> Counter:
    return Counter((r["suite"], r["sample_id"], r["attempt"]) for r in run.read_records())


def _started_run(tiny_model_dir, out, limit):
    """A run of the tiny model that stopped after its first batch (2 of 2 x limit records)."""
    cfg = EvalConfig(model=str(tiny_model_dir), suites=["synth_arith", "synth_charts"], limit=limit, batch_size=2,
                     max_new_tokens=16, out=str(out))
    with pytest.raises(RuntimeError, match="simulated"):
        run_eval(cfg, backend=ScriptedBackend(lambda r, a: "<SOLUTION>1</SOLUTION>", fail_after_calls=1),
                 progress=False)
    return RunDir(out)


def test_two_resumes_at_once_one_proceeds_the_other_stops_cleanly(tiny_model_dir, tmp_path):
    run = _started_run(tiny_model_dir, tmp_path / "run", limit=6)
    procs = [subprocess.Popen(_harness("eval", "--out", run.path, "--resume", "--quiet"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p, *p.communicate(timeout=600)) for p in procs]
    by_code = sorted(outcomes, key=lambda o: o[0].returncode)
    (winner, win_out, win_err), (loser, lose_out, lose_err) = by_code
    assert [winner.returncode, loser.returncode] == [0, 2], (win_err, lose_err)
    assert win_out.strip() == str(run.path)
    assert lose_out == ""
    lines = lose_err.strip().splitlines()
    assert len(lines) == 1, lose_err
    assert lines[0].startswith(f"error: run directory {run.path} is in use by pid {winner.pid} on host ")
    assert lines[0].endswith("wait for it to finish or stop it")
    counted = _keys(run)
    assert len(counted) == 12 and max(counted.values()) == 1  # every item once
    manifest = run.read_manifest()
    assert manifest["status"] == "finished" and len(manifest["measurements"]["sessions"]) == 2
    assert run.read_metrics()["completeness"]["complete"] is True
    assert not (run.path / ".lock").exists() and not list(run.path.rglob("*.tmp"))


def test_resume_repairs_a_run_that_holds_duplicates(tiny_model_dir, tmp_path):
    # what two unlocked resumes left behind before runs were locked: every record of the run, some twice
    cfg = EvalConfig(model=str(tiny_model_dir), suites=["synth_arith"], limit=6, out=str(tmp_path / "run"))
    run_eval(cfg, backend=ScriptedBackend(lambda r, a: "<SOLUTION>1</SOLUTION>"), progress=False)
    run = RunDir(tmp_path / "run")
    original = run.records_path.read_text()
    run.records_path.write_text(original + "".join(original.splitlines(keepends=True)[2:6]))
    manifest = run.read_manifest()
    run.write_manifest({**manifest, "status": "running", "finished": None})
    shown = subprocess.run(_harness("show", run.path), capture_output=True, text=True, check=False)
    assert shown.stderr.startswith("warning: duplicated: 4 records repeat a (suite, sample_id, attempt)")
    done = subprocess.run(_harness("eval", "--out", run.path, "--resume", "--quiet"), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"repaired {run.path}: dropped 4 repeated record(s), kept the first of each "
                           "(suite, sample_id, attempt)\n")
    assert run.records_path.read_text() == original  # the first of each key, as it was
    assert run.read_manifest()["status"] == "finished" and run.read_manifest()["repairs"][0]["duplicates_dropped"] == 4
    again = subprocess.run(_harness("eval", "--out", run.path, "--resume", "--quiet"), capture_output=True,
                           text=True, timeout=300, check=False)
    assert again.returncode == 0 and "already finished" in again.stderr
