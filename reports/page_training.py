"""The training section: for runs that evaluate a trained checkpoint, the training log's curves
(overlaid, GRPO solid and GSPO dashed) and the accuracy of the evaluations run during training.

A checkpoint directory that is gone (moved machine) or lacks its log only produces a note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import RunDirError, SchemaVersionError
from harness.runstore import RunDir
from reports.page_html import DASH, Cell, ReportContext, cell, esc, pct, section, table, tr
from reports.plots import Series, line_chart

# (train_log key as TRL names it, page string key, y is a 0-1 share)
CURVES = (
    ("reward", "train.reward"),
    ("rewards/format_reward/mean", "train.format_reward"),
    ("rewards/correctness_reward/mean", "train.correctness_reward"),
    ("completions/mean_length", "train.completion_length"),
    ("completions/clipped_ratio", "train.clipped_ratio"),
    ("clip_ratio/region_mean", "train.clip_ratio"),
    ("importance_ratio/sequence_max", "train.sequence_ratio_max"),
    ("kl", "train.kl"),
    ("entropy", "train.entropy"),
    ("step_time", "train.step_time"),
    ("peak_gpu_memory_mib", "train.peak_memory"),
)


def _checkpoint_dir_exists(run) -> bool:
    raw = (run.checkpoint or {}).get("dir")
    if not raw:
        return False
    path = Path(str(raw))
    return path.is_dir() or (not path.is_absolute() and (run.path / path).is_dir())


def _is_gspo(run) -> bool:
    return str((run.checkpoint or {}).get("algo") or "").lower() == "gspo"


def _curve(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for n, row in enumerate(rows, 1):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            step = row.get("step")
            xs.append(float(step) if isinstance(step, (int, float)) else float(n))
            ys.append(float(value))
    return xs, ys


def _eval_accuracies(run) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """[(step, metrics suites)] of the periodic evaluations found, and the run_dirs not found."""
    found, missing = [], []
    for entry in run.periodic_evals or []:
        path = entry.get("path")
        try:
            metrics = RunDir(path).read_metrics() if path else None
        except SchemaVersionError:
            raise  # a run of another schema version is an error, not a missing run
        except RunDirError:
            metrics = None
        if metrics is None or not isinstance(entry.get("step"), (int, float)):
            missing.append(str(entry.get("run_dir")))
            continue
        found.append((int(entry["step"]), metrics.get("suites") or {}))
    return sorted(found, key=lambda e: e[0]), missing


def _legend(ctx: ReportContext, indices: list[int]) -> str:
    chips = []
    for i in indices:
        algo = str((ctx.runs[i].checkpoint or {}).get("algo") or "?").upper()
        style = "dashed" if _is_gspo(ctx.runs[i]) else "solid"
        chips.append(f'<span class="legend-item">{ctx.chip(i)} <span class="line-sample {style}" '
                     f'style="border-color:{ctx.color(i)}"></span> <span class="muted">{esc(algo)}</span></span>')
    return '<div class="legend">' + "".join(chips) + "</div>"


def training_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    trained = [i for i, run in enumerate(ctx.runs) if run.checkpoint]
    if not trained:
        return section("training", "training.title", lang, tr("training.none", lang, tag="p", cls="muted"))
    notes, rows = [], []
    for i in trained:
        run, ckpt = ctx.runs[i], ctx.runs[i].checkpoint
        rows.append([Cell(ctx.chip(i), run.label), cell(str(ckpt.get("algo") or DASH).upper()),
                     cell(ckpt.get("engine")), cell(ckpt.get("reward_mode") or "recipe"), cell(ckpt.get("step")),
                     # entries written before multi-process training: one process, batch unknown here
                     cell(ckpt.get("world_size") or 1), cell(ckpt.get("global_batch_size")),
                     cell(ckpt.get("base_model")), cell(ckpt.get("dir"))])
        if not _checkpoint_dir_exists(run):
            notes.append(("warn", "training.missing_dir", i))
        elif run.train_log is None:
            notes.append(("warn", "training.no_log", i))
        if _is_gspo(run) and ckpt.get("effectively_on_policy"):
            notes.append(("info", "training.on_policy", i))
    head = [tr(k, lang) for k in ("col.run", "col.algo", "col.engine", "col.reward_mode", "col.step",
                                  "col.world_size", "col.global_batch", "col.model", "col.train_dir")]
    body = [table(head, rows, table_id="training-table", numeric_from=99)]
    for kind, key, i in notes:
        body.append(f'<div class="banner {kind} small" data-note="{esc(key)}">{tr(key, lang)} {ctx.chip(i)}</div>')

    # one curve per checkpoint directory: runs of one checkpoint at several steps share its log
    seen_dirs: set[str] = set()
    logged = []
    for i in trained:
        run = ctx.runs[i]
        if run.train_log and str(run.checkpoint.get("dir")) not in seen_dirs:
            seen_dirs.add(str(run.checkpoint.get("dir")))
            logged.append(i)
    plots = []
    for key, label_key in CURVES:
        series = []
        for i in logged:
            xs, ys = _curve(ctx.runs[i].train_log, key)
            if xs:
                series.append(Series(ctx.color(i), xs, ys, dashed=_is_gspo(ctx.runs[i])))
        if series:
            svg = line_chart(series, x_key="plot.step")
            plots.append(f'<figure class="plot-box" data-curve="{esc(key)}"><figcaption>{tr(label_key, lang)}'
                         f' <code class="muted">{esc(key)}</code></figcaption>{svg}</figure>')
    if plots:
        body.append(_legend(ctx, logged) + f'<div class="plot-grid">{"".join(plots)}</div>')
    body.append(_periodic_evals(ctx, trained))
    return section("training", "training.title", lang, "".join(body), "training.intro")


def _periodic_evals(ctx: ReportContext, trained: list[int]) -> str:
    lang = ctx.lang
    per_run = {i: _eval_accuracies(ctx.runs[i]) for i in trained if ctx.runs[i].periodic_evals}
    if not per_run:
        return ""
    suites = list(dict.fromkeys(s for found, _ in per_run.values() for _, suites in found for s in suites))
    plots, rows = [], []
    for suite in suites:
        series = []
        for i, (found, _) in per_run.items():
            points = [(step, m[suite].get("accuracy")) for step, m in found if suite in m]
            if points:
                series.append(Series(ctx.color(i), [p[0] for p in points], [p[1] for p in points],
                                     dashed=_is_gspo(ctx.runs[i])))
                rows += [[Cell(ctx.chip(i), ctx.runs[i].label), cell(suite), cell(step),
                          cell(pct(acc), acc)] for step, acc in points]
        if series:
            svg = line_chart(series, x_key="plot.step", y_key="plot.accuracy", percent=True, markers=True)
            plots.append(f'<figure class="plot-box"><figcaption>{esc(suite)}</figcaption>{svg}</figure>')
    out = [f'<h3>{tr("training.evals", lang)}</h3>', _legend(ctx, list(per_run))]
    if plots:
        out.append(f'<div class="plot-grid">{"".join(plots)}</div>')
    head = [tr(k, lang) for k in ("col.run", "col.suite", "col.step", "col.accuracy")]
    out.append(f'<details class="suite-block"><summary>{tr("training.evals_table", lang)}</summary>'
               f'{table(head, rows, cls="compact", numeric_from=2)}</details>')
    missing = [(i, m) for i, (_, miss) in per_run.items() for m in miss]
    if missing:
        listed = ", ".join(f"{esc(m)} ({esc(ctx.runs[i].label)})" for i, m in missing)
        out.append(f'<div class="banner warn small">{tr("training.evals_missing", lang)} {listed}</div>')
    return "".join(out)
