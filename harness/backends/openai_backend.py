"""The openai backend: any OpenAI-compatible chat server (vLLM `serve`, SGLang, `transformers serve`, a
hosted API), requests sent concurrently and results streamed back as they finish.

    harness eval --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct --base-url http://127.0.0.1:8000/v1 \\
        --suite mathvista_testmini --max-concurrency 64

    backend = OpenAIBackend("Qwen/Qwen2.5-VL-7B-Instruct", base_url="http://127.0.0.1:8000/v1")
    for c in backend.stream(requests, GenerationParams(max_new_tokens=512), max_concurrency=64):
        ...  # Completion(..., request_latency_s=3.2); c.error set when the server refused it after retries

Images go in the user turn as base64 PNG data URLs (lossless: the server sees the pixels the other
backends see). Sampling maps to the request: max_new_tokens -> max_tokens, temperature, and when
sampling top_p, n and a per-request seed; top_k and ignore_eos are sent only when set (vLLM and SGLang
read them; OpenAI's own API does not). Retries, timeouts and the API key: harness/openai_client.py.
A request that still fails becomes completions with `error` set, which the runner records and
`--resume` sends again; the run goes on.
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from core.errors import ConfigError
from harness.backends import Completion, GenerationParams, Request, request_seed
from harness.openai_client import ChatClient, ChatResult, ClientSettings, normalized_base_url, stats_summary

DEFAULT_MAX_CONCURRENCY = 32


def image_data_url(image: Any) -> str:
    """A PIL image as a data URL holding its PNG encoding."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_messages(request: Request) -> list[dict[str, Any]]:
    """The request's messages in the OpenAI shape: each {"type": "image"} part becomes an image_url part
    holding the next image of the request, in order."""
    images = iter(request.images)
    out = []
    for message in request.messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append(dict(message))
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                image = next(images, None)
                if image is None:
                    raise ValueError(f"request {request.request_id}: more image parts than images")
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
            else:
                parts.append(dict(part))
        out.append({**message, "content": parts})
    if next(images, None) is not None:
        raise ValueError(f"request {request.request_id}: more images than image parts")
    return out


