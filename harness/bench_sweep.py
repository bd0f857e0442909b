"""One point of a `harness bench` sweep: warm-up, timed repeats, a prefill-only pass, the bare engine.

    sweep = Sweep(backend, requests, params, engine=EngineFacts(...), repeat=3, warmup=1, bare=True)
    configuration = sweep.measure("batch_size", 8)        # or ("concurrency", 64) on a streaming backend

A pass sends every prompt through `iter_completions`, the same path `harness eval` takes: static
batches of `value` prompts on a batch backend, at most `value` requests in flight on a streaming one
(the engine stays loaded across the sweep). Warm-up passes (one batch, or one wave of `value`
requests) are discarded. Memory is read per configuration: torch's peak counters are reset first,
and NVML is sampled while the configuration runs, against the idle baseline taken before the load.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import BackendError
from harness.backends import Backend, Completion, GenerationParams, Request, iter_completions
from harness.bench_measure import (
    context_tokens,
    decode_bandwidth,
    distribution,
    repeat_stat,
    static_decode_steps,
    streaming_decode_steps,
)
from harness.benchstore import BareTiming, Configuration, MemoryFigures, RepeatSample


@dataclass(frozen=True)
class EngineFacts:
    """What the decode-bandwidth arithmetic needs to know of the loaded engine."""
    backend: str
    quantization: str
    weight_bytes_per_step: int | None
    kv_bytes_per_token: int | None
    device_bytes_per_s: float | None  # measured copy bandwidth of one device
    n_devices: int = 1  # tensor parallel x data parallel
    replicas: int = 1  # data-parallel engines, each reading its own weights every step
    nvml_idle_baseline_mib: float | None = None
    note: str | None = None


@dataclass
class PassResult:
    wall_s: float
    completions: list[Completion]

    def batches(self) -> dict[int, list[Completion]]:
        grouped: dict[int, list[Completion]] = defaultdict(list)
        for c in self.completions:
            grouped[c.batch_index if c.batch_index is not None else -1].append(c)
        return dict(grouped)


def _latency_s(c: Completion) -> float:
    # Streaming backends time each request; a static batch finishes all its requests together.
    return c.request_latency_s if c.request_latency_s is not None else c.latency_s


def _tpot_ms(c: Completion) -> float | None:
    if c.ttft_s is None or c.n_output_tokens < 2:
        return None
    return 1000 * (_latency_s(c) - c.ttft_s) / (c.n_output_tokens - 1)


def _reset_torch_peaks() -> None:
    torch = sys.modules.get("torch")  # only when something here already uses torch
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for device in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(device)


class Sweep:
    def __init__(self, backend: Backend, requests: list[Request], params: GenerationParams, engine: EngineFacts,
                 *, repeat: int, warmup: int, bare: bool, waves: int | None = None,
                 on_pass: Callable[[str], None] | None = None):
        if not requests:
            raise BackendError("the bench has no prompts to send")
        self.backend, self.requests, self.params, self.engine = backend, requests, params, engine
        self.repeat, self.warmup, self.bare, self.waves = repeat, warmup, bare, waves
        self.on_pass = on_pass or (lambda _label: None)
        self._engine_bare: BareTiming | None = None  # a streaming engine's bare timing, shared by its points

    def run_pass(self, axis: str, value: int, requests: list[Request],
                 params: GenerationParams | None = None) -> PassResult:
        batch_size = value if axis == "batch_size" else max(1, len(requests))
        concurrency = value if axis == "concurrency" else None
        self._reset_caches()
        started = time.perf_counter()
        completions = list(iter_completions(self.backend, requests, params or self.params, batch_size, concurrency))
        wall_s = time.perf_counter() - started
        expected = len(requests) * (params or self.params).n
        if len(completions) != expected:
            raise BackendError(f"backend {self.engine.backend} returned {len(completions)} completions for "
                               f"{expected} expected")
        return PassResult(wall_s, completions)

    def _reset_caches(self) -> None:
        # Every pass sends the same prompts: without this, vLLM's prefix and image caches make every pass
        # after the first one faster than any real run, whose prompts the engine sees once.
        reset = getattr(self.backend, "reset_caches", None)
        if reset is not None:
            reset()

    def measure(self, axis: str, value: int) -> Configuration:
        from harness.gpu_memory import NvmlSampler

        label = f"{self.engine.backend} {self.engine.quantization} {axis.replace('_', ' ')} {value}"
        # With `waves`, a point sends its first waves x value prompts: enough to fill it, without hours
        # of single-request decoding at the low end of a sweep.
        requests = self.requests[:self.waves * value] if self.waves else self.requests
        _reset_torch_peaks()
        with NvmlSampler() as sampler:
            for i in range(self.warmup):
                self.run_pass(axis, value, requests[:value])
                self.on_pass(f"{label}: warm-up {i + 1}/{self.warmup}")
            passes = []
            for i in range(self.repeat):
                passes.append(self.run_pass(axis, value, requests))
                self.on_pass(f"{label}: repeat {i + 1}/{self.repeat}")
            prefill = self.run_pass(axis, value, requests, params=dataclasses.replace(self.params, max_new_tokens=1))
            self.on_pass(f"{label}: prefill-only pass")
            memory = self._memory(sampler)
        bare = self._bare(axis, passes[-1], label) if self.bare else None
        return self._configuration(axis, value, passes, prefill, memory, bare)

    def _memory(self, sampler) -> MemoryFigures:
        idle, peak = self.engine.nvml_idle_baseline_mib, sampler.peak_used_mib
        return {"backend": dict(self.backend.memory()), "nvml_idle_baseline_mib": idle,
                "nvml_peak_used_mib": peak,
                "nvml_peak_over_idle_mib": peak - idle if peak is not None and idle is not None else None,
                "note": sampler.note}

    def _bare(self, axis: str, harness_pass: PassResult, label: str) -> BareTiming | None:
        generate_bare = getattr(self.backend, "generate_bare", None)
        if generate_bare is None:
            return None
        if axis == "concurrency" and self._engine_bare is not None:
            return self._engine_bare  # the engine schedules a bare call itself: one timing serves every point
        by_id = {r.request_id: r for r in self.requests}
        if axis == "batch_size":  # the very batches the harness pass made (sorted by prompt length)
            batches = [list(dict.fromkeys(c.request_id for c in group))
                       for _, group in sorted(harness_pass.batches().items())]
        else:
            batches = [[r.request_id for r in self.requests]]
        walls, rates = [], []
        for i in range(self.repeat):
            self._reset_caches()
            started, tokens = time.perf_counter(), 0
            for batch in batches:
                tokens += sum(c.n_output_tokens for c in generate_bare([by_id[rid] for rid in batch], self.params))
            wall = time.perf_counter() - started
            walls.append(wall)
            rates.append(tokens / wall if wall > 0 else 0.0)
            self.on_pass(f"{label}: bare {i + 1}/{self.repeat}")
        timing: BareTiming = {"scope": "engine" if axis == "concurrency" else "batch", "wall_s": repeat_stat(walls),
                              "output_tokens_per_s": repeat_stat(rates), "harness_over_bare": None}
        if axis == "concurrency":
            self._engine_bare = timing
        return timing

    def _configuration(self, axis: str, value: int, passes: list[PassResult], prefill: PassResult,
                       memory: MemoryFigures, bare: BareTiming | None) -> Configuration:
        samples: list[RepeatSample] = []
        latencies, ttfts, tpots = [], [], []
        for p in passes:
            has_ttft = all(c.ttft_s is not None for c in p.completions)
            samples.append({"wall_s": p.wall_s, "prompt_tokens": sum(c.n_prompt_tokens for c in p.completions),
                            "output_tokens": sum(c.n_output_tokens for c in p.completions),
                            "n_completions": len(p.completions),
                            "latency_ms": [round(1000 * _latency_s(c), 3) for c in p.completions],
                            "ttft_ms": [round(1000 * c.ttft_s, 3) for c in p.completions] if has_ttft else None})
            latencies += samples[-1]["latency_ms"]
            ttfts += samples[-1]["ttft_ms"] or []
            tpots += [t for t in map(_tpot_ms, p.completions) if t is not None]
        walls = [s["wall_s"] for s in samples]
        n_requests = len({c.request_id for c in passes[0].completions})
        out = repeat_stat([s["output_tokens"] / s["wall_s"] for s in samples])
        config: Configuration = {
            "backend": self.engine.backend, "quantization": self.engine.quantization, "axis": axis,  # type: ignore[typeddict-item]
            "value": value, "n_requests": n_requests, "warmup_passes": self.warmup,
            "wall_s": repeat_stat(walls), "output_tokens_per_s": out,
            "total_tokens_per_s": repeat_stat([(s["prompt_tokens"] + s["output_tokens"]) / s["wall_s"]
                                               for s in samples]),
            "samples_per_s": repeat_stat([s["n_completions"] / s["wall_s"] for s in samples]),
            "prompt_tokens_mean": sum(s["prompt_tokens"] for s in samples) / len(samples) / n_requests,
            "output_tokens_mean": sum(s["output_tokens"] for s in samples) / len(samples) / n_requests,
            **distribution("latency_ms", latencies), **distribution("ttft_ms", ttfts),  # type: ignore[typeddict-item]
            **distribution("tpot_ms", tpots),
            "memory": memory, "decode": self._decode(axis, value, passes[-1], walls, prefill.wall_s),
            "bare": None, "repeats": samples,
        }
        if bare is not None:
            ratio = (out["mean"] / bare["output_tokens_per_s"]["mean"]
                     if out["mean"] and bare["output_tokens_per_s"]["mean"] else None)
            config["bare"] = {**bare, "harness_over_bare": ratio}
        return config

    def _decode(self, axis: str, value: int, last: PassResult, walls: list[float], prefill_s: float):
        pairs = [(c.n_prompt_tokens, c.n_output_tokens) for c in last.completions]
        if axis == "batch_size":
            steps = static_decode_steps([[c.n_output_tokens for c in group] for group in last.batches().values()])
        else:
            steps = streaming_decode_steps([o for _, o in pairs], value, self.engine.replicas)
        decode_s = sum(walls) / len(walls) - prefill_s
        return decode_bandwidth(weight_bytes_per_step=self.engine.weight_bytes_per_step,
                                kv_bytes_per_token=self.engine.kv_bytes_per_token, decode_steps=steps,
                                context_tokens_read=context_tokens(pairs), decode_s=decode_s, prefill_s=prefill_s,
                                device_bytes_per_s=self.engine.device_bytes_per_s,
                                n_devices=self.engine.n_devices, note=self.engine.note)

