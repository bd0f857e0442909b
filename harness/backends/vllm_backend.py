"""The vllm backend: vLLM's offline engine, fed every request at once, results streamed as they finish.

    backend = VllmBackend("Qwen/Qwen2.5-VL-7B-Instruct", gpu_memory_utilization=0.85)
    backend = VllmBackend("runs/gspo/checkpoint-500")        # LoRA, unmerged; base from adapter_config.json
    for c in backend.stream(requests, GenerationParams(max_new_tokens=512), max_concurrency=256):
        ...  # Completion(..., ttft_s=0.41, request_latency_s=9.8); requests in the order they finish
    backend.generate_bare(requests, params)   # one LLM.generate call on the same inputs: the reference speed

Prompts are the transformers backend's: the same processor renders the same chat template (the text
holds one image placeholder per image), and vLLM's processor, loaded from the same model directory with
the same image limits, expands each placeholder to the same number of image tokens. Sampling follows
the checkpoint's generation config where ours is silent (repetition_penalty, suppressed tokens), as
`model.generate` does. A sampled request gets its own seed from (seed, request id), so its samples do not
depend on what else is in flight, and a resumed run redoes it identically.

The engine runs in its own processes (vLLM starts them with spawn): build the backend from a function
called under `if __name__ == "__main__":`, never at a module's top level; the `harness` command does.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from core.errors import BackendError, ConfigError, ModelError
from harness.backends import Completion, GenerationParams, Request, request_seed
from harness.backends.vllm_compat import (
    VllmApi,
    capture_engine_log,
    engine_memory_from_log,
    kv_cache_usage,
    render_prompt,
)
from harness.backends.vllm_lora import AdapterPlan, merged_model_dir, plan_adapter, refusal
from harness.models import first_line, load_processor, resolve_model

KV_POLL_S = 2.0  # how often the stream reads the engine's KV-cache usage


def count_image_parts(messages: list[dict[str, Any]]) -> int:
    return sum(1 for message in messages if isinstance(message.get("content"), list)
               for part in message["content"] if part.get("type") in ("image", "image_url"))


def sampling_kwargs(params: GenerationParams, request_id: str,
                    generation_defaults: dict[str, Any]) -> dict[str, Any]:
    """SamplingParams keywords for one request (`generation_defaults`: from the checkpoint's config)."""
    kwargs: dict[str, Any] = {"n": params.n, "max_tokens": params.max_new_tokens, "ignore_eos": params.ignore_eos,
                              "temperature": params.temperature, "skip_special_tokens": True}
    if params.temperature > 0:
        kwargs.update(top_p=params.top_p, top_k=params.top_k, seed=request_seed(params.seed, request_id))
    if generation_defaults.get("repetition_penalty") not in (None, 1.0):
        kwargs["repetition_penalty"] = float(generation_defaults["repetition_penalty"])
    if generation_defaults.get("suppress_tokens"):
        kwargs["logit_bias"] = {int(t): -math.inf for t in generation_defaults["suppress_tokens"]}
    return kwargs


def engine_kwargs(model: str, *, revision: str | None, dtype: str, quantization: str | None,
                  gpu_memory_utilization: float, max_model_len: int | None, tensor_parallel_size: int,
                  seed: int, max_images_per_prompt: int, enforce_eager: bool, trust_remote_code: bool,
                  adapter: AdapterPlan | None) -> dict[str, Any]:
    """vllm.LLM keywords for one engine."""
    if quantization not in (None, "fp8", "bitsandbytes"):
        raise ConfigError(f"unknown quantization {quantization!r} for the vllm backend; use fp8 or bitsandbytes")
    kwargs: dict[str, Any] = {
        "model": model, "revision": revision, "dtype": dtype, "quantization": quantization,
        "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len,
        "tensor_parallel_size": tensor_parallel_size, "seed": seed,
        "limit_mm_per_prompt": {"image": max_images_per_prompt, "video": 0},
        "enforce_eager": enforce_eager, "trust_remote_code": trust_remote_code,
        # Per-request timings (time to first token) and the KV-cache usage gauge come with the stats.
        "disable_log_stats": False,
    }
    if adapter is not None:
        kwargs.update(adapter.engine_options())
    return {k: v for k, v in kwargs.items() if v is not None}


def generation_defaults_of(model_dir: str, revision: str | None) -> dict[str, Any]:
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(model_dir, revision=revision)
    except OSError:  # no generation_config.json: nothing to follow
        return {}
    return {"repetition_penalty": config.repetition_penalty, "suppress_tokens": list(config.suppress_tokens or [])}


class VllmBackend:
    name = "vllm"

    def __init__(self, model: str, *, revision: str | None = None, adapter: str | None = None,
                 dtype: str = "auto", quantization: str | None = None, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, tensor_parallel_size: int = 1, data_parallel_size: int = 1,
                 seed: int = 0, merge_lora: bool = False, max_images_per_prompt: int = 1,
                 enforce_eager: bool = False, trust_remote_code: bool = False, api: VllmApi | None = None,
                 serve_adapters: Sequence[str] = ()):
        if data_parallel_size != 1:
            raise ConfigError("one VllmBackend runs one engine; data parallelism: harness.backends.vllm_dp")
        started = time.perf_counter()
        from harness.gpu_memory import NvmlSampler

        # Started before the engine: its baseline is the idle device, so the peak over it is the engine's.
        self._nvml = NvmlSampler().__enter__()
        if api is None:
            from harness.backends.vllm_compat import load_api

            api = load_api()
        self.api, self.model_ref, self.revision = api, str(model), revision
        self.max_images_per_prompt, self.quantization = max_images_per_prompt, quantization
        resolved = resolve_model(self.model_ref, revision, adapter)
        self.base_model, self.adapter = resolved.base.location, resolved.adapter
        self.adapter_plan: AdapterPlan | None = None
        self.lora_request = None
        engine_model, engine_revision = resolved.base.location, resolved.base.hub_options().get("revision")
        self.lora: dict[str, Any] | None = None
        if resolved.adapter is not None:
            plan = plan_adapter(resolved.adapter)
            if merge_lora:
                from harness.tiny_model import tiny_model_cache_dir

                merge_dtype = dtype if dtype in ("bfloat16", "float16") else "bfloat16"
                engine_model, engine_revision = str(merged_model_dir(resolved, tiny_model_cache_dir(), merge_dtype)), None
                self.lora = {"mode": "merged", "merged_model": engine_model, "rank": plan.rank,
                             "n_modules": len(plan.language_modules) + len(plan.vision_modules)}
            elif plan.ignored_by_vllm:
                raise ModelError(refusal(plan))
            else:
                self.adapter_plan = plan
                self.lora = plan.describe()
                self.lora_request = api.LoRARequest("adapter", 1, plan.path)
        # LoRA adapters of this base switched per request (`submit(..., adapter=)`: harness eval-many).
        self.served: dict[str, tuple[AdapterPlan, Any, str]] = {}
        if serve_adapters:
            if resolved.adapter is not None or merge_lora:
                raise ConfigError("serve_adapters needs a base model without an adapter and without merge_lora")
            for lora_id, ref in enumerate(serve_adapters, start=1):
                source = resolve_model(resolved.base.location, resolved.base.revision, ref).adapter
                assert source is not None
                plan = plan_adapter(source)
                if plan.ignored_by_vllm:
                    raise ModelError(refusal(plan))
                self.served[ref] = (plan, api.LoRARequest(f"adapter-{lora_id}", lora_id, plan.path), source.location)
            # The engine is sized for the largest rank; one adapter at a time is active (runs take turns).
            self.adapter_plan = max((plan for plan, _, _ in self.served.values()), key=lambda p: p.max_lora_rank)
        self.processor = load_processor(resolved, trust_remote_code)
        self.generation_defaults = generation_defaults_of(resolved.base.location, engine_revision)
        self.engine_options = engine_kwargs(
            engine_model, revision=engine_revision, dtype=dtype, quantization=quantization,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size, seed=seed, max_images_per_prompt=max_images_per_prompt,
            enforce_eager=enforce_eager, trust_remote_code=trust_remote_code, adapter=self.adapter_plan)
        log_dir = Path(tempfile.mkdtemp(prefix="harness-vllm-"))
        handler = capture_engine_log(log_dir / "engine.log")
        try:
            self.llm = api.LLM(**self.engine_options)
        except Exception as exc:  # engine start-up: out of memory, unsupported model, bad option ...
            self._nvml.__exit__(None, None, None)
            raise ModelError(f"vLLM could not start an engine for {engine_model}: {first_line(exc)}") from exc
        finally:
            from harness.backends.vllm_compat import release_engine_log

            release_engine_log(handler)
        log_file = log_dir / "engine.log"
        self.engine_memory = engine_memory_from_log(log_file.read_text() if log_file.is_file() else "")
        self.kv_cache_peak_usage: float | None = None
        self._next_id, self._next_poll = 0, time.perf_counter()
        self._in_flight: dict[str, tuple[Request, float]] = {}
        self.load_time_s = time.perf_counter() - started

    # --- requests -------------------------------------------------------------------------------
    def engine_input(self, request: Request) -> dict[str, Any]:
        """The prompt vLLM gets: the chat template's text and the images as multi-modal data."""
        n_parts = count_image_parts(request.messages)
        if n_parts != len(request.images):
            raise ValueError(f"request {request.request_id}: {n_parts} image parts in the messages but "
                             f"{len(request.images)} images")
        if len(request.images) > self.max_images_per_prompt:
            raise ConfigError(f"request {request.request_id} has {len(request.images)} images; the engine "
                              f"was started for at most {self.max_images_per_prompt} (max_images_per_prompt)")
        text = self.processor.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        prompt: dict[str, Any] = {"prompt": text}
        if request.images:
            prompt["multi_modal_data"] = {"image": list(request.images)}
        return prompt

    def sampling_params(self, params: GenerationParams, request: Request, final_only: bool = True):
        kwargs = sampling_kwargs(params, request.request_id, self.generation_defaults)
        if final_only:
            kwargs["output_kind"] = self.api.final_only  # what LLM.generate asks for: no partial outputs
        return self.api.SamplingParams(**kwargs)

    def _completions(self, request: Request, output: Any, latency_s: float, bare: bool = False) -> list[Completion]:
        metrics = getattr(output, "metrics", None)
        ttft = getattr(metrics, "first_token_latency", None) if metrics is not None else None
        n_prompt = len(output.prompt_token_ids or [])
        out = []
        for sample in sorted(output.outputs, key=lambda o: o.index):
            if sample.finish_reason not in ("stop", "length"):
                raise BackendError(f"vLLM ended request {request.request_id} with {sample.finish_reason!r}")
            out.append(Completion(
                request_id=request.request_id, attempt=sample.index, text=sample.text, n_prompt_tokens=n_prompt,
                n_output_tokens=len(sample.token_ids), finish_reason=sample.finish_reason, latency_s=latency_s,
                ttft_s=None if bare or not ttft else float(ttft), request_latency_s=None if bare else latency_s))
        return out

    # --- generation -----------------------------------------------------------------------------
    def submit(self, request: Request, params: GenerationParams, adapter: str | None = None) -> None:
        """Hand one request to the engine; its completions come out of a later `step()`. `adapter`: one of
        the serve_adapters to apply to this request."""
        if adapter is not None and adapter not in self.served:
            raise ConfigError(f"adapter {adapter} is not served by this engine (serve_adapters)")
        lora_request = self.served[adapter][1] if adapter is not None else self.lora_request
        engine_id = f"h{self._next_id}"  # apart from the ids LLM.generate gives (0, 1, ...)
        self._next_id += 1
        prompt, sampling = self.engine_input(request), self.sampling_params(params, request)
        try:
            self.llm.llm_engine.add_request(engine_id, render_prompt(self.llm, prompt), sampling,
                                            lora_request=lora_request)
        except self.api.request_errors as exc:  # vLLM refuses a request (e.g. longer than max_model_len)
            raise BackendError(f"vLLM refused request {request.request_id}: {first_line(exc)}") from exc
        self._in_flight[engine_id] = (request, time.perf_counter())

    def step(self) -> list[list[Completion]]:
        """One engine step: the completions of each request that finished in it."""
        finished = []
        for output in self.llm.llm_engine.step():
            if output.finished and output.request_id in self._in_flight:
                request, submitted = self._in_flight.pop(output.request_id)
                finished.append(self._completions(request, output, time.perf_counter() - submitted))
        if time.perf_counter() >= self._next_poll:
            usage = kv_cache_usage(self.llm)
            if usage is not None:
                self.kv_cache_peak_usage = max(usage, self.kv_cache_peak_usage or 0.0)
            self._next_poll = time.perf_counter() + KV_POLL_S
        return finished

    def reset_caches(self) -> None:
        """Forget the engine's prefix cache and multi-modal input cache, so that the next pass over prompts
        it has seen costs what the first did (benchmarks compare passes, and a run sees each prompt once)."""
        self.llm.reset_prefix_cache()
        reset_mm_cache = getattr(self.llm, "reset_mm_cache", None)
        if reset_mm_cache is not None:
            reset_mm_cache()

    @property
    def n_in_flight(self) -> int:
        return len(self._in_flight)

    def abort_all(self) -> None:
        if self._in_flight:
            self.llm.llm_engine.abort_request(list(self._in_flight))
            self._in_flight.clear()

    def stream(self, requests: Iterable[Request], params: GenerationParams,
               max_concurrency: int | None = None) -> Iterator[Completion]:
        """Every request handed to the engine (at most max_concurrency in flight), completions yielded as
        each request finishes. Stopping the iteration aborts what is still in flight."""
        params.check()
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        source, exhausted = iter(requests), False  # pulled as slots free up: prompts are built lazily
        cap = max_concurrency or math.inf
        try:
            while True:
                while not exhausted and len(self._in_flight) < cap:
                    request = next(source, None)
                    if request is None:
                        exhausted = True
                    else:
                        self.submit(request, params)  # the engine starts on it at once
                if exhausted and not self._in_flight:
                    return
                for completions in self.step():
                    yield from completions
        finally:
            self.abort_all()  # an error or an abandoned stream: nothing may keep running in the engine

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        """Completions in request order, then attempt order (the stream, collected)."""
        order = {r.request_id: i for i, r in enumerate(requests)}
        completions = list(self.stream(requests, params))
        return sorted(completions, key=lambda c: (order[c.request_id], c.attempt))

    def generate_bare(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        """One `LLM.generate` call on the same engine inputs: the bare engine's speed, for comparisons.
        Every completion's latency_s is that call's wall time; no per-request timings."""
        params.check()
        inputs = [self.engine_input(r) for r in requests]
        sampling = [self.sampling_params(params, r, final_only=False) for r in requests]
        started = time.perf_counter()
        outputs = self.llm.generate(inputs, sampling, lora_request=self.lora_request, use_tqdm=False)
        wall = time.perf_counter() - started
        return [c for request, output in zip(requests, outputs, strict=True)
                for c in self._completions(request, output, wall, bare=True)]

    def engine_prompt_token_ids(self, requests: list[Request]) -> list[list[int]]:
        """The prompt token ids the engine builds for each request (it generates one token): to check
        that both backends feed the model the same prompt (TransformersBackend.prompt_token_ids)."""
        outputs = self.llm.generate([self.engine_input(r) for r in requests], self.api.SamplingParams(max_tokens=1),
                                    lora_request=self.lora_request, use_tqdm=False)
        return [list(output.prompt_token_ids) for output in outputs]

    # --- facts ----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_ref, "revision": self.revision, "base_model": self.base_model,
            "adapter": self.adapter.location if self.adapter else None, "lora": self.lora,
            "dtype": self.engine_options.get("dtype"), "quantization": self.quantization,
            "device": "cuda", "engine": f"vllm {self.api.version}", "vllm_version": self.api.version,
            "engine_options": {k: v for k, v in self.engine_options.items() if k != "model"},
            "load_time_s": round(self.load_time_s, 3),
            "generation_defaults": {k: v for k, v in self.generation_defaults.items() if v not in (None, [], 1.0)},
        }

    def describe_adapter(self, adapter: str) -> dict[str, Any]:
        """The facts of a served adapter's requests, as a one-engine run of that adapter reports them."""
        plan, _, location = self.served[adapter]
        return {**self.describe(), "model": adapter, "adapter": location, "lora": plan.describe()}

    def memory(self) -> dict[str, Any]:
        """NVML's used memory of the visible GPUs over its value before the engine started (the engine
        preallocates gpu_memory_utilization of each card in its own processes, so torch's counters
        here read near zero), vLLM's own weights and KV-cache sizes, and the peak KV-cache usage."""
        peak, baseline = self._nvml.peak_used_mib, self._nvml.baseline_used_mib
        over = round(peak - baseline, 1) if peak is not None and baseline is not None else None
        out = {"nvml_used_over_baseline_mib": over, "nvml_baseline_used_mib": baseline,
               **self.engine_memory, "kv_cache_peak_usage": self.kv_cache_peak_usage}
        if over is None and self._nvml.note:
            out["note"] = self._nvml.note
        return out

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if engine_core is not None and hasattr(engine_core, "shutdown"):
                engine_core.shutdown()  # the engine's processes end now, not at interpreter exit
            del llm
        self._nvml.__exit__(None, None, None)
        import gc

        gc.collect()
