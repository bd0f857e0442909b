"""The evaluation loop: suite items -> prompts -> backend -> scorer -> records.jsonl -> metrics.json.

A run is resumable at any point: records are appended per batch, and `resume=True` skips every
(suite, sample_id, attempt) already on disk, so a killed run finishes with nothing lost or repeated.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import metrics as metrics_mod
from harness import provenance
from harness.backends import Backend, Completion, Request, load_backend
from harness.config import EvalConfig, field_defaults
from harness.contamination import checkpoint_entry
from harness.errors import ConfigError, HarnessError, RunDirError
from harness.formats import PROMPT_FORMATS, PromptFormat
from harness.images import decode, save_thumbnail, thumbnail_name
from harness.prompts import messages, prompt_sha256, prompt_text
from harness.runstore import MANIFEST_SCHEMA_VERSION, RunDir, record_key
from harness.scoring import failed_judgement, judge
from suites import DEFAULT_SUITES, get_suite
from suites.base import Item, LoadOptions, Suite, Target

# Settings that must be identical for records of two sessions to belong to one run.
IDENTITY_KEYS = ("model", "revision", "adapter", "backend", "dtype", "load_in_4bit", "quantization", "suites",
                 "split", "variant", "image_size", "prompt_format", "limit", "sample_ids", "max_new_tokens",
                 "temperature", "top_p", "top_k", "n_samples", "seed", "ignore_eos")


@dataclass
class SuitePlan:
    suite: Suite
    split: str
    items: list[Item]

    def content_sha256(self) -> str:
        h = hashlib.sha256()
        for item in self.items:
            h.update(item.content_sha256().encode())
        return h.hexdigest()

    def manifest_entry(self, cfg: EvalConfig) -> dict[str, Any]:
        return {"name": self.suite.name, "version": self.suite.version, "split": self.split,
                "source": self.suite.source, "variant": cfg.variant if cfg.variant in self.suite.variants
                else None, "image_size": list(cfg.image_size) if cfg.image_size else None,
                "n_items": len(self.items), "content_sha256": self.content_sha256()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        plans.append(SuitePlan(suite, split, items[: cfg.limit] if cfg.limit else items))
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


def open_run(cfg: EvalConfig, plans: list[SuitePlan], resume: bool) -> tuple[RunDir, dict[str, Any]]:
    out = Path(cfg.out) if cfg.out else None
    if resume:
        if out is None or not RunDir(out).exists():
            raise RunDirError(f"--resume needs --out pointing at an existing run directory (got {out})")
        run = RunDir(out)
        manifest = run.read_manifest()
        check_resumable(manifest, cfg, plans)
        run.repair_tail()
        return run, manifest
    run_id = new_run_id(cfg.model or "model")
    run = RunDir(out or Path("runs") / run_id)
    if run.exists():
        raise RunDirError(f"{run.path} already holds a run; pass --resume to finish it, or choose another --out")
    manifest = {
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
        "generation": cfg.generation().to_dict(),
        "seed": cfg.seed,
        "suites": [p.manifest_entry(cfg) for p in plans],
        "config": cfg.to_dict(),
        # A trained checkpoint: its algo and step, and the evaluated items it was trained on.
        "checkpoint": checkpoint_entry(cfg.adapter or cfg.model, {p.suite.name: p.items for p in plans}),
        "packages": provenance.package_versions(),
        "hardware": provenance.platform_info(),
        "measurements": {"sessions": []},
    }
    return run, manifest  # written by the caller once the model has loaded: a bad model leaves no run


def base_record(item: Item) -> dict[str, Any]:
    """A record's item fields; attempt, response and scoring fields are filled in per attempt."""
    target = item.target()
    return {
        "suite": item.suite, "sample_id": item.sample_id, "attempt": 0, "question": item.question,
        "choices": item.choices, "gold": item.gold, "image": None, "prompt_sha256": None,
        "response": None, "n_prompt_tokens": None, "n_output_tokens": None, "finish_reason": None,
        "latency_s": None, "batch": None, "error": item.error,
        "target": {k: target[k] for k in ("answer_type", "unit", "precision")}, "meta": item.meta,
    }


def target_of(record: dict[str, Any]) -> Target:
    return Target.from_dict({**record["target"], "gold": record["gold"], "choices": record["choices"],
                             "meta": record.get("meta") or {}})


def score_record(record: dict[str, Any], suite: Suite, fmt: PromptFormat) -> dict[str, Any]:
    """Fill a record's scoring fields from its response (used live and by rescore)."""
    if record["response"] is None:
        record.update(failed_judgement(fmt))
    else:
        record.update(judge(suite, record["response"], fmt, target_of(record)))
    return record


