"""The LLM answer judge end to end against a real OpenAI-compatible server on loopback
(tests/openai_server.py). The judge there is a stand-in that answers from tables this test writes (a
tiny model's verdicts would mean nothing); what is checked is the plumbing: which records are judged,
the prompts sent, the verdicts and raw replies in the records, the cache (a second rescore makes no
call), the agreement and token figures in the metrics, and the key in no file of the run."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from harness.backends.scripted import ScriptedBackend
from harness.cli import cli
from harness.config import EvalConfig
from harness.judge_cache import JudgeCache
from harness.judge_prompts import (
    EXTRACTION_INSTRUCTION,
    JUDGEMENT_INSTRUCTION,
    MATHVISTA_INSTRUCTION,
    read_extraction,
    read_judgement,
)
from harness.llm_judge import JudgeSettings, judge_records
from harness.runner import run_eval
from harness.runstore import RunDir
from suites import SUITES
from suites.base import LoadOptions
from tests.fixtures.mathvista_fixture import fixture_problems, fixture_query, write_mathvista_fixture
from tests.openai_server import OpenAIServer, message_text
from tests.test_openai_backend import assert_key_in_no_file

KEY = "sk-judge-fedcba9876543210"


class StandInJudge:
    """Answers the three prompts from tables: response -> extracted answer; (gold, answer) -> 1 or 0."""

    def __init__(self, extractions: dict[str, str]):
        self.extractions = extractions

    def __call__(self, body):
        text = message_text(body)
        if text.startswith(MATHVISTA_INSTRUCTION):
            case = text.rsplit("Model response: ", 1)[1].rsplit("\n\nExtracted answer:", 1)[0]
            return self.extractions.get(case, "None")
        if text.startswith(EXTRACTION_INSTRUCTION):
            case = text.rsplit("Model response: ", 1)[1].rsplit("\nExtracted answer:", 1)[0]
            tagged = re.search(r"<SOLUTION>(.*?)</SOLUTION>", case)
            return tagged.group(1) if tagged else self.extractions.get(case, "None")
        assert text.startswith(JUDGEMENT_INSTRUCTION), text[:80]
        gold = re.findall(r"\[Standard answer\]: (.*)", text)[-1]
        answer = re.findall(r"\[Model answer\]: (.*)", text)[-1]
        return "Judgement: 1" if gold.strip() == answer.strip() else "0"


def arith_run(tmp_path):
    """A synth_arith run of 6 items: 2 answered right, 1 wrong, 3 in sentences the rules cannot read."""
    items = SUITES["synth_arith"].load(LoadOptions(split="test"))[:6]
    golds = {f"synth_arith/{i.sample_id}": int(i.gold) for i in items}
    sentences = {2: "She ends up with as many as the packs hold in total.", 4: "I cannot tell from the question.",
                 5: "Roughly a few hundred, give or take."}

    def answer(request, attempt):
        index = int(request.request_id[-1])
        gold = golds[request.request_id]
        if index in sentences:
            return sentences[index]
        return f"<REASONING>r</REASONING><SOLUTION>{gold + (1 if index == 3 else 0)}</SOLUTION>"

    cfg = EvalConfig.from_dict({"model": "scripted", "suites": ["synth_arith"], "limit": 6,
                                "out": str(tmp_path / "run")})
    path = run_eval(cfg, backend=ScriptedBackend(answer), progress=False)
    extractions = {sentences[2]: str(golds["synth_arith/test-00002"]), sentences[5]: str(golds["synth_arith/test-00005"] + 1)}
    return path, extractions


def rescore_with_judge(path, server, cache, *extra):
    result = CliRunner().invoke(cli, ["rescore", str(path), "--judge", server.base_url, "--judge-api-key-env",
                                      "TEST_JUDGE_KEY", "--judge-cache", str(cache), *extra])
    assert result.exit_code == 0, result.output
    return result


def test_rescore_judges_what_the_rules_cannot_read_and_caches_every_call(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    path, extractions = arith_run(tmp_path)
    cache = tmp_path / "judge-cache"
    with OpenAIServer(StandInJudge(extractions), models=("judge-model",), api_key=KEY) as server:
        result = rescore_with_judge(path, server, cache)
        first_pass = list(server.calls)
        # three extractions (the unread answers), then two judgements: the third found no answer
        texts = [message_text(c.body) for c in first_pass]
        assert sorted(t.split("\n", 1)[0][:40] for t in texts) == sorted(
            [EXTRACTION_INSTRUCTION[:40]] * 3 + [JUDGEMENT_INSTRUCTION[:40]] * 2)
        assert all(c.body["temperature"] == 0.0 and c.body["model"] == "judge-model" for c in first_pass)
        run = RunDir(path)
        records = {r["sample_id"]: r for r in run.read_records()}
        question = records["test-00002"]["question"]
        extraction = next(t for t in texts if t.startswith(EXTRACTION_INSTRUCTION) and question in t)
        assert extraction.endswith(f"Question: {question}\nModel response: {records['test-00002']['response']}\n"
                                   f"Extracted answer:")
        judgement = next(t for t in texts if t.startswith(JUDGEMENT_INSTRUCTION) and question in t)
        assert f"[Standard answer]: {records['test-00002']['gold']}\n" in judgement

        assert [sid for sid, r in records.items() if r["llm_judge"]] == ["test-00002", "test-00004", "test-00005"]
        right = records["test-00002"]["llm_judge"]
        assert not records["test-00002"]["correct"]  # `correct` stays the rules' verdict
        assert right["correct"] is True and right["method"] == "extract_then_judge" and right["reason"] == "no_answer"
        assert right["extracted"] == records["test-00002"]["gold"] and right["model"] == "judge-model"
        assert [c["step"] for c in right["calls"]] == ["extract", "judge"]
        assert right["calls"][1]["text"] == "Judgement: 1" and not any(c["cached"] for c in right["calls"])
        assert all(c["prompt_tokens"] > 50 and c["completion_tokens"] >= 1 and c["latency_s"] >= 0
                   for c in right["calls"])
        none_found = records["test-00004"]["llm_judge"]
        assert none_found["extracted"] is None and none_found["correct"] is False and len(none_found["calls"]) == 1
        assert records["test-00005"]["llm_judge"]["correct"] is False

        metrics = run.read_metrics()["suites"]["synth_arith"]
        judged = metrics["llm_judge"]
        assert metrics["accuracy"] == pytest.approx(2 / 6)
        assert judged["accuracy"] == pytest.approx(3 / 6) and judged["judged"] == 3 and judged["verdicts"] == 3
        assert judged["agreement"] == pytest.approx(2 / 3) and judged["rule_wrong_judge_right"] == 1
        assert judged["calls"] == 5 and judged["calls_from_cache"] == 0
        usage = [c.body for c in first_pass]
        assert judged["prompt_tokens"] == sum(len(message_text(b).split()) for b in usage)
        assert "judge judge-model on synth_arith: accuracy 50.0 (rules 33.3)" in result.output
        manifest = run.read_manifest()
        assert manifest["llm_judge"]["model"] == "judge-model" and manifest["llm_judge"]["requests"]["requests"] == 5
        assert manifest["llm_judge"]["methods"] == {"synth_arith": "extract_then_judge"}

        # a second rescore pays for nothing: every call comes from the cache
        result = rescore_with_judge(path, server, cache)
        assert len(server.calls) == len(first_pass)
        assert "0 call(s) sent" in result.stderr and "5 answered from the cache" in result.stderr
        again = {r["sample_id"]: r for r in run.read_records()}
        assert again["test-00002"]["llm_judge"]["calls"][1]["text"] == "Judgement: 1"
        assert all(c["cached"] for r in again.values() if r["llm_judge"] for c in r["llm_judge"]["calls"])
        assert run.read_metrics()["suites"]["synth_arith"]["llm_judge"]["calls_from_cache"] == 5

        # --judge-all judges the rule-read answers too; only their prompts are new
        rescore_with_judge(path, server, cache, "--judge-all")
        new = server.calls[len(first_pass):]
        assert len(new) == 3 + 3  # three extractions, three judgements
        judged = run.read_metrics()["suites"]["synth_arith"]["llm_judge"]
        assert judged["judged"] == 6 and judged["agreement"] == pytest.approx(5 / 6)
        # a rescore without --judge keeps the verdicts
        CliRunner().invoke(cli, ["rescore", str(path)])
        assert run.read_metrics()["suites"]["synth_arith"]["llm_judge"]["judged"] == 6
    assert_key_in_no_file(path, KEY)
    assert len(JudgeCache.for_model(cache, "judge-model").entries) == 11


def test_mathvista_answers_are_extracted_by_the_judge_and_scored_by_the_suite(tmp_path):
    data = write_mathvista_fixture(tmp_path / "mv", n=3)
    problems = fixture_problems(3)
    # Answers no rule reads (the rules read numbers written as words, so these have none).
    sentences = {"1": "Adding the two bisected halves gives the third of the listed angles.",
                 "2": "The cup holds a full kilogram when it is full.",
                 "3": "It is compressed by a bit more than a metre."}
    responses = {f"mathvista_testmini/{pid}": text for pid, text in sentences.items()}
    extractions = {sentences["1"]: "C", sentences["2"]: "1000", sentences["3"]: "1.5"}
    with OpenAIServer(StandInJudge(extractions), models=("judge-model",)) as server:
        cfg = EvalConfig.from_dict({"model": "scripted", "suites": ["mathvista_testmini"], "data_dir": {"*": str(data)},
                                    "judge": server.base_url, "judge_cache": str(tmp_path / "cache"),
                                    "out": str(tmp_path / "run")})
        path = run_eval(cfg, backend=ScriptedBackend(lambda r, a: responses[r.request_id]), progress=False)
        texts = {c.body["messages"][0]["content"] for c in server.calls}
    records = {r["sample_id"]: r for r in RunDir(path).read_records()}
    assert all(r["extracted"] is None and not r["correct"] for r in records.values())  # the rules read none
    verdicts = {pid: (r["llm_judge"]["extracted"], r["llm_judge"]["correct"]) for pid, r in records.items()}
    assert verdicts == {"1": ("C", True), "2": ("1000", True), "3": ("1.5", False)}
    assert all(r["llm_judge"]["method"] == "mathvista_extraction" and len(r["llm_judge"]["calls"]) == 1
               for r in records.values())
    for pid, problem in problems.items():  # the item's own zero-shot query, then the response
        assert any(t.startswith(MATHVISTA_INSTRUCTION) and t.endswith(
            f"{fixture_query(problem)}\n\nModel response: {sentences[pid]}\n\nExtracted answer:") for t in texts)
    manifest = RunDir(path).read_manifest()
    assert manifest["status"] == "finished" and manifest["llm_judge"]["methods"] == {
        "mathvista_testmini": "mathvista_extraction"}
    judged = RunDir(path).read_metrics()["suites"]["mathvista_testmini"]["llm_judge"]
    assert judged["accuracy"] == pytest.approx(2 / 3) and judged["agreement"] == pytest.approx(1 / 3)


def test_failed_judge_calls_leave_no_verdict_and_are_tried_again(tmp_path):
    path, extractions = arith_run(tmp_path)
    with OpenAIServer(StandInJudge(extractions), models=("judge-model",)) as server:
        server.fail_when = lambda body: "Roughly" in message_text(body)
        settings = JudgeSettings(judge=server.base_url, max_retries=1, retry_backoff_s=0.01,
                                 cache_dir=str(tmp_path / "cache"))
        records = RunDir(path).read_records()
        info = judge_records(records, settings)
        failed = next(r for r in records if r["sample_id"] == "test-00005")["llm_judge"]
        assert failed["correct"] is None and "HTTP 500" in failed["error"]
        assert info["requests"]["failed"] == 1 and info["requests"]["retries"] == 1
        server.fail_when = None
        before = len(server.calls)
        judge_records(records, settings)
        assert len(server.calls) - before == 2  # the failed extraction again, then its judgement
    from harness.judge_metrics import judge_metrics

    assert judge_metrics(records)["verdicts"] == 3


def test_a_judge_server_with_several_models_needs_a_name(tmp_path):
    path, _ = arith_run(tmp_path)
    with OpenAIServer(lambda body: "1", models=("a", "b")) as server:
        result = CliRunner().invoke(cli, ["rescore", str(path), "--judge", server.base_url])
        assert result.exit_code == 2 and "serves 2 models (a, b); name one" in result.stderr
        result = CliRunner().invoke(cli, ["rescore", str(path), "--judge", "c", "--judge-base-url", server.base_url])
        assert result.exit_code == 2 and "does not serve 'c'" in result.stderr
    result = CliRunner().invoke(cli, ["rescore", str(path), "--judge-all"])
    assert result.exit_code == 2 and "need a judge" in result.stderr


def test_the_judges_replies_are_read_leniently():
    assert read_extraction("Extracted answer: C\n\nBecause ...") == "C"
    assert read_extraction("**42**") == "42" and read_extraction("None.") is None and read_extraction("") is None
    assert read_judgement("1") is True and read_judgement("Judgement: 0") is False
    assert read_judgement("judgment:1") is True and read_judgement("10") is None
    assert read_judgement("The answers agree.") is None
