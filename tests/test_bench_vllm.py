"""`harness bench --backend vllm` on a CPU: the vllm backend's own code over a fake engine with vLLM's
interface (tests/fake_vllm.py), so the engine options, the concurrency sweep, time to first token, the
bare `LLM.generate` and the fp8 weight bytes are checked without a GPU."""

from __future__ import annotations

import pytest

from harness.bench import BenchConfig, run_bench
from harness.bench_measure import decode_weights, safetensors_shapes
from harness.benchstore import BenchDir, BenchFile
from tests.fake_vllm import FakeLLM, fake_api
from tests.fixtures.typed_shape import shape_problems


@pytest.mark.slow
def test_vllm_bench_through_a_fake_engine(tmp_path, tiny_model_dir):
    from harness.backends.vllm_dp import make_vllm_backend

    api = fake_api(step_delay_s=0.002)  # each engine step takes 2 ms, whatever runs in it

    def loader(backend, quantization, ecfg):
        assert backend == "vllm"
        return make_vllm_backend(str(ecfg.model), api=api, **ecfg.backend_options())

    cfg = BenchConfig(model=str(tiny_model_dir), backends=["vllm"], quantizations=["none", "fp8"],
                      concurrency=[1, 4], suite="synth_charts", limit=4, image_size=(64, 64), max_new_tokens=6,
                      ignore_eos=True, repeat=2, warmup=1, bare=True, gpu_memory_utilization=0.5,
                      max_model_len=2048, out=str(tmp_path / "bench"))
    lines: list[str] = []
    bench = BenchDir(run_bench(cfg, log=lines.append, loader=loader)).read()
    assert shape_problems(bench, BenchFile) == []
    assert bench["status"] == "finished"

    # One engine per quantization, started with the flags' options.
    engines = FakeLLM.instances
    assert [e.kwargs.get("quantization") for e in engines] == [None, "fp8"]
    assert all(e.kwargs["gpu_memory_utilization"] == 0.5 and e.kwargs["max_model_len"] == 2048 for e in engines)
    # Every pass starts from empty prefix and image caches: per point a warm-up, 2 repeats and the
    # prefill pass (2 points), and the engine's 2 bare repeats.
    assert [(e.cache_resets, e.mm_cache_resets) for e in engines] == [(10, 10), (10, 10)]
    assert [(e["backend"], e["quantization"], e["axis"]) for e in bench["engines"]] == [
        ("vllm", "none", "concurrency"), ("vllm", "fp8", "concurrency")]

    configurations = bench["configurations"]
    assert [(c["quantization"], c["value"]) for c in configurations] == [
        ("none", 1), ("none", 4), ("fp8", 1), ("fp8", 4)]
    for c in configurations:
        assert all(len(r["ttft_ms"]) == 4 for r in c["repeats"])  # vLLM's first-token latency, per request
        assert c["ttft_ms_p50"] > 0 and c["tpot_ms_p50"] > 0
        assert c["output_tokens_mean"] == 6
        assert c["decode"]["decode_steps"] == -(-4 * 5 // c["value"])  # 4 requests x 5 decode tokens
        assert c["bare"]["scope"] == "engine" and c["bare"]["harness_over_bare"] > 0
        assert "kv_cache_peak_usage" in c["memory"]["backend"]
    # Four requests in flight take one engine step where one at a time take four.
    for quantization in ("none", "fp8"):
        one, four = (c for c in configurations if c["quantization"] == quantization)
        assert four["output_tokens_per_s"]["mean"] > 2 * one["output_tokens_per_s"]["mean"]
    # fp8 reads the decoder layers' matrices at one byte a weight (the tiny model computes in float32).
    weights = decode_weights(safetensors_shapes(tiny_model_dir))
    assert configurations[0]["decode"]["weight_bytes_per_step"] == 4 * (weights.linear_params + weights.other_params)
    assert configurations[2]["decode"]["weight_bytes_per_step"] == weights.linear_params + 4 * weights.other_params
    assert [line.split(":")[0] for line in lines if "peak" in line] == ["vllm none", "vllm fp8"]
