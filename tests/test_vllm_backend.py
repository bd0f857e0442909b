"""The vllm backend's code on a CPU: argument mapping, prompts, streaming with a cap, LoRA requests and
refusals, and runs that stream records and resume, through an engine with vLLM's interface (fake_vllm)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from core.errors import BackendError, ConfigError, ModelError
from harness.backends import GenerationParams, Request, iter_completions
from harness.backends.vllm_backend import VllmBackend, engine_kwargs, request_seed, sampling_kwargs
from harness.backends.vllm_compat import check_version, engine_memory_from_log
from harness.backends.vllm_lora import plan_adapter
from harness.config import EvalConfig
from harness.models import resolve_model
from harness.runner import run_eval
from harness.runstore import RunDir
from harness.tiny_model import default_tiny_model
from tests.fake_vllm import FakeLLM, fake_api

Image = pytest.importorskip("PIL.Image")


def image_request(request_id: str, text: str = "What is the area?") -> Request:
    parts = [{"type": "image"}, {"type": "text", "text": text}]
    return Request(request_id, [{"role": "user", "content": parts}], [Image.new("RGB", (120, 90), "white")])


def text_request(request_id: str, text: str = "Solve x + 3 = 5.") -> Request:
    return Request(request_id, [{"role": "user", "content": [{"type": "text", "text": text}]}])


@pytest.fixture(scope="module")
def tiny():
    return str(default_tiny_model("qwen2_5_vl"))


@pytest.fixture
def backend(tiny):
    backend = VllmBackend(tiny, api=fake_api(), max_model_len=2048, gpu_memory_utilization=0.8)
    yield backend
    backend.close()


def test_engine_arguments():
    kwargs = engine_kwargs("m", revision=None, dtype="bfloat16", quantization="fp8", gpu_memory_utilization=0.85,
                           max_model_len=8192, tensor_parallel_size=2, seed=3, max_images_per_prompt=1,
                           enforce_eager=False, trust_remote_code=False, adapter=None)
    assert kwargs == {"model": "m", "dtype": "bfloat16", "quantization": "fp8", "gpu_memory_utilization": 0.85,
                      "max_model_len": 8192, "tensor_parallel_size": 2, "seed": 3,
                      "limit_mm_per_prompt": {"image": 1, "video": 0}, "enforce_eager": False,
                      "trust_remote_code": False, "disable_log_stats": False}
    with pytest.raises(ConfigError, match="quantization"):
        engine_kwargs("m", revision=None, dtype="auto", quantization="awq", gpu_memory_utilization=0.9,
                      max_model_len=None, tensor_parallel_size=1, seed=0, max_images_per_prompt=1,
                      enforce_eager=False, trust_remote_code=False, adapter=None)


def test_sampling_arguments():
    defaults = {"repetition_penalty": 1.05, "suppress_tokens": [5, 7]}
    greedy = sampling_kwargs(GenerationParams(max_new_tokens=64), "s/1", defaults)
    assert greedy == {"n": 1, "max_tokens": 64, "ignore_eos": False, "temperature": 0.0, "skip_special_tokens": True,
                      "repetition_penalty": 1.05, "logit_bias": {5: -math.inf, 7: -math.inf}}
    sampled = sampling_kwargs(GenerationParams(max_new_tokens=8, temperature=0.7, top_p=0.9, top_k=20, n=4, seed=1,
                                               ignore_eos=True), "s/1", {})
    assert sampled == {"n": 4, "max_tokens": 8, "ignore_eos": True, "temperature": 0.7, "skip_special_tokens": True,
                       "top_p": 0.9, "top_k": 20, "seed": request_seed(1, "s/1")}
    # each request its own seed, the same in every run
    assert request_seed(1, "s/1") != request_seed(1, "s/2") and request_seed(1, "s/1") == request_seed(1, "s/1")


def test_real_vllm_accepts_the_arguments(tiny):
    vllm = pytest.importorskip("vllm")
    params = vllm.SamplingParams(**sampling_kwargs(GenerationParams(max_new_tokens=8, temperature=0.7, n=2),
                                                   "s/1", {"repetition_penalty": 1.05, "suppress_tokens": [3]}))
    assert (params.n, params.max_tokens, params.repetition_penalty) == (2, 8, 1.05)
    kwargs = engine_kwargs(tiny, revision=None, dtype="auto", quantization=None, gpu_memory_utilization=0.9,
                           max_model_len=None, tensor_parallel_size=1, seed=0, max_images_per_prompt=1,
                           enforce_eager=True, trust_remote_code=False, adapter=None)
    vllm.EngineArgs(**{**kwargs, "enable_lora": True, "max_lora_rank": 8, "max_loras": 1})  # names it knows
    check_version(vllm.__version__)


def test_the_engine_gets_the_model_options_and_the_checkpoint_generation_config(backend, tiny):
    llm = FakeLLM.instances[-1]
    assert llm.kwargs["model"] == tiny and llm.kwargs["limit_mm_per_prompt"] == {"image": 1, "video": 0}
    assert llm.kwargs["max_model_len"] == 2048 and llm.kwargs["disable_log_stats"] is False
    params = backend.sampling_params(GenerationParams(max_new_tokens=4), text_request("t"))
    vision_ids = backend.processor.tokenizer.convert_tokens_to_ids(["<|vision_start|>", "<|image_pad|>"])
    assert all(params.logit_bias[i] == -math.inf for i in vision_ids)  # suppressed as the tiny model says
    assert params.output_kind == "FINAL_ONLY"
    facts = backend.describe()
    assert facts["vllm_version"] == "0.31.0" and facts["load_time_s"] > 0 and facts["lora"] is None


def test_prompts_are_the_transformers_backends(backend, tiny):
    """The same chat template text (one image placeholder per image) and the images as multi-modal data."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    request = image_request("i")
    prompt = backend.engine_input(request)
    expected = processor.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
    assert prompt["prompt"] == expected and prompt["prompt"].count("<|image_pad|>") == 1
    assert prompt["multi_modal_data"] == {"image": request.images}
    assert "multi_modal_data" not in backend.engine_input(text_request("t"))
    with pytest.raises(ValueError, match="1 image parts"):
        backend.engine_input(Request("bad", request.messages, []))


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_prompt_token_ids_match_vllms_processor(arch):
    """vLLM's own multi-modal processor (no engine: runs on a CPU) expands the image placeholder to as many
    tokens as the transformers processor does, so both backends feed the model the same ids."""
    pytest.importorskip("vllm")
    from transformers import AutoProcessor

    from harness.backends.vllm_compat import engine_prompt_token_ids

    tiny = str(default_tiny_model(arch))
    processor = AutoProcessor.from_pretrained(tiny)
    request = image_request("i")
    text = processor.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
    expected = processor(text=[text], images=request.images)["input_ids"][0]
    ids = engine_prompt_token_ids(tiny, processor.tokenizer(text)["input_ids"], request.images)
    assert list(ids) == list(expected)


