"""A scripted backend: answers from a function of the request, with real token-like counts.

Runner, resume and benchmark tests use it where the model's behaviour is beside the point; the
end-to-end tests use the tiny real model instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.backends import Completion, GenerationParams, Request


class ScriptedBackend:
    name = "scripted"

    def __init__(self, answer: Callable[[Request, int], str], fail_after_calls: int | None = None):
        self.answer = answer
        self.calls = 0
        self.requests_seen: list[str] = []
        self.fail_after_calls = fail_after_calls

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("simulated backend crash")
        self.calls += 1
        t0 = time.perf_counter()
        out = []
        for r in requests:
            self.requests_seen.append(r.request_id)
            for attempt in range(params.n):
                text = self.answer(r, attempt)
                n_out = len(text.split())
                truncated = n_out >= params.max_new_tokens
                out.append(Completion(r.request_id, attempt, text, n_prompt_tokens=len(str(r.messages).split()),
                                      n_output_tokens=min(n_out, params.max_new_tokens),
                                      finish_reason="length" if truncated else "stop", latency_s=0.0))
        latency = time.perf_counter() - t0 + 0.01
        for c in out:
            c.latency_s = latency
        return out

    def describe(self) -> dict:
        return {"id": "scripted", "dtype": None, "device": "cpu"}

    def memory(self) -> dict:
        return {"peak_allocated_mib": None, "peak_reserved_mib": None, "note": "no CUDA device"}

    def close(self) -> None:
        pass
