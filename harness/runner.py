"""The evaluation loop: suite items -> prompts -> backend -> scorer -> records -> metrics, in a run directory.

A run is resumable at any point: records are appended as each item's attempts arrive (a session's work:
harness/run_session.py), and `resume=True` skips every (suite, sample_id, attempt) already on disk, so a
killed run finishes with nothing lost or repeated.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError, HarnessError, RunDirError, StorageError, storage_error
from core.formats import PROMPT_FORMATS, PromptFormat
from harness import metrics as metrics_mod
from harness import provenance
from harness.backends import Backend, load_backend
from harness.config import EvalConfig, field_defaults
from harness.contamination import checkpoint_entry
from harness.dirlock import DirLock
from harness.llm_judge import JudgeSettings, check_judge, judge_records
from harness.progress import Progress, ProgressMode
from harness.run_lifecycle import (
    MAX_FAILED_SHARE,
    claimed_run_dir,
    finalize,
    incomplete_message,
    now,
    repair,
    suite_specs,
)
from harness.run_session import SessionContext, generate_session, put_in_suite_order
from harness.runstore import MANIFEST_SCHEMA_VERSION, RunDir, record_key
from harness.scoring import failed_judgement, judge
from harness.sharding import items_of_shard, parse_shard, shard_entry
from suites import DEFAULT_SUITES, get_suite
from suites.base import SCORING_MODES, Item, LoadOptions, Suite, Target

# Settings that must be identical for records of two sessions to belong to one run.
IDENTITY_KEYS = ("model", "revision", "adapter", "backend", "dtype", "load_in_4bit", "quantization", "suites",
                 "split", "variant", "image_size", "prompt_format", "limit", "sample_ids", "max_new_tokens",
                 "temperature", "top_p", "top_k", "n_samples", "seed", "ignore_eos", "scoring",
                 "shard")


@dataclass
class SuitePlan:
    suite: Suite
    split: str
    items: list[Item]
    shard: dict[str, Any] | None = None  # a sharded run: harness/sharding.py's shard_entry of the whole suite

    def content_sha256(self) -> str:
        h = hashlib.sha256()
        for item in self.items:
            h.update(item.content_sha256().encode())
        return h.hexdigest()

    def manifest_entry(self, cfg: EvalConfig) -> dict[str, Any]:
        return {"name": self.suite.name, "version": self.suite.version, "split": self.split,
                "source": self.suite.source, "variant": cfg.variant if cfg.variant in self.suite.variants
                else None, "image_size": list(cfg.image_size) if cfg.image_size else None,
                "n_items": len(self.items), "content_sha256": self.content_sha256(),
                **({"shard": self.shard} if self.shard else {})}


def plan_suites(cfg: EvalConfig) -> list[SuitePlan]:
    names = cfg.suites or list(DEFAULT_SUITES)
    suites = [get_suite(n) for n in names]
    if cfg.variant and not any(cfg.variant in s.variants for s in suites):
        raise ConfigError(f"variant {cfg.variant!r} is not offered by {', '.join(names)}")
    plans = []
    for suite in suites:
        split = cfg.split or suite.default_split
        if split not in suite.splits:
            raise ConfigError(f"suite {suite.name} has no split {split!r}; splits: {', '.join(suite.splits)}")
        data_dir = cfg.data_dir.get(suite.name) or cfg.data_dir.get("*")
        opts = LoadOptions(split=split, data_dir=Path(data_dir) if data_dir else None,
                           variant=cfg.variant if cfg.variant in suite.variants else None,
                           image_size=cfg.image_size, seed=cfg.seed)
        items = suite.load(opts)
        wanted = cfg.sample_ids.get(suite.name)
        if wanted is not None:
            known = {item.sample_id for item in items}
            unknown = [i for i in wanted if i not in known]
            if unknown:
                raise ConfigError(f"suite {suite.name} {split} has no sample id(s) {', '.join(unknown[:5])}")
            keep = set(wanted)
            items = [item for item in items if item.sample_id in keep]
        plan = SuitePlan(suite, split, items[: cfg.limit] if cfg.limit else items)
        if cfg.shard:  # this process's share of the items chosen above
            index, count = parse_shard(cfg.shard)
            plan.shard = shard_entry(suite.name, plan.items, plan.content_sha256(), index, count)
            plan.items = items_of_shard(plan.items, index, count)
        broken = [item for item in plan.items if item.error is not None]
        if plan.items and len(broken) > MAX_FAILED_SHARE * len(plan.items):
            # Nothing to evaluate: say so before any model loads or any run is written.
            raise DataError(f"{len(broken)} of {len(plan.items)} items of {suite.name} {split} cannot be "
                            f"evaluated; first: {broken[0].sample_id}: {broken[0].error}")
        plans.append(plan)
    return plans


def resolve_model(cfg: EvalConfig) -> EvalConfig:
    """The default model is the tiny offline one, built on first use and cached."""
    if cfg.model:
        return cfg
    from harness.tiny_model import default_tiny_model

    return EvalConfig.from_dict({**cfg.to_dict(), "model": str(default_tiny_model())})


def new_run_id(model: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(model.rstrip("/")).name).strip("-")[:40] or "model"
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{slug}-{secrets.token_hex(2)}"


def check_resumable(manifest: dict[str, Any], cfg: EvalConfig, plans: list[SuitePlan]) -> None:
    stored = manifest.get("config", {})
    current = cfg.to_dict()
    defaults = field_defaults()  # a key added to the config since the run began holds its default
    for key in IDENTITY_KEYS:
        if stored.get(key, defaults[key]) != current.get(key):
            raise RunDirError(f"cannot resume: {key} was {stored.get(key)!r} in this run, now {current.get(key)!r}")
    stored_hashes = {s["name"]: s["content_sha256"] for s in manifest.get("suites", [])}
    for plan in plans:
        if stored_hashes.get(plan.suite.name) != plan.content_sha256():
            raise RunDirError(f"cannot resume: the items of suite {plan.suite.name} changed since the run began")


def open_run(cfg: EvalConfig, plans: list[SuitePlan], run: RunDir, run_id: str,
             resume: bool) -> dict[str, Any]:
    """The manifest: the stored one on resume (checked against the settings), else a new one."""
    if resume:
        manifest = run.read_manifest()
        check_resumable(manifest, cfg, plans)
        return manifest
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "run_id": run_id,
        "created": now(),
        "finished": None,
        "status": "running",
        "error": None,
        "harness": provenance.git_state(),
        "model": {"id": cfg.model, "revision": cfg.revision, "adapter": cfg.adapter, "dtype": cfg.dtype,
                  "quantization": cfg.weight_quantization()},
        "backend": cfg.backend,
        "prompt_format": cfg.prompt_format,
        "scoring": cfg.scoring,
        "generation": cfg.generation().to_dict(),
        "seed": cfg.seed,
        "suites": [p.manifest_entry(cfg) for p in plans],
        "config": cfg.to_dict(),
        # A trained checkpoint: its algo and step, and the evaluated items it was trained on.
        "checkpoint": checkpoint_entry(cfg.adapter or cfg.model, {p.suite.name: p.items for p in plans}),
        "packages": provenance.package_versions(),
        "hardware": provenance.platform_info(),
        "measurements": {"sessions": []},
    }  # written by the caller once the model has loaded: a bad model leaves no run


def base_record(item: Item) -> dict[str, Any]:
    """A record's item fields; attempt, response and scoring fields are filled in per attempt."""
    target = item.target()
    return {
        "suite": item.suite, "sample_id": item.sample_id, "attempt": 0, "question": item.question,
        "choices": item.choices, "gold": item.gold, "image": None, "prompt_sha256": None,
        "response": None, "n_prompt_tokens": None, "n_output_tokens": None, "finish_reason": None,
        "latency_s": None, "ttft_s": None, "request_latency_s": None, "batch": None, "error": item.error,
        "request_failed": False, "llm_judge": None,
        "target": {k: target[k] for k in ("answer_type", "unit", "precision")}, "meta": item.meta,
    }