def test_stream_caps_requests_in_flight_and_yields_as_they_finish(backend):
    requests = [image_request(f"i{k}", f"Question number {k}?" + " pad" * k) for k in range(7)]
    params = GenerationParams(max_new_tokens=12, temperature=0.8, n=2)
    completions = list(backend.stream(requests, params, max_concurrency=3))
    engine = FakeLLM.instances[-1].llm_engine
    assert engine.max_running == 3 and not engine.running
    assert Counter((c.request_id, c.attempt) for c in completions) == {(r.request_id, a): 1 for r in requests
                                                                       for a in (0, 1)}
    order = [c.request_id for c in completions if c.attempt == 0]
    assert order != [r.request_id for r in requests]  # shorter outputs finish first
    for c in completions:
        assert c.ttft_s is not None and c.request_latency_s == c.latency_s > 0 and c.batch_index is None
        assert 1 <= c.n_output_tokens <= 12 and (c.finish_reason == "length") == (c.n_output_tokens == 12)
        assert c.n_prompt_tokens > 16  # the fake counts 16 tokens per image
    assert backend.memory()["kv_cache_peak_usage"] > 0
    pulled = []

    def lazily():  # the runner hands over a generator: prompts (and images) are built as slots free up
        for request in requests:
            pulled.append(request.request_id)
            yield request

    stream = backend.stream(lazily(), params, max_concurrency=3)
    next(stream)
    assert len(pulled) == 3
    stream.close()
    # iter_completions hands a streaming backend everything at once (no static batches)
    again = list(iter_completions(backend, requests, GenerationParams(max_new_tokens=4, ignore_eos=True), 2))
    assert FakeLLM.instances[-1].llm_engine.max_running == 7
    assert {c.n_output_tokens for c in again} == {4} and {c.finish_reason for c in again} == {"length"}


