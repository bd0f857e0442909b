"""A real OpenAI-compatible chat server for the tests: HTTP on 127.0.0.1 (a free port), serving
`GET /v1/models` and `POST /v1/chat/completions`, with faults on demand.

    with OpenAIServer(reply=lambda body: "The answer is 4.", api_key="sk-test") as server:
        server.base_url                        # http://127.0.0.1:PORT/v1
        server.faults.extend(["429", "500", "drop", "slow"])   # for the next requests, in arrival order
        server.fail_when = lambda body: ...    # these requests always get a 500
        server.calls                           # every chat request received: Call(body, fault, time, auth)

Faults: "429" answers Too Many Requests with `Retry-After: server.retry_after`; "500" an internal
error; "drop" sends the status line, headers and half the body, then closes the connection; "slow"
waits `server.slow_s` before answering (longer than the client's timeout). `reply(body)` gives the
text of every choice (a string, repeated for n > 1, or a list), or a dict {"texts", "prompt_tokens",
"completion_tokens"}; usage is counted in words unless given, and left out with `report_usage=False`.
A request whose bearer token is not `api_key` gets 401.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Call:
    body: dict[str, Any]
    fault: str | None
    time: float
    authorization: str | None


def message_text(body: dict[str, Any]) -> str:
    """Every text part of a chat body's messages, joined."""
    out = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        else:
            out += [p.get("text", "") for p in content or [] if p.get("type") == "text"]
    return "\n".join(out)


class OpenAIServer:
    def __init__(self, reply: Callable[[dict[str, Any]], Any], models: tuple[str, ...] = ("served-model",),
                 api_key: str | None = None, reply_model: str | None = None, report_usage: bool = True):
        self.reply, self.models, self.api_key = reply, models, api_key
        self.reply_model, self.report_usage = reply_model, report_usage
        self.faults: list[str] = []
        self.fail_when: Callable[[dict[str, Any]], bool] | None = None
        self.retry_after, self.slow_s = "1", 3.0
        self.calls: list[Call] = []
        self.model_listings = 0
        self.unauthorized = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def authorized(self, header: str | None) -> bool:
        ok = self.api_key is None or header == f"Bearer {self.api_key}"
        if not ok:
            with self.lock:
                self.unauthorized += 1
        return ok

    def take_fault(self, body: dict[str, Any]) -> str | None:
        with self.lock:
            fault = self.faults.pop(0) if self.faults else None
            if fault is None and self.fail_when is not None and self.fail_when(body):
                fault = "500"
            return fault

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        answer = self.reply(body)
        usage: dict[str, Any] = {}
        if isinstance(answer, dict):
            texts = answer["texts"]
            usage = {k: answer[k] for k in ("prompt_tokens", "completion_tokens") if k in answer}
        else:
            texts = [answer] * n if isinstance(answer, str) else list(answer)
        usage.setdefault("prompt_tokens", len(message_text(body).split()))
        usage.setdefault("completion_tokens", sum(len(t.split()) for t in texts))
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        out = {"id": f"chatcmpl-{len(self.calls)}", "object": "chat.completion", "created": int(time.time()),
               "model": self.reply_model or body.get("model"),
               "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": "length" if len(text.split()) >= body.get("max_tokens", 1 << 30)
                            else "stop"} for i, text in enumerate(texts)]}
        if self.report_usage:
            out["usage"] = usage
        return out


def _handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers: the client pools connections

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                self._send(404, {"error": {"message": "not found"}})
                return
            with server.lock:
                server.model_listings += 1
            if not server.authorized(self.headers.get("Authorization")):
                self._send(401, {"error": {"message": "invalid api key"}})
                return
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "tests",
                                                         "max_model_len": 4096} for m in server.models]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            auth = self.headers.get("Authorization")
            fault = server.take_fault(body) if server.authorized(auth) else "401"
            with server.lock:
                server.calls.append(Call(body, fault, time.monotonic(), auth))
            try:
                self._answer(body, fault)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up first (a timeout)
                self.close_connection = True

        def _answer(self, body: dict[str, Any], fault: str | None) -> None:
            if fault == "401":
                self._send(401, {"error": {"message": "invalid api key"}})
            elif fault == "429":
                self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": server.retry_after})
            elif fault == "500":
                self._send(500, {"error": {"message": "internal error"}})
            elif fault == "drop":
                data = json.dumps(server.completion(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True  # the rest never comes: the connection closes mid-body
            else:
                if fault == "slow":
                    time.sleep(server.slow_s)
                self._send(200, server.completion(body))

    return Handler
