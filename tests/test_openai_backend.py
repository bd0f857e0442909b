"""The openai backend against a real OpenAI-compatible HTTP server on loopback (tests/openai_server.py):
images as data URLs, sampling mapped into the request, retries on 429 / 500 / a dropped connection /
a timeout, failed requests recorded and sent again by --resume, the key in no file of the run."""

from __future__ import annotations

import base64
import io
import time

import pytest
from click.testing import CliRunner
from PIL import Image

from core.errors import BackendError, ConfigError, ItemsFailedError
from harness.cli import cli
from harness.config import EvalConfig
from harness.openai_client import ChatClient, ClientSettings, normalized_base_url, retry_after_s
from harness.runner import run_eval
from harness.runstore import RunDir
from suites import SUITES
from suites.base import LoadOptions
from tests.openai_server import OpenAIServer, message_text

KEY = "sk-test-0123456789abcdef"
ANSWER = "<REASONING>adding up</REASONING><SOLUTION>7</SOLUTION>"


def questions(suite: str, n: int) -> list[str]:
    return [item.question for item in SUITES[suite].load(LoadOptions(split=SUITES[suite].default_split))[:n]]


def assert_key_in_no_file(run_dir, key=KEY):
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files and not [p.name for p in files if key.encode() in p.read_bytes()]


