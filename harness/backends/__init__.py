"""The backend protocol: requests in, completions out. Heavy imports stay in the backend modules.

Every backend takes chat messages with images and the generation parameters, and returns, for each
request, `params.n` completions with token counts, a finish reason and timings. Two shapes exist:

- a batch backend (transformers) has `generate(requests, params) -> list[Completion]`, one static
  batch per call;
- a streaming backend (vllm) also has `stream(requests, params, max_concurrency=None)`, which hands
  every request to its engine (continuous batching picks the real batch) and yields completions as
  each request finishes, in any order.

The runner and the bench consume any backend the same way:

    for completion in iter_completions(backend, requests, params, batch_size=8):
        ...  # completions of one request arrive together; requests in any order

Nothing else of a backend is visible to the runner.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from core.errors import BackendError, ConfigError


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 1024
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    n: int = 1  # samples per prompt (attempts); n > 1 needs temperature > 0
    seed: int = 0
    # Generate exactly max_new_tokens (benchmarks: a forced output length); end-of-sequence is ignored.
    ignore_eos: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """A one-line ConfigError for parameters no backend can honour."""
        if self.n < 1 or self.max_new_tokens < 1 or self.temperature < 0:
            raise ConfigError(f"invalid generation parameters {self.to_dict()}")
        if self.n > 1 and self.temperature == 0:
            raise ConfigError(f"n={self.n} samples need temperature > 0 (temperature 0 is greedy)")


@dataclass
class Request:
    request_id: str
    # Chat messages in the transformers multimodal shape:
    # [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}]
    messages: list[dict[str, Any]]
    images: list[Any] = field(default_factory=list)  # PIL images, in the order of the image parts


@dataclass
class Completion:
    request_id: str
    attempt: int  # 0 .. n-1
    text: str
    n_prompt_tokens: int | None  # None where the backend cannot know (a server that reports no usage)
    n_output_tokens: int | None
    finish_reason: Literal["stop", "length"]
    # Batch backends: wall time of the generate call that produced it (the whole batch).
    # Streaming backends: this request's time from submission to finish (= request_latency_s).
    latency_s: float
    ttft_s: float | None = None  # time to first token, where the backend measures it per request
    request_latency_s: float | None = None  # submission to finish, where measured per request
    batch_index: int | None = None  # set by iter_completions: the static batch it came from (None: a stream)
    # Why the request failed where the backend keeps going (a server that still refused it after
    # retries): the runner records it as an error that `--resume` sends again. text is "" then.
    error: str | None = None


def request_seed(seed: int, request_id: str) -> int:
    """A sampled request's own seed, from the run's seed and its id: its samples do not depend on what
    else is in flight, and a resumed run redoes it identically (every backend that takes seeds)."""
    return (seed + zlib.crc32(request_id.encode())) % 2**31


class Backend(Protocol):
    name: str

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        """Completions for every request and attempt (len = len(requests) * params.n)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model facts for the manifest: id or path, revision, adapter, dtype, quantization, device,
        and `load_time_s` (model load plus engine start-up, measured)."""
        ...

    def memory(self) -> dict[str, Any]:
        """Peak device memory since load, in labelled fields (None where not measured), e.g.
        transformers: peak_allocated_mib, peak_reserved_mib (torch's counters in this process);
        vllm: nvml_used_over_baseline_mib, vllm_weights_gib, vllm_kv_cache_gib, kv_cache_peak_usage."""
        ...

    def close(self) -> None: ...


class StreamingBackend(Backend, Protocol):
    def stream(self, requests: Iterable[Request], params: GenerationParams,
               max_concurrency: int | None = None) -> Iterator[Completion]:
        """Hand the requests (pulled from the iterable as they are handed over) to the engine (at most `max_concurrency` in flight when given, like
        `vllm bench serve --max-concurrency`; all at once otherwise) and yield each request's `params.n`
        completions as soon as it finishes, in any request order. Completions carry request_latency_s
        and, where the engine reports it, ttft_s. Stopping the iteration aborts the requests in flight."""
        ...


def iter_completions(backend: Backend, requests: Iterable[Request], params: GenerationParams,
                     batch_size: int, max_concurrency: int | None = None) -> Iterator[Completion]:
    """Completions of every request, as they are ready: the one way the runner and the bench consume a
    backend. A streaming backend gets all requests at once (`max_concurrency` caps those in flight); a
    batch backend gets static batches of `batch_size`, longest prompts first when it can measure prompt
    lengths (`prompt_lengths(requests)`), so that a batch holds prompts of similar length and little
    padding, and an out-of-memory batch shows up at the start. Callers must not rely on the order.
    `requests` may be a generator: a stream pulls prompts as it hands them over (while its engine works
    on the first ones); a batch backend takes them all first."""
    stream = getattr(backend, "stream", None)
    if stream is not None:
        yield from stream(requests, params, max_concurrency=max_concurrency)
        return
    if batch_size < 1:
        raise BackendError(f"batch_size must be at least 1, got {batch_size}")
    requests = requests if isinstance(requests, Sequence) else list(requests)
    order = list(range(len(requests)))
    prompt_lengths = getattr(backend, "prompt_lengths", None)
    if prompt_lengths is not None and len(requests) > batch_size:
        lengths = prompt_lengths(requests)
        order.sort(key=lambda i: -lengths[i])  # stable: equal lengths keep their order
    for batch_index, start in enumerate(range(0, len(order), batch_size)):
        batch = [requests[i] for i in order[start:start + batch_size]]
        for completion in backend.generate(batch, params):
            completion.batch_index = batch_index
            yield completion


# name -> "module:factory". The factory takes (model, **options) and returns a Backend.
BACKENDS: dict[str, str] = {
    "transformers": "harness.backends.transformers_backend:TransformersBackend",
    # No model: fixed responses from a script file given as the model (see harness/backends/scripted.py).
    "scripted": "harness.backends.scripted:from_script",
    "vllm": "harness.backends.vllm_dp:make_vllm_backend",
    # Any OpenAI-compatible chat server (vLLM serve, SGLang, transformers serve, a hosted API).
    "openai": "harness.backends.openai_backend:OpenAIBackend",
}


def load_backend(name: str, model: str, **options: Any) -> Backend:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, _, attr = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # an optional dependency of this backend is missing
        raise BackendError(f"backend {name!r} cannot be imported ({exc}); install the missing package "
                           f"{exc.name or ''} (optional backends: `uv sync --extra <backend>`)") from exc
    return getattr(module, attr)(model, **options)
