"""The report's table sections: runs, summary with paired tests, category breakdowns, format
compliance (with the output length plots) and efficiency. Everything is rendered server-side, so
these sections read without JavaScript; report.js only adds sorting."""

from __future__ import annotations

from typing import Any

from reports.i18n import text
from reports.page_html import (
    DASH,
    Cell,
    ReportContext,
    cell,
    esc,
    interval,
    num,
    pct,
    pts,
    pvalue,
    section,
    table,
    tr,
)
from reports.plots import Series, histogram

ALPHA = 0.05


def _short_time(value: Any) -> str:
    """2025-01-01T00:10:00+00:00 -> 2025-01-01 00:10 (UTC times, as the manifest writes them)."""
    if not value:
        return DASH
    s = str(value)
    return s[:16].replace("T", " ") if len(s) >= 16 else s


def _dates(created: Any, finished: Any) -> str:
    start, end = _short_time(created), _short_time(finished)
    if start[:10] == end[:10] and len(end) == 16:
        end = end[11:]  # same day: the time is enough
    return f"{start} → {end}"


def _dates_cell(manifest: dict[str, Any]) -> Cell:
    """Start and end; the status only when the run did not finish (a running or failed run's numbers
    are partial)."""
    markup = esc(_dates(manifest.get("created"), manifest.get("finished")))
    if manifest.get("status") != "finished":
        markup += f' <span class="tag warn-text">{esc(manifest.get("status"))}</span>'
    return Cell(markup, str(manifest.get("created")))


def _generation(gen: dict[str, Any]) -> str:
    names = (("max_new_tokens", "max"), ("temperature", "T"), ("top_p", "top-p"), ("top_k", "top-k"),
             ("n", "n"), ("seed", "seed"))
    return " · ".join(f"{short} {gen[key]}" for key, short in names if gen.get(key) is not None) or DASH


def state_tag(run: Any, lang: str) -> str:
    """A loud tag for a run that is not finished (running, unfinished, duplicated, error); its line is the
    tooltip. Empty for a finished run."""
    state = getattr(run, "state", None)
    if state is None or state.finished:
        return ""
    return (f'<span class="tag state-{esc(state.kind)}" data-i18n="state.{esc(state.kind)}" '
            f'title="{esc(state.line)}">{esc(text("state." + state.kind, lang))}</span>')


def runs_section(ctx: ReportContext, banner: str) -> str:
    head = [tr(k, ctx.lang) for k in ("col.run", "col.model_note", "col.checkpoint",
                                      "col.prompt_format", "col.scoring", "col.generation", "col.dates",
                                      "col.commit", "col.hardware")]
    rows = []
    for i, run in enumerate(ctx.runs):
        m = run.manifest
        model = m.get("model") or {}
        model_text = esc(model.get("id"))
        if model.get("revision"):
            model_text += f' <span class="muted">@{esc(str(model["revision"])[:12])}</span>'
        if model.get("adapter"):
            model_text += f'<br><span class="muted">+ {esc(model["adapter"])}</span>'
        details = [str(v) for v in (m.get("backend"), model.get("dtype"), model.get("quantization")) if v]
        if details:
            model_text += f'<br><span class="muted small">{esc(" · ".join(details))}</span>'
        ckpt = run.checkpoint or {}
        ckpt_text = DASH
        if ckpt:
            parts = [str(ckpt.get("algo") or "?").upper()]
            if ckpt.get("step") is not None:
                parts.append(f"step {ckpt['step']}")
            if ckpt.get("engine"):
                parts.append(f"({ckpt['engine']})")
            ckpt_text = esc(" ".join(parts))
        harness = m.get("harness") or {}
        commit = esc(str(harness.get("commit") or "")[:10] or None)
        if harness.get("dirty"):
            commit += f' <span class="warn-text">{tr("runs.dirty", ctx.lang)}</span>'
        hw = m.get("hardware") or {}
        hardware = hw.get("gpu_name") or hw.get("cpu_model")
        if hw.get("gpu_count") and hw["gpu_count"] > 1:
            hardware = f"{hw['gpu_count']} × {hardware}"
        role = tr("role.baseline" if i == 0 else "role.candidate", ctx.lang,
                  cls="tag base" if i == 0 else "tag")
        first = Cell(f"{ctx.chip(i)} {role} {state_tag(run, ctx.lang)}", i)
        rows.append([first, Cell(model_text, str(model.get("id"))),
                     Cell(ckpt_text, ckpt.get("step")), cell(m.get("prompt_format")),
                     cell(m.get("scoring", "strict")),
                     cell(_generation(m.get("generation") or {}), cls="wrap"),
                     _dates_cell(m), Cell(commit, harness.get("commit")), cell(hardware)])
    return section("runs", "runs.title", ctx.lang, banner + table(head, rows, table_id="runs-table",
                                                                   numeric_from=99))


