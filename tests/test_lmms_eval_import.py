"""`harness import lmms-eval`: sample logs in lmms-eval's own schema (0.3, 0.5, 0.7) become run directories that
show, report, gate and rescore read; bad logs are one line of error and leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.config import EvalConfig
from harness.runner import plan_suites
from harness.runstore import RunDir
from tests.fixtures.gsm8k_fixture import write_gsm8k_fixture
from tests.fixtures.lmms_eval_fixture import gsm8k_task, mathverse_task, mathvista_task, write_log
from tests.fixtures.mathverse_fixture import write_mathverse_fixture
from tests.fixtures.mathvista_fixture import fixture_problems, write_mathvista_fixture

# Realistic answers to the six fixture problems; lmms-eval's (GPT) verdicts differ from the harness's on two.
RESPONSES = {
    "1": "OB and OC bisect the angles, so angle BOC = 90 + 110/2 = 145°. The answer is (C).",
    "2": "The measuring cup is marked up to 1000 g, so its total volume is 1000.",
    "3": "Using F = kd, d = 12 / 10 = 1.2 m. The answer is 1.2",
    "4": "The tangent at x = 1 rises 2.54 per unit, so the slope is 2.54.",
    "5": "The peak lies between 2014 and 2016, so the answer is [2014, 2016].",
    "6": "Since K is the centroid, DK is 2/3 of the median, so CD = 12. The answer is (B).",
}
HARNESS_VERDICTS = {"1": True, "2": True, "3": True, "4": True, "5": True, "6": False}
LMMS_VERDICTS = {"1": True, "2": True, "3": False, "4": True, "5": True, "6": True}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_error_line(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def mathvista(tmp_path) -> Path:
    return write_mathvista_fixture(tmp_path / "data" / "mathvista")


def import_log(folder: Path, out: Path, *args: str) -> RunDir:
    result = invoke("import", "lmms-eval", str(folder), "-o", str(out), *args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    return RunDir(out)


@pytest.mark.parametrize("version", ["0.3", "0.5", "0.7"])
def test_a_mathvista_log_becomes_a_run_rescored_by_the_harness(tmp_path, mathvista, version):
    log = write_log(tmp_path / "logs", version, [mathvista_task(fixture_problems(6), RESPONSES, LMMS_VERDICTS)])
    run = import_log(log, tmp_path / "run", "--data-dir", str(mathvista))
    records = run.read_records()
    assert [r["sample_id"] for r in records] == list(RESPONSES)
    assert [r["response"] for r in records] == list(RESPONSES.values())
    assert {r["sample_id"]: r["correct"] for r in records} == HARNESS_VERDICTS
    assert {r["sample_id"]: r["scores"]["lmms_eval"]["correct"] for r in records} == LMMS_VERDICTS
    first = records[0]
    assert first["external"] == {"source": "lmms-eval", "task": "mathvista_testmini_cot", "doc_id": 0,
                                 "scores": {"lmms_eval": {"metric": "llm_as_judge_eval", "value": 1.0,
                                                          "correct": True, "extracted": "145°"}}}
    assert first["image"] and (run.images_dir / first["image"]).is_file()
    assert (first["n_output_tokens"] == 40) is (version == "0.7")  # token counts are logged since 0.7

    manifest = run.read_manifest()
    assert manifest["status"] == "finished" and manifest["prompt_format"] == "official"
    assert manifest["model"]["id"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert manifest["generation"]["max_new_tokens"] == 16384 and manifest["generation"]["temperature"] == 0.0
    imported = manifest["imported"]
    assert imported["tool"] == "lmms-eval" and imported["version"] == "main@1a2b3c4d"
    assert imported["model_args"].startswith("pretrained=Qwen/Qwen2.5-VL-7B-Instruct,")
    task = imported["tasks"]["mathvista_testmini_cot"]
    assert task["suite"] == "mathvista_testmini" and task["n_docs"] == 6
    assert task["results"]["llm_as_judge_eval,none"] == 83.33
    # The suite hash is a harness run's on the same items: the two runs are comparable.
    cfg = EvalConfig.from_dict({"suites": ["mathvista_testmini"], "data_dir": {"*": str(mathvista)}})
    assert manifest["suites"][0]["content_sha256"] == plan_suites(cfg)[0].content_sha256()

    suite = run.read_metrics()["suites"]["mathvista_testmini"]
    assert suite["accuracy"] == pytest.approx(5 / 6)
    assert suite["variants"]["lmms_eval"] == {"accuracy": pytest.approx(5 / 6), "n": 6}
    shown = invoke("show", str(run.path))
    assert shown.exit_code == 0 and "lmms_eval 83.3" in shown.output


def test_report_and_gate_accept_an_imported_run_beside_a_harness_run(tmp_path, mathvista):
    """Acceptance: the same responses through `harness eval` and through the import score alike; the gate
    compares the two runs (their prompts differ, which it notes) and two imports of two checkpoints."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"responses": {f"mathvista_testmini/{pid}": r for pid, r in RESPONSES.items()}}))
    harness_run = tmp_path / "harness-run"
    result = invoke("eval", "--backend", "scripted", "--model", str(script), "--suite", "mathvista_testmini",
                    "--data-dir", str(mathvista), "--prompt-format", "official", "--max-new-tokens", "16384",
                    "--out", str(harness_run), "--quiet")
    assert result.exit_code == 0, result.output
    log = write_log(tmp_path / "base", "0.7", [mathvista_task(fixture_problems(6), RESPONSES, LMMS_VERDICTS)])
    imported = import_log(log, tmp_path / "imported", "--data-dir", str(mathvista))
    assert ([(r["sample_id"], r["extracted"], r["correct"]) for r in RunDir(harness_run).read_records()]
            == [(r["sample_id"], r["extracted"], r["correct"]) for r in imported.read_records()])

    gate = invoke("gate", "--baseline", str(harness_run), "--candidate", str(imported.path), "--json")
    assert gate.exit_code == 0, gate.output
    summary = json.loads(gate.stdout)
    assert summary["verdict"] == "pass" and summary["suites"][0]["n_items"] == 6
    assert any("prompts differ: harness prompt format official in" in w and "lmms-eval task mathvista_testmini_cot in" in w
               for w in summary["warnings"])

    worse = dict(RESPONSES, **{pid: "I cannot tell from the figure." for pid in ("1", "2", "3", "4", "5")})
    log = write_log(tmp_path / "cand", "0.7", [mathvista_task(fixture_problems(6), worse, LMMS_VERDICTS)])
    candidate = import_log(log, tmp_path / "candidate", "--data-dir", str(mathvista))
    gate = invoke("gate", "--baseline", str(imported.path), "--candidate", str(candidate.path), "--max-drop", "5",
                  "--alpha", "0.1")
    assert gate.exit_code == 1 and gate.output.startswith("FAIL: mathvista_testmini dropped 83.3 points")

    page = tmp_path / "report.html"
    result = invoke("report", str(harness_run), str(imported.path), str(candidate.path), "-o", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "Qwen2.5-VL-7B-Instruct (lmms-eval)" in html and "mathvista_testmini_cot" in html


def test_gsm8k_keeps_each_filters_verdict_and_maps_doc_ids_to_sample_ids(tmp_path):
    data = write_gsm8k_fixture(tmp_path / "data")
    responses = ["24 - 15 = 9 rolls. The answer is 9.", "17 * 125 = 2,125. The answer is 2125.",
                 "4 - 7 = -3, so it is -3 degrees now.", "12 * 6 = 72 pages. The answer is 70."]
    log = write_log(tmp_path / "logs", "0.7", [gsm8k_task(responses)])
    run = import_log(log, tmp_path / "run", "--data-dir", f"gsm8k={data}")
    records = run.read_records()
    assert [r["sample_id"] for r in records] == ["test-0000", "test-0001", "test-0002", "test-0003"]
    assert [r["correct"] for r in records] == [True, True, False, False]  # the harness's strict rule
    strict = [r["scores"]["lmms_eval:strict-match"]["correct"] for r in records]
    flexible = [r["scores"]["lmms_eval:flexible-extract"] for r in records]
    assert strict == [True, True, False, False]
    assert [v["correct"] for v in flexible] == [True, True, True, False]
    assert flexible[2]["extracted"] == "-3"
    manifest = run.read_manifest()
    assert manifest["imported"]["tasks"]["gsm8k_cot_zeroshot"]["filters"] == ["strict-match", "flexible-extract"]
    assert manifest["generation"]["max_new_tokens"] is None  # the task does not set one
    variants = run.read_metrics()["suites"]["gsm8k"]["variants"]
    assert variants["lmms_eval:flexible-extract"]["accuracy"] == 0.75


def test_mathverse_version_tasks_share_one_suite_and_text_only_is_its_own_split(tmp_path):
    data = write_mathverse_fixture(tmp_path / "data", n_problems=2)
    rows = json.loads((data / "testmini.json").read_text())
    lite = [r for r in rows if r["problem_version"] == "Text Lite"]
    only = [r for r in rows if r["problem_version"] == "Vision Only"]
    answers = {r["sample_index"]: ("The answer is C" if r["answer"] == "C" else "L = 13") for r in rows}
    tasks = [mathverse_task(lite, answers, {r["sample_index"]: 1 for r in lite}, "mathverse_testmini_text_lite",
                            "text_lite"),
             mathverse_task(only, answers, {r["sample_index"]: 0 for r in only}, "mathverse_testmini_vision_only",
                            "vision_only")]
    run = import_log(write_log(tmp_path / "logs", "0.5", tasks), tmp_path / "run", "--data-dir", str(data))
    records = run.read_records()
    assert sorted(r["sample_id"] for r in records) == sorted(r["sample_index"] for r in lite + only)
    assert all(r["correct"] for r in records)
    assert [r["scores"]["lmms_eval"]["correct"] for r in records if r["sample_id"] in {"2", "7"}] == [True, True]
    assert run.read_manifest()["suites"][0]["n_items"] == 4

    text = json.loads((data / "testmini_text_only.json").read_text())
    log = write_log(tmp_path / "text", "0.7", [mathverse_task(text, {r["sample_index"]: "C" for r in text},
                                                              {r["sample_index"]: 1 for r in text},
                                                              "mathverse_testmini_text_only", "text_only")])
    run = import_log(log, tmp_path / "text-run", "--data-dir", str(data))
    assert run.read_manifest()["suites"][0]["split"] == "testmini_text_only"


def test_rescore_keeps_lmms_evals_verdicts_and_resume_is_refused(tmp_path, mathvista):
    log = write_log(tmp_path / "logs", "0.7", [mathvista_task(fixture_problems(6), RESPONSES, LMMS_VERDICTS)])
    run = import_log(log, tmp_path / "run", "--data-dir", str(mathvista))
    before = run.read_records()
    assert invoke("rescore", str(run.path)).exit_code == 0
    assert run.read_records() == before
    one_error_line(invoke("eval", "--out", str(run.path), "--resume"), "imported from lmms-eval", "nothing to resume")


def _broken(tmp_path: Path, mathvista: Path, edit) -> Path:
    log = write_log(tmp_path / "logs", "0.7", [mathvista_task(fixture_problems(6), RESPONSES, LMMS_VERDICTS)])
    samples = next(log.glob("*_samples_*.jsonl"))
    samples.write_text(edit(samples.read_text()), encoding="utf-8")
    return log


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda text: text[: len(text) // 2], ["_samples_mathvista_testmini_cot.jsonl:", "is not valid JSON"]),
    (lambda text: text.replace('"doc_id": 3', '"doc": 3', 1), ["jsonl:4 has no doc_id"]),
    (lambda text: text.replace('"target": "1000"', '"target": "999"', 1),
     ["jsonl:2: doc 1's target '999' is not the gold '1000'", "the log is of other data"]),
    (lambda text: text.replace('"question_id": "6"', '"question_id": "600"', 1),
     ["doc 5 is mathvista_testmini item '600'", "does not have"]),
])
def test_a_malformed_log_is_one_line_and_writes_nothing(tmp_path, mathvista, edit, expected):
    log = _broken(tmp_path, mathvista, edit)
    one_error_line(invoke("import", "lmms-eval", str(log), "-o", str(tmp_path / "run"), "--data-dir", str(mathvista)),
                   *expected)
    assert not (tmp_path / "run").exists()


