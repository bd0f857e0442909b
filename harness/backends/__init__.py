"""The backend protocol: a batch of requests in, completions out. Heavy imports stay in the modules.

Every backend takes chat messages with images and the generation parameters, and returns, for each
request, `params.n` completions with token counts, a finish reason and the batch's wall time. Nothing
else of a backend is visible to the runner, so a vLLM backend (later) slots in beside transformers.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from harness.errors import BackendError


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 1024
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    n: int = 1  # samples per prompt (attempts); n > 1 needs temperature > 0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    n_prompt_tokens: int
    n_output_tokens: int
    finish_reason: Literal["stop", "length"]
    latency_s: float  # wall time of the generate call that produced it (the whole batch)


class Backend(Protocol):
    name: str

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        """Completions for every request and attempt (len = len(requests) * params.n)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model facts for the manifest: id or path, revision, adapter, dtype, quantization, device."""
        ...

    def memory(self) -> dict[str, Any]:
        """Peak device memory since load: peak_allocated_mib, peak_reserved_mib (None on CPU)."""
        ...

    def close(self) -> None: ...


# name -> "module:factory". The factory takes (model, **options) and returns a Backend.
BACKENDS: dict[str, str] = {
    "transformers": "harness.backends.transformers_backend:TransformersBackend",
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
