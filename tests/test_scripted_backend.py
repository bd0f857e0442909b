"""`--backend scripted`: a pipeline without a model, from a script file, through the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.runstore import RunDir
from suites import SUITES
from suites.base import LoadOptions

GOLD = {i.sample_id: i.gold for i in SUITES["synth_arith"].load(LoadOptions(split="test"))}
IDS = sorted(GOLD)[:4]


def _answer(value) -> str:
    return f"<REASONING>r</REASONING><SOLUTION>{value}</SOLUTION>"


def _eval(tmp_path, script, *extra):
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script) if not isinstance(script, str) else script)
    args = ["eval", "--backend", "scripted", "--model", str(path), "--suite", "synth_arith", "--limit", "4",
            "--out", str(tmp_path / "run"), "--quiet", *extra]
    return CliRunner().invoke(cli, args)


def test_listed_ids_get_their_response_and_the_rest_the_default(tmp_path):
    script = {"responses": {f"synth_arith/{IDS[0]}": _answer(GOLD[IDS[0]]),
                            f"synth_arith/{IDS[1]}": _answer(GOLD[IDS[1]])},
              "default": _answer(-1)}
    result = _eval(tmp_path, script)
    assert result.exit_code == 0, result.output
    run = RunDir(tmp_path / "run")
    responses = {r["sample_id"]: r["response"] for r in run.read_records()}
    assert responses == {IDS[0]: _answer(GOLD[IDS[0]]), IDS[1]: _answer(GOLD[IDS[1]]),
                         IDS[2]: _answer(-1), IDS[3]: _answer(-1)}
    assert run.read_metrics()["suites"]["synth_arith"]["accuracy"] == pytest.approx(0.5)
    model = run.read_manifest()["model"]
    assert model["model"] == str(tmp_path / "script.json") and len(model["script_sha256"]) == 64


def test_a_list_answers_attempt_i_with_entry_i_cycling(tmp_path):
    script = {"default": ["a", "b"]}
    result = _eval(tmp_path, script, "--n-samples", "3", "--temperature", "0.7")
    assert result.exit_code == 0, result.output
    records = RunDir(tmp_path / "run").read_records()
    assert {(r["attempt"], r["response"]) for r in records} == {(0, "a"), (1, "b"), (2, "a")}


@pytest.mark.parametrize(("script", "extra", "message"), [
    ("{not json", (), "is not valid JSON"),
    ({"default": "x", "responces": {}}, (), "unknown key(s) responces"),
    ({"responses": {"synth_arith/x": 3}}, (), "maps request ids"),
    ({"default": "x", "fail_after_calls": -1}, (), "fail_after_calls is a non-negative integer"),
    ({"default": "x"}, ("--load-in-4bit",), "has no weights"),
    ({"responses": {}}, (), f"has no response for synth_arith/{IDS[0]} and no \"default\""),
])
def test_bad_scripts_are_one_line_errors(tmp_path, script, extra, message):
    result = _eval(tmp_path, script, *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_a_missing_script_is_named(tmp_path):
    args = ["eval", "--backend", "scripted", "--model", str(tmp_path / "nope.json"), "--suite", "synth_arith",
            "--limit", "1", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "nope.json is not a file" in result.stderr


def test_a_simulated_crash_leaves_a_run_that_resumes(tmp_path):
    crashed = _eval(tmp_path, {"default": _answer(1), "fail_after_calls": 1}, "--batch-size", "2")
    assert isinstance(crashed.exception, RuntimeError) and "simulated backend crash" in str(crashed.exception)
    run = RunDir(tmp_path / "run")
    assert run.read_manifest()["status"] == "error" and len(run.read_records()) == 2
    resumed = _eval(tmp_path, {"default": _answer(1)}, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert run.read_manifest()["status"] == "finished"
    assert sorted(r["sample_id"] for r in run.read_records()) == IDS
