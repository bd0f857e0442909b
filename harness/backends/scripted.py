"""The scripted backend: fixed responses from a script file, no model. For testing a pipeline (eval,
show, report, gate, resume) in seconds, and for the harness's own tests.

    harness eval --backend scripted --model script.json --suite synth_arith --limit 20

The script is a JSON object; `--model` is its path:

    {
      "responses": {
        "synth_arith/synth_arith-test-0000": "<REASONING>7 + 5</REASONING><SOLUTION>12</SOLUTION>",
        "synth_arith/synth_arith-test-0001": ["first attempt", "second attempt"]
      },
      "default": "<REASONING>no idea</REASONING><SOLUTION>0</SOLUTION>",
      "fail_after_calls": 3
    }

How a response is chosen: a request's id is `SUITE/SAMPLE_ID` (the `suite` and `sample_id` of its
record). Its entry in `responses` answers it: a string for every attempt, or a list whose attempt `i`
gets entry `i` (cycling when there are more attempts than entries). An id without an entry gets
`default`; with no `default`, it is an error that names the id. `fail_after_calls` (optional)
raises a simulated crash on that generate call (0-based), to test that a killed run resumes.
Token counts are whitespace-separated words (prompt: of the messages); a response longer than
max_new_tokens words reports finish reason "length" (the text is kept whole).

In Python, `ScriptedBackend(answer)` takes any function `answer(request, attempt) -> str`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import BackendError, ConfigError
from harness.backends import Completion, GenerationParams, Request

Answer = Callable[[Request, int], str]


class ScriptedBackend:
    name = "scripted"

    def __init__(self, answer: Answer, fail_after_calls: int | None = None,
                 describe: dict[str, Any] | None = None):
        self.answer = answer
        self.fail_after_calls = fail_after_calls
        self.calls = 0
        self.requests_seen: list[str] = []
        self._description = {"model": "scripted", **(describe or {})}

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("simulated backend crash")
        self.calls += 1
        started = time.perf_counter()
        out = []
        for request in requests:
            self.requests_seen.append(request.request_id)
            for attempt in range(params.n):
                text = self.answer(request, attempt)
                n_words = len(text.split())
                out.append(Completion(request.request_id, attempt, text,
                                      n_prompt_tokens=len(str(request.messages).split()),
                                      n_output_tokens=min(n_words, params.max_new_tokens),
                                      finish_reason="length" if n_words >= params.max_new_tokens else "stop",
                                      latency_s=0.0))
        latency = time.perf_counter() - started + 0.01  # never 0: throughput divides by it
        for completion in out:
            completion.latency_s = latency
        return out

    def describe(self) -> dict[str, Any]:
        return {**self._description, "dtype": None, "quantization": None, "device": "cpu", "load_time_s": 0.0}

    def memory(self) -> dict[str, Any]:
        return {"peak_allocated_mib": None, "peak_reserved_mib": None, "note": "scripted: no model"}

    def close(self) -> None:
        pass


def script_answer(script: dict[str, Any], source: str = "script") -> Answer:
    """The answer function of a parsed script (see the module docstring); checks its shape first."""
    if not isinstance(script, dict):
        raise ConfigError(f"{source}: a script is a JSON object with \"responses\" and/or \"default\"")
    unknown = sorted(set(script) - {"responses", "default", "fail_after_calls"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known: responses, default, "
                          f"fail_after_calls")
    responses = script.get("responses", {})
    default = script.get("default")
    if not isinstance(responses, dict) or not all(_is_response(v) for v in responses.values()):
        raise ConfigError(f"{source}: \"responses\" maps request ids (SUITE/SAMPLE_ID) to a string or a "
                          f"non-empty list of strings")
    if default is not None and not _is_response(default):
        raise ConfigError(f"{source}: \"default\" is a string or a non-empty list of strings")

    def answer(request: Request, attempt: int) -> str:
        chosen = responses.get(request.request_id, default)
        if chosen is None:
            raise BackendError(f"{source} has no response for {request.request_id} and no \"default\"")
        return chosen if isinstance(chosen, str) else chosen[attempt % len(chosen)]

    return answer


def _is_response(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and bool(value)
                                      and all(isinstance(v, str) for v in value))


def from_script(model: str, *, adapter: str | None = None, load_in_4bit: bool = False,
                **_ignored: Any) -> ScriptedBackend:
    """load_backend's factory: `model` is the script's path. Options of weight loading (dtype, batch
    size) mean nothing here and are ignored; an adapter or 4-bit weights are refused."""
    if adapter or load_in_4bit:
        raise ConfigError("the scripted backend has no weights: --adapter and --load-in-4bit do not apply")
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"the scripted backend takes a script file as --model (a JSON object; see "
                          f"`harness eval --help`): {model} is not a file")
    raw = path.read_bytes()
    try:
        script = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"script {model} is not valid JSON: {exc}") from None
    fail_after = script.get("fail_after_calls") if isinstance(script, dict) else None
    if fail_after is not None and (isinstance(fail_after, bool) or not isinstance(fail_after, int)
                                   or fail_after < 0):
        raise ConfigError(f"script {model}: fail_after_calls is a non-negative integer, got {fail_after!r}")
    return ScriptedBackend(script_answer(script, f"script {model}"), fail_after_calls=fail_after,
                           describe={"model": str(path), "script_sha256": hashlib.sha256(raw).hexdigest()})
