"""The Ray cluster a run is spread over: connecting (or starting a local one) and sizing the replicas.

    cluster = connect("local", min_cpus=2)          # a cluster of this machine, stopped by cluster.close()
    cluster = connect("auto")                       # the cluster this machine belongs to (`ray start`)
    plan = plan_replicas(cfg, cluster.resources())   # ReplicaResources(replicas=2, num_cpus=1.0, num_gpus=0)

Ray is an optional dependency (`uv sync --extra ray`); without it the error says how to install it.
A process already connected to Ray (a test, a notebook) keeps its connection: `connect` uses it and
`close` leaves it open.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from harness.config import EvalConfig

# Backends whose replicas hold a model on a GPU when the cluster has GPUs (vllm always needs them).
GPU_BACKENDS = ("transformers", "vllm")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: install it with `uv sync --extra ray` (or pip install "
                          "'vlm-math-harness[ray]')") from None
    return ray


@dataclass
class Cluster:
    address: str  # "local", or the address given
    connected_here: bool  # this process called ray.init, and close() disconnects (and stops a local cluster)

    def resources(self) -> dict[str, float]:
        return dict(import_ray().cluster_resources())

    def free_resources(self) -> dict[str, float]:
        return dict(import_ray().available_resources())

    def version(self) -> str:
        return import_ray().__version__

    def close(self) -> None:
        if self.connected_here:
            import_ray().shutdown()
            self.connected_here = False


def connect(address: str, min_cpus: float = 1) -> Cluster:
    """Connect to the cluster at `address`, or start one on this machine for "local" (with at least
    `min_cpus` CPUs, so that the replicas asked for fit even on a small machine)."""
    if address == "local" and "ray" not in sys.modules:
        # Ray run under `uv run` would start its workers with `uv run` in a copy of the working directory
        # (its uv hook); the workers of a cluster on this machine share this Python environment instead.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray = import_ray()
    if ray.is_initialized():
        return Cluster(address, connected_here=False)
    # Workers' output stays in Ray's log folder (/tmp/ray/session_latest/logs): the driver's stderr carries
    # the run's progress only; a replica's failure comes back as the error of its request.
    options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False, "logging_level": logging.WARNING}
    if address == "local":
        num_cpus = max(os.cpu_count() or 1, int(-(-min_cpus // 1)))
        ray.init(address="local", num_cpus=num_cpus, **options)
    else:
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0][:200]} "
                              f"(start one with `ray start --head`, or pass --ray with no address for a local "
                              f"one)") from None
    return Cluster(address, connected_here=True)


@dataclass(frozen=True)
class ReplicaResources:
    replicas: int
    num_cpus: float
    num_gpus: float

    def to_dict(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}


def replica_gpus(cfg: EvalConfig, cluster_gpus: float) -> float:
    """GPUs one replica holds: vllm: tensor_parallel_size; transformers: one when the cluster has GPUs."""
    if cfg.backend == "vllm":
        return float(cfg.tensor_parallel_size)
    if cfg.backend in GPU_BACKENDS and cluster_gpus > 0:
        return 1.0
    return 0.0


def plan_replicas(cfg: EvalConfig, total: dict[str, float], free: dict[str, float] | None = None) -> ReplicaResources:
    """How many replicas, each with which resources: as many as the cluster's free resources hold unless
    cfg says. ConfigError when they do not fit (replicas that wait for resources would wait silently)."""
    free = total if free is None else free
    cpus, gpus = float(free.get("CPU", 0)), float(free.get("GPU", 0))
    per_gpu = replica_gpus(cfg, float(total.get("GPU", 0)))
    per_cpu = cfg.ray_cpus_per_replica
    fits = []
    if per_gpu:
        fits.append(int(gpus // per_gpu))
    if per_cpu:
        fits.append(int(cpus // per_cpu))
    room = min(fits) if fits else None  # None: a replica that reserves nothing fits any number of times
    replicas = cfg.ray_replicas or room or 1
    if room is not None and replicas > room:
        need = " and ".join(f"{replicas * amount:g} {what}" for what, amount in (("GPUs", per_gpu), ("CPUs", per_cpu))
                            if amount)
        raise ConfigError(f"{replicas} replica(s) of {per_gpu:g} GPU(s) and {per_cpu:g} CPU(s) need {need}; the "
                          f"Ray cluster has {float(total.get('GPU', 0)):g} GPUs ({gpus:g} free) and "
                          f"{float(total.get('CPU', 0)):g} CPUs ({cpus:g} free)")
    return ReplicaResources(replicas, per_cpu, per_gpu)