def test_unknown_and_clashing_tasks_are_refused_unless_chosen(tmp_path, mathvista):
    tasks = [mathvista_task(fixture_problems(6), RESPONSES, LMMS_VERDICTS, name=name)
             for name in ("mathvista_testmini_cot", "mathvista_testmini_format")]
    log = write_log(tmp_path / "logs", "0.7", tasks)
    (log / "20250301_101500_samples_mmmu_val.jsonl").write_text('{"doc_id": 0, "filtered_resps": "A"}\n')
    out = str(tmp_path / "run")
    one_error_line(invoke("import", "lmms-eval", str(log), "-o", out, "--data-dir", str(mathvista)),
                   "lmms-eval task 'mmmu_val' is not one the harness imports", "--task")
    one_error_line(invoke("import", "lmms-eval", str(log), "-o", out, "--data-dir", str(mathvista),
                          "--task", "mathvista_testmini_cot", "--task", "mathvista_testmini_format"),
                   "answered by tasks mathvista_testmini_cot and mathvista_testmini_format", "one at a time")
    one_error_line(invoke("import", "lmms-eval", str(log), "-o", out, "--task", "mathverse_testmini"),
                   "has no samples of task(s) mathverse_testmini")
    assert not Path(out).exists()
    run = import_log(log, Path(out), "--data-dir", str(mathvista), "--task", "mathvista_testmini_format")
    assert list(run.read_manifest()["imported"]["tasks"]) == ["mathvista_testmini_format"]
    one_error_line(invoke("import", "lmms-eval", str(log), "-o", out, "--task", "mathvista_testmini_cot"),
                   "already holds a run")


def test_paths_without_a_log_say_what_lmms_eval_writes(tmp_path):
    (tmp_path / "empty").mkdir()
    one_error_line(invoke("import", "lmms-eval", str(tmp_path / "empty")), "no lmms-eval samples files",
                   "--log_samples")
    (tmp_path / "notes.json").write_text("{}")
    one_error_line(invoke("import", "lmms-eval", str(tmp_path / "notes.json")), "neither an lmms-eval samples file")
    one_error_line(invoke("import", "lmms-eval", str(tmp_path / "nope")), "not found")
