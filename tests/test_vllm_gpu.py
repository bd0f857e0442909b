"""The vllm backend on a GPU with vLLM installed (skipped elsewhere): both backends feed the model the
same prompt token ids, `harness eval --backend vllm` runs from the command line (vLLM's spawned engine
processes included) and records what it measured, a LoRA adapter applies unmerged, two engines share the
requests on two GPUs. Reduced random models of the real architectures by default; HARNESS_GPU_MODEL=DIR
adds that model (e.g. a full-size random Qwen2.5-VL-7B) to the prompt-parity check:

    HARNESS_GPU_MODEL=models/qwen2_5_vl_7b-random python -m pytest -q tests/test_vllm_gpu.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
pytest.importorskip("vllm")
Image = pytest.importorskip("PIL.Image")

from harness.backends import GenerationParams, Request
from harness.random_model import build_random_model

REDUCED = {"layers": 2, "hidden_size": 256, "vision_depth": 2, "vision_heads": 2, "vocab_size": 2048}
ENGINE = {"gpu_memory_utilization": 0.3, "max_model_len": 8192, "enforce_eager": True}
REPO = Path(__file__).resolve().parents[1]


def requests() -> list[Request]:
    def ask(request_id, text, size=None):
        parts = ([{"type": "image"}] if size else []) + [{"type": "text", "text": text}]
        images = [Image.new("RGB", size, (40, 120, 200))] if size else []
        return Request(request_id, [{"role": "user", "content": parts}], images)

    return [ask("square", "What is the area?", (448, 448)), ask("wide", "Which bar is tallest?", (1000, 300)),
            ask("small", "x?", (64, 48)), ask("text", "Solve x + 3 = 5.")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    built = {arch: str(build_random_model(tmp_path_factory.mktemp(arch) / "m", arch, **REDUCED))
             for arch in ("qwen2_5_vl_7b", "qwen3_vl_8b")}
    if os.environ.get("HARNESS_GPU_MODEL"):
        built["given"] = os.environ["HARNESS_GPU_MODEL"]
    return built


@pytest.mark.parametrize("name", ["qwen2_5_vl_7b", "qwen3_vl_8b", "given"])
def test_both_backends_feed_the_model_the_same_prompt_token_ids(models, name):
    if name not in models:
        pytest.skip("HARNESS_GPU_MODEL is not set")
    from harness.backends.transformers_backend import TransformersBackend
    from harness.backends.vllm_backend import VllmBackend

    backend = VllmBackend(models[name], **ENGINE)
    try:
        engine_ids = backend.engine_prompt_token_ids(requests())
    finally:
        backend.close()
    reference = TransformersBackend(models[name], device="cuda")
    try:
        assert engine_ids == reference.prompt_token_ids(requests())
    finally:
        reference.close()


def test_harness_eval_runs_vllm_from_the_command_line(models, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "harness.cli", "eval", "--backend", "vllm", "--model", models["qwen2_5_vl_7b"],
            "--suite", "synth_charts", "--limit", "24", "--max-new-tokens", "32", "--ignore-eos",
            "--max-concurrency", "8", "--gpu-memory-utilization", "0.3", "--max-model-len", "8192",
            "--out", str(out), "--quiet"]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert manifest["model"]["vllm_version"] and manifest["status"] == "finished"
    t, memory, timings = metrics["throughput"], metrics["memory"], metrics["timings"]
    assert t["output_tokens"] == 24 * 32 and t["ttft_s_p50"] > 0 and t["tpot_s_p50"] > 0
    assert timings["load_time_s"] > 0 and timings["generation_s"] > 0
    assert memory["nvml_used_over_baseline_mib"] > 0 and memory["vllm_kv_cache_gib"] > 0
    assert memory["vllm_weights_gib"] is not None and 0 < memory["kv_cache_peak_usage"] <= 1


def test_a_language_model_lora_applies_unmerged(models, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from harness.backends.vllm_backend import VllmBackend

    base = AutoModelForImageTextToText.from_pretrained(models["qwen2_5_vl_7b"], dtype=torch.bfloat16)
    torch.manual_seed(0)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                        init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    params = GenerationParams(max_new_tokens=8)
    plain = VllmBackend(models["qwen2_5_vl_7b"], **ENGINE)
    try:
        without = [c.text for c in plain.generate(requests(), params)]
    finally:
        plain.close()
    adapted = VllmBackend(str(tmp_path / "adapter"), **ENGINE)
    try:
        assert adapted.describe()["lora"]["applied"] == {"language_model q_proj": 2, "language_model v_proj": 2}
        assert [c.text for c in adapted.generate(requests(), params)] != without
    finally:
        adapted.close()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_engines_share_the_requests(models):
    from harness.backends.vllm_dp import make_vllm_backend

    backend = make_vllm_backend(models["qwen2_5_vl_7b"], data_parallel_size=2, **ENGINE)
    try:
        many = [Request(f"{r.request_id}-{k}", r.messages, r.images) for k in range(16) for r in requests()]
        completions = list(backend.stream(many, GenerationParams(max_new_tokens=16), max_concurrency=32))
        assert sorted(c.request_id for c in completions) == sorted(r.request_id for r in many)
        assert backend.memory()["engines"] == 2
    finally:
        backend.close()
