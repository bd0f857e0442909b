"""`harness eval-many PLAN.toml`: several checkpoints x suites queued as one job, each writing its own run.

    plan = read_plan("sweep.toml")           # checked whole (every run's settings) before anything starts
    outcomes = run_plan(plan, echo=print)     # [RunOutcome(name="gspo-40", path=..., error=None), ...]

A plan (TOML or JSON; docs/scale-out.md shows one):

    out = "runs/sweep"            # the runs' parent folder: <out>/<checkpoint name>
    one_run_per_suite = false     # true: a run per checkpoint and suite, <out>/<name>/<suite>
    [settings]                    # harness eval's settings for every run (ray included)
    backend = "vllm"
    suites = ["mathvista_testmini", "mathverse_testmini"]
    ray = "auto"
    [[checkpoints]]
    name = "gspo-40"
    model = "ckpts/gspo/checkpoint-40"   # plus revision, adapter where needed

Runs whose replicas would load the same thing share them: on vllm every checkpoint of one base model
(LoRA adapters are switched per request; merge_lora gives each its own), on the other backends every
run of the same model and adapter. The groups run one after another, the runs of a group one after
another over all its replicas. A run directory that already exists is resumed, so running the plan
again after a crash finishes what is left; a run that fails is reported and the others go on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from harness.config import EvalConfig, read_config_file
from harness.config_types import check_field_types
from harness.runstore import RunDir

# Settings a plan gives per checkpoint (model, revision, adapter) or per run (out), not in [settings].
PER_RUN_KEYS = ("model", "revision", "adapter", "out")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class PlanCheckpoint:
    name: str = field(metadata={"help": "the run directory's name under the plan's out"})
    model: str = field(metadata={"help": "model dir, Hub id or LoRA adapter dir"})
    revision: str | None = field(default=None, metadata={"help": "Hub revision of the model"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter dir applied on the model"})

    def __post_init__(self) -> None:
        check_field_types(self)
        if not NAME.fullmatch(self.name):
            raise ConfigError(f"checkpoint name {self.name!r} must be letters, digits, '.', '_' or '-' (it names "
                              f"a folder)")


@dataclass
class EvalPlan:
    out: str = field(metadata={"help": "the folder that holds every run directory of the plan"})
    checkpoints: list[dict[str, Any]] = field(metadata={"help": "the checkpoints: name, model, revision, "
                                                        "adapter"})
    settings: dict[str, Any] = field(default_factory=dict, metadata={"help": "harness eval settings of "
                                                                     "every run"})
    one_run_per_suite: bool = field(default=False, metadata={"help": "a run per checkpoint and suite "
                                                             "(<out>/<name>/<suite>)"})

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.checkpoints:
            raise ConfigError("a plan needs at least one [[checkpoints]] entry")
        given = sorted(set(self.settings) & set(PER_RUN_KEYS))
        if given:
            raise ConfigError(f"[settings] may not hold {', '.join(given)}: give model, revision and adapter "
                              f"per [[checkpoints]] entry; runs write under the plan's out")

    def runs(self) -> list[PlannedRun]:
        """Every run of the plan with its checked config, in plan order."""
        checkpoints = [_checkpoint(entry, i) for i, entry in enumerate(self.checkpoints)]
        names = [c.name for c in checkpoints]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"checkpoint name(s) {', '.join(repeated)} appear more than once")
        runs = []
        for checkpoint in checkpoints:
            base = {**self.settings, "model": checkpoint.model, "revision": checkpoint.revision,
                    "adapter": checkpoint.adapter}
            if not self.one_run_per_suite:
                out = Path(self.out) / checkpoint.name
                runs.append(PlannedRun(checkpoint.name, _config({**base, "out": str(out)}, checkpoint.name)))
                continue
            from suites import DEFAULT_SUITES

            for suite in _config(base, checkpoint.name).suites or DEFAULT_SUITES:
                out = Path(self.out) / checkpoint.name / suite
                name = f"{checkpoint.name}/{suite}"
                runs.append(PlannedRun(name, _config({**base, "suites": [suite], "out": str(out)}, name)))
        return runs


@dataclass
class PlannedRun:
    name: str
    cfg: EvalConfig


@dataclass
class RunOutcome:
    name: str
    path: Path
    error: str | None = None  # one line: why the run stopped


def _checkpoint(entry: Any, index: int) -> PlanCheckpoint:
    if not isinstance(entry, dict):
        raise ConfigError(f"checkpoints[{index}] must be a table with name and model")
    known = {f.name for f in fields(PlanCheckpoint)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"checkpoints[{index}]: unknown key(s) {', '.join(unknown)}; known keys: "
                          f"{', '.join(sorted(known))}")
    missing = [k for k in ("name", "model") if k not in entry]
    if missing:
        raise ConfigError(f"checkpoints[{index}] needs {' and '.join(missing)}")
    return PlanCheckpoint(**entry)


def _config(settings: dict[str, Any], name: str) -> EvalConfig:
    try:
        return EvalConfig.from_dict(settings, source=f"plan run {name}")
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith("plan run") else f"plan run {name}: {message}") from None


def read_plan(path: str | Path, overrides: dict[str, Any] | None = None) -> EvalPlan:
    """The plan in a TOML or JSON file, every run's settings checked; `overrides` replace [settings] keys
    (the command line's --ray)."""
    data = read_config_file(path)
    known = {f.name for f in fields(EvalPlan)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"plan {path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    missing = [k for k in ("out", "checkpoints") if k not in data]
    if missing:
        raise ConfigError(f"plan {path} needs {' and '.join(missing)}")
    if overrides:
        data = {**data, "settings": {**(data.get("settings") or {}), **overrides}}
    plan = EvalPlan(**data)
    plan.runs()  # every run's settings checked now: a typo fails the job before any model loads
    return plan


def replica_group(cfg: EvalConfig) -> tuple[tuple[Any, ...], str, str | None, dict[str, Any]]:
    """(key, model the replicas load, adapter the run's requests carry, load options) of a run. Runs with
    the same key share replicas."""
    options = cfg.backend_options()
    if cfg.backend == "vllm" and not cfg.merge_lora:
        from harness.models import resolve_model

        resolved = resolve_model(str(cfg.model), cfg.revision, cfg.adapter)
        options = {**options, "adapter": None, "revision": resolved.base.revision}
        adapter = resolved.adapter.location if resolved.adapter else None
        return (("vllm", resolved.base.location, repr(sorted(options.items()))), resolved.base.location, adapter,
                options)
    return (cfg.backend, str(cfg.model), repr(sorted(options.items()))), str(cfg.model), None, options


def run_plan(plan: EvalPlan, echo: Callable[[str], None], progress: Any = "off") -> list[RunOutcome]:
    """Run every run of the plan (resuming those already begun); returns each run's outcome."""
    from harness.runner import resolve_model

    runs = [PlannedRun(r.name, resolve_model(r.cfg)) for r in plan.runs()]
    groups: dict[tuple[Any, ...], list[tuple[PlannedRun, str, str | None, dict[str, Any]]]] = {}
    for run in runs:
        key, model, adapter, options = replica_group(run.cfg)
        groups.setdefault(key, []).append((run, model, adapter, options))
    outcomes: dict[str, RunOutcome] = {}
    cluster = None
    first = runs[0].cfg
    try:
        if first.ray is not None:
            from harness.ray_cluster import connect

            cluster = connect(first.ray, min_cpus=(first.ray_replicas or 1) * first.ray_cpus_per_replica)
        for members in groups.values():
            outcomes.update(_run_group(members, cluster, echo, progress))
    finally:
        if cluster is not None:
            cluster.close()
    return [outcomes[r.name] for r in runs]


def _run_group(members: list[tuple[PlannedRun, str, str | None, dict[str, Any]]], cluster: Any,
               echo: Callable[[str], None], progress: Any) -> dict[str, RunOutcome]:
    """The runs of one replica group: over shared Ray replicas, or (no cluster) each loading its own."""
    pool = None
    if cluster is not None:
        try:
            pool = _start_pool(members, cluster, echo)
        except Exception as exc:  # noqa: BLE001 -- the group's runs fail with this reason; the others go on
            reason = _line(exc)
            echo(f"replicas for {', '.join(run.name for run, *_ in members)} did not start: {reason}")
            return {run.name: RunOutcome(run.name, Path(str(run.cfg.out)), reason) for run, *_ in members}
    outcomes = {}
    try:
        for run, _, adapter, _ in members:
            backend = None
            if pool is not None:
                from harness.ray_pool import RayBackend

                backend = RayBackend(pool, adapter=adapter, model=run.cfg.model)
            outcomes[run.name] = _one_run(run, backend, echo, progress)
    finally:
        if pool is not None:
            pool.close()
    return outcomes


def _start_pool(members: list[tuple[PlannedRun, str, str | None, dict[str, Any]]], cluster: Any,
                echo: Callable[[str], None]) -> Any:
    from harness.ray_pool import ReplicaPool, ReplicaSpec, fitting_resources

    first, model, _, options = members[0]
    adapters = sorted({adapter for _, _, adapter, _ in members if adapter is not None})
    if adapters:  # vllm: the base model's engines apply each run's adapter per request
        options = {**options, "serve_adapters": adapters}
    resources = fitting_resources(first.cfg, cluster)
    spec = ReplicaSpec.of(first.cfg, resources, model, options)
    echo(f"starting {resources.replicas} {spec.backend} replica(s) of {model} for {len(members)} run(s)")
    return ReplicaPool.start(spec, cluster)


def _one_run(run: PlannedRun, backend: Any, echo: Callable[[str], None], progress: Any) -> RunOutcome:
    from harness.runner import run_eval

    out = Path(str(run.cfg.out))
    try:
        path = run_eval(run.cfg, resume=RunDir(out).exists(), backend=backend, progress=progress, echo=echo)
    except Exception as exc:  # noqa: BLE001 -- one run's failure is reported; the plan goes on
        echo(f"{run.name}: failed: {_line(exc)}")
        return RunOutcome(run.name, out, _line(exc))
    echo(f"{run.name}: {path}")
    return RunOutcome(run.name, path)


def _line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