def comparability_banner(messages: list[str], lang: str) -> str:
    if not messages:
        return f'<div class="banner ok" id="comparability">{tr("banner.ok", lang)}</div>'
    items = "".join(f"<li>{esc(m)}</li>" for m in messages)
    return (f'<div class="banner warn" id="comparability" role="alert">'
            f'{tr("banner.title", lang, tag="strong")} {tr("banner.intro", lang)}<ul>{items}</ul></div>')


def _delta_class(delta: float | None, p_adjusted: float | None) -> str:
    if delta is None:
        return ""
    significant = p_adjusted is not None and p_adjusted < ALPHA
    sign = "pos" if delta > 0 else "neg" if delta < 0 else "zero"
    return f"delta {sign}{'-sig' if significant and sign != 'zero' else ''}"


def _accuracy_cell(acc: float | None, ci: list[float] | None, color: str) -> Cell:
    """The accuracy, its interval, and a small bar of the interval on a 0-100 scale (positions are our
    own numbers, so the inline styles carry nothing from the run)."""
    if acc is None:
        return Cell(DASH, None)
    lo, hi = (ci if ci and len(ci) == 2 else (None, None))
    markup = f'<span class="acc">{pct(acc)}</span> <span class="ci-text">{esc(interval(lo, hi))}</span>'
    if lo is not None and hi is not None:
        markup += (f'<span class="ci-bar" aria-hidden="true"><span class="ci" style="left:{100 * lo:.1f}%;'
                   f'width:{max(0.5, 100 * (hi - lo)):.1f}%;background:{color}"></span>'
                   f'<span class="pt" style="left:{100 * acc:.1f}%;background:{color}"></span></span>')
    return Cell(markup, acc)


def _scoring_pair_cell(strict: float | None, official: float | None) -> Cell:
    """Strict and official-compatible accuracy side by side, with their difference in points."""
    if strict is None and official is None:
        return Cell(DASH, None)
    markup = esc(f"{pct(strict)} / {pct(official)}")
    if strict is not None and official is not None:
        markup += f' <span class="ci-text">({esc(pts(official - strict))})</span>'
    return Cell(markup, strict)


def summary_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    head = [tr(k, lang) for k in ("col.suite", "col.run", "col.n", "col.accuracy", "col.strict_official",
                                  "col.no_answer", "col.format", "col.delta", "col.fixed", "col.broken", "col.p",
                                  "col.p_holm", "col.verdict")]
    rows = []
    for suite in ctx.suites:
        for i, run in enumerate(ctx.runs):
            m = (run.metrics.get("suites") or {}).get(suite)
            if m is None:
                continue
            base = [cell(suite), Cell(ctx.chip(i), run.label), cell(m.get("n")),
                    _accuracy_cell(m.get("accuracy"), m.get("accuracy_ci95"), ctx.color(i)),
                    _scoring_pair_cell(m.get("accuracy_strict"), m.get("accuracy_official")),
                    cell(pct(m.get("no_answer_rate")), m.get("no_answer_rate")),
                    cell(pct(m.get("format_compliance")), m.get("format_compliance"))]
            c = ctx.comparisons.get((i, suite))
            if i == 0 or c is None:
                verdict = (tr("verdict.baseline", lang, cls="tag base") if i == 0
                           else tr("verdict.na", lang, cls="muted"))
                rows.append(base + [Cell(DASH)] * 5 + [Cell(verdict, "")])
                continue
            klass = _delta_class(c.delta, c.p_adjusted)
            significant = c.p_adjusted < ALPHA and c.delta != 0
            arrow = ("▲ " if c.delta > 0 else "▼ ") if significant else ""
            verdict_key = ("verdict.better" if c.delta > 0 else "verdict.worse") if significant else "verdict.ns"
            delta = (f'<span class="delta-value">{arrow}{pts(c.delta)}</span> '
                     f'<span class="ci-text">{esc(interval(c.ci_low, c.ci_high, signed=True))}</span>')
            rows.append(base + [
                Cell(delta, c.delta, klass),
                cell(c.n_fixed, cls="fixed"), cell(c.n_broken, cls="broken"),
                cell(pvalue(c.p_value), c.p_value),
                Cell(esc(pvalue(c.p_adjusted)), c.p_adjusted, "sig" if c.p_adjusted < ALPHA else ""),
                Cell(tr(verdict_key, lang, cls=f"tag {klass}" if significant else "tag"), verdict_key)])
    return section("summary", "summary.title", lang, table(head, rows, table_id="summary-table", numeric_from=2),
                   "summary.intro")