def sampling_body(params: GenerationParams) -> dict[str, Any]:
    """The request's generation fields (the seed of a sampled request is added per request)."""
    body: dict[str, Any] = {"max_tokens": params.max_new_tokens, "temperature": params.temperature}
    if params.temperature > 0:
        body["top_p"] = params.top_p
        if params.n > 1:
            body["n"] = params.n
    if params.top_k > 0:
        body["top_k"] = params.top_k
    if params.ignore_eos:
        body["ignore_eos"] = True
    return body


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 600.0, max_retries: int = 6, retry_backoff_s: float = 1.0,
                 max_concurrency: int | None = None, **_ignored: Any):
        started = time.perf_counter()
        self.model = model
        self.default_concurrency = max_concurrency or DEFAULT_MAX_CONCURRENCY
        self.settings = ClientSettings(base_url=normalized_base_url(base_url), api_key_env=api_key_env,
                                       timeout_s=timeout_s, max_retries=max_retries, backoff_s=retry_backoff_s,
                                       max_connections=self.default_concurrency)
        self.client = ChatClient(self.settings)
        try:
            self.served = self.client.list_models()  # reachable, the key accepted, the model served
        except BaseException:
            self.client.close()
            raise
        served_ids = [m["id"] for m in self.served]
        if served_ids and model not in served_ids:
            self.client.close()
            raise ConfigError(f"the server at {self.settings.base_url} does not serve {model!r}; it serves: "
                              f"{', '.join(served_ids[:10])}")
        self.replied_models: set[str] = set()
        self.request_params: dict[str, Any] | None = None
        self.load_time_s = time.perf_counter() - started

    # --- requests ---------------------------------------------------------------------------------
    def request_body(self, request: Request, params: GenerationParams) -> dict[str, Any]:
        body = {"model": self.model, "messages": chat_messages(request), **sampling_body(params)}
        if params.temperature > 0:
            body["seed"] = request_seed(params.seed, request.request_id)
        return body

    def _completions(self, request: Request, result: ChatResult, params: GenerationParams) -> list[Completion]:
        reply = result.reply
        if reply is None or len(reply.texts) != params.n:
            error = result.error or (f"the server returned {len(reply.texts)} choices for n={params.n}"
                                     if reply is not None else "no reply")
            return [Completion(request.request_id, attempt, "", None, None, "stop", result.latency_s,
                               request_latency_s=result.latency_s, error=error) for attempt in range(params.n)]
        if reply.model:
            self.replied_models.add(reply.model)
        # The server reports one completion-token total for all n samples: each gets an equal share.
        shares = _shares(reply.completion_tokens, params.n)
        return [Completion(request.request_id, attempt, text, reply.prompt_tokens, shares[attempt],
                           "length" if reason == "length" else "stop", result.latency_s,
                           request_latency_s=result.latency_s)
                for attempt, (text, reason) in enumerate(zip(reply.texts, reply.finish_reasons, strict=True))]

    def stream(self, requests: Iterable[Request], params: GenerationParams,
               max_concurrency: int | None = None) -> Iterator[Completion]:
        """Every request sent (at most max_concurrency in flight; default DEFAULT_MAX_CONCURRENCY), each
        request's completions yielded as it finishes. Stopping the iteration cancels what is in flight."""
        params.check()
        cap = max_concurrency or self.default_concurrency
        self.request_params = {"model": self.model, **sampling_body(params),
                               **({"seed": "per request, from --seed and the request id"}
                                  if params.temperature > 0 else {})}
        source, exhausted = iter(requests), False
        in_flight: dict[Future, Request] = {}
        try:
            while True:
                while not exhausted and len(in_flight) < cap:
                    request = next(source, None)
                    if request is None:
                        exhausted = True
                    else:  # the body (images encoded) is built in a worker thread of the client
                        in_flight[self.client.submit(lambda r=request: self.request_body(r, params))] = request
                if not in_flight:
                    return
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    request = in_flight.pop(future)
                    yield from self._completions(request, future.result(), params)
        finally:
            for future in in_flight:
                future.cancel()

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        """Completions in request order, then attempt order (the stream, collected)."""
        order = {r.request_id: i for i, r in enumerate(requests)}
        return sorted(self.stream(requests, params), key=lambda c: (order[c.request_id], c.attempt))

    # --- facts ------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        listed = next((m for m in self.served if m["id"] == self.model), {})
        return {
            "model": self.model, "served_model": ", ".join(sorted(self.replied_models)) or listed.get("id"),
            "device": "remote", "dtype": None, "quantization": None, "load_time_s": round(self.load_time_s, 3),
            "server": {"base_url": self.settings.base_url, "models": [m["id"] for m in self.served],
                       "owned_by": listed.get("owned_by"), "max_model_len": listed.get("max_model_len")},
            "api_key_env": self.settings.api_key_env, "api_key_sent": self.client.key is not None,
            "request_params": self.request_params,
            "client": {"timeout_s": self.settings.timeout_s, "max_retries": self.settings.max_retries,
                       "retry_backoff_s": self.settings.backoff_s, "max_concurrency": self.default_concurrency},
            "requests": stats_summary(self.client.stats),
        }

    def memory(self) -> dict[str, Any]:
        return {"peak_allocated_mib": None, "peak_reserved_mib": None,
                "note": "openai: the model runs on the server; its memory is not measured here"}

    def close(self) -> None:
        self.client.close()


def _shares(total: int | None, n: int) -> list[int | None]:
    if total is None:
        return [None] * n
    base = math.floor(total / n)
    return [base + (1 if i < total - base * n else 0) for i in range(n)]
