"""`harness bench` end to end: the tiny model through the transformers backend (batch sweep, bare
engine, plots), a streaming fake through the concurrency sweep, the schema check, and the CLI's errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import ConfigError
from harness.backends import Completion, GenerationParams, Request
from harness.bench import BenchConfig, bench_prompts, run_bench
from harness.bench_measure import decode_weights, safetensors_shapes
from harness.benchstore import BenchDir, BenchFile
from harness.cli import cli
from tests.fixtures.typed_shape import shape_problems


@pytest.mark.slow
def test_bench_end_to_end_with_the_tiny_model(tiny_model_dir, tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(cli, [
        "bench", "--model", str(tiny_model_dir), "--backend", "transformers", "--batch-size", "1,2",
        "--suite", "synth_charts", "--limit", "2", "--image-size", "64x64", "--max-new-tokens", "4", "--ignore-eos",
        "--repeat", "2", "--warmup", "1", "--bare", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    assert result.output.count("bench: transformers none batch size") == 2  # one log line per configuration
    assert "bench: transformers none: peak " in result.output  # and one per engine

    bench = BenchDir(out).read()
    assert shape_problems(bench, BenchFile) == []  # every key of the types, of their types, and no other
    assert bench["status"] == "finished" and bench["error"] is None
    assert bench["packages"]["torch"] and bench["packages"]["transformers"]
    assert bench["prompts"]["n_requests"] == 2 and bench["prompts"]["n_with_image"] == 2
    assert bench["prompts"]["image_size"] == [64, 64]
    assert bench["device_bandwidth"]["gb_per_s"] > 0
    [engine] = bench["engines"]
    assert engine["axis"] == "batch_size" and engine["load_time_s"] > 0
    assert [c["value"] for c in bench["configurations"]] == [1, 2]
    for c in bench["configurations"]:
        assert len(c["repeats"]) == 2 and all(len(r["latency_ms"]) == 2 for r in c["repeats"])
        assert all(r["output_tokens"] == 2 * 4 for r in c["repeats"])  # forced length
        assert c["output_tokens_per_s"]["mean"] > 0 and c["output_tokens_per_s"]["samples"][0] > 0
        assert c["total_tokens_per_s"]["mean"] > c["output_tokens_per_s"]["mean"]
        assert c["latency_ms_p50"] > 0 and c["ttft_ms_p50"] is None  # transformers does not time the first token
        decode = c["decode"]
        assert decode["bytes_read"] == (decode["weight_bytes_per_step"] * decode["decode_steps"]
                                        + decode["kv_bytes_per_token"] * decode["context_tokens_read"])
        assert decode["decode_s"] == pytest.approx(c["wall_s"]["mean"] - decode["prefill_s"])
        if decode["decode_s"] > 0:  # timing on a shared CPU is noisy: a 4-token decode can hide in it
            assert decode["utilization"] == pytest.approx(
                decode["bytes_read"] / decode["decode_s"] / 1e9 / bench["device_bandwidth"]["gb_per_s"])
        else:
            assert decode["utilization"] is None and "decode time not measurable" in decode["note"]
        assert c["bare"]["scope"] == "batch" and c["bare"]["harness_over_bare"] > 0
    # Weights read per step: every parameter but the vision tower's and the embedding table, in float32.
    expected = decode_weights(safetensors_shapes(tiny_model_dir))
    assert bench["configurations"][0]["decode"]["weight_bytes_per_step"] == 4 * (
        expected.linear_params + expected.other_params)
    # Decode steps: batch 1 -> 2 batches of 3 steps (4 forced tokens, the first from prefill); batch 2 -> 1.
    assert [c["decode"]["decode_steps"] for c in bench["configurations"]] == [6, 3]
    for name in bench["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(bench["plots"]) == {"throughput.png", "latency.png"}


class StreamingFake:
    """A streaming backend: a worker per request slot, each request takes `output tokens` x 2 ms, with
    its first token after 1 ms. Records each call's cap and the most requests it had in flight."""

    name = "streaming-fake"

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.calls: list[tuple[int | None, int]] = []  # (max_concurrency, most in flight), per stream call
        self.bare_calls = 0
        self.bare_sizes: list[int] = []

    def _one(self, request: Request, params: GenerationParams, submitted: float, lock, in_flight) -> Completion:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.001)
        ttft = time.perf_counter() - submitted
        time.sleep(0.002 * params.max_new_tokens)
        with lock:
            in_flight[0] -= 1
        latency = time.perf_counter() - submitted
        return Completion(request.request_id, 0, "x", n_prompt_tokens=10, n_output_tokens=params.max_new_tokens,
                          finish_reason="length", latency_s=latency, ttft_s=ttft, request_latency_s=latency)

    def stream(self, requests, params, max_concurrency=None):
        from concurrent.futures import ThreadPoolExecutor, as_completed

        lock, in_flight = threading.Lock(), [0, 0]
        with ThreadPoolExecutor(max_workers=max_concurrency or len(requests)) as pool:
            submitted = time.perf_counter()
            futures = [pool.submit(self._one, r, params, submitted, lock, in_flight) for r in requests]
            for future in as_completed(futures):
                yield future.result()
        self.calls.append((max_concurrency, in_flight[1]))

    def generate(self, requests, params):
        return list(self.stream(requests, params))

    def generate_bare(self, requests, params):
        self.bare_calls += 1
        self.bare_sizes.append(len(requests))
        return list(self.stream(requests, params))

    def describe(self):
        return {"model": str(self.model_dir), "base_model": str(self.model_dir), "dtype": "bfloat16",
                "load_time_s": 0.0}

    def memory(self):
        return {"engine_kv_cache_mib": 1.0}

    def close(self):
        pass