def target_of(record: dict[str, Any]) -> Target:
    return Target.from_dict({**record["target"], "gold": record["gold"], "choices": record["choices"],
                             "meta": record.get("meta") or {}, "question": record.get("question")})


def score_record(record: dict[str, Any], suite: Suite, fmt: PromptFormat, scoring: str = "strict") -> dict[str, Any]:
    """Fill a record's scoring fields from its response (used live and by rescore); `correct` is the
    verdict of `scoring` (strict or official)."""
    if record["response"] is None:
        record.update(failed_judgement(fmt))
    else:
        record.update(judge(suite, record["response"], fmt, target_of(record), scoring=scoring))
    # An imported run keeps the other tool's verdicts beside the harness's (its `external` holds them).
    for name, verdict in ((record.get("external") or {}).get("scores") or {}).items():
        if verdict.get("correct") is not None:
            record["scores"] = {**record["scores"],
                                name: {"extracted": verdict.get("extracted"), "correct": verdict["correct"]}}
    return record


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_eval(cfg: EvalConfig, resume: bool = False, progress: ProgressMode | bool = "auto",
             backend: Backend | None = None, echo: Callable[[str], None] | None = None) -> Path:
    """Run (or finish, with resume) an evaluation and return its run directory.

    progress: "auto" (a bar on a terminal, else log lines), "bar", "log" (a line every tenth of the work
    or 30 s, with rate and ETA) or "off"; echo takes notes and log lines (default: stderr). The run directory is locked for the whole call: a second
    writer gets a LockError. Raises ItemsFailedError (after writing the run, status error) when more
    than half the items of a suite failed, StorageError when a file cannot be written.
    """
    echo = echo or _stderr
    plans = plan_suites(cfg)  # data problems surface before any model is built or loaded
    cfg = resolve_model(cfg)
    run_id = new_run_id(cfg.model or "model")
    out = Path(cfg.out) if cfg.out else Path("runs") / run_id
    with claimed_run_dir(out, resume, echo) as run:
        return _run_locked(cfg, plans, run, run_id, resume, progress, backend, echo)


