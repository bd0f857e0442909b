"""`harness sweep` on a real tiny training run: every saved step is evaluated through harness eval (a
subset first, then the best on the whole suite), a killed sweep resumes, and `harness report` plots
accuracy, no-answer rate and format compliance against step (in a real headless Chromium too)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import ConfigError, RunDirError
from harness.checkpoints import read_checkpoint, saved_steps
from harness.cli import cli
from harness.runstore import RunDir
from harness.sweeps import SweepInfo, read_sweep
from reports.page import build_report
from reports.page_sweep import sweep_points
from tests.fixtures.mathvista_fixture import write_mathvista_fixture
from tests.fixtures.typed_shape import shape_problems
from trainers.config import TrainConfig
from trainers.sweep import sweep
from trainers.train import train

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SUITE = "mathvista_testmini"  # its fixture: 12 items in the real schema, images included
FAST = {"max_new_tokens": 6}  # the tiny model's evaluations: a few tokens each


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir) -> Path:
    """A GSPO run of 3 steps saving its adapter after each (save_steps 1): steps 1 and 2 in steps/, 3 the final."""
    out = tmp_path_factory.mktemp("sweep") / "ckpt"
    cfg = TrainConfig.from_dict({"model": str(tiny_model_dir), "engine": "trl", "limit": 8, "max_steps": 3,
                                 "save_steps": 1, "per_device_train_batch_size": 4, "num_generations": 4,
                                 "max_completion_length": 6, "learning_rate": 0.05, "out": str(out)})[0]
    return train(cfg, echo=lambda _: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    return {SUITE: str(write_mathvista_fixture(tmp_path_factory.mktemp("mathvista"), n=12))}


@pytest.fixture(scope="module")
def swept(trained, data, tmp_path_factory) -> tuple[Path, list[str]]:
    said: list[str] = []
    out = sweep(trained, [SUITE], limit=4, top=2, data_dir=data, out=tmp_path_factory.mktemp("swept") / "sw",
                overrides=FAST, echo=said.append)
    return out, said


def test_saved_steps_are_the_intermediate_saves_and_the_final_adapter(trained):
    steps = saved_steps(trained)
    assert [(s.step, s.path.relative_to(trained).as_posix(), s.final) for s in steps] == [
        (1, "steps/step-000001", False), (2, "steps/step-000002", False), (3, ".", True)]


def test_a_sweep_evaluates_every_saved_step_then_the_best_on_the_whole_suite(trained, swept, tmp_path):
    out, said = swept
    info = read_sweep(out)
    assert shape_problems(info, SweepInfo) == [] and info["status"] == "finished"
    assert [e["step"] for e in info["steps"]] == [1, 2, 3]
    assert sorted(info["ranked"]) == [1, 2, 3] and len(said) >= 6
    for entry in info["steps"]:
        manifest = RunDir(out / entry["subset"]).read_manifest()
        assert manifest["status"] == "finished" and manifest["config"]["limit"] == 4
        assert manifest["checkpoint"]["step"] == entry["step"]  # the run names the step it evaluated
        assert manifest["config"]["model"] == entry["model_dir"]
        assert manifest["prompt_format"] == read_checkpoint(trained)["config"]["prompt_format"]
        assert (entry["full"] is not None) == (entry["step"] in info["ranked"][:2])
    full = [e for e in info["steps"] if e["full"]]
    assert len(full) == 2
    for entry in full:
        manifest = RunDir(out / entry["full"]).read_manifest()
        assert manifest["config"]["limit"] is None and manifest["checkpoint"]["step"] == entry["step"]
        assert manifest["suites"][0]["n_items"] == 12

    # the report: the sweep directory stands for its runs, and the sweep section plots every step
    page = build_report([str(out)], tmp_path / "sweep.html").read_text()
    section = page[page.index('<section id="sweep"'):page.index("</section>", page.index('<section id="sweep"'))]
    for metric in ("accuracy", "no_answer_rate", "format_compliance"):
        assert f'data-sweep-suite="{SUITE}" data-sweep-metric="{metric}"' in section
    points, pending = sweep_points(out)
    assert pending == [] and len(points) == 3 + 2
    body = section[section.index('id="sweep-table"'):]
    rows = re.findall(r"<tr>(.*?)</tr>", body[body.index("<tbody>"):])
    assert len(rows) == len(points)
    for point in points:
        suite_metrics = RunDir(out / point["run"]).read_metrics()["suites"][SUITE]
        for key in ("accuracy", "no_answer_rate", "format_compliance"):
            assert point[key] == suite_metrics[key]
        assert any(f">{point['run']}<" in row and f'data-sort="{point["step"]}"' in row for row in rows)
    # a comparison of two of the sweep's runs (not the directory) finds its sweep too
    two = [str(out / e["subset"]) for e in info["steps"][:2]]
    assert 'data-sweep-metric="accuracy"' in build_report(two, tmp_path / "two.html").read_text()


def test_a_killed_sweep_resumes_and_keeps_what_was_finished(trained, data, tmp_path):
    out = tmp_path / "killed"
    options = ["--suite", SUITE, "--data-dir", f"{SUITE}={data[SUITE]}", "--limit", "4", "--top", "1",
               "--max-new-tokens", "6", "--out", str(out), "--quiet"]
    command = [sys.executable, "-m", "harness.cli", "sweep", str(trained), *options]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = out / "subset" / "step-000001" / "metrics.json"
    deadline = time.monotonic() + 240
    while not first.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.is_file(), proc.communicate(timeout=30)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert read_sweep(out)["status"] == "running"

    result = CliRunner().invoke(cli, ["sweep", str(trained), *options])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    info = read_sweep(out)
    assert info["status"] == "finished" and [e["step"] for e in info["steps"]] == [1, 2, 3]
    sessions = json.loads((out / "subset" / "step-000001" / "manifest.json").read_text())["measurements"]["sessions"]
    assert len(sessions) == 1  # finished before the kill: kept, not evaluated again
    for entry in info["steps"]:
        assert RunDir(out / entry["subset"]).read_metrics()["completeness"]["complete"]
    assert sum(1 for e in info["steps"] if e["full"]) == 1


def test_every_and_the_errors_a_user_can_fix(trained, data, tmp_path):
    out = sweep(trained, [SUITE], every=2, data_dir=data, out=tmp_path / "every", overrides=FAST)
    info = read_sweep(out)
    assert [e["step"] for e in info["steps"]] == [2, 3]  # multiples of 2, and the final step
    assert all(e["subset"] is None and e["full"] for e in info["steps"])  # no --limit: the whole suite each
    with pytest.raises(RunDirError, match="another limit"):
        sweep(trained, [SUITE], every=2, limit=2, data_dir=data, out=out, overrides=FAST)
    with pytest.raises(RunDirError, match="holds no checkpoint.json"):
        sweep(tmp_path, [SUITE])
    with pytest.raises(ConfigError, match="is one saved step of"):
        sweep(trained / "steps" / "step-000001", [SUITE])
    with pytest.raises(ConfigError, match="--top must be at least 0"):
        sweep(trained, [SUITE], top=-1)
    result = CliRunner().invoke(cli, ["sweep", str(tmp_path / "nothing"), "--suite", SUITE])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_the_sweep_page_in_a_browser(swept, tmp_path):
    from tests.test_report_browser import Page, _chromium, _unavailable

    if _chromium() is None:
        _unavailable("no chromium found on PATH or at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    report = build_report([str(swept[0])], tmp_path / "page.html")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=_chromium(), headless=True)
        view = Page(chromium, report)
        page = view.page
        assert page.locator("#sweep figure[data-sweep-metric]").count() == 3
        assert page.locator("#sweep-table tbody tr").count() == 3 + 2
        assert page.locator("#sweep svg").count() == 3
        page.click('.lang-switch button[data-lang="zh"]')
        assert page.locator("#sweep h2").inner_text() == "检查点扫描"
        assert view.errors == [] and view.dialogs == []
        chromium.close()
