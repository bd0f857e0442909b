"""`harness sweep`: evaluate the saved steps of a training run, cheaply on a subset first, then the best
few on the whole suites; one ordinary run directory per step and stage (harness/sweeps.py's layout).

    from trainers.sweep import sweep
    out = sweep("checkpoints/gspo-1", ["mathvista_testmini"], limit=100, top=3)   # the sweep directory
    # harness report OUT plots accuracy, no-answer rate and format compliance against step

Each run goes through harness eval's own path (harness/runner.py run_eval: locked, resumable, with a
manifest naming the checkpoint and step), with the settings of the run's periodic evaluations
(trainers/data.py eval_plan: its prompt format, generation limit, temperature and seed; a suite trained
on is evaluated on its held-out items only). Running the command again resumes the sweep: finished runs
are kept, unfinished ones resumed, steps saved since are added, and the ranking is redone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError, RunDirError
from harness.checkpoints import CHECKPOINT_FILE, SavedStep, read_checkpoint, saved_steps
from harness.config import EvalConfig
from harness.dirlock import LOCK_FILE, DirLock
from harness.progress import ProgressMode
from harness.runstore import RunDir
from harness.sweeps import SweepInfo, SweepStep, read_sweep, stage_run_dir, write_sweep
from trainers.config import TrainConfig
from trainers.data import eval_plan

SWEEPS_DIR = "sweeps"  # the default place of a checkpoint's sweeps: <checkpoint>/sweeps/<suites>
DEFAULT_TOP = 3


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sweep(checkpoint_dir: str | Path, suites: list[str], *, every: int | None = None, limit: int | None = None,
          top: int = DEFAULT_TOP, out: str | Path | None = None, split: str | None = None,
          data_dir: dict[str, str] | None = None, overrides: dict[str, Any] | None = None,
          echo: Callable[[str], None] | None = None, progress: ProgressMode = "off") -> Path:
    """Evaluate every saved step (every `every`-th, and the final one) on `suites`: with `limit`, each on
    the first `limit` items, then the `top` best of them on the whole suites; without, each on the whole
    suites. `overrides`: EvalConfig fields over the training run's evaluation settings (max_new_tokens,
    batch_size, backend, ...). Returns the sweep directory (default <checkpoint_dir>/sweeps/<suites>)."""
    say = echo or (lambda _: None)
    ckpt = Path(checkpoint_dir)
    info = _training_record(ckpt)
    for name, value, least in (("every", every, 1), ("limit", limit, 1), ("top", top, 0)):
        if value is not None and value < least:
            raise ConfigError(f"--{name} must be at least {least}, got {value}")
    if not suites:
        raise ConfigError("name the suites to sweep (--suite)")
    steps = [s for s in saved_steps(ckpt) if s.final or not every or s.step % every == 0]
    if not steps:
        raise RunDirError(f"{ckpt} has no saved steps yet (status {info.get('status')}): train with save_steps N "
                          f"(or eval_every N) to keep an adapter every N steps")
    settings = eval_settings(info, ckpt, suites, split, data_dir or {}, overrides or {})
    out = Path(out) if out else ckpt / SWEEPS_DIR / "+".join(suites)
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    with DirLock(out, "sweep directory"):
        record = _open_record(out, ckpt, settings, every, limit, top, steps)
        try:
            _run_stages(out, record, settings, steps, say, progress, info.get("status"))
        except BaseException as exc:
            record.update(status="error", finished=now(), error=f"{type(exc).__name__}: {str(exc)[:500]}")
            write_sweep(out, record)
            raise
        record.update(status="finished", finished=now(), error=None)
        write_sweep(out, record)
    return out


def _training_record(ckpt: Path) -> dict[str, Any]:
    info = read_checkpoint(ckpt)
    if info is None:
        raise RunDirError(f"{ckpt} holds no {CHECKPOINT_FILE}: not the checkpoint directory of a training run")
    if info.get("training_dir"):
        raise ConfigError(f"{ckpt} is one saved step of {info['training_dir']}: sweep that directory")
    if info.get("merged_from"):
        raise ConfigError(f"{ckpt} is a merged export of {info['merged_from']}: sweep the training directory")
    return info


def eval_settings(info: dict[str, Any], ckpt: Path, suites: list[str], split: str | None,
                  data_dir: dict[str, str], overrides: dict[str, Any]) -> dict[str, Any]:
    """The EvalConfig every run of the sweep shares (model, out and limit apart): the training run's own
    periodic-evaluation settings for `suites`."""
    known = {f.name for f in fields(TrainConfig)}
    cfg, _ = TrainConfig.from_dict({k: v for k, v in info["config"].items() if k in known}, f"{ckpt}/{CHECKPOINT_FILE}")
    cfg = replace(cfg, eval_suites=list(suites), eval_split=split, eval_limit=None,
                  data_dir={**cfg.data_dir, **data_dir})
    held_out = ((info.get("train_data") or {}).get("held_out") or {}).get("ids") or {}
    settings = eval_plan(cfg, held_out).to_dict()
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise ConfigError(f"not evaluation settings: {', '.join(unknown)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("model", "out", "limit"):
        settings.pop(key)
    EvalConfig.from_dict({**settings, "model": str(ckpt)})  # checked now, before any run starts
    return settings


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} is a file; choose another --out")
    if out.is_dir() and read_sweep(out) is None:
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
        if others:
            raise RunDirError(f"{out} is not empty and holds no sweep ({', '.join(others[:3])}); choose a new or "
                              f"empty --out")


def _open_record(out: Path, ckpt: Path, settings: dict[str, Any], every: int | None, limit: int | None, top: int,
                 steps: list[SavedStep]) -> SweepInfo:
    """The stored record, checked against these settings and joined by newly saved steps; or a new one."""
    record = read_sweep(out)
    if record is not None:
        for name, was, now_ in (("checkpoint", record["checkpoint_dir"], str(ckpt.resolve())),
                                ("limit", record["limit"], limit), ("evaluation settings", record["eval"], settings)):
            if was != now_:
                differ = ", ".join(f"{k} {was.get(k)!r} then, {now_.get(k)!r} now" for k in sorted(set(was) | set(now_))
                                   if was.get(k) != now_.get(k)) if isinstance(was, dict) else f"{was!r} then, {now_!r} now"
                raise RunDirError(f"{out} holds a sweep with another {name} ({differ}): resume it with the same "
                                  f"options, or choose another --out")
        record.update(every=every, top=top, status="running", finished=None, error=None)
    else:
        record = {"status": "running", "created": now(), "finished": None, "checkpoint_dir": str(ckpt.resolve()),
                  "eval": settings, "every": every, "limit": limit, "top": top, "ranked": [], "steps": [],
                  "error": None}
    known = {entry["step"]: entry for entry in record["steps"]}
    for saved in steps:
        entry = known.setdefault(saved.step, {"step": saved.step, "model_dir": "", "final": saved.final, "subset": None,
                                              "full": None, "subset_score": None})
        entry.update(model_dir=str(saved.path.resolve()), final=saved.final)
    record["steps"] = [known[step] for step in sorted(known)]
    write_sweep(out, record)
    return record


def _run_stages(out: Path, record: SweepInfo, settings: dict[str, Any], steps: list[SavedStep],
                say: Callable[[str], None], progress: ProgressMode, status: str | None) -> None:
    entries = {entry["step"]: entry for entry in record["steps"]}
    chosen = [entries[s.step] for s in steps]
    limit, top = record["limit"], record["top"]
    say(f"sweep: {len(chosen)} saved step(s) of {record['checkpoint_dir']}"
        + (f" (every {record['every']})" if record["every"] else "")
        + (" so far: training is still running" if status == "training" else "")
        + (f"; {limit} items per suite first, then the best {top} on the whole suites" if limit else
           "; on the whole suites") + f" -> {out}")
    if limit:
        for entry in chosen:
            metrics = _run_step(out, entry, "subset", settings, limit, say, progress)
            entry["subset_score"] = _score(metrics)
            write_sweep(out, record)
        scored = [e for e in chosen if e["subset_score"] is not None]
        # best first; ties go to the later step (more training for the same score)
        record["ranked"] = [e["step"] for e in sorted(scored, key=lambda e: (-e["subset_score"], -e["step"]))]
        write_sweep(out, record)
        chosen = [entries[step] for step in record["ranked"][:top]]
        if chosen:
            say("sweep: best on the subset: " + ", ".join(f"step {e['step']} ({e['subset_score']:.3f})" for e in chosen))
    for entry in sorted(chosen, key=lambda e: e["step"]):
        _run_step(out, entry, "full", settings, None, say, progress)
        write_sweep(out, record)


def _run_step(out: Path, entry: SweepStep, stage: str, settings: dict[str, Any], limit: int | None,
              say: Callable[[str], None], progress: ProgressMode) -> dict[str, Any]:
    """One step's run of one stage, through harness eval; a finished run is kept, an unfinished one resumed."""
    from harness.runner import run_eval

    run_dir = stage_run_dir(out, stage, entry["step"])
    entry[stage] = str(run_dir.relative_to(out))
    run = RunDir(run_dir)
    if not (run.exists() and run.read_manifest().get("status") == "finished" and run.has_metrics()):
        cfg = EvalConfig.from_dict({**settings, "model": entry["model_dir"], "out": str(run_dir), "limit": limit})
        run_eval(cfg, resume=run.exists(), progress=progress, echo=say)
    metrics = run.read_metrics()
    say(f"step {entry['step']} {stage}: " + "; ".join(
        f"{name} accuracy {_fmt(m.get('accuracy'))}, no answer {_fmt(m.get('no_answer_rate'))}, format "
        f"{_fmt(m.get('format_compliance'))}" for name, m in (metrics.get("suites") or {}).items()))
    return metrics


def _score(metrics: dict[str, Any]) -> float | None:
    """Mean accuracy over the suites (what --top ranks by)."""
    values = [m.get("accuracy") for m in (metrics.get("suites") or {}).values()]
    values = [v for v in values if isinstance(v, (int, float))]
    return sum(values) / len(values) if values else None


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"