def _run_locked(cfg: EvalConfig, plans: list[SuitePlan], run: RunDir, run_id: str, resume: bool,
                progress: ProgressMode | bool, backend: Backend | None, echo: Callable[[str], None]) -> Path:
    fmt = PROMPT_FORMATS[cfg.prompt_format]
    manifest = open_run(cfg, plans, run, run_id, resume)
    repaired = repair(run, manifest, echo) if resume else {}
    done = {record_key(r) for r in run.iter_records()}
    params = cfg.generation()
    todo = [(plan, item, [a for a in range(params.n) if (item.suite, item.sample_id, a) not in done])
            for plan in plans for item in plan.items]
    todo = [t for t in todo if t[2]]
    judge = JudgeSettings.from_config(cfg)
    if not todo:  # a resume with nothing left to generate adds no session
        unjudged = judge is not None and "llm_judge" not in manifest
        if (manifest["status"] == "finished" and run.metrics_path.is_file() and not any(repaired.values())
                and not unjudged):
            echo(f"{run.path}: the run is already finished; nothing to do")
            return run.path
        if judge is not None:
            judge_run(run, manifest, judge, echo, progress)
        finalize(run, manifest)
        return run.path
    if judge is not None:
        check_judge(judge)  # an unreachable judge or one not served fails before any model loads
    loaded_here = backend is None
    if backend is None:
        backend = open_backend(cfg)
    manifest["model"].update(backend.describe())
    session = {"started": now(), "finished": None, "n_records": 0, "memory": None,
               "load_time_s": (backend.describe() or {}).get("load_time_s") if loaded_here else None}
    manifest["measurements"]["sessions"].append(session)
    manifest["status"], manifest["error"], manifest["finished"] = "running", None, None
    run.write_manifest(manifest)
    session_index = len(manifest["measurements"]["sessions"]) - 1
    bar = Progress(len(todo), progress, echo)
    from harness.gpu_memory import NvmlSampler

    ctx = SessionContext(run=run, backend=backend, fmt=fmt, params=params, session_index=session_index,
                         image_size=cfg.image_size, batch_size=cfg.batch_size, max_concurrency=cfg.max_concurrency,
                         base_record=base_record, score_record=partial(score_record, scoring=cfg.scoring))

    def item_done(suite: str, n_records: int) -> None:
        session["n_records"] += n_records
        bar.advance(1, suite)

    try:
        with NvmlSampler() as sampler:
            session_started = time.perf_counter()
            session.update(generate_session(todo, ctx, item_done))
            session["wall_s"] = round(time.perf_counter() - session_started, 3)
            manifest["model"].update(backend.describe())  # what a server reported while answering
            mem = dict(backend.memory())
            mem["nvml_peak_used_mib"] = sampler.peak_used_mib
            if sampler.peak_used_mib is None and getattr(sampler, "note", None):
                mem.setdefault("note", sampler.note)
            session["memory"] = mem
            _add_session_facts(session, backend)
    except BaseException as exc:
        bar.close()
        _add_session_facts(session, backend)
        raise _record_failure(run, manifest, session, exc) from exc
    finally:
        if loaded_here:  # a backend loaded here ends here: GPU memory and engine processes freed
            backend.close()
    bar.close()
    session["finished"] = now()
    try:
        put_in_suite_order(run, plans)
        if judge is not None:  # a judge that fails here leaves a run whose resume judges it again
            judge_run(run, manifest, judge, echo, progress)
    except HarnessError as exc:
        raise _record_failure(run, manifest, session, exc) from exc
    try:
        finalize(run, manifest)
    except StorageError as exc:  # metrics or manifest not written (disk full): say so in the manifest
        raise _record_failure(run, manifest, session, exc) from exc
    failed = sum(1 for r in run.iter_records() if r.get("request_failed"))
    if failed:
        echo(f"warning: {failed} request(s) failed after retries and are recorded with their error; "
             f"harness eval --out {run.path} --resume sends them again")
    return run.path


