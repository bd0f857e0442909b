"""End to end on CPU with the tiny real model: every suite, both architectures, kill and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.config import EvalConfig
from harness.run_schema import record_keys
from harness.runner import run_eval
from harness.runstore import RunDir
from tests.fixtures.gsm8k_fixture import write_gsm8k_fixture
from tests.fixtures.math500_fixture import write_math500_fixture
from tests.fixtures.mathverse_fixture import write_mathverse_fixture
from tests.fixtures.mathvista_fixture import write_mathvista_fixture

FIXTURES = {
    "synth_charts": None,
    "synth_arith": None,
    "mathvista_testmini": write_mathvista_fixture,
    "mathverse_testmini": write_mathverse_fixture,
    "gsm8k": write_gsm8k_fixture,
    "math500": write_math500_fixture,
}


def check_run(path: Path, n_expected: int) -> tuple[dict, list[dict], dict]:
    run = RunDir(path)
    manifest, records, metrics = run.read_manifest(), run.read_records(), run.read_metrics()
    assert manifest["status"] == "finished"
    assert len(records) == n_expected
    for r in records:
        assert set(record_keys()) == set(r)
        assert r["error"] is None, r["error"]
        assert r["finish_reason"] in ("stop", "length") and r["n_output_tokens"] >= 1
        assert "<|image_pad|>" not in r["response"]
    return manifest, records, metrics


@pytest.mark.parametrize("suite", list(FIXTURES))
def test_each_suite_end_to_end(suite, tiny_model_dir, tmp_path):
    data_dir = {suite: str(FIXTURES[suite](tmp_path / "data"))} if FIXTURES[suite] else {}
    cfg = EvalConfig(model=str(tiny_model_dir), suites=[suite], data_dir=data_dir, limit=3,
                     max_new_tokens=12, batch_size=2, out=str(tmp_path / "run"))
    manifest, _, metrics = check_run(run_eval(cfg, progress=False), 3)
    entry = manifest["suites"][0]
    assert entry["name"] == suite and entry["n_items"] == 3 and len(entry["content_sha256"]) == 64
    assert manifest["model"]["n_parameters"] > 0 and manifest["model"]["device"] == "cpu"
    m = metrics["suites"][suite]
    assert m["n"] == 3 and 0 <= m["accuracy"] <= 1 and m["mean_output_tokens"] > 0
    assert metrics["throughput"]["output_tokens_per_s"] > 0
    assert metrics["memory"]["peak_allocated_mib"] is None and metrics["memory"]["note"]


def test_qwen3_vl_sampled_avg_at_n(tiny_qwen3_dir, tmp_path):
    cfg = EvalConfig(model=str(tiny_qwen3_dir), suites=["synth_charts"], limit=2, n_samples=3,
                     temperature=0.6, max_new_tokens=8, prompt_format="think-answer", out=str(tmp_path / "run"))
    _, records, metrics = check_run(run_eval(cfg, progress=False), 6)
    assert sorted(r["attempt"] for r in records) == [0, 0, 1, 1, 2, 2]
    assert metrics["suites"]["synth_charts"]["attempts_per_item"] == 3


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def test_killed_process_resumes_with_nothing_lost_or_repeated(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--suite", "synth_arith", "--suite", "synth_charts",
            "--limit", "10", "--batch-size", "2", "--max-new-tokens", "24", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(_harness(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    records = out / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = RunDir(out).read_records()
    assert 4 <= len(before) < 20
    assert RunDir(out).read_manifest()["status"] == "running"  # killed: nothing closed it

    done = subprocess.run(_harness("eval", "--out", str(out), "--resume", "--quiet"), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    after = RunDir(out).read_records()
    keys = Counter((r["suite"], r["sample_id"], r["attempt"]) for r in after)
    assert len(keys) == 20 and max(keys.values()) == 1
    kept = {json.dumps(r, sort_keys=True) for r in after}
    assert all(json.dumps(r, sort_keys=True) in kept for r in before)  # what was on disk is kept as it was
    assert [r["suite"] for r in after] == ["synth_arith"] * 10 + ["synth_charts"] * 10  # in suite order
    manifest = RunDir(out).read_manifest()
    assert manifest["status"] == "finished" and len(manifest["measurements"]["sessions"]) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["suites"]["synth_arith"]["n"] == 10 and metrics["suites"]["synth_charts"]["n"] == 10