def test_an_abandoned_stream_aborts_what_is_in_flight(backend):
    requests = [image_request(f"i{k}", f"Question {k}?") for k in range(5)]  # of different output lengths
    stream = backend.stream(requests, GenerationParams(max_new_tokens=30))
    next(stream)
    stream.close()
    engine = FakeLLM.instances[-1].llm_engine
    assert engine.aborted and not engine.running and backend.n_in_flight == 0


def test_a_prompt_too_long_for_the_engine_names_the_request(tiny):
    backend = VllmBackend(tiny, api=fake_api(), max_model_len=20)
    with pytest.raises(BackendError, match="vLLM refused request long: The decoder prompt"):
        list(backend.stream([image_request("long", "many words " * 20)], GenerationParams(max_new_tokens=4)))


def test_generate_and_bare_generate_agree(backend):
    requests = [image_request(f"i{k}", "q" * k) for k in range(4)]
    params = GenerationParams(max_new_tokens=10)
    ordered = backend.generate(requests, params)
    bare = backend.generate_bare(requests, params)
    assert [c.request_id for c in ordered] == [r.request_id for r in requests]
    assert [(c.request_id, c.text) for c in bare] == [(c.request_id, c.text) for c in ordered]
    assert len({c.latency_s for c in bare}) == 1 and all(c.ttft_s is None for c in bare)


def test_engine_sizes_are_read_from_vllms_log_lines():
    log = ("INFO 11-30 10:00:01 [gpu_model_runner.py:5355] Model loading took 15.62 GiB memory and 12.3 seconds\n"
           "INFO 11-30 10:00:40 [gpu_worker.py:693] Available KV cache memory: 101.07 GiB\n")
    assert engine_memory_from_log(log) == {"vllm_weights_gib": 15.62, "vllm_kv_cache_gib": 101.07}
    assert engine_memory_from_log("") == {"vllm_weights_gib": None, "vllm_kv_cache_gib": None}
    with pytest.raises(BackendError, match="not supported"):
        check_version("0.19.1")


# --- LoRA ---------------------------------------------------------------------------------------


def _adapter(tiny, out, target_modules):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=target_modules, init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def language_adapter(tiny, tmp_path_factory):
    return _adapter(tiny, tmp_path_factory.mktemp("lm-lora"), r".*language_model.*\.(q_proj|v_proj)")


@pytest.fixture(scope="module")
def vision_adapter(tiny, tmp_path_factory):
    return _adapter(tiny, tmp_path_factory.mktemp("vision-lora"), r".*(language_model.*\.q_proj|visual.*\.qkv)")


def test_a_language_model_lora_is_applied_unmerged(tiny, language_adapter):
    backend = VllmBackend(str(language_adapter), api=fake_api())
    llm = FakeLLM.instances[-1]
    assert llm.kwargs["model"] == tiny  # the base, read from adapter_config.json
    assert (llm.kwargs["enable_lora"], llm.kwargs["max_lora_rank"], llm.kwargs["max_loras"]) == (True, 8, 1)
    assert backend.lora_request.lora_path == str(language_adapter)
    list(backend.stream([image_request("i")], GenerationParams(max_new_tokens=3)))
    assert llm.llm_engine.added[-1][3] is backend.lora_request  # every request carries the adapter
    lora = backend.describe()["lora"]
    assert lora["mode"] == "lora" and lora["rank"] == 4
    assert lora["applied"] == {"language_model q_proj": 2, "language_model v_proj": 2}  # 2 layers


