"""Backend replicas on a Ray cluster, and the streaming backend the runner consumes on top of them.

    backend = ray_backend(cfg)                 # harness eval --ray: connect, start the replicas, load
    run_eval(cfg, backend=...)                 # (the runner calls ray_backend itself when cfg.ray is set)

    pool = ReplicaPool.start(spec, cluster)    # harness eval-many: replicas shared by several runs
    backend = RayBackend(pool, adapter="ckpts/gspo-40", model="ckpts/gspo-40")

The driver (this process) alone writes the run directory: `RayBackend.stream` cuts the requests into
chunks of `chunk_size`, keeps a few chunks outstanding on every replica (`ray.wait` on them) and yields
each chunk's completions as it comes back, so the runner records them as on one host. A replica whose
worker dies (RayActorError: the process killed, its node lost) has its unfinished chunks sent to the
others; nothing of a chunk is recorded before the whole chunk has come back, so nothing is recorded
twice. A new replica is started in its place while `max_restarts` allows. Every death is counted in
the session's `ray` facts (`session_facts`).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.errors import BackendError, ConfigError, ModelError
from harness.backends import Completion, GenerationParams, Request
from harness.config import EvalConfig
from harness.ray_cluster import Cluster, ReplicaResources, connect, import_ray, plan_replicas
from harness.ray_replica import replica_actor_class

STREAM_CHUNK = 16  # requests per chunk for a streaming engine (vllm)
OPENAI_CHUNK = 32  # requests per chunk for a server (the openai backend's default concurrency)
STREAM_IN_FLIGHT = 256  # requests a streaming replica holds at once by default (vLLM's max_num_seqs)
RESTART_WAIT_S = 900.0  # how long a run with no live replica waits for a restarted one to load
CLOSE_WAIT_S = 30.0  # how long closing waits for the replicas' workers to be gone
ROOM_WAIT_S = 30.0  # how long starting waits for resources the cluster has but others still hold


@dataclass(frozen=True)
class ReplicaSpec:
    """What each replica loads, and how the driver feeds it."""

    backend: str
    model: str
    options: dict[str, Any]  # load_backend's keyword options
    resources: ReplicaResources
    chunk_size: int
    batch_size: int
    max_restarts: int

    @classmethod
    def of(cls, cfg: EvalConfig, resources: ReplicaResources, model: str | None = None,
           options: dict[str, Any] | None = None) -> ReplicaSpec:
        # vllm: small chunks, many outstanding (the engine batches continuously); openai: a chunk is what
        # the replica sends to the server at once; the others: one static batch.
        default = {"vllm": STREAM_CHUNK, "openai": cfg.max_concurrency or OPENAI_CHUNK}.get(cfg.backend, cfg.batch_size)
        chunk = cfg.ray_chunk_size or default
        return cls(cfg.backend, model or str(cfg.model), options if options is not None else cfg.backend_options(),
                   resources, chunk, cfg.batch_size, cfg.ray_max_restarts)


@dataclass
class _Replica:
    actor: Any
    ready: Any  # the ObjectRef of its ready() call (the backend loaded), until it answered
    info: dict[str, Any] = field(default_factory=dict)


class ReplicaPool:
    def __init__(self, spec: ReplicaSpec, cluster: Cluster):
        self.spec, self.cluster = spec, cluster
        self.ray = import_ray()
        self.replicas: list[_Replica] = []
        self.restarts_left = spec.max_restarts
        self.started = 0
        self.load_time_s: float | None = None

    @classmethod
    def start(cls, spec: ReplicaSpec, cluster: Cluster) -> ReplicaPool:
        """Start every replica and wait until each has loaded its backend (a load error is one line)."""
        started = time.perf_counter()
        pool = cls(spec, cluster)
        try:
            for _ in range(spec.resources.replicas):
                pool._launch()
            for replica in pool.replicas:
                replica.info = pool._get(replica.ready, "start")
                replica.ready = None
        except BaseException:
            pool.close()
            raise
        pool.load_time_s = round(time.perf_counter() - started, 3)
        return pool

    def _launch(self) -> _Replica:
        res = self.spec.resources
        # Threads: one per chunk the driver keeps outstanding here, plus the driver's other calls.
        actor = replica_actor_class().options(num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                              max_concurrency=self.depth(1) + 4).remote(
            self.spec.backend, self.spec.model, self.spec.options)
        replica = _Replica(actor, actor.ready.remote())
        self.replicas.append(replica)
        self.started += 1
        return replica

    def _get(self, ref: Any, what: str) -> Any:
        """ray.get, with a replica's own exception raised as itself (a HarnessError stays one line)."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayActorError as exc:
            if what == "start":
                raise ModelError(f"a {self.spec.backend} replica of {self.spec.model} could not start: "
                                 f"{_last_line(exc)}") from None
            raise
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, BaseException) else BackendError(_last_line(exc))) from None

    def depth(self, n_replicas: int | None = None, max_concurrency: int | None = None) -> int:
        """Chunks kept outstanding on each replica: a batch backend works on one while the next waits; a
        streaming one gets enough to fill its engine (max_concurrency shared over the replicas)."""
        if self.spec.backend != "vllm":
            return 2
        replicas = n_replicas or max(1, len(self.replicas))
        in_flight = -(-max_concurrency // replicas) if max_concurrency else STREAM_IN_FLIGHT
        return max(1, -(-in_flight // self.spec.chunk_size))

    def describe(self, adapter: str | None = None) -> dict[str, Any]:
        live = [r for r in self.replicas if r.ready is None]
        if not live:
            raise BackendError("no replica of the Ray pool is running")
        return self._get(live[0].actor.describe.remote(adapter), "describe")

    def memory(self) -> dict[str, Any]:
        """Each labelled figure's maximum over the live replicas (per replica, not summed)."""
        figures = [self._get(r.actor.memory.remote(), "memory") for r in self.replicas if r.ready is None]
        out: dict[str, Any] = {}
        for figure in figures:
            for key, value in figure.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out[key] = max(value, out.get(key) or value)
                else:
                    out.setdefault(key, value)
        return out

    def facts(self) -> dict[str, Any]:
        return {"version": self.cluster.version(), "address": self.cluster.address,
                "replicas": self.spec.resources.replicas, "replica_resources": self.spec.resources.to_dict(),
                "chunk_size": self.spec.chunk_size, "nodes": len({r.info.get("node_id") for r in self.replicas
                                                                 if r.info})}

    def close(self) -> None:
        """Stop every replica and wait (a while) until they are gone and the cluster counts their CPUs and
        GPUs free again, so that the next pool (this process's or the next command's) finds them (the
        cluster stays: Cluster.close disconnects)."""
        # What the cluster will count free once the replicas are gone (what it cannot be asked: nothing).
        wanted: dict[str, float] = {}
        with contextlib.suppress(Exception):
            free, total, n = self.cluster.free_resources(), self.cluster.resources(), len(self.replicas)
            wanted = {k: min(float(total.get(k, 0)), float(free.get(k, 0)) + per * n)
                      for k, per in (("CPU", self.spec.resources.num_cpus), ("GPU", self.spec.resources.num_gpus))
                      if per}
        probes = []
        for replica in self.replicas:
            with contextlib.suppress(Exception):  # an actor already gone
                self.ray.kill(replica.actor)  # its backend's processes (a vLLM engine) end with it
                probes.append(replica.actor.ready.remote())  # fails once the actor is known dead
        self.replicas = []
        deadline = time.monotonic() + CLOSE_WAIT_S
        if probes:
            self.ray.wait(probes, num_returns=len(probes), timeout=CLOSE_WAIT_S)
        # A dead actor's resources come back to the cluster's count a moment after its death is known.
        with contextlib.suppress(Exception):
            while wanted and time.monotonic() < deadline:
                free = self.cluster.free_resources()
                if all(float(free.get(k, 0)) >= v - 1e-9 for k, v in wanted.items()):
                    break
                time.sleep(0.05)

    # --- the stream ------------------------------------------------------------------------------
    def completions(self, requests: Iterable[Request], params: GenerationParams, adapter: str | None,
                    stats: dict[str, int], max_concurrency: int | None = None) -> Iterator[Completion]:
        """Every request's completions, chunk by chunk as replicas answer; a dead replica's chunks are retried."""
        source = iter(requests)
        retry: deque[list[Request]] = deque()
        outstanding: dict[Any, tuple[_Replica, list[Request]]] = {}
        batches = itertools.count()
        exhausted = False

        def next_chunk() -> list[Request] | None:
            nonlocal exhausted
            if retry:
                return retry.popleft()
            chunk = [] if exhausted else list(itertools.islice(source, self.spec.chunk_size))
            exhausted = exhausted or not chunk
            return chunk or None

        try:
            while True:
                self._fill(outstanding, next_chunk, params, adapter, max_concurrency)
                starting = {r.ready: r for r in self.replicas if r.ready is not None}
                if not outstanding:
                    if exhausted and not retry:
                        return
                    if not starting:
                        raise BackendError(f"every replica of the Ray pool died ({stats['worker_deaths']} worker "
                                           f"death(s), no restarts left); resume the run to finish it")
                ready, _ = self.ray.wait([*outstanding, *starting], num_returns=1,
                                         timeout=None if outstanding else RESTART_WAIT_S)
                if not ready:
                    raise BackendError(f"no replica of the Ray pool came up within {RESTART_WAIT_S:.0f} s")
                for ref in ready:
                    if ref in starting:
                        self._started(starting[ref], outstanding, retry, stats)
                        continue
                    replica, chunk = outstanding.pop(ref)
                    try:
                        done = self._get(ref, "generate")
                    except self.ray.exceptions.RayActorError:
                        self._lost(replica, chunk, outstanding, retry, stats)
                        continue
                    yield from _renumbered(done, batches)
        finally:
            for ref in outstanding:  # an abandoned stream: what is queued on the replicas is dropped
                with contextlib.suppress(Exception):  # finished or gone meanwhile
                    self.ray.cancel(ref)

    def _fill(self, outstanding: dict[Any, tuple[_Replica, list[Request]]], next_chunk: Any,
              params: GenerationParams, adapter: str | None, max_concurrency: int | None) -> None:
        """Top up every live replica to its depth, one chunk at a time round the replicas (for balance)."""
        live = [r for r in self.replicas if r.ready is None]
        depth = self.depth(len(live), max_concurrency)
        while True:
            given = False
            for replica in live:
                if sum(1 for owner, _ in outstanding.values() if owner is replica) >= depth:
                    continue
                chunk = next_chunk()
                if chunk is None:
                    return
                ref = replica.actor.generate.remote(chunk, params, self.spec.batch_size, adapter)
                outstanding[ref] = (replica, chunk)
                given = True
            if not given:
                return

    def _lost(self, replica: _Replica, chunk: list[Request], outstanding: dict[Any, tuple[_Replica, list[Request]]],
              retry: deque[list[Request]], stats: dict[str, int]) -> None:
        """A replica's worker died: its unfinished chunks go back to the front of the queue."""
        lost = [chunk]
        for ref, (owner, other) in list(outstanding.items()):
            if owner is replica:  # every call queued on the dead worker fails too: take them back now
                del outstanding[ref]
                lost.append(other)
        retry.extendleft(reversed(lost))
        stats["worker_deaths"] += 1
        stats["chunks_retried"] += len(lost)
        stats["requests_retried"] += sum(len(c) for c in lost)
        self._drop(replica)
        if self.restarts_left > 0:
            self.restarts_left -= 1
            stats["replicas_restarted"] += 1
            self._launch()

    def _started(self, replica: _Replica, outstanding: dict[Any, Any], retry: deque[list[Request]],
                 stats: dict[str, int]) -> None:
        try:
            replica.info = self._get(replica.ready, "start")
            replica.ready = None
        except ModelError:  # the restarted replica did not come up either: one more death
            stats["worker_deaths"] += 1
            self._drop(replica)

    def _drop(self, replica: _Replica) -> None:
        self.replicas.remove(replica)
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(replica.actor)


def _renumbered(completions: list[Completion], batches: Iterator[int]) -> list[Completion]:
    """A chunk's static batches numbered in the order the driver received them (a stream's stay None)."""
    numbers: dict[int, int] = {}
    for completion in completions:
        if completion.batch_index is not None:
            if completion.batch_index not in numbers:
                numbers[completion.batch_index] = next(batches)
            completion.batch_index = numbers[completion.batch_index]
    return completions


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


class RayBackend:
    """A streaming backend over a ReplicaPool, for one run: `adapter` is the LoRA adapter its requests
    carry on replicas that serve several (vllm), `model` the model as the run names it."""

    def __init__(self, pool: ReplicaPool, adapter: str | None = None, model: str | None = None,
                 owns_pool: bool = False):
        # owns_pool: close() stops the replicas and disconnects from the cluster (harness eval --ray)
        self.pool, self.adapter, self.model, self.owns_pool = pool, adapter, model, owns_pool
        self.name = pool.spec.backend
        self.stats = _new_stats()

    def stream(self, requests: Iterable[Request], params: GenerationParams,
               max_concurrency: int | None = None) -> Iterator[Completion]:
        self.stats = _new_stats()
        return self.pool.completions(requests, params, self.adapter, self.stats, max_concurrency)

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Completion]:
        return list(self.stream(requests, params))

    def describe(self) -> dict[str, Any]:
        facts = dict(self.pool.describe(self.adapter))
        if self.model is not None:
            facts["model"] = self.model
        facts["load_time_s"] = self.pool.load_time_s  # the cluster and every replica, as the driver waited
        return facts

    def memory(self) -> dict[str, Any]:
        return self.pool.memory()

    def session_facts(self) -> dict[str, Any]:
        """The session's `ray` entry: the pool, and what the latest stream retried after worker deaths."""
        return {"ray": {**self.pool.facts(), **self.stats}}

    def close(self) -> None:
        if self.owns_pool:
            self.pool.close()
            self.pool.cluster.close()


def _new_stats() -> dict[str, int]:
    return {"worker_deaths": 0, "chunks_retried": 0, "requests_retried": 0, "replicas_restarted": 0}


def ray_backend(cfg: EvalConfig) -> RayBackend:
    """harness eval --ray: connect to (or start) the cluster and start cfg's replicas; the backend owns them."""
    assert cfg.ray is not None
    cluster = connect(cfg.ray, min_cpus=(cfg.ray_replicas or 1) * cfg.ray_cpus_per_replica)
    try:
        pool = ReplicaPool.start(ReplicaSpec.of(cfg, fitting_resources(cfg, cluster)), cluster)
    except BaseException:
        cluster.close()
        raise
    return RayBackend(pool, owns_pool=True)


def fitting_resources(cfg: EvalConfig, cluster: Cluster) -> ReplicaResources:
    """The replicas cfg asks for, on the cluster's free resources; resources that the cluster has but that
    are still held (replicas just stopped, another job ending) are waited for a while before giving up."""
    deadline = time.monotonic() + ROOM_WAIT_S
    while True:
        wanted = plan_replicas(cfg, cluster.resources())  # never fits: fail now
        try:
            free = plan_replicas(cfg, cluster.resources(), cluster.free_resources())
        except ConfigError:
            if time.monotonic() >= deadline:
                raise
        else:
            if free.replicas >= wanted.replicas or time.monotonic() >= deadline:
                return free
        time.sleep(0.5)
