"""Scoring modes and "no answer" through the whole pipeline: eval, the records, the manifest, the metrics,
show, rescore, and runs written before both verdicts were kept (schema version 1)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.runstore import RunDir
from tests.fixtures.mathvista_fixture import write_mathvista_fixture

# pids 1, 2, 4 are right; 3 and 5 abstain; 6 answers 18.5, no option, whose nearest choice is the gold 18.
RESPONSES = {
    "mathvista_testmini/1": "The angle at B is 180° - 35° = 145°. The answer is C",
    "mathvista_testmini/2": "The cup holds 1,000 g. The answer is 1000",
    "mathvista_testmini/3": "Sorry, I can't help with images of people yet.",
    "mathvista_testmini/4": "Each side is 2.54 cm, so the answer is 2.54",
    "mathvista_testmini/5": "Sorry, I can't help with images of people yet.",
    "mathvista_testmini/6": "Adding the two segments gives \\boxed{18.5}",
}


@pytest.fixture
def mathvista_run(tmp_path):
    data = write_mathvista_fixture(tmp_path / "data", "github")
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"responses": RESPONSES}), encoding="utf-8")

    def evaluate(out, *extra):
        args = ["eval", "--backend", "scripted", "--model", str(script), "--suite", "mathvista_testmini",
                "--data-dir", str(data), "--prompt-format", "official", "--out", str(tmp_path / out), "--quiet",
                *extra]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return tmp_path / out

    return evaluate


def test_records_keep_both_verdicts_and_whether_an_answer_was_given(mathvista_run):
    run = RunDir(mathvista_run("strict"))
    assert run.read_manifest()["scoring"] == "strict"
    records = {r["sample_id"]: r for r in run.read_records()}
    assert [records[p]["answered"] for p in "123456"] == [True, True, False, True, False, True]
    assert records["3"]["extractor"] == "response>abstention" and records["3"]["extracted"] is None
    assert records["6"]["extractor"] == "boxed>raw"
    assert [records[p]["correct_strict"] for p in "123456"] == [True, True, False, True, False, False]
    assert [records[p]["correct_official"] for p in "123456"] == [True, True, False, True, False, True]
    assert all(r["correct"] == r["correct_strict"] for r in records.values())
    metrics = run.read_metrics()
    m = metrics["suites"]["mathvista_testmini"]
    assert metrics["scoring"] == "strict"
    assert (m["accuracy"], m["accuracy_strict"], m["accuracy_official"]) == (0.5, 0.5, 4 / 6)
    assert m["no_answer_rate"] == pytest.approx(2 / 6)


def test_show_prints_both_accuracies_and_the_no_answer_rate(mathvista_run):
    path = mathvista_run("strict")
    out = CliRunner().invoke(cli, ["show", str(path)])
    assert out.exit_code == 0, out.output
    assert "scoring strict" in out.stdout
    for header in ("strict %", "official %", "Δ pts", "no answer %"):
        assert header in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("│ mathvista_testmini"))
    assert [c.strip() for c in row.split("│")][3:9] == ["50.0", "18.8-81.2", "50.0", "66.7", "+16.7", "33.3"]


def test_rescore_and_eval_take_the_official_mode(mathvista_run, tmp_path):
    path = mathvista_run("strict")
    records = RunDir(path).read_records()
    strict = {r["sample_id"]: r["correct_strict"] for r in records}
    official = {r["sample_id"]: r["correct_official"] for r in records}
    result = CliRunner().invoke(cli, ["rescore", str(path), "--scoring", "official"])
    assert result.exit_code == 0, result.output
    run = RunDir(path)
    assert run.read_manifest()["scoring"] == "official" and run.read_manifest()["config"]["scoring"] == "official"
    assert {r["sample_id"]: r["correct"] for r in run.read_records()} == official
    assert {r["sample_id"]: r["correct_strict"] for r in run.read_records()} == strict
    m = run.read_metrics()["suites"]["mathvista_testmini"]
    assert m["accuracy"] == m["accuracy_official"] and run.read_metrics()["scoring"] == "official"
    fresh = RunDir(mathvista_run("official", "--scoring", "official"))
    assert fresh.read_manifest()["scoring"] == "official"
    assert fresh.read_metrics()["suites"]["mathvista_testmini"]["accuracy"] == m["accuracy"]
    # a run keeps its scoring on resume: another one is refused with one line
    again = CliRunner().invoke(cli, ["eval", "--out", str(path), "--resume", "--scoring", "strict"])
    assert again.exit_code == 2 and "scoring was 'official'" in again.stderr


def _as_version_1(path):
    run = RunDir(path)
    manifest = json.loads(run.manifest_path.read_text())
    manifest["schema_version"] = 1
    del manifest["scoring"], manifest["config"]["scoring"]
    run.manifest_path.write_text(json.dumps(manifest))
    lines = []
    for line in run.records_path.read_text().splitlines():
        record = json.loads(line)
        for key in ("answered", "correct_strict", "correct_official"):
            del record[key]
        lines.append(json.dumps(record))
    run.records_path.write_text("\n".join(lines) + "\n")
    metrics = json.loads(run.metrics_path.read_text())
    metrics["schema_version"] = 1
    del metrics["scoring"]
    for suite in metrics["suites"].values():
        for key in ("accuracy_strict", "accuracy_official", "no_answer_rate"):
            del suite[key]
    run.metrics_path.write_text(json.dumps(metrics))


def test_a_version_1_run_still_reads_and_rescoring_fills_it_in(mathvista_run, tmp_path):
    path = mathvista_run("old")
    _as_version_1(path)
    run = RunDir(path)
    assert run.read_manifest()["scoring"] == "strict"
    assert all(r["correct_official"] is None and r["correct_strict"] == r["correct"] for r in run.read_records())
    m = run.read_metrics()["suites"]["mathvista_testmini"]
    assert (m["accuracy_strict"], m["accuracy_official"], m["no_answer_rate"]) == (0.5, None, None)
    assert sum(r["answered"] for r in run.read_records()) == 4  # upgraded: whether something was extracted
    out = CliRunner().invoke(cli, ["show", str(path)])
    assert out.exit_code == 0 and "harness rescore RUN fills it in" in out.stdout
    other = mathvista_run("new")
    report = CliRunner().invoke(cli, ["report", str(other), str(path), "-o", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert CliRunner().invoke(cli, ["rescore", str(path)]).exit_code == 0
    assert json.loads(run.manifest_path.read_text())["schema_version"] == 2
    m = run.read_metrics()["suites"]["mathvista_testmini"]
    assert m["accuracy_official"] == 4 / 6 and m["no_answer_rate"] == pytest.approx(2 / 6)


def test_a_query_listing_the_options_in_another_order_is_read_by_its_own_letters(tmp_path):
    """The data set's query lists ten testmini problems' options in another order than `choices`; under
    the official prompt format the model answers by the query's letters, and the record keeps the listing."""
    data = write_mathvista_fixture(tmp_path / "data", "github", n=2)
    problems = json.loads((data / "testmini.json").read_text(encoding="utf-8"))
    problem = problems["1"]  # choices 135°, 140°, 145°, 150°; gold 145°
    listing = ["150°", "145°", "140°", "135°"]
    problem["query"] = ("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, "
                        f"at the end.\nQuestion: {problem['question']}\nChoices:\n"
                        + "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(listing)))
    (data / "testmini.json").write_text(json.dumps(problems), encoding="utf-8")
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"responses": {"mathvista_testmini/1": "So the answer is (B).",
                                                "mathvista_testmini/2": "The answer is 1000"}}), encoding="utf-8")

    def run(fmt):
        out = tmp_path / fmt
        result = CliRunner().invoke(cli, ["eval", "--backend", "scripted", "--model", str(script), "--suite",
                                          "mathvista_testmini", "--data-dir", str(data), "--prompt-format", fmt,
                                          "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        return {r["sample_id"]: r for r in RunDir(out).read_records()}

    official = run("official")["1"]
    assert official["meta"]["listed_choices"] == listing
    assert official["correct_strict"] is True  # (B) as listed: 145°, the gold; choices[1] would be 140°
    assert official["correct_official"] is False  # the official pipeline maps B through `choices`: 140°
    tagged = run("reasoning-solution")["1"]  # the tag formats list `choices` in order: nothing to keep
    assert "listed_choices" not in tagged["meta"]