def open_backend(cfg: EvalConfig) -> Backend:
    """The backend of cfg: loaded in this process, or replicas on a Ray cluster (cfg.ray)."""
    if cfg.ray is not None:
        from harness.ray_pool import ray_backend

        return ray_backend(cfg)
    return load_backend(cfg.backend, cfg.model, **cfg.backend_options())


def _add_session_facts(session: dict[str, Any], backend: Backend) -> None:
    """What a backend reports about the session itself (a Ray pool: its replicas and retries)."""
    facts = getattr(backend, "session_facts", None)
    if facts is not None:
        with contextlib.suppress(Exception):  # facts are not worth failing (or hiding the failure of) a run
            session.update(facts())


def _record_failure(run: RunDir, manifest: dict[str, Any], session: dict[str, Any],
                    exc: BaseException) -> BaseException:
    """Mark the manifest `error` with the reason; returns the exception to raise (OSErrors become one line)."""
    if isinstance(exc, OSError):
        exc = storage_error(exc, "evaluate into", run.path)
    session["finished"] = now()
    manifest["status"] = "error"
    manifest["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    try:
        run.write_manifest(manifest)
    except StorageError as again:
        if isinstance(exc, StorageError):  # disk still full: say that the manifest could not record it
            return StorageError(f"{exc}; the manifest could not record this either, it still says running "
                                f"({again})")
    return exc


def judge_run(run: RunDir, manifest: dict[str, Any], judge: JudgeSettings, echo: Callable[[str], None],
              progress: ProgressMode | bool = "off") -> None:
    """A judge pass over the run's records (rewritten with their `llm_judge` verdicts); the pass is
    described in the manifest's `llm_judge`."""
    records = run.read_records()
    mode = progress if isinstance(progress, str) else ("auto" if progress else "off")
    manifest["llm_judge"] = judge_records(records, judge, echo, mode)
    run.rewrite_records(records)
    run.write_manifest(manifest)


def rescore(path: str | Path, echo: Callable[[str], None] | None = None,
            judge: JudgeSettings | None = None, progress: ProgressMode = "off",
            scoring: str | None = None) -> dict[str, Any]:
    """Re-extract and re-score every record from its response with today's scorers; rewrite metrics.
    With `judge`, an LLM judge pass follows (harness/llm_judge.py); without, earlier verdicts are kept.

    scoring: "strict" or "official" makes that the run's scoring mode (recorded in the manifest);
    None keeps the run's own. The run is locked meanwhile. An unfinished or duplicated run is rescored
    too, but its metrics say `complete: false` and echo says why; nothing is repaired here (resume
    does that)."""
    if scoring is not None and scoring not in SCORING_MODES:
        raise ConfigError(f"unknown scoring {scoring!r}; choose one of: {', '.join(SCORING_MODES)}")
    run = RunDir(path)
    run.read_manifest()  # a missing or wrong-shaped manifest: one line, before taking the lock
    with DirLock(run.path, "run directory"):
        manifest = run.read_manifest()
        fmt = PROMPT_FORMATS[manifest["prompt_format"]]
        manifest["scoring"] = scoring or manifest.get("scoring", "strict")
        manifest["config"]["scoring"] = manifest["scoring"]
        run.write_manifest(manifest)  # also writes a run read from an older version in today's shape
        records = run.read_records()
        suites = {name: get_suite(name) for name in {r["suite"] for r in records}}
        for r in records:
            score_record(r, suites[r["suite"]], fmt, manifest["scoring"])
        if judge is not None:
            manifest["llm_judge"] = judge_records(records, judge, echo, progress)
            run.write_manifest(manifest)
        run.rewrite_records(records)
        metrics = metrics_mod.compute_metrics(records, manifest, suite_specs(manifest))
        metrics["rescored"] = now()
        run.write_metrics(metrics)
    state = metrics["completeness"]
    if not state["complete"] and echo:
        echo(f"warning: {incomplete_message(run.path, state)}: the metrics are partial (complete: false); "
             f"finish the run with harness eval --out {run.path} --resume")
    return metrics
