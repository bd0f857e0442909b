"""The sweep section: for each `harness sweep` directory the page's runs belong to, accuracy, no-answer
rate and format compliance against training step, per suite. The subset stage (every swept step on the
first --limit items) is a solid line; the whole-suite runs of the best steps are points on a dashed
line. Numbers come from each run's metrics (harness/sweeps.py says which run is which step).

    harness report checkpoints/gspo-1/sweeps/mathvista_testmini -o sweep.html

A sweep directory given to `harness report` stands for its runs (`expand_sweep_dirs`): its whole-suite
runs in step order, or its subset runs when it has fewer than two whole-suite runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from core.errors import RunDirError, SchemaVersionError
from harness.runstore import RunDir
from harness.sweeps import STAGES, is_sweep_dir, read_sweep, run_path, sweep_of_run
from reports.page_html import ReportContext, cell, esc, pct, section, table, tr
from reports.plots import Series, line_chart, run_color

# (metrics key, the y axis's page string)
SWEPT = (("accuracy", "plot.accuracy"), ("no_answer_rate", "plot.no_answer"), ("format_compliance", "plot.format"))
STAGE_STYLE = {"subset": (run_color(0), False), "full": (run_color(1), True)}  # colour, dashed


class SweepPoint(TypedDict):
    """One step's figures on one suite in one stage, as plotted and tabled."""
    step: int
    stage: str  # subset or full
    suite: str
    n: int | None  # items scored
    accuracy: float | None
    no_answer_rate: float | None
    format_compliance: float | None
    run: str  # the run directory, relative to the sweep directory


def expand_sweep_dirs(paths: list[str]) -> list[str]:
    """Run directories for `harness report`: a sweep directory becomes its runs (see the module doc)."""
    out = []
    for path in paths:
        info = read_sweep(path) if is_sweep_dir(path) else None
        if info is None:
            out.append(path)
            continue
        runs = {stage: [str(p) for e in info["steps"] if (p := run_path(path, e, stage)) and RunDir(p).exists()]
                for stage in STAGES}
        chosen = runs["full"] if len(runs["full"]) >= 2 else runs["subset"]
        if not chosen:
            raise RunDirError(f"{path} is a sweep with no runs yet: run harness sweep first")
        out += chosen
    return out


def sweep_points(folder: str | Path) -> tuple[list[SweepPoint], list[str]]:
    """Every finished run's figures, and the run directories listed but not (yet) finished."""
    info = read_sweep(folder)
    points: list[SweepPoint] = []
    pending: list[str] = []
    for entry in info["steps"] if info else []:
        for stage in STAGES:
            path = run_path(folder, entry, stage)
            if path is None:
                continue
            try:
                metrics = RunDir(path).read_metrics()
            except SchemaVersionError:
                raise
            except RunDirError:
                pending.append(entry[stage])
                continue
            for suite, m in (metrics.get("suites") or {}).items():
                points.append({"step": entry["step"], "stage": stage, "suite": suite, "n": m.get("n"),
                               "accuracy": m.get("accuracy"), "no_answer_rate": m.get("no_answer_rate"),
                               "format_compliance": m.get("format_compliance"), "run": entry[stage]})
    return points, pending


def sweeps_of(ctx: ReportContext) -> list[Path]:
    """The sweep directories of the page's runs, in the order the runs come."""
    found: list[Path] = []
    for run in ctx.runs:
        folder = sweep_of_run(run.path)
        if folder is not None and folder not in found:
            found.append(folder)
    return found


def sweep_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    folders = sweeps_of(ctx)
    if not folders:
        return section("sweep", "sweep.title", lang, tr("sweep.none", lang, tag="p", cls="muted"))
    legend = "".join(
        f'<span class="legend-item"><span class="line-sample {"dashed" if dashed else "solid"}" '
        f'style="border-color:{color}"></span> {tr("sweep." + stage, lang)}</span>'
        for stage, (color, dashed) in STAGE_STYLE.items())
    body = []
    for folder in folders:
        info = read_sweep(folder) or {}
        points, pending = sweep_points(folder)
        body.append(f'<h3 data-sweep="{esc(folder.name)}">{esc(info.get("checkpoint_dir"))} '
                    f'<span class="muted small">{esc(folder)}</span></h3>')
        body.append(_settings_line(info, lang))
        body.append(f'<div class="legend">{legend}</div>')
        body.append(_plots(points, lang))
        body.append(_table(points, lang))
        if pending:
            body.append(f'<div class="banner warn small">{tr("sweep.pending", lang)} '
                        f'{esc(", ".join(pending))}</div>')
    return section("sweep", "sweep.title", lang, "".join(body), "sweep.intro")


def _settings_line(info: dict[str, Any], lang: str) -> str:
    settings = info.get("eval") or {}
    parts = [("limit", info.get("limit")), ("top", info.get("top") if info.get("limit") else None),
             ("every", info.get("every")), ("split", settings.get("split")),
             ("max_new_tokens", settings.get("max_new_tokens")), ("temperature", settings.get("temperature")),
             ("prompt_format", settings.get("prompt_format")), ("ranked", info.get("ranked") or None)]
    shown = ", ".join(f"{name} {value}" for name, value in parts if value is not None)
    return f'<p class="muted small">{tr("sweep.settings", lang)} <code>{esc(shown)}</code></p>'


def _plots(points: list[SweepPoint], lang: str) -> str:
    figures = []
    for suite in dict.fromkeys(p["suite"] for p in points):
        for key, y_key in SWEPT:
            series = []
            for stage, (color, dashed) in STAGE_STYLE.items():
                mine = sorted((p for p in points if p["suite"] == suite and p["stage"] == stage and
                               p[key] is not None), key=lambda p: p["step"])
                if mine:
                    series.append(Series(color, [p["step"] for p in mine], [p[key] for p in mine], dashed=dashed))
            if series:
                svg = line_chart(series, x_key="plot.step", y_key=y_key, percent=True, markers=True)
                figures.append(f'<figure class="plot-box" data-sweep-suite="{esc(suite)}" data-sweep-metric="{key}">'
                               f'<figcaption>{esc(suite)}: {tr(y_key, lang)}</figcaption>{svg}</figure>')
    return f'<div class="plot-grid">{"".join(figures)}</div>' if figures else ""


def _table(points: list[SweepPoint], lang: str) -> str:
    head = [tr(k, lang) for k in ("col.step", "col.sweep_stage", "col.suite", "col.run_dir", "col.n",
                                  "col.accuracy_pct", "col.no_answer", "col.format")]
    rows = [[cell(p["step"]), cell(p["stage"]), cell(p["suite"]), cell(p["run"]), cell(p["n"]),
             cell(pct(p["accuracy"]), p["accuracy"]), cell(pct(p["no_answer_rate"]), p["no_answer_rate"]),
             cell(pct(p["format_compliance"]), p["format_compliance"])]
            for p in sorted(points, key=lambda p: (p["suite"], p["stage"] != "subset", p["step"]))]
    return (f'<details class="suite-block" open><summary>{tr("sweep.table", lang)}</summary>'
            f'{table(head, rows, cls="compact", table_id="sweep-table", numeric_from=4)}</details>')