class _Progress:
    """A rich progress bar on a terminal; silent otherwise (logs stay clean in CI)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=False)
            self.task = self.bar.add_task("evaluating", total=total)
            self.bar.start()

    def advance(self, n: int, description: str) -> None:
        if self.bar:
            self.bar.update(self.task, advance=n, description=description)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def run_eval(cfg: EvalConfig, resume: bool = False, progress: bool = True,
             backend: Backend | None = None) -> Path:
    """Run (or finish, with resume) an evaluation and return its run directory."""
    plans = plan_suites(cfg)  # data problems surface before any model is built or loaded
    cfg = resolve_model(cfg)
    fmt = PROMPT_FORMATS[cfg.prompt_format]
    run, manifest = open_run(cfg, plans, resume)
    done = {record_key(r) for r in run.iter_records()}
    params = cfg.generation()
    todo = [(plan, item, [a for a in range(params.n) if (item.suite, item.sample_id, a) not in done])
            for plan in plans for item in plan.items]
    todo = [t for t in todo if t[2]]
    if todo and backend is None:
        backend = load_backend(cfg.backend, cfg.model, **cfg.backend_options())
    if backend is not None:
        manifest["model"].update(backend.describe())
    session = {"started": now(), "finished": None, "n_records": 0, "memory": None}
    manifest["measurements"]["sessions"].append(session)
    manifest["status"], manifest["error"], manifest["finished"] = "running", None, None
    run.write_manifest(manifest)
    session_index = len(manifest["measurements"]["sessions"]) - 1
    bar = _Progress(len(todo), progress)
    from harness.gpu_memory import NvmlSampler

    try:
        with NvmlSampler() as sampler:
            for start in range(0, len(todo), cfg.batch_size):
                chunk = todo[start:start + cfg.batch_size]
                records = _run_batch(chunk, fmt, params, backend, run, f"{session_index}-{start // cfg.batch_size}",
                                     cfg.image_size)
                run.append_records(records)
                session["n_records"] += len(records)
                bar.advance(len(chunk), chunk[-1][0].suite.name)
            mem = dict(backend.memory()) if backend is not None else {}
            mem["nvml_peak_used_mib"] = sampler.peak_used_mib
            if sampler.peak_used_mib is None and getattr(sampler, "note", None):
                mem.setdefault("note", sampler.note)
            session["memory"] = mem
    except BaseException as exc:
        bar.close()
        session["finished"] = now()
        manifest["status"] = "error"
        manifest["error"] = {"type": type(exc).__name__, "message": str(exc),
                             "traceback": traceback.format_exc()}
        run.write_manifest(manifest)
        raise
    bar.close()
    session["finished"] = now()
    finalize(run, manifest)
    return run.path


def _run_batch(chunk, fmt: PromptFormat, params, backend: Backend | None, run: RunDir, batch_id: str,
               image_size) -> list[dict[str, Any]]:
    requests: list[Request] = []
    pending: dict[str, tuple[Item, dict[str, Any], list[int], Suite]] = {}
    records: list[dict[str, Any]] = []
    for plan, item, attempts in chunk:
        suite = plan.suite
        rec = base_record(item)
        images = []
        if item.error is None and item.image_bytes is not None:
            try:
                image = decode(item.image_bytes, image_size)
                rec["image"] = save_thumbnail(image, run.images_dir, thumbnail_name(item.suite, item.sample_id))
                images = [image]
            except Exception as exc:  # noqa: BLE001 -- a corrupt image fails this sample, not the run
                rec["error"] = f"image could not be decoded: {type(exc).__name__}: {exc}"
        text = prompt_text(item, suite, fmt)
        rec["prompt_sha256"] = prompt_sha256(text + (f"\n[resize {image_size}]" if image_size else ""),
                                             item.image_bytes)
        if rec["error"] is not None:
            for a in attempts:
                records.append(score_record({**rec, "attempt": a}, suite, fmt))
            continue
        request_id = f"{item.suite}/{item.sample_id}"
        requests.append(Request(request_id, messages(text, bool(images)), images))
        pending[request_id] = (item, rec, attempts, suite)
    if requests:
        assert backend is not None
        completions: list[Completion] = backend.generate(requests, params)
        for c in completions:
            item, rec, attempts, suite = pending[c.request_id]
            if c.attempt not in attempts:
                continue  # this attempt is already on disk from an earlier session
            records.append(score_record({**rec, "attempt": c.attempt, "response": c.text,
                                         "n_prompt_tokens": c.n_prompt_tokens,
                                         "n_output_tokens": c.n_output_tokens,
                                         "finish_reason": c.finish_reason, "latency_s": c.latency_s,
                                         "batch": batch_id}, suite, fmt))
    return records


def finalize(run: RunDir, manifest: dict[str, Any]) -> dict[str, Any]:
    """Recompute metrics from the records and close the manifest."""
    records = run.read_records()
    expected = sum(s["n_items"] for s in manifest["suites"]) * manifest["generation"]["n"]
    if len(records) != expected:
        raise RunDirError(f"{run.path}: {len(records)} records, expected {expected}; resume the run to finish it")
    metrics = metrics_mod.compute_metrics(records, manifest, suite_specs(manifest))
    run.write_metrics(metrics)
    manifest["status"] = "finished"
    manifest["finished"] = now()
    run.write_manifest(manifest)
    return metrics


def suite_specs(manifest: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    out = {}
    for entry in manifest.get("suites", []):
        try:
            suite = get_suite(entry["name"])
        except HarnessError:
            continue
        out[entry["name"]] = (suite.breakdowns, suite.multi_label)
    return out


def rescore(path: str | Path) -> dict[str, Any]:
    """Re-extract and re-score every record from its response with today's scorers; rewrite metrics."""
    run = RunDir(path)
    manifest = run.read_manifest()
    fmt = PROMPT_FORMATS[manifest["prompt_format"]]
    records = run.read_records()
    suites = {name: get_suite(name) for name in {r["suite"] for r in records}}
    for r in records:
        score_record(r, suites[r["suite"]], fmt)
    run.rewrite_records(records)
    metrics = metrics_mod.compute_metrics(records, manifest, suite_specs(manifest))
    metrics["rescored"] = now()
    run.write_metrics(metrics)
    return metrics