def test_vision_tower_lora_is_refused_or_merged_on_request(tiny, vision_adapter, tmp_path, monkeypatch):
    plan = plan_adapter(resolve_model(str(vision_adapter)).adapter)
    assert len(plan.vision_modules) == 2 and len(plan.language_modules) == 2
    with pytest.raises(ModelError, match=r"2 vision-tower modules \(vision_tower qkv\).*--merge-lora"):
        VllmBackend(str(vision_adapter), api=fake_api())
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    backend = VllmBackend(str(vision_adapter), api=fake_api(), merge_lora=True)
    merged = FakeLLM.instances[-1].kwargs["model"]
    assert merged.startswith(str(tmp_path / "merged")) and "enable_lora" not in FakeLLM.instances[-1].kwargs
    assert backend.lora_request is None and backend.describe()["lora"]["mode"] == "merged"
    again = VllmBackend(str(vision_adapter), api=fake_api(), merge_lora=True)  # merged once, then reused
    assert FakeLLM.instances[-1].kwargs["model"] == merged and again.lora["merged_model"] == merged


# --- runs -----------------------------------------------------------------------------------------


def vllm_cfg(tmp_path, **kw):
    return EvalConfig.from_dict({"model": "tiny", "backend": "vllm", "out": str(tmp_path / "run"), "limit": 5,
                                 "max_new_tokens": 16, **kw})


def test_a_run_streams_records_and_keeps_suite_order(tmp_path, tiny):
    backend = VllmBackend(tiny, api=fake_api())
    path = run_eval(vllm_cfg(tmp_path, max_concurrency=3, n_samples=2, temperature=0.7), backend=backend,
                    progress=False)
    run = RunDir(path)
    records, metrics, manifest = run.read_records(), run.read_metrics(), run.read_manifest()
    assert FakeLLM.instances[-1].llm_engine.max_running == 3
    keys = [(r["suite"], r["sample_id"], r["attempt"]) for r in records]
    plan_order = [(s, f"test-{i:05d}", a) for s in ("synth_charts", "synth_arith") for i in range(5) for a in (0, 1)]
    assert keys == plan_order  # written as they finished, put back in suite order at the end
    assert all(r["batch"] == "0-stream" and r["ttft_s"] is not None and r["request_latency_s"] for r in records)
    t = metrics["throughput"]
    assert t["wall_s"] > 0 and t["output_tokens_per_s"] > 0 and t["ttft_s_p50"] is not None
    assert t["prompt_tokens"] == sum(r["n_prompt_tokens"] for r in records if r["attempt"] == 0)
    session = manifest["measurements"]["sessions"][0]
    assert session["streamed"] and session["generation_s"] > 0 and session["scoring_s"] >= 0
    assert metrics["timings"]["generation_s"] == session["generation_s"]
    assert "kv_cache_peak_usage" in metrics["memory"]


def test_an_engine_failure_mid_stream_keeps_what_finished_and_resume_does_the_rest(tmp_path, tiny):
    crashing = VllmBackend(tiny, api=fake_api(fail_after_steps=9))
    with pytest.raises(RuntimeError, match="simulated engine failure"):
        run_eval(vllm_cfg(tmp_path, max_concurrency=4), backend=crashing, progress=False)
    run = RunDir(tmp_path / "run")
    done_before = {(r["suite"], r["sample_id"]) for r in run.read_records()}
    assert 0 < len(done_before) < 10 and run.read_manifest()["status"] == "error"
    assert not FakeLLM.instances[-1].llm_engine.running  # the failed stream aborted what was in flight
    resumed = VllmBackend(tiny, api=fake_api())
    run_eval(vllm_cfg(tmp_path, max_concurrency=4), resume=True, backend=resumed, progress=False)
    keys = Counter((r["suite"], r["sample_id"], r["attempt"]) for r in run.read_records())
    assert len(keys) == 10 and max(keys.values()) == 1
    assert len(FakeLLM.instances[-1].llm_engine.added) == 10 - len(done_before)  # only what was missing


