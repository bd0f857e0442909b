"""One backend replica in a Ray actor: chunks of requests in, each chunk's completions out.

    Replica = replica_actor_class()        # the Ray actor class (Ray is imported only here)
    actor = Replica.options(num_cpus=1, num_gpus=0, max_concurrency=16).remote("transformers", model, options)
    completions = ray.get(actor.generate.remote(requests, params, 8, None))

`ReplicaCore` is the replica without Ray (tests drive it directly too). It loads the backend once; one
engine thread alone touches it, and calls from Ray's threads only queue a chunk and wait for it:

- a batch backend (transformers, scripted, openai) generates the chunks one after another, each in static
  batches of `batch_size`, longest prompts first, exactly as `iter_completions` does on one host (each
  completion keeps its batch index within the chunk);
- a streaming backend (vllm: `submit` and `step`) has every request of every queued chunk handed to its
  engine as it arrives and steps the engine continuously, so the chunks share its continuous batching;
  a chunk is answered when its last request finishes. Requests may name a LoRA adapter the engine
  serves (`serve_adapters`): adapters are switched per request.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from harness.backends import Completion, GenerationParams, Request, iter_completions, load_backend


@dataclass
class _Chunk:
    requests: list[Request]
    params: GenerationParams
    batch_size: int
    adapter: str | None
    completions: list[Completion] = field(default_factory=list)
    left: int = 0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def fail(self, exc: BaseException) -> None:
        if not self.done.is_set():
            self.error = exc
            self.done.set()


class ReplicaCore:
    """A loaded backend and the engine thread that alone uses it."""

    def __init__(self, backend: str, model: str, options: dict[str, Any]):
        started = time.perf_counter()
        self.backend = load_backend(backend, model, **options)
        self.load_time_s = round(time.perf_counter() - started, 3)
        self.streaming = callable(getattr(self.backend, "submit", None)) and callable(getattr(self.backend, "step", None))
        self.inbox: queue.Queue[_Chunk | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="replica-engine", daemon=True)
        self.thread.start()

    def generate(self, requests: list[Request], params: GenerationParams, batch_size: int,
                 adapter: str | None = None) -> list[Completion]:
        """Every completion of the chunk's requests (blocks until the engine thread has them)."""
        if not self.thread.is_alive():
            from core.errors import BackendError

            raise BackendError("the replica's engine thread has stopped")
        chunk = _Chunk(requests, params, batch_size, adapter)
        self.inbox.put(chunk)
        chunk.done.wait()
        if chunk.error is not None:
            raise chunk.error
        return chunk.completions

    def describe(self, adapter: str | None = None) -> dict[str, Any]:
        """The backend's model facts (for a served adapter: as a one-host run of that adapter reports them)."""
        if adapter is not None:
            return self.backend.describe_adapter(adapter)
        return self.backend.describe()

    def memory(self) -> dict[str, Any]:
        return self.backend.memory()

    def close(self) -> None:
        self.inbox.put(None)
        self.thread.join(timeout=30)
        self.backend.close()

    # --- the engine thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        waiting: dict[str, _Chunk] = {}  # request id -> its chunk (a streaming backend's requests in flight)
        while True:
            chunks = [] if waiting else [self.inbox.get()]  # idle: wait for work; busy: take what is queued
            while True:
                try:
                    chunks.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            for chunk in chunks:
                if chunk is None:
                    for left in waiting.values():
                        left.fail(RuntimeError("the replica was closed"))
                    return
                if self.streaming:
                    self._submit(chunk, waiting)
                else:
                    self._generate_batches(chunk)
            if waiting:
                self._step(waiting)

    def _generate_batches(self, chunk: _Chunk) -> None:
        try:
            chunk.completions = list(iter_completions(self.backend, chunk.requests, chunk.params, chunk.batch_size))
        except BaseException as exc:  # noqa: BLE001 -- raised in the caller's thread, and so to the driver
            chunk.fail(exc)
            return
        chunk.done.set()

    def _submit(self, chunk: _Chunk, waiting: dict[str, _Chunk]) -> None:
        try:
            for request in chunk.requests:
                if request.request_id in waiting:
                    raise ValueError(f"request {request.request_id} is already in flight on this replica")
                self.backend.submit(request, chunk.params, adapter=chunk.adapter)
                waiting[request.request_id] = chunk
                chunk.left += 1
        except BaseException as exc:  # noqa: BLE001 -- a refused request fails its chunk, not the replica
            for request_id in [rid for rid, owner in waiting.items() if owner is chunk]:
                del waiting[request_id]  # what the engine still returns for them is dropped
            chunk.fail(exc)
        if not chunk.requests:
            chunk.done.set()

    def _step(self, waiting: dict[str, _Chunk]) -> None:
        try:
            finished = self.backend.step()
        except BaseException as exc:  # noqa: BLE001 -- the engine failed: every chunk in flight fails with it
            for chunk in set(waiting.values()):
                chunk.fail(exc)
            waiting.clear()
            self.backend.abort_all()
            return
        for completions in finished:
            chunk = waiting.pop(completions[0].request_id, None) if completions else None
            if chunk is None or chunk.done.is_set():
                continue
            chunk.completions += completions
            chunk.left -= 1
            if chunk.left == 0:
                chunk.done.set()


@cache
def replica_actor_class() -> Any:
    """The Ray actor class holding a ReplicaCore (defined on first use: Ray is an optional dependency)."""
    import ray

    @ray.remote
    class Replica:
        def __init__(self, backend: str, model: str, options: dict[str, Any]):
            self.core = ReplicaCore(backend, model, options)

        def ready(self) -> dict[str, Any]:
            """Where the replica runs and how long its backend took to load."""
            context = ray.get_runtime_context()
            return {"pid": os.getpid(), "node_id": context.get_node_id(), "load_time_s": self.core.load_time_s,
                    "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}

        def generate(self, requests: list[Request], params: GenerationParams, batch_size: int,
                     adapter: str | None) -> list[Completion]:
            return self.core.generate(requests, params, batch_size, adapter)

        def describe(self, adapter: str | None) -> dict[str, Any]:
            return self.core.describe(adapter)

        def memory(self) -> dict[str, Any]:
            return self.core.memory()

        def close(self) -> None:
            self.core.close()

    return Replica
