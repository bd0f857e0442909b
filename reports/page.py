"""The comparison page behind `harness report`: one self-contained HTML page of two or more runs
(the first is the baseline).

    harness report runs/base runs/grpo-step40 runs/gspo-step40 -o report.html --title "step 40"

    from reports.page import build_report
    build_report(["runs/base", "runs/cand"], "report.html")

The page reads run directories only (see docs/reports.md for the sections and the statistics).
It needs no network: CSS, scripts, plots (inline SVG) and thumbnails (data: URLs) are all inside it.
Security: everything taken from a run (model outputs, questions, names) is untrusted text. It is
escaped in markup, embedded as JSON that cannot close its <script> element, and rendered by
report.js through textContent only; a Content-Security-Policy forbids any network access or
script other than the page's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConfigError, storage_error
from harness.jsonfile import write_text_atomic
from reports.i18n import HTML_LANG, STRINGS, check_lang, text
from reports.page_html import ReportContext, esc, inline_script, json_script, tr
from reports.page_items import explorer_section, flips_section, items_payload
from reports.page_sweep import expand_sweep_dirs, sweep_section
from reports.page_tables import (
    breakdowns_section,
    comparability_banner,
    efficiency_section,
    format_section,
    runs_section,
    state_tag,
    summary_section,
)
from reports.page_training import training_section
from reports.runs import comparability, load_runs
from reports.stats import compare_all

ASSETS = Path(__file__).parent / "assets"
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")
NAV = ("runs", "summary", "breakdowns", "format", "flips", "items", "efficiency", "training", "sweep", "rewards")


def _asset(name: str) -> str:
    path = ASSETS / name
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _header(ctx: ReportContext, title: str | None) -> str:
    lang = ctx.lang
    heading = f"<h1>{esc(title)}</h1>" if title else tr("report.title", lang, tag="h1")
    candidates = " ".join(ctx.chip(i) + state_tag(ctx.runs[i], lang) for i in range(1, len(ctx.runs)))
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    switch = "".join(
        f'<button type="button" data-lang="{code}" aria-pressed="{"true" if code == lang else "false"}">'
        f"{name}</button>" for code, name in (("en", "English"), ("zh", "中文")))
    nav = "".join(f'<a href="#{anchor}">{tr("nav." + anchor, lang)}</a>' for anchor in NAV)
    return (f'<header class="top"><div class="top-row"><div>{heading}'
            f'<p class="subtitle">{tr("report.baseline", lang)}: {ctx.chip(0)}{state_tag(ctx.runs[0], lang)} &nbsp; '
            f'{tr("report.candidates", lang)}: {candidates}</p>'
            f'<p class="subtitle muted">{tr("report.generated", lang)}: {esc(generated)}</p></div>'
            f'<div class="lang-switch" role="group" aria-label="{esc(text("lang.label", lang))}" '
            f'data-i18n-aria="lang.label">{switch}</div></div></header>'
            f'<nav class="sections">{nav}</nav>')


def reward_modes(ctx: ReportContext) -> list[str]:
    """The reward modes behind the page's numbers: its records' rewards and its checkpoints' training.
    A record or checkpoint without one predates the modes and used the recipe's rule."""
    modes = {(r.get("rewards") or {}).get("mode") or "recipe" for run in ctx.runs for r in run.records
             if r.get("rewards")}
    modes |= {run.checkpoint.get("reward_mode") or "recipe" for run in ctx.runs if run.checkpoint}
    return sorted(modes, key=("suite", "recipe").index)


def _rewards_section(ctx: ReportContext) -> str:
    """The calculator reproduces the recipe mode only: the suite mode's rule is the scorers' own, and the
    page shows their stored verdicts (item explorer) instead of holding a copy of them."""
    lang = ctx.lang
    modes = reward_modes(ctx)
    banner = ""
    if "suite" in modes:
        banner = f'<div class="banner info small" data-note="rewards.suite_mode">{tr("rewards.suite_mode", lang)}</div>'
    listed = (f'<p class="muted small" data-reward-modes="{esc(" ".join(modes))}">{tr("rewards.modes", lang)} '
              f'<code>{esc(", ".join(modes))}</code></p>') if modes else ""
    return (f'<section id="rewards" class="card">{tr("rewards.title", lang, tag="h2")}'
            f'{tr("rewards.intro", lang, tag="p", cls="intro")}{listed}{banner}'
            f'<div id="reward-calculator"></div></section>')


def render_page(ctx: ReportContext, title: str | None, comparability_notes: list[str]) -> str:
    """The whole document as one string."""
    lang = ctx.lang
    page_title = title or f"{text('report.title', 'en')}: " + " vs ".join(r.label for r in ctx.runs)
    sections = [
        runs_section(ctx, comparability_banner(comparability_notes, lang)),
        summary_section(ctx),
        breakdowns_section(ctx),
        format_section(ctx),
        flips_section(ctx),
        explorer_section(ctx),
        efficiency_section(ctx),
        training_section(ctx),
        sweep_section(ctx),
        _rewards_section(ctx),
    ]
    return "".join([
        "<!DOCTYPE html>\n",
        f'<html lang="{HTML_LANG[lang]}" data-lang="{lang}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page_title)}</title>",
        f"<style>{_asset('report.css')}</style></head><body>",
        _header(ctx, title),
        f'<noscript><p class="banner info">{esc(text("report.noscript", lang))}</p></noscript>',
        '<main>', *sections, "</main>",
        f'<footer>{tr("report.footer", lang, tag="p")}</footer>',
        json_script("i18n-data", STRINGS),
        json_script("report-data", items_payload(ctx)),
        inline_script(_asset("rewards.js")),
        inline_script(_asset("report.js")),
        "</body></html>\n",
    ])


def build_report(run_paths, out_path, *, title: str | None = None, lang: str = "en") -> Path:
    """Write the comparison page of run_paths (the first is the baseline) to out_path; returns its path.
    A `harness sweep` directory among them stands for its runs (reports/page_sweep.py).

    Raises ConfigError for fewer than two runs or an unknown language, RunDirError for an unreadable
    run directory, StorageError when the page cannot be written.
    """
    check_lang(lang)
    paths = expand_sweep_dirs([str(p) for p in run_paths])  # a sweep directory stands for its runs
    if len(paths) < 2:
        raise ConfigError(f"a report compares at least two runs (the first is the baseline), got {len(paths)}")
    runs = load_runs(paths)
    suites = list(dict.fromkeys(s for run in runs for s in run.suites()))
    comparisons = {}
    index_of = {run.label: i for i, run in enumerate(runs)}  # load_runs makes labels unique
    for c in compare_all(runs, suites):
        comparisons[(index_of[c.candidate], c.suite)] = c
    ctx = ReportContext(runs=runs, comparisons=comparisons, lang=lang, suites=suites)
    page = render_page(ctx, title, comparability(runs, suites))
    out = Path(out_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, "create the folder", out.parent) from exc
    write_text_atomic(out, page)  # StorageError (one line) on failure, and no half-written page
    return out
