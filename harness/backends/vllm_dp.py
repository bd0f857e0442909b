"""The vllm backend's entry point, and its data parallelism: one engine per GPU group, each in its own process.

vLLM's offline `LLM` refuses data_parallel_size > 1 in one process, so this runs `data_parallel_size`
worker processes (spawned), each with one VllmBackend on its own `tensor_parallel_size` GPUs
(CUDA_VISIBLE_DEVICES), and hands requests to the least busy one as slots free up:

    backend = DataParallelVllm("models/qwen2_5_vl_7b-random", data_parallel_size=2)
    for c in backend.stream(requests, params, max_concurrency=512): ...   # completions as they finish

`max_concurrency` caps the requests in flight over all engines. Memory and speed facts are summed (or,
for the KV-cache peak usage, maximised) over the engines.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterable, Iterator
from typing import Any

from core.errors import BackendError, ConfigError
from harness.backends import Completion, GenerationParams, Request

REPLY_TIMEOUT_S = 5.0  # how often a waiting parent checks that its workers are still alive
START_TIMEOUT_S = 1800.0


def make_vllm_backend(model: str, *, data_parallel_size: int = 1, **options: Any):
    """The vllm backend: one engine in this process, or one per GPU group when data_parallel_size > 1."""
    if data_parallel_size > 1:
        return DataParallelVllm(model, data_parallel_size=data_parallel_size, **options)
    from harness.backends.vllm_backend import VllmBackend

    return VllmBackend(model, **options)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (NVML: CUDA is not initialised)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [entry.strip() for entry in visible.split(",") if entry.strip()]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 -- no NVML or no driver: no GPU to spread over
        return []


def _worker(rank: int, devices: str, model: str, options: dict[str, Any], inbox, results) -> None:
    """One engine: requests in, completions out, until told to stop (runs in a spawned process)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = devices  # before anything imports torch
    try:
        from harness.backends.vllm_backend import VllmBackend

        backend = VllmBackend(model, **options)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which raises it
        results.put(("error", rank, f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ready", rank, backend.describe()))
    params: GenerationParams | None = None
    parent = os.getppid()
    try:
        while True:
            messages = []
            while not messages and backend.n_in_flight == 0:  # idle: wait for work, or for the parent to go
                try:
                    messages.append(inbox.get(timeout=REPLY_TIMEOUT_S))
                except queue.Empty:
                    if os.getppid() != parent:
                        return
            while True:
                try:
                    messages.append(inbox.get_nowait())
                except queue.Empty:
                    break
            for kind, payload in messages:
                if kind == "stop":
                    return
                if kind == "params":
                    params = payload
                elif kind == "request":
                    assert params is not None
                    backend.submit(payload, params)
                elif kind == "abort":
                    backend.abort_all()
                    results.put(("aborted", rank, None))
                elif kind == "bare":
                    requests, bare_params = payload
                    results.put(("bare", rank, backend.generate_bare(requests, bare_params)))
                elif kind == "memory":
                    results.put(("memory", rank, backend.memory()))
            if backend.n_in_flight:
                for completions in backend.step():
                    results.put(("done", rank, completions))
    except BaseException as exc:  # noqa: BLE001 -- the parent raises it
        results.put(("error", rank, f"{type(exc).__name__}: {exc}"))
    finally:
        backend.close()


class DataParallelVllm:
    name = "vllm"

    def __init__(self, model: str, *, data_parallel_size: int, tensor_parallel_size: int = 1, **options: Any):
        started = time.perf_counter()
        gpus = visible_gpus()
        needed = data_parallel_size * tensor_parallel_size
        if len(gpus) < needed:
            raise ConfigError(f"data_parallel_size {data_parallel_size} x tensor_parallel_size "
                              f"{tensor_parallel_size} needs {needed} GPUs; {len(gpus)} visible")
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # CUDA and vLLM do not survive a fork
        self.results = context.Queue()  # every engine's answers, tagged with its rank
        self.workers = []
        for rank in range(data_parallel_size):
            devices = ",".join(gpus[rank * tensor_parallel_size:(rank + 1) * tensor_parallel_size])
            inbox = context.Queue()
            # Not a daemon: a daemonic process may not start processes, and vLLM starts its engine's.
            process = context.Process(target=_worker, name=f"vllm-dp{rank}", daemon=False,
                                      args=(rank, devices, model,
                                            {**options, "tensor_parallel_size": tensor_parallel_size},
                                            inbox, self.results))
            process.start()
            self.workers.append((process, inbox))
        try:
            self.facts = self._collect("ready", START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        self.data_parallel_size = data_parallel_size
        self.load_time_s = time.perf_counter() - started

    def _next(self, deadline: float = float("inf")) -> tuple[str, int, Any]:
        """The next answer of any engine; BackendError when one failed or exited."""
        while True:
            try:
                kind, rank, payload = self.results.get(timeout=REPLY_TIMEOUT_S)
            except queue.Empty:
                for rank, (process, _) in enumerate(self.workers):
                    if not process.is_alive():
                        raise BackendError(f"vLLM engine {rank} exited (code {process.exitcode})") from None
                if time.monotonic() > deadline:
                    raise BackendError("the vLLM engines did not answer in time") from None
                continue
            if kind == "error":
                raise BackendError(f"vLLM engine {rank}: {payload}")
            return kind, rank, payload

    def _collect(self, kind: str, timeout_s: float = float("inf")) -> list[Any]:
        """One `kind` answer from every engine, in rank order."""
        deadline = time.monotonic() + timeout_s
        got: dict[int, Any] = {}
        while len(got) < len(self.workers):
            answer, rank, payload = self._next(deadline)
            if answer == "done":  # a completion of a stream that was abandoned
                continue
            if answer != kind:
                raise BackendError(f"vLLM engine {rank} answered {answer!r}, expected {kind!r}")
            got[rank] = payload
        return [got[rank] for rank in range(len(self.workers))]

    def stream(self, requests: Iterable[Request], params: GenerationParams,
               max_concurrency: int | None = None) -> Iterator[Completion]:
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        cap = max_concurrency or float("inf")
        load = [0] * len(self.workers)
        for _, inbox in self.workers:
            inbox.put(("params", params))
        source, exhausted = iter(requests), False
        try:
            while True:
                while not exhausted and sum(load) < cap:
                    request = next(source, None)
                    if request is None:
                        exhausted = True
                        break
                    rank = load.index(min(load))  # the least busy engine
                    self.workers[rank][1].put(("request", request))
                    load[rank] += 1
                if not any(load):
                    return
                kind, rank, completions = self._next()
                if kind != "done":
                    raise BackendError(f"vLLM engine {rank} answered {kind!r} during a stream")
                load[rank] -= 1
                yield from completions
        finally:
            if any(load):  # an error or an abandoned stream: stop the engines' work, drop what they sent
                for _, inbox in self.workers:
                    inbox.put(("abort", None))
                self._collect("aborted")

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        order = {r.request_id: i for i, r in enumerate(requests)}
        return sorted(self.stream(requests, params), key=lambda c: (order[c.request_id], c.attempt))

    def generate_bare(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        """One LLM.generate per engine on an equal share of the requests, all at once; latency_s is the
        wall time until the last engine finished."""
        started = time.perf_counter()
        n = len(self.workers)
        for rank, (_, inbox) in enumerate(self.workers):
            inbox.put(("bare", (requests[rank::n], params)))
        shares = self._collect("bare")
        wall = time.perf_counter() - started
        completions = [c for share in shares for c in share]
        for c in completions:
            c.latency_s = wall
        return completions

    def describe(self) -> dict[str, Any]:
        facts = dict(self.facts[0])
        facts.update(data_parallel_size=self.data_parallel_size, load_time_s=round(self.load_time_s, 3),
                     engine_load_time_s=[f.get("load_time_s") for f in self.facts])
        return facts

    def memory(self) -> dict[str, Any]:
        for _, inbox in self.workers:
            inbox.put(("memory", None))
        shares = self._collect("memory")
        out: dict[str, Any] = {"engines": len(shares)}
        for key in ("nvml_used_over_baseline_mib", "nvml_baseline_used_mib", "vllm_weights_gib", "vllm_kv_cache_gib"):
            values = [s.get(key) for s in shares if s.get(key) is not None]
            out[key] = round(sum(values), 3) if values else None
        peaks = [s["kv_cache_peak_usage"] for s in shares if s.get("kv_cache_peak_usage") is not None]
        out["kv_cache_peak_usage"] = max(peaks) if peaks else None
        return out

    def close(self) -> None:
        for process, inbox in self.workers:
            if process.is_alive():
                inbox.put(("stop", None))
        for process, _ in self.workers:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
        self.workers = []