def breakdowns_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    blocks = []
    for suite_index, suite in enumerate(ctx.suites):
        per_run = [((r.metrics.get("suites") or {}).get(suite) or {}).get("by") or {} for r in ctx.runs]
        # a field whose only category is None (metadata the suite lacks here) says nothing
        fields = [f for f in dict.fromkeys(f for by in per_run for f in by)
                  if any(set(by.get(f) or {}) - {"None"} for by in per_run)]
        if not fields:
            continue
        tables = []
        for field in fields:
            values = list(dict.fromkeys(v for by in per_run for v in (by.get(field) or {})))
            head = [tr("col.category", lang), tr("col.n", lang)]
            for i in range(len(ctx.runs)):
                head.append(f'{ctx.chip(i)} <span class="unit">%</span>')
                if i:
                    head.append(f'{ctx.chip(i)} <span class="unit">Δ</span>')
            rows = []
            for value in values:
                cells = [per_run[i].get(field, {}).get(value) for i in range(len(ctx.runs))]
                base = cells[0] or {}
                n = base.get("n", next((c.get("n") for c in cells if c), None))
                row = [cell(value), cell(n)]
                for i, c in enumerate(cells):
                    acc = (c or {}).get("accuracy")
                    row.append(cell(pct(acc), acc))
                    if i:
                        delta = acc - base["accuracy"] if acc is not None and base.get("accuracy") is not None else None
                        row.append(Cell(esc(pts(delta)), delta, _delta_class(delta, None)))
                rows.append(row)
            tables.append(f'<h4><span class="field">{esc(field)}</span></h4>'
                          + table(head, rows, cls="breakdown compact"))
        opened = " open" if suite_index == 0 else ""
        blocks.append(f'<details class="suite-block"{opened}><summary>{esc(suite)}</summary>{"".join(tables)}'
                      f"</details>")
    body = "".join(blocks) or tr("breakdowns.none", lang, tag="p", cls="muted")
    return section("breakdowns", "breakdowns.title", lang, body, "breakdowns.intro")


def _legend(ctx: ReportContext) -> str:
    return '<div class="legend">' + "".join(ctx.chip(i) for i in range(len(ctx.runs))) + "</div>"