def test_a_run_retries_records_failures_and_resume_sends_exactly_those(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", KEY)
    failing = questions("synth_arith", 2)
    with OpenAIServer(lambda body: ANSWER, api_key=KEY, reply_model="served-model-v2") as server:
        server.faults += ["429", "500", "drop", "slow"]
        server.slow_s = 2.0
        server.fail_when = lambda body: any(q in message_text(body) for q in failing)
        out = tmp_path / "run"
        result = CliRunner().invoke(cli, [
            "eval", "--backend", "openai", "--model", "served-model", "--base-url", server.base_url,
            "--api-key-env", "TEST_OPENAI_KEY", "--limit", "4", "--max-new-tokens", "32", "--max-retries", "5",
            "--retry-backoff", "0.01", "--request-timeout", "0.5", "--max-concurrency", "8", "--out", str(out),
            "--quiet"])
        assert result.exit_code == 0, result.output
        assert "2 request(s) failed after retries" in result.stderr and "--resume" in result.stderr
        run = RunDir(out)
        records = run.read_records()
        failed = [r for r in records if r["request_failed"]]
        assert sorted(r["question"] for r in failed) == sorted(failing)
        assert all(r["error"].startswith("request failed after 6 attempt(s); last: HTTP 500") for r in failed)
        assert all(r["response"] is None and not r["correct"] for r in failed)
        answered = [r for r in records if not r["request_failed"]]
        assert len(answered) == 6 and all(r["response"] == ANSWER and r["error"] is None for r in answered)
        assert all(r["n_output_tokens"] == len(ANSWER.split()) and r["n_prompt_tokens"] > 5 for r in answered)  # the server's usage
        assert run.read_metrics()["suites"]["synth_arith"]["errors"] == 2

        # every fault was retried, and the 429's Retry-After (1 s) was waited for
        manifest = run.read_manifest()
        stats = manifest["model"]["requests"]
        assert stats["retry_causes"].keys() >= {"http_429", "http_500", "connection", "timeout"}
        assert stats["failed"] == 2 and stats["requests"] == 8
        limited = next(c for c in server.calls if c.fault == "429")
        again = next(c for c in server.calls if c.body == limited.body and c.time > limited.time)
        assert again.time - limited.time >= 1.0
        # the manifest names the server's model and the request's parameters
        assert manifest["model"]["served_model"] == "served-model-v2"
        assert manifest["model"]["request_params"] == {"model": "served-model", "max_tokens": 32, "temperature": 0.0}
        assert manifest["model"]["server"]["models"] == ["served-model"]
        assert manifest["model"]["api_key_env"] == "TEST_OPENAI_KEY" and manifest["model"]["api_key_sent"]
        assert server.unauthorized == 0 and {c.authorization for c in server.calls} == {f"Bearer {KEY}"}

        # images went as PNG data URLs holding the pixels
        image_parts = [p for c in server.calls for m in c.body["messages"] for p in m["content"]
                       if p["type"] == "image_url"]
        assert image_parts
        url = image_parts[0]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size[0] > 8

        server.fail_when = None
        before = len(server.calls)
        run_eval(EvalConfig.from_dict({**manifest["config"], "out": str(out)}), resume=True, progress=False)
        resent = server.calls[before:]
        assert sorted(message_text(c.body).split("\n\n")[0] for c in resent) == sorted(failing)
    records = run.read_records()
    assert len(records) == 8 and not any(r["request_failed"] or r["error"] for r in records)
    manifest = run.read_manifest()
    assert manifest["status"] == "finished" and manifest["repairs"][-1]["failed_requests_resent"] == 2
    assert_key_in_no_file(out)


def test_sampling_parameters_go_into_the_request(tmp_path):
    with OpenAIServer(lambda body: ["first answer", "second answer here"], report_usage=False) as server:
        cfg = EvalConfig.from_dict({"backend": "openai", "model": "served-model", "base_url": server.base_url,
                                    "suites": ["synth_arith"], "limit": 2, "n_samples": 2, "temperature": 0.7,
                                    "top_p": 0.9, "top_k": 20, "seed": 3, "max_new_tokens": 64,
                                    "out": str(tmp_path / "run")})
        path = run_eval(cfg, progress=False)
        bodies = [c.body for c in server.calls]
    assert {k: bodies[0][k] for k in ("model", "max_tokens", "temperature", "top_p", "top_k", "n")} == {
        "model": "served-model", "max_tokens": 64, "temperature": 0.7, "top_p": 0.9, "top_k": 20, "n": 2}
    assert len({b["seed"] for b in bodies}) == 2  # a seed per request, from --seed and the request id
    records = RunDir(path).read_records()
    assert sorted((r["sample_id"], r["attempt"], r["response"]) for r in records) == [
        ("test-00000", 0, "first answer"), ("test-00000", 1, "second answer here"),
        ("test-00001", 0, "first answer"), ("test-00001", 1, "second answer here")]
    assert all(r["n_output_tokens"] is None and r["n_prompt_tokens"] is None for r in records)  # no usage sent
    params = RunDir(path).read_manifest()["model"]["request_params"]
    assert params["n"] == 2 and params["seed"].startswith("per request")


def test_a_server_that_cannot_be_used_stops_the_run_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-wrong")
    with OpenAIServer(lambda body: ANSWER, api_key=KEY) as server:
        base = {"backend": "openai", "base_url": server.base_url, "suites": ["synth_arith"], "limit": 2,
                "max_retries": 0}
        with pytest.raises(BackendError, match=r"refused the request \(HTTP 401\); check \$TEST_OPENAI_KEY"):
            run_eval(EvalConfig.from_dict({**base, "model": "served-model", "api_key_env": "TEST_OPENAI_KEY",
                                           "out": str(tmp_path / "a")}), progress=False)
        monkeypatch.setenv("TEST_OPENAI_KEY", KEY)
        with pytest.raises(ConfigError, match="does not serve 'other'; it serves: served-model"):
            run_eval(EvalConfig.from_dict({**base, "model": "other", "api_key_env": "TEST_OPENAI_KEY",
                                           "out": str(tmp_path / "b")}), progress=False)
        port = server.httpd.server_address[1]
    with pytest.raises(BackendError, match="cannot reach the server"):
        run_eval(EvalConfig.from_dict({**base, "model": "served-model", "base_url": f"http://127.0.0.1:{port}",
                                       "out": str(tmp_path / "c")}), progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")  # no run was left behind
    assert not server.calls  # no chat request was sent


def test_options_of_the_openai_backend_are_checked():
    with pytest.raises(ConfigError, match="needs --model"):
        EvalConfig.from_dict({"backend": "openai"})
    with pytest.raises(ConfigError, match="adapter do not apply to the openai backend"):
        EvalConfig.from_dict({"backend": "openai", "model": "m", "adapter": "a"})
    with pytest.raises(ConfigError, match="base_url apply to the openai backend only"):
        EvalConfig.from_dict({"base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(ConfigError, match="max_retries apply to the openai backend or a judge only"):
        EvalConfig.from_dict({"max_retries": 2})
    with pytest.raises(ConfigError, match="judge_all need a judge"):
        EvalConfig.from_dict({"judge_all": True})
    assert EvalConfig.from_dict({"backend": "openai", "model": "m", "max_concurrency": 4}).max_concurrency == 4
    with pytest.raises(ConfigError, match="credentials"):
        normalized_base_url("http://user:secret@127.0.0.1:8000/v1")
    assert normalized_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalized_base_url("https://host/api/v2/") == "https://host/api/v2"


def test_retry_after_is_read_as_seconds_or_a_date():
    assert retry_after_s("3") == 3.0 and retry_after_s("0.5") == 0.5 and retry_after_s(None) is None
    in_ten = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    assert 8 <= retry_after_s(in_ten) <= 10
    assert retry_after_s("soon") is None


def test_a_server_refusing_everything_ends_the_run_with_an_error_that_resume_can_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", KEY)
    with OpenAIServer(lambda body: ANSWER, api_key=KEY) as server:
        server.fail_when = lambda body: True
        cfg = EvalConfig.from_dict({"backend": "openai", "model": "served-model", "base_url": server.base_url,
                                    "api_key_env": "TEST_OPENAI_KEY", "suites": ["synth_arith"], "limit": 2,
                                    "max_retries": 1, "retry_backoff_s": 0.01, "out": str(tmp_path / "run")})
        with pytest.raises(ItemsFailedError, match="--resume sends the failed requests again"):
            run_eval(cfg, progress=False)
        run = RunDir(tmp_path / "run")
        assert run.read_manifest()["status"] == "error" and len(server.calls) == 4
        server.fail_when = None
        run_eval(cfg, resume=True, progress=False)
    assert run.read_manifest()["status"] == "finished"
    assert [r["response"] for r in run.read_records()] == [ANSWER, ANSWER]
    assert_key_in_no_file(tmp_path / "run")


def test_the_client_masks_the_key_in_what_it_returns(monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", KEY)
    client = ChatClient(ClientSettings(base_url="http://127.0.0.1:9/v1", api_key_env="TEST_OPENAI_KEY"))
    try:
        assert client.mask(f"echoed: Authorization: Bearer {KEY}") == "echoed: Authorization: Bearer ***"
    finally:
        client.close()


def tiny_model_reply(model_dir):
    """A reply function generating with the tiny model through the transformers backend, as a served
    model would: the request's data-URL images decoded back to pixels."""
    import threading

    from harness.backends import GenerationParams, Request
    from harness.backends.transformers_backend import TransformersBackend

    backend, lock = TransformersBackend(str(model_dir), device="cpu", batch_size=1), threading.Lock()

    def reply(body):
        images, messages = [], []
        for message in body["messages"]:
            parts = []
            for part in message["content"]:
                if part["type"] == "image_url":
                    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                    images.append(Image.open(io.BytesIO(data)).convert("RGB"))
                    parts.append({"type": "image"})
                else:
                    parts.append(part)
            messages.append({"role": message["role"], "content": parts})
        with lock:  # one model, one generate call at a time
            [c] = backend.generate([Request("served", messages, images)],
                                   GenerationParams(max_new_tokens=body["max_tokens"]))
        return {"texts": [c.text], "prompt_tokens": c.n_prompt_tokens, "completion_tokens": c.n_output_tokens}

    return reply


def test_the_tiny_model_served_over_http_answers_as_the_transformers_backend_does(tmp_path):
    from harness.tiny_model import default_tiny_model

    model = default_tiny_model()
    settings = {"suites": ["synth_charts"], "limit": 3, "max_new_tokens": 12, "batch_size": 1}
    local = run_eval(EvalConfig.from_dict({**settings, "model": str(model), "out": str(tmp_path / "local")}),
                     progress=False)
    with OpenAIServer(tiny_model_reply(model), models=("tiny",)) as server:
        served = run_eval(EvalConfig.from_dict({**settings, "backend": "openai", "model": "tiny",
                                                "base_url": server.base_url, "out": str(tmp_path / "served")}),
                          progress=False)
    fields = ("sample_id", "response", "n_prompt_tokens", "n_output_tokens", "extracted", "correct")
    expected = [{k: r[k] for k in fields} for r in RunDir(local).read_records()]
    assert [{k: r[k] for k in fields} for r in RunDir(served).read_records()] == expected
    assert all(r["n_output_tokens"] for r in expected)
