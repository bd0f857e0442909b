"""A stand-in for vLLM's offline engine with its interface, so the vllm backend's own code runs on a CPU.

    api = fake_api(fail_after_steps=40)     # what harness.backends.vllm_compat.load_api() returns
    backend = VllmBackend(tiny_model_dir, api=api)
    llm = api.LLM.instances[-1]             # the engine the backend built: llm.kwargs, llm.llm_engine.added

The engine keeps vLLM's shape: `LLM(**kwargs)` with `llm_engine.add_request(request_id, prompt, params,
lora_request=...)`, `step()` returning RequestOutputs (only finished ones, as with FINAL_ONLY), and
`abort_request(ids)`; `LLM.generate(prompts, sampling_params, ...)` returns outputs in prompt order;
SamplingParams refuses keywords vLLM's does not have. Each step produces one token for every running
request, so requests with shorter outputs finish first (out of submission order). A request's output
length is a pure function of its prompt and sample index (with ignore_eos: max_tokens).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

from harness.backends.vllm_compat import VllmApi

# Keywords of vllm.SamplingParams that the backend may use (a subset of the real ones).
SAMPLING_FIELDS = {"n", "max_tokens", "ignore_eos", "temperature", "top_p", "top_k", "seed", "skip_special_tokens",
                   "repetition_penalty", "logit_bias", "output_kind", "min_p", "logprobs"}
# Keywords of vllm.LLM / EngineArgs that the backend may use.
ENGINE_FIELDS = {"model", "revision", "dtype", "quantization", "gpu_memory_utilization", "max_model_len",
                 "tensor_parallel_size", "seed", "limit_mm_per_prompt", "enforce_eager", "trust_remote_code",
                 "disable_log_stats", "enable_lora", "max_lora_rank", "max_loras"}
IMAGE_TOKENS = 16  # what the fake counts per image in a prompt


class FakeSamplingParams:
    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected keyword(s) {sorted(unknown)}")
        self.n, self.max_tokens, self.ignore_eos, self.temperature = 1, 16, False, 1.0
        self.top_p, self.top_k, self.seed, self.output_kind = 1.0, 0, None, None
        self.logit_bias, self.repetition_penalty = None, 1.0
        for key, value in kwargs.items():
            setattr(self, key, value)


@dataclass
class FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""


@dataclass
class _Running:
    prompt: dict[str, Any]
    params: FakeSamplingParams
    lengths: list[int]
    arrival: float
    produced: int = 0
    first_token_latency: float | None = None


@dataclass
class FakeEngine:
    max_model_len: int = 4096
    step_delay_s: float = 0.0
    fail_after_steps: int | None = None
    running: dict[str, _Running] = field(default_factory=dict)
    added: list[tuple[str, dict[str, Any], FakeSamplingParams, Any]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    max_running: int = 0
    steps: int = 0

    def add_request(self, request_id: str, prompt: dict[str, Any], params: FakeSamplingParams,
                    lora_request: Any = None, **_: Any) -> str:
        if request_id in self.running:
            raise ValueError(f"request id {request_id} is already running")
        n_prompt = len(prompt_token_ids(prompt))
        if n_prompt > self.max_model_len:
            raise ValueError(f"The decoder prompt (length {n_prompt}) is longer than the maximum model length "
                             f"of {self.max_model_len}.")
        lengths = [params.max_tokens if params.ignore_eos else
                   1 + zlib.crc32(f"{prompt['prompt']}|{i}".encode()) % params.max_tokens for i in range(params.n)]
        self.running[request_id] = _Running(prompt, params, lengths, time.perf_counter())
        self.added.append((request_id, prompt, params, lora_request))
        self.max_running = max(self.max_running, len(self.running))
        return request_id

    def step(self) -> list[Any]:
        self.steps += 1
        if self.fail_after_steps is not None and self.steps > self.fail_after_steps:
            raise RuntimeError("simulated engine failure")
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        finished = []
        for request_id, state in list(self.running.items()):
            state.produced += 1
            if state.first_token_latency is None:
                state.first_token_latency = time.perf_counter() - state.arrival
            if state.produced >= max(state.lengths):
                del self.running[request_id]
                finished.append(_output(request_id, state))
        return finished

    def has_unfinished_requests(self) -> bool:
        return bool(self.running)

    def abort_request(self, request_ids: list[str], internal: bool = False) -> None:
        for request_id in request_ids:
            self.running.pop(request_id, None)
            self.aborted.append(request_id)


def prompt_token_ids(prompt: dict[str, Any]) -> list[int]:
    n_images = len((prompt.get("multi_modal_data") or {}).get("image") or [])
    return list(range(len(prompt["prompt"].split()) + IMAGE_TOKENS * n_images))


def _output(request_id: str, state: _Running) -> Any:
    samples = []
    for index, length in enumerate(state.lengths):
        tokens = list(range(min(length, state.produced)))
        reason = "length" if length >= state.params.max_tokens else "stop"
        text = " ".join(f"w{t}" for t in tokens)
        samples.append(SimpleNamespace(index=index, text=text, token_ids=tokens, finish_reason=reason))
    return SimpleNamespace(request_id=request_id, prompt_token_ids=prompt_token_ids(state.prompt), outputs=samples,
                           finished=True, metrics=SimpleNamespace(first_token_latency=state.first_token_latency))


class FakeLLM:
    instances: ClassVar[list[FakeLLM]] = []
    engine_options: ClassVar[dict[str, Any]] = {}  # FakeEngine fields for the next LLM built (set by a test)

    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - ENGINE_FIELDS
        if unknown:
            raise TypeError(f"LLM got unexpected keyword(s) {sorted(unknown)}")
        self.kwargs = kwargs
        self.llm_engine = FakeEngine(max_model_len=kwargs.get("max_model_len") or 4096, **FakeLLM.engine_options)
        FakeLLM.instances.append(self)

    def generate(self, prompts: list[dict[str, Any]], sampling_params: list[FakeSamplingParams],
                 lora_request: Any = None, use_tqdm: bool = True) -> list[Any]:
        ids = [f"g{i}" for i in range(len(prompts))]
        for request_id, prompt, params in zip(ids, prompts, sampling_params, strict=True):
            self.llm_engine.add_request(request_id, prompt, params, lora_request=lora_request)
        outputs = {}
        while self.llm_engine.has_unfinished_requests():
            for output in self.llm_engine.step():
                outputs[output.request_id] = output
        return [outputs[i] for i in ids]

    def reset_prefix_cache(self) -> bool:
        self.cache_resets = getattr(self, "cache_resets", 0) + 1
        return True

    def reset_mm_cache(self) -> None:
        self.mm_cache_resets = getattr(self, "mm_cache_resets", 0) + 1

    def get_metrics(self) -> list[Any]:
        return [SimpleNamespace(name="vllm:kv_cache_usage_perc", value=len(self.llm_engine.running) / 64)]


def fake_api(**engine_options: Any) -> VllmApi:
    """A fresh fake vLLM; engine_options: FakeEngine fields (step_delay_s, fail_after_steps) of its engines."""
    FakeLLM.instances = []
    FakeLLM.engine_options = engine_options
    return VllmApi(LLM=FakeLLM, SamplingParams=FakeSamplingParams, LoRARequest=FakeLoRARequest,
                   final_only="FINAL_ONLY", version="0.31.0")
