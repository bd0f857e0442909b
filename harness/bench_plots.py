"""The PNG plots of a bench directory: throughput, and latency / time to first token, per engine.

    names = write_plots(BenchDir("benches/h200"), bench["configurations"])   # the PNG names it wrote
    png = comparison_png([("h200", bench_a["configurations"]), ("h100", bench_b["configurations"])])

One line per (backend, quantization) over its sweep axis (batch size for a batch backend, requests in
flight for a streaming one), on a log2 axis; error bars are the standard deviation over the repeats.
The comparison plot (for `harness report` over several bench directories) draws every bench's engines
on one throughput chart: one colour per bench, one line style per engine. Only matplotlib's object API on an Agg canvas is used, so no GUI backend is ever loaded.
"""

from __future__ import annotations

import io
from collections import defaultdict

from harness.benchstore import LATENCY_PLOT, THROUGHPUT_PLOT, BenchDir, Configuration

COLORS = ("#3a6fb0", "#d9622b", "#1f9e74", "#8e5bb5", "#c23b4e", "#8a6d2f", "#d16fae", "#2a9fb8")
AXIS_TITLES = {"batch_size": "batch size", "concurrency": "requests in flight (max concurrency)"}


def _series(configurations: list[Configuration]) -> dict[tuple[str, str, str], list[Configuration]]:
    grouped: dict[tuple[str, str, str], list[Configuration]] = defaultdict(list)
    for c in configurations:
        grouped[(c["backend"], c["quantization"], c["axis"])].append(c)
    return {k: sorted(v, key=lambda c: c["value"]) for k, v in grouped.items()}


def _x_title(series) -> str:
    return " / ".join(dict.fromkeys(AXIS_TITLES[axis] for _, _, axis in series))


def _figure(n_panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * n_panels, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, n_panels, squeeze=False)[0]


def _style(ax, series, y_title: str) -> None:
    ax.set_xscale("log", base=2)
    values = sorted({c["value"] for points in series.values() for c in points})
    ax.set_xticks(values, [str(v) for v in values])  # the swept values themselves, not powers of two
    ax.minorticks_off()
    ax.set_xlabel(_x_title(series))
    ax.set_ylabel(y_title)
    ax.grid(True, color="#e6e9ed", linewidth=0.7)
    ax.spines[["top", "right"]].set_visible(False)


def write_plots(store: BenchDir, configurations: list[Configuration]) -> list[str]:
    """Write the plots into the bench directory; returns their file names ([] without configurations)."""
    if not configurations:
        return []
    series = _series(configurations)
    fig, (ax,) = _figure(1)
    for i, ((backend, quantization, _), points) in enumerate(series.items()):
        xs = [c["value"] for c in points]
        ax.errorbar(xs, [c["output_tokens_per_s"]["mean"] for c in points],
                    yerr=[c["output_tokens_per_s"]["std"] or 0 for c in points], color=COLORS[i % len(COLORS)],
                    marker="o", markersize=4, capsize=3, label=f"{backend} {quantization}")
    _style(ax, series, "output tokens/s")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    fig.savefig(store.plot_path(THROUGHPUT_PLOT), format="png")

    fig, (latency_ax, ttft_ax) = _figure(2)
    for i, ((backend, quantization, _), points) in enumerate(series.items()):
        xs, color = [c["value"] for c in points], COLORS[i % len(COLORS)]
        for key, style in (("latency_ms_p50", "-"), ("latency_ms_p99", ":")):
            ys = [c[key] for c in points]  # type: ignore[literal-required]
            if any(y is not None for y in ys):
                latency_ax.plot(xs, [float("nan") if y is None else y for y in ys], style, color=color, marker="o",
                                markersize=3, label=f"{backend} {quantization} {key.rsplit('_', 1)[1]}")
        ttft = [c["ttft_ms_p50"] for c in points]
        if any(y is not None for y in ttft):
            ttft_ax.plot(xs, [float("nan") if y is None else y for y in ttft], "-", color=color, marker="o",
                         markersize=3, label=f"{backend} {quantization} p50")
    _style(latency_ax, series, "request latency (ms)")
    _style(ttft_ax, series, "time to first token (ms)")
    latency_ax.legend(frameon=False, fontsize=7)
    if ttft_ax.lines:
        ttft_ax.legend(frameon=False, fontsize=7)
    else:
        ttft_ax.text(0.5, 0.5, "no backend here reports time to first token", transform=ttft_ax.transAxes,
                     ha="center", va="center", color="#6b7580")
    fig.savefig(store.plot_path(LATENCY_PLOT), format="png")
    return [THROUGHPUT_PLOT, LATENCY_PLOT]


LINE_STYLES = ("-", "--", ":", "-.")


def comparison_png(benches: list[tuple[str, list[Configuration]]]) -> bytes:
    """Output tokens/s of several benches on one chart, as PNG bytes."""
    fig, (ax,) = _figure(1)
    all_series: dict = {}
    engines = list(dict.fromkeys(key for _, configurations in benches for key in _series(configurations)))
    for i, (label, configurations) in enumerate(benches):
        for key, points in _series(configurations).items():
            all_series[key] = points
            ax.errorbar([c["value"] for c in points], [c["output_tokens_per_s"]["mean"] for c in points],
                        yerr=[c["output_tokens_per_s"]["std"] or 0 for c in points], color=COLORS[i % len(COLORS)],
                        linestyle=LINE_STYLES[engines.index(key) % len(LINE_STYLES)], marker="o", markersize=4,
                        capsize=3, label=f"{label}: {key[0]} {key[1]}")
    _style(ax, all_series, "output tokens/s")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
