"""The command line: help for every command, one-line errors, and the commands on real run files."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.backends.scripted import ScriptedBackend
from harness.cli import cli
from harness.config import EvalConfig
from harness.runner import run_eval


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example: harness" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--suite", "nope"], "unknown suite 'nope'"),
        (["eval", "--prompt-format", "xml"], "unknown prompt format"),
        (["eval", "--n-samples", "4"], "needs sampling"),
        (["eval", "--image-size", "big"], "--image-size"),
        (["eval", "--model", "/no/such/model", "--suite", "synth_arith", "--limit", "1"], "/no/such/model"),
        (["eval", "--suite", "mathvista_testmini", "--limit", "1"], "--data-dir"),
        (["eval", "--config", "/no/such.toml"], "config file not found"),
        (["eval", "--tensor-parallel-size", "2"], "apply to the vllm backend only"),
        (["eval", "--quantization", "fp8"], "fp8 quantization needs the vllm backend"),
        (["eval", "--load-in-4bit", "--quantization", "fp8"], "contradicts quantization"),
        (["eval", "--max-concurrency", "0"], "max_concurrency must be at least 1"),
        (["show", "/no/such/run"], "not a run directory"),
        (["score", "--suite", "gsm8k", "--predictions", "x.json"], "no official prediction-file format"),
    ],
)
def test_errors_are_one_clean_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_config_file_rejects_unknown_keys(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('suites = ["synth_arith"]\ntemprature = 0.5\n')
    result = CliRunner().invoke(cli, ["eval", "--config", str(bad)])
    assert result.exit_code == 2 and "unknown key(s) temprature" in result.output


def test_suites_lists_every_suite():
    rows = json.loads(invoke("suites", "--json").output)
    assert {r["name"] for r in rows} == {"synth_charts", "synth_arith", "mathvista_testmini",
                                         "mathverse_testmini", "gsm8k", "math500"}
    assert all(r["splits"] and r["version"] and r["source"] for r in rows)
    assert "mathvista_testmini" in invoke("suites").output


def test_show_and_rescore_print_the_metrics_table(tmp_path):
    cfg = EvalConfig(model="scripted", suites=["synth_arith"], limit=4, out=str(tmp_path / "run"))
    run_eval(cfg, backend=ScriptedBackend(lambda r, a: "<REASONING>r</REASONING><SOLUTION>1</SOLUTION>"),
             progress=False)
    shown = invoke("show", str(tmp_path / "run"))
    assert shown.exit_code == 0 and "synth_arith" in shown.output and "100.0" in shown.output
    assert json.loads(invoke("show", str(tmp_path / "run"), "--json").output)["suites"]["synth_arith"]["n"] == 4
    assert "synth_arith" in invoke("rescore", str(tmp_path / "run")).output


@pytest.mark.parametrize("name, accuracy", [("output_bard.json", 0.348), ("output_llava_llama_2_13b.json", 0.261)])
def test_score_reproduces_official_mathvista_accuracy(reference_data, name, accuracy):
    path = reference_data / "mathvista" / "outputs" / name
    result = invoke("score", "--suite", "mathvista_testmini", "--predictions", str(path),
                    "--field", "extraction", "--json")
    scored = json.loads(result.output)
    official = json.loads(path.read_text())
    assert scored["n"] == 1000 and scored["accuracy"] == pytest.approx(accuracy)
    assert scored["items"] == {pid: bool(v["true_false"]) for pid, v in official.items()}


def test_tiny_model_command_builds_a_loadable_model(tmp_path):
    out = invoke("tiny-model", str(tmp_path / "m"), "--arch", "qwen3_vl", "--seed", "1").output.strip()
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(out)
    assert model.config.model_type == "qwen3_vl"