def format_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    kinds = sorted({k for r in ctx.runs for m in (r.metrics.get("suites") or {}).values()
                    for k in (m.get("format_failures") or {})})
    head = [tr(k, lang) for k in ("col.suite", "col.run", "col.compliance", "col.delta_short",
                                  "col.truncation", "col.delta_short", "col.mean_tokens")]
    head += [f'<code class="kind">{esc(k)}</code>' for k in kinds]
    rows = []
    for suite in ctx.suites:
        base_m = (ctx.runs[0].metrics.get("suites") or {}).get(suite) or {}
        for i, run in enumerate(ctx.runs):
            m = (run.metrics.get("suites") or {}).get(suite)
            if m is None:
                continue
            compliance = m.get("format_compliance")
            comp_cell = cell(pct(compliance), compliance) if compliance is not None else \
                Cell(tr("format.na", lang, cls="muted"), None)
            row = [cell(suite), Cell(ctx.chip(i), run.label), comp_cell]
            for key, higher_is_better in (("format_compliance", True), ("truncation_rate", False)):
                value, base_value = m.get(key), base_m.get(key)
                if key == "truncation_rate":
                    row.append(cell(pct(value), value))
                if i and value is not None and base_value is not None:
                    delta = value - base_value
                    signed = delta if higher_is_better else -delta  # colour by better/worse
                    row.append(Cell(esc(pts(delta)), delta, _delta_class(signed, None)))
                else:
                    row.append(Cell(DASH))
            row.append(cell(num(m.get("mean_output_tokens"), ".0f"), m.get("mean_output_tokens")))
            failures, base_failures = m.get("format_failures") or {}, base_m.get("format_failures") or {}
            for k in kinds:
                count = failures.get(k, 0)
                change = count - base_failures.get(k, 0)
                extra = (f' <span class="{"delta neg" if change > 0 else "delta pos"}">({change:+d})</span>'
                         if i and change else "")
                row.append(Cell(f"{count}{extra}", count))
            rows.append(row)
    plots = []
    limit = (ctx.runs[0].manifest.get("generation") or {}).get("max_new_tokens")
    for suite in ctx.suites:
        series = [Series(ctx.color(i), [r.get("n_output_tokens") for r in run.records_of(suite)])
                  for i, run in enumerate(ctx.runs)]
        if any(s.xs for s in series):
            svg = histogram(series, x_key="plot.tokens", limit=limit)
            plots.append(f'<figure class="plot-box"><figcaption>{esc(suite)}</figcaption>{svg}</figure>')
    body = table(head, rows, table_id="format-table", numeric_from=2)
    if plots:
        body += (f'<h3>{tr("format.lengths", lang)}</h3>{_legend(ctx)}'
                 f'<div class="plot-grid">{"".join(plots)}</div>')
    return section("format", "format.title", lang, body, "format.intro")


def efficiency_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    head = [tr(k, lang) for k in ("col.run", "col.samples_s", "col.vs_base", "col.tokens_s", "col.lat50",
                                  "col.lat90", "col.wall", "col.mem_alloc", "col.mem_reserved", "col.mem_nvml",
                                  "col.gpu")]
    base_t = ctx.runs[0].metrics.get("throughput") or {}
    rows = []
    notes: dict[str, list[int]] = {}
    for i, run in enumerate(ctx.runs):
        t = run.metrics.get("throughput") or {}
        mem = run.metrics.get("memory") or {}
        sps, base_sps = t.get("samples_per_s"), base_t.get("samples_per_s")
        change = sps / base_sps - 1 if i and sps and base_sps else None
        vs = Cell(esc(pts(change)) + (" %" if change is not None else ""), change, _delta_class(change, None))
        row = [Cell(ctx.chip(i), run.label), cell(num(sps, ".2f"), sps), vs,
               cell(num(t.get("output_tokens_per_s"), ".1f"), t.get("output_tokens_per_s")),
               cell(num(t.get("latency_s_p50"), ".2f"), t.get("latency_s_p50")),
               cell(num(t.get("latency_s_p90"), ".2f"), t.get("latency_s_p90")),
               cell(num(t.get("wall_s"), ".1f"), t.get("wall_s"))]
        row += [cell(num(mem.get(k), ".0f"), mem.get(k))
                for k in ("peak_allocated_mib", "peak_reserved_mib", "nvml_peak_used_mib")]
        if mem.get("note"):
            notes.setdefault(str(mem["note"]), []).append(i)
        row.append(cell((run.manifest.get("hardware") or {}).get("gpu_name")))
        rows.append(row)
    body = table(head, rows, table_id="efficiency-table")
    for note, indices in notes.items():  # one line per distinct note (CPU runs all say the same)
        body += (f'<p class="muted small">{tr("efficiency.memory_note", lang)} {esc(note)} '
                 f'({" ".join(ctx.chip(i) for i in indices)})</p>')
    return section("efficiency", "efficiency.title", lang, body, "efficiency.intro")
