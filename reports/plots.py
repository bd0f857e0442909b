"""Small matplotlib charts for the HTML report, returned as inline SVG markup.

The charts carry no data strings (run names, suite names): colours identify runs and the page draws
the legends in HTML, where text is escaped and translated. Axis titles are tagged so the page's
language switch can replace them (see `_I18N_GROUP`). Only matplotlib's object API on an Agg canvas
is used (no pyplot), so no GUI backend is ever loaded and nothing global is left behind.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from reports.i18n import text

# Okabe-Ito-like palette, readable for colour-blind readers; run i uses RUN_COLORS[i % len].
RUN_COLORS = ("#3a6fb0", "#d9622b", "#1f9e74", "#8e5bb5", "#c23b4e", "#8a6d2f", "#d16fae", "#2a9fb8")
_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, translatable
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#9aa3ad",
    "axes.grid": True,
    "grid.color": "#e6e9ed",
    "grid.linewidth": 0.7,
    "xtick.color": "#4a5561",
    "ytick.color": "#4a5561",
    "axes.labelcolor": "#4a5561",
    "svg.hashsalt": "harness-report",  # deterministic ids
}
_I18N_GROUP = re.compile(r'<g id="i18n-([a-z0-9_.]+)">')
_ID_ATTR = re.compile(r'\bid="([^"]+)"')
_ID_REF = re.compile(r'(url\(#|href="#)([^)"]+)')
_serial = itertools.count()


def run_color(index: int) -> str:
    return RUN_COLORS[index % len(RUN_COLORS)]


@dataclass
class Series:
    """One run's line or sample on a chart."""
    color: str
    xs: Sequence[float]
    ys: Sequence[float] = ()
    dashed: bool = False


def _new_figure(width: float, height: float, y_title: bool) -> Figure:
    # fixed margins: a layout engine would fit them exactly but doubles the drawing time
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # headless Agg canvas; savefig(format="svg") hands over to the SVG writer
    fig.subplots_adjust(left=0.17 if y_title else 0.13, right=0.97, top=0.95, bottom=0.19)
    return fig


def _tick(value: float, _position: int) -> str:
    """Short tick labels: 40,000 rather than 4e4, 0.0021 rather than an offset."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _axis_titles(ax, x_key: str | None, y_key: str | None) -> None:
    """Axis titles in English, tagged with their i18n key for the page's language switch."""
    if x_key:
        ax.set_xlabel(text(x_key, "en"), gid=f"i18n-{x_key}")
    if y_key:
        ax.set_ylabel(text(y_key, "en"), gid=f"i18n-{y_key}")
    ax.yaxis.set_major_formatter(FuncFormatter(_tick))


def to_svg(fig: Figure) -> str:
    """Serialise to an <svg> element for inlining: no XML prolog or metadata, ids unique on the page,
    width set by CSS."""
    buf = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = _I18N_GROUP.sub(r'<g data-i18n-svg="\1">', svg)
    prefix = f"p{next(_serial)}-"
    svg = _ID_ATTR.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = _ID_REF.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", svg)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg class="plot" role="img" \1', svg, count=1)
    return svg


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def histogram(series: list[Series], *, x_key: str, limit: float | None = None, bins: int = 30,
              width: float = 4.2, height: float = 2.4) -> str:
    """Overlaid step histograms of each series' xs (e.g. output tokens per response), as shares of
    that series so runs of different sizes compare; `limit` draws a dashed line (max_new_tokens)."""
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(width, height, y_title=True)
        ax = fig.add_subplot()
        pooled = [v for s in series for v in _finite(s.xs)]
        if pooled:
            lo, hi = min(pooled), max(pooled)
            if limit is not None:
                hi = max(hi, limit)
            if hi <= lo:
                hi = lo + 1
            edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
            for s in series:
                values = _finite(s.xs)
                if values:
                    weights = [1 / len(values)] * len(values)
                    ax.hist(values, bins=edges, weights=weights, histtype="step", color=s.color, linewidth=1.4)
            if limit is not None:
                ax.axvline(limit, color="#9aa3ad", linestyle=":", linewidth=1)
        _axis_titles(ax, x_key, "plot.share")
        return to_svg(fig)


def line_chart(series: list[Series], *, x_key: str, y_key: str | None = None, percent: bool = False,
               width: float = 4.2, height: float = 2.4, markers: bool = False) -> str:
    """Overlaid lines (training curves, accuracy by step); None values are gaps, not zeros."""
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(width, height, y_title=y_key is not None)
        ax = fig.add_subplot()
        for s in series:
            xs = [x for x, y in zip(s.xs, s.ys) if y is not None and math.isfinite(float(y))]
            ys = [100 * float(y) if percent else float(y) for y in s.ys if y is not None and math.isfinite(float(y))]
            if xs:
                ax.plot(xs, ys, color=s.color, linewidth=1.5, linestyle="--" if s.dashed else "-",
                        marker="o" if markers or len(xs) == 1 else None, markersize=3.5)
        _axis_titles(ax, x_key, y_key)
        return to_svg(fig)