def _fake_bench(tmp_path, model_dir, name="fake", fake=None, **settings) -> tuple[Path, StreamingFake]:
    fake = fake or StreamingFake(model_dir)
    cfg = BenchConfig(model=str(model_dir), suite="synth_arith", limit=6, max_new_tokens=3, ignore_eos=True,
                      concurrency=[1, 2, 4], repeat=2, warmup=1, out=str(tmp_path / name), **settings)
    lines: list[str] = []
    path = run_bench(cfg, log=lines.append, loader=lambda backend, quantization, ecfg: fake)
    assert len(lines) == 3 + 1  # a line per configuration, and the engine's summary
    return path, fake


def test_concurrency_sweep_through_a_streaming_backend(tmp_path, tiny_model_dir):
    path, fake = _fake_bench(tmp_path, tiny_model_dir, bare=True)
    bench = BenchDir(path).read()
    assert shape_problems(bench, BenchFile) == []
    # Per point: a warm-up wave, 2 timed passes and a prefill-only pass with `value` in flight at most;
    # then (first point only) the bare engine twice with everything at once.
    assert [cap for cap, _ in fake.calls] == [1] * 4 + [None] * 2 + [2] * 4 + [4] * 4
    assert all(peak <= (cap or 6) for cap, peak in fake.calls)
    assert max(peak for cap, peak in fake.calls if cap == 4) == 4
    [engine] = bench["engines"]
    assert engine["axis"] == "concurrency"
    configurations = bench["configurations"]
    assert [c["value"] for c in configurations] == [1, 2, 4]
    for c in configurations:
        assert c["ttft_ms_p50"] is not None and 1 <= c["ttft_ms_p50"]
        assert c["tpot_ms_p50"] is not None and c["tpot_ms_p50"] >= 2 * 0.9
        assert c["latency_ms_p99"] >= c["latency_ms_p50"]
        assert c["memory"]["backend"] == {"engine_kv_cache_mib": 1.0}
        # 6 requests x 2 decode tokens each, `value` in flight: ceil(12 / value) steps.
        assert c["decode"]["decode_steps"] == -(-12 // c["value"])
        assert c["decode"]["kv_bytes_per_token"] == 2 * 2 * 1 * 16 * 2  # tiny model, bfloat16
        assert c["decode"]["context_tokens_read"] == 6 * (10 + 1 + 10 + 2)  # P = 10, O = 3
        assert c["bare"]["scope"] == "engine"
    # Throughput grows with requests in flight (each request sleeps, the fake runs them in parallel).
    rates = [c["output_tokens_per_s"]["mean"] for c in configurations]
    assert rates[2] > 1.5 * rates[0]  # 3x in theory; threads on a busy CPU lose some
    assert fake.bare_calls == 2  # one bare timing (2 repeats) serves the whole engine
    assert configurations[0]["bare"] == {**configurations[2]["bare"],
                                         "harness_over_bare": configurations[0]["bare"]["harness_over_bare"]}
    assert configurations[0]["bare"]["harness_over_bare"] < configurations[2]["bare"]["harness_over_bare"]


def test_schema_check_rejects_a_newer_version(tmp_path, tiny_model_dir):
    path, _ = _fake_bench(tmp_path, tiny_model_dir)
    data = json.loads((path / "bench.json").read_text())
    data["schema_version"] = 99
    (path / "bench.json").write_text(json.dumps(data))
    result = CliRunner().invoke(cli, ["report", str(path), "-o", str(tmp_path / "page.html")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "schema version 99" in lines[0] and "newer than this harness reads" in lines[0]


def test_a_bench_that_fails_keeps_what_it_measured(tmp_path, tiny_model_dir):
    class Failing(StreamingFake):
        def stream(self, requests, params, max_concurrency=None):
            if max_concurrency == 2:
                raise RuntimeError("out of memory")
            yield from super().stream(requests, params, max_concurrency)

    with pytest.raises(RuntimeError, match="out of memory"):
        _fake_bench(tmp_path, tiny_model_dir, fake=Failing(tiny_model_dir))
    bench = BenchDir(tmp_path / "fake").read()
    assert bench["status"] == "error" and "out of memory" in bench["error"]
    assert [c["value"] for c in bench["configurations"]] == [1]
    assert bench["plots"] == ["throughput.png", "latency.png"]


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "1,x"], "--batch-size takes comma-separated integers"),
    (["--quantization", "fp8"], "fp8"),
    (["--backend", "nope"], "unknown backend 'nope'"),
    (["--gpu-memory-utilization", "0.5"], "vllm backend only"),
    (["--repeat", "0"], "must be at least 1"),
    (["--waves", "0"], "must be at least 1"),
    (["--batch-size", "2,2"], "each once"),
    (["--suite", "mathvista_testmini"], "--data-dir"),
])
def test_bad_bench_flags_are_one_clean_line(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["bench", "--out", str(tmp_path / "b"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "b").exists()


def test_existing_bench_is_not_overwritten(tmp_path, tiny_model_dir):
    path, _ = _fake_bench(tmp_path, tiny_model_dir)
    with pytest.raises(Exception, match="already holds a bench"):
        _fake_bench(tmp_path, tiny_model_dir)
    assert BenchDir(path).read()["status"] == "finished"


def test_config_rejects_unknown_keys_and_maps_4bit():
    with pytest.raises(ConfigError, match="unknown key"):
        BenchConfig.from_dict({"batchsize": [1]})
    assert BenchConfig(quantizations=["none", "4bit"]).quantizations == ["none", "bitsandbytes"]


@pytest.mark.slow
def test_transformers_bare_generate_counts_the_same_tokens(tiny_model_dir):
    from harness.backends import load_backend

    cfg = BenchConfig(model=str(tiny_model_dir), suite="synth_charts", limit=3, image_size=(64, 64))
    requests, _ = bench_prompts(cfg)
    backend = load_backend("transformers", str(tiny_model_dir), batch_size=2)
    # The random model never ends on its own: make the third token it writes for the first prompt its
    # end-of-sequence, so that some completions stop early and both counts must find where.
    inputs = backend._inputs(requests[:1])
    written = backend.model.generate(**inputs, max_new_tokens=3, do_sample=False)
    backend.eos_ids = [int(written[0, -1])]
    assert any(c.finish_reason == "stop" for c in backend.generate(requests, GenerationParams(max_new_tokens=12)))
    for params in (GenerationParams(max_new_tokens=12), GenerationParams(max_new_tokens=5, ignore_eos=True)):
        harness = {(c.request_id, c.attempt): c.n_output_tokens for c in backend.generate(requests, params)}
        bare = {(c.request_id, c.attempt): c.n_output_tokens for c in backend.generate_bare(requests, params)}
        assert bare == harness
    backend.close()


def test_engine_facts_read_the_checkpoint(tiny_model_dir):
    from harness.bench import engine_facts

    cfg = BenchConfig(model=str(tiny_model_dir))
    ecfg = cfg.engine_config("transformers", "none")
    params = decode_weights(safetensors_shapes(tiny_model_dir))
    # "auto" is the checkpoint's own dtype (the tiny model is saved in float32: 4 bytes a value).
    auto = engine_facts("transformers", "none", ecfg, {"dtype": "auto"}, 1e9, None)
    assert auto.kv_bytes_per_token == 2 * 2 * 1 * 16 * 4
    assert auto.weight_bytes_per_step == 4 * (params.linear_params + params.other_params)
    fp8_kv = engine_facts("transformers", "none", ecfg, {"dtype": "torch.bfloat16", "engine_options": {
        "kv_cache_dtype": "fp8_e4m3"}}, 1e9, None)
    assert fp8_kv.kv_bytes_per_token == 2 * 2 * 1 * 16 * 1
    assert fp8_kv.weight_bytes_per_step == 2 * (params.linear_params + params.other_params)
    missing = engine_facts("transformers", "none", BenchConfig(model="/no/such/model").engine_config(
        "transformers", "none"), {"dtype": "bfloat16"}, None, None)
    assert missing.weight_bytes_per_step is None and "not found locally" in missing.note
    assert "device bandwidth not measured" in missing.note


def test_waves_limit_the_requests_of_each_point(tmp_path, tiny_model_dir):
    path, fake = _fake_bench(tmp_path, tiny_model_dir, bare=True, waves=1)
    configurations = BenchDir(path).read()["configurations"]
    assert [c["n_requests"] for c in configurations] == [1, 2, 4]
    assert [len(c["repeats"][0]["latency_ms"]) for c in configurations] == [1, 2, 4]
    assert configurations[2]["decode"]["decode_steps"] == 2  # 4 requests x 2 decode tokens, 4 in flight
    assert fake.bare_sizes == [6, 6]  # the bare engine still gets every prompt


def test_idle_baseline_waits_for_a_closed_engine_to_free_its_memory():
    from harness.bench import idle_baseline_mib

    readings = iter([9000.0, 5000.0, 1200.0, 1190.0, 1190.0])
    assert idle_baseline_mib(interval_s=0, read=lambda: next(readings)) == 1190.0
    assert idle_baseline_mib(interval_s=0, read=lambda: None) is None
