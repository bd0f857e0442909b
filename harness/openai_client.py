"""A client for OpenAI-compatible chat servers (vLLM `serve`, SGLang, `transformers serve`, hosted APIs):
requests run concurrently on an event loop in a background thread, each with a timeout, retried with
exponential backoff and jitter on 429, 408, 5xx, timeouts and dropped connections (a Retry-After
header is honoured). A request that still fails is a result with `error` set, never an exception.
The openai backend and the LLM answer judge share it.

    client = ChatClient(ClientSettings(base_url="http://127.0.0.1:8000/v1"))
    client.list_models()                           # GET /models: [{"id": "Qwen/Qwen2.5-VL-7B-Instruct", ...}]
    future = client.submit({"model": "M", "messages": [...], "max_tokens": 64})
    result = future.result()                       # ChatResult: reply (ChatReply) or error, attempts, latency_s
    for body, result in client.map(bodies, max_concurrency=8): ...   # as they finish, any order
    client.close()

The API key is read from the environment variable `api_key_env` when the client is built and sent as a
bearer token; it is kept nowhere else, and any text the client returns (errors) has it masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from core.errors import BackendError, ConfigError

RETRY_AFTER_MAX_S = 600.0  # a Retry-After longer than this is cut to it
DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 600.0  # one attempt, from sending the request to the last byte of the reply
    max_retries: int = 6  # attempts after the first
    backoff_s: float = 1.0  # the first wait; doubled after each failed attempt, with jitter
    max_backoff_s: float = 60.0
    max_connections: int = 64


@dataclass
class ChatReply:
    """A chat completion: each choice's text and finish reason, the model the server says answered, and
    token usage where the server reports it."""

    texts: list[str]
    finish_reasons: list[str | None]
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass
class ChatResult:
    reply: ChatReply | None
    error: str | None  # why the request finally failed (the last attempt's problem), None when it answered
    attempts: int
    latency_s: float  # from the first attempt's start to the answer or the final failure, waits included


def normalized_base_url(url: str | None) -> str:
    """The base URL requests go under: as given, `/v1` appended when it names only a host (vLLM's and
    SGLang's default prefix); OPENAI_BASE_URL, else OpenAI's, when None. Credentials in it are refused."""
    url = (url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base URL must look like http://HOST:PORT/v1, got {url!r}")
    if parts.username or parts.password:
        raise ConfigError("the base URL holds credentials; put the key in an environment variable "
                          "(--api-key-env) instead, so that it is never written into a run")
    return url.rstrip("/") if parts.path.strip("/") else url.rstrip("/") + "/v1"


class _Loop:
    """An asyncio event loop running in a daemon thread: coroutines are handed over from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-client", daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class ChatClient:
    def __init__(self, settings: ClientSettings):
        import httpx  # the HTTP library is needed only where a server is talked to

        self.settings = settings
        self.key = os.environ.get(settings.api_key_env) or None
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        self._loop = _Loop()
        limits = httpx.Limits(max_connections=settings.max_connections,
                              max_keepalive_connections=settings.max_connections)

        async def build() -> Any:  # the client belongs to the loop it is used on
            return httpx.AsyncClient(headers=headers, limits=limits, timeout=settings.timeout_s)

        self._http = self._loop.submit(build()).result()
        self._transport_errors = (httpx.TransportError, httpx.StreamError, TimeoutError)
        self._stats_lock = threading.Lock()
        self.stats: Counter[str] = Counter()  # requests, retries and their causes, failures, tokens

    # --- public ----------------------------------------------------------------------------------
    def list_models(self) -> list[dict[str, Any]]:
        """GET {base_url}/models (retried like a chat request). Raises BackendError when the server cannot
        be reached or refuses the key; an empty list when the server has no such listing."""
        status, payload, error = self._loop.submit(self._get_models()).result()
        if error is not None:
            raise BackendError(f"cannot reach the server at {self.settings.base_url}: {error}")
        if status in (401, 403):
            where = (f"${self.settings.api_key_env} is not set" if self.key is None
                     else f"check ${self.settings.api_key_env}")
            raise BackendError(f"the server at {self.settings.base_url} refused the request (HTTP {status}); "
                               f"{where}")
        if status != 200 or not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            return []
        return [m for m in payload["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)]

    def submit(self, body: dict[str, Any] | Callable[[], dict[str, Any]]) -> Future:
        """Send one chat request; the future's result is a ChatResult. `body` may be a function that
        builds it (it runs in a worker thread: encoding images does not hold up the caller)."""
        return self._loop.submit(self._chat(body))

    def map(self, bodies: Iterable[Any], max_concurrency: int) -> Iterator[tuple[Any, ChatResult]]:
        """(body, result) of every request, at most `max_concurrency` in flight, as each finishes.
        Stopping the iteration cancels what is in flight."""
        source, in_flight = iter(bodies), {}
        try:
            while True:
                for body in source:
                    in_flight[self.submit(body)] = body
                    if len(in_flight) >= max_concurrency:
                        break
                if not in_flight:
                    return
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield in_flight.pop(future), future.result()
        finally:
            for future in in_flight:
                future.cancel()

    def mask(self, text: str) -> str:
        """`text` with the API key replaced by ***: nothing the client returns may carry it."""
        return text.replace(self.key, "***") if self.key else text

    def close(self) -> None:
        if getattr(self, "_http", None) is not None:
            with contextlib.suppress(Exception):  # closing: connections die with the loop anyway
                self._loop.submit(self._http.aclose()).result(timeout=10)
            self._http = None
            self._loop.stop()

    # --- requests ---------------------------------------------------------------------------------
    def _count(self, *keys: str, amount: int = 1) -> None:
        with self._stats_lock:
            for key in keys:
                self.stats[key] += amount

    async def _get_models(self) -> tuple[int | None, Any, str | None]:
        url = self.settings.base_url + "/models"
        problem = None
        for attempt in range(self.settings.max_retries + 1):
            try:
                async with asyncio.timeout(min(self.settings.timeout_s, 60.0)):
                    response = await self._http.get(url)
            except self._transport_errors as exc:
                problem, hint = _describe(exc), None
            else:
                if response.status_code not in RETRY_STATUSES and response.status_code < 500:
                    try:
                        return response.status_code, response.json(), None
                    except ValueError:
                        return response.status_code, None, None
                problem, hint = f"HTTP {response.status_code}", retry_after_s(response.headers.get("retry-after"))
            if attempt < self.settings.max_retries:
                await asyncio.sleep(self._wait_s(attempt, hint))
        return None, None, self.mask(str(problem))

    async def _chat(self, body: dict[str, Any] | Callable[[], dict[str, Any]]) -> ChatResult:
        if callable(body):
            body = await asyncio.to_thread(body)
        url = self.settings.base_url + "/chat/completions"
        started, problem = time.perf_counter(), ""
        self._count("requests")
        for attempt in range(self.settings.max_retries + 1):
            if attempt:
                self._count("retries")
            try:
                async with asyncio.timeout(self.settings.timeout_s):
                    response = await self._http.post(url, json=body)
            except self._transport_errors as exc:
                problem, hint = _describe(exc), None
                self._count(f"retry_cause_{'timeout' if 'timed out' in problem else 'connection'}")
            else:
                status = response.status_code
                if status == 200:
                    try:
                        reply = parse_reply(response.json())
                    except (ValueError, KeyError, TypeError, IndexError) as exc:
                        problem = f"the server's reply is not a chat completion ({_describe(exc)})"
                        break
                    self._count("prompt_tokens", amount=reply.prompt_tokens or 0)
                    self._count("completion_tokens", amount=reply.completion_tokens or 0)
                    return ChatResult(reply, None, attempt + 1, time.perf_counter() - started)
                problem = f"HTTP {status}: {' '.join(response.text.split())[:300]}"
                if status not in RETRY_STATUSES and status < 500:
                    break  # the request itself is wrong (400, 401, 404): sending it again cannot help
                hint = retry_after_s(response.headers.get("retry-after"))
                self._count(f"retry_cause_http_{status}")
            if attempt < self.settings.max_retries:
                await asyncio.sleep(self._wait_s(attempt, hint))
        self._count("failed")
        attempts = attempt + 1
        return ChatResult(None, self.mask(f"request failed after {attempts} attempt(s); last: {problem}"),
                          attempts, time.perf_counter() - started)

    def _wait_s(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server sent one; else backoff_s * 2^attempt (capped), jittered to between
        half and all of it, so that many requests refused together do not all come back together."""
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_MAX_S)
        ceiling = min(self.settings.backoff_s * 2 ** attempt, self.settings.max_backoff_s)
        return ceiling * random.uniform(0.5, 1.0)


RETRY_STATUSES = frozenset({408, 409, 425, 429})  # and every 5xx


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header in seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def parse_reply(payload: Any) -> ChatReply:
    """A chat completion object -> ChatReply (choices in index order; usage where reported)."""
    choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
    if not choices:
        raise ValueError("no choices")
    usage = payload.get("usage") or {}

    def count(key: str) -> int | None:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return ChatReply(texts=[_content_text(c["message"].get("content")) for c in choices],
                     finish_reasons=[c.get("finish_reason") for c in choices],
                     model=payload.get("model") if isinstance(payload.get("model"), str) else None,
                     prompt_tokens=count("prompt_tokens"), completion_tokens=count("completion_tokens"))


def _content_text(content: Any) -> str:
    if content is None:  # a refusal or an empty answer
        return ""
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def stats_summary(stats: Counter[str]) -> dict[str, Any]:
    """The counters as the manifest keeps them: requests, retries (by cause), failed, tokens."""
    causes = {k.removeprefix("retry_cause_"): v for k, v in sorted(stats.items()) if k.startswith("retry_cause_")}
    return {"requests": stats["requests"], "retries": stats["retries"], "retry_causes": causes,
            "failed": stats["failed"], "prompt_tokens": stats["prompt_tokens"],
            "completion_tokens": stats["completion_tokens"]}