KILLED_RUN = """
import sys
from harness.backends.vllm_backend import VllmBackend
from harness.config import EvalConfig
from harness.runner import run_eval
from tests.fake_vllm import fake_api

if __name__ == "__main__":
    cfg = EvalConfig.from_dict({"model": "tiny", "backend": "vllm", "out": sys.argv[1], "limit": 12,
                                "max_new_tokens": 16, "max_concurrency": 4})
    run_eval(cfg, backend=VllmBackend(sys.argv[2], api=fake_api(step_delay_s=0.05)), progress="off")
"""


def test_a_process_killed_mid_stream_resumes_with_nothing_lost_or_repeated(tmp_path, tiny):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out, script = tmp_path / "run", tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, str(script), str(out), tiny], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = out / "records.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = RunDir(out).read_records()
    assert 5 <= len(before) < 24 and RunDir(out).read_manifest()["status"] == "running"
    resumed = VllmBackend(tiny, api=fake_api())
    run_eval(vllm_cfg(tmp_path, limit=12, max_concurrency=4), resume=True, backend=resumed, progress=False)
    after = RunDir(out).read_records()
    keys = Counter((r["suite"], r["sample_id"], r["attempt"]) for r in after)
    assert len(keys) == 24 and max(keys.values()) == 1
    assert len(FakeLLM.instances[-1].llm_engine.added) == 24 - len(before)  # only what was not on disk
    assert RunDir(out).read_manifest()["status"] == "finished"


def test_data_parallel_engines_share_the_requests(tiny, monkeypatch):
    """Two engines in spawned processes (each a VllmBackend on its own GPU group; here the fake engine):
    every request answered once, the cap over both respected, facts and memory gathered from both."""
    from harness.backends.vllm_dp import DataParallelVllm, make_vllm_backend

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match="needs 2 GPUs; 1 visible"):
        make_vllm_backend(tiny, data_parallel_size=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    backend = make_vllm_backend(tiny, data_parallel_size=2, api=fake_api())
    processes = [process for process, _ in backend.workers]
    try:
        assert isinstance(backend, DataParallelVllm)
        requests = [image_request(f"i{k}", f"Question {k}?") for k in range(9)]
        completions = list(backend.stream(requests, GenerationParams(max_new_tokens=8), max_concurrency=4))
        assert sorted(c.request_id for c in completions) == sorted(r.request_id for r in requests)
        abandoned = backend.stream(requests, GenerationParams(max_new_tokens=30))
        next(abandoned)
        abandoned.close()  # the engines abort; what they already sent is dropped
        bare = backend.generate_bare(requests, GenerationParams(max_new_tokens=8))
        assert {c.request_id: c.text for c in bare} == {c.request_id: c.text for c in completions}
        facts, memory = backend.describe(), backend.memory()
        assert facts["data_parallel_size"] == 2 and len(facts["engine_load_time_s"]) == 2
        assert memory["engines"] == 2 and memory["kv_cache_peak_usage"] is not None
    finally:
        backend.close()
    assert len(processes) == 2 and not any(process.is_alive() for process in processes)


def test_each_engine_start_points_vllms_processes_at_its_own_log_file(tmp_path, monkeypatch):
    import os

    from harness.backends.vllm_compat import capture_engine_log, release_engine_log

    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    for name in ("first", "second"):  # e.g. a bench's bf16 engine, then its fp8 engine
        handler = capture_engine_log(tmp_path / name / "engine.log")
        config = os.environ["VLLM_LOGGING_CONFIG_PATH"]
        assert str(tmp_path / name / "engine.log") in (tmp_path / name / "engine.logging.json").read_text()
        assert config == str(tmp_path / name / "engine.logging.json")
        release_engine_log(handler)  # the engine has started: children of this process start clean
        assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ
    monkeypatch.setenv("VLLM_LOGGING_CONFIG_PATH", "/etc/users-own.json")  # a user's own configuration stays
    release_engine_log(capture_engine_log(tmp_path / "third" / "engine.log"))
    assert os.environ["VLLM_LOGGING_CONFIG_PATH"] == "/etc/users-own.json"
