"""The bench page of `harness report`: one or more bench directories side by side (the first is the base).

    from reports.bench_page import build_bench_report
    build_bench_report(["benches/h200-vllm-0.25", "benches/h200-vllm-0.31"], "bench.html")

Sections: the machines and packages of each bench, model load times, and per (backend, quantization)
the sweep's throughput with each bench's ratio to the first, latency and time to first token, decode
bandwidth utilisation and peak memory; then every bench's own plots and a throughput chart of all
of them together. It reads bench directories only, through harness.benchstore.

Security, as on the run report: every string taken from a bench file (model names, package versions,
labels) is untrusted and reaches the page only through `esc`; plots are embedded as data: URLs of the
PNG files the bench wrote (only the known plot names are read). The page has no script at all, and
its Content-Security-Policy forbids scripts and any network access.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from harness.benchstore import LATENCY_PLOT, THROUGHPUT_PLOT, BenchDir, BenchFile, Configuration
from reports.page_html import DASH, Cell, esc, num, table

ASSETS = Path(__file__).parent / "assets"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
KNOWN_PLOTS = (THROUGHPUT_PLOT, LATENCY_PLOT)
EXTRA_CSS = ("img.bench-plot { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }"
             " .ratio-up { color: var(--pos); } .ratio-down { color: var(--neg); }")


def _labels(paths: list[Path]) -> list[str]:
    labels: list[str] = []
    for path in paths:
        label = path.resolve().name or str(path)
        while label in labels:
            label += "'"
        labels.append(label)
    return labels


def _plain(value: Any) -> Cell:
    return Cell(esc(value))


def _fmt(value: float | None, fmt: str = ",.1f") -> Cell:
    return Cell(num(value, fmt), value)


def _ratio(value: float | None, base: float | None, higher_is_better: bool = True) -> Cell:
    if value is None or not base:
        return Cell(DASH)
    ratio = value / base
    better = ratio > 1 if higher_is_better else ratio < 1
    cls = "" if abs(ratio - 1) < 0.005 else ("ratio-up" if better else "ratio-down")
    return Cell(f"{ratio:.2f}×", ratio, cls)


def _machines(labels: list[str], benches: list[BenchFile]) -> str:
    def row(name: str, get) -> list[Cell]:
        return [_plain(name)] + [_plain(get(b)) for b in benches]

    def git(b: BenchFile) -> str | None:
        commit = b["harness"].get("commit")
        return None if not commit else commit[:12] + (" (dirty)" if b["harness"].get("dirty") else "")

    def prompts(b: BenchFile) -> str:
        p = b["prompts"]
        size = "x".join(map(str, p["image_size"])) if p["image_size"] else "native"
        return f"{p['suite']} {p['split']}: {p['n_requests']} prompts ({p['n_with_image']} with images, {size})"

    rows = [
        row("status", lambda b: b["status"] + (f": {b['error']}" if b["error"] else "")),
        row("created", lambda b: b["created"]),
        row("GPU", lambda b: b["hardware"].get("gpu_name") or "none"),
        row("GPUs", lambda b: b["hardware"].get("gpu_count")),
        row("driver / CUDA", lambda b: f"{b['hardware'].get('driver_version') or DASH} / "
                                       f"{b['hardware'].get('cuda_version') or DASH}"),
        row("CPU", lambda b: f"{b['hardware'].get('cpu_model')} ({b['hardware'].get('cpu_count')} cores)"),
        row("copy bandwidth (GB/s)", lambda b: num(b["device_bandwidth"]["gb_per_s"], ",.0f")
            + f" ({b['device_bandwidth']['device']})"),
        *[row(name, lambda b, n=name: b["packages"].get(n) or "not installed")
          for name in ("torch", "transformers", "vllm", "python")],
        row("harness commit", git),
        row("model", lambda b: b["settings"].get("model")),
        row("prompts", prompts),
        row("output tokens", lambda b: f"{b['settings'].get('max_new_tokens')} at most"
                                       + (", forced (ignore EOS)" if b["settings"].get("ignore_eos") else "")),
        row("repeats / warm-up", lambda b: f"{b['settings'].get('repeat')} / {b['settings'].get('warmup')}"),
    ]
    head = ["", *[esc(label) for label in labels]]
    return _section("machines", "Machines, packages and settings",
                    table(head, rows, cls="compact", numeric_from=99, table_id="machines-table"))


def _engines(labels: list[str], benches: list[BenchFile]) -> str:
    keys = list(dict.fromkeys((e["backend"], e["quantization"]) for b in benches for e in b["engines"]))
    rows = []
    for backend, quantization in keys:
        for label, b in zip(labels, benches, strict=True):
            engine = next((e for e in b["engines"] if (e["backend"], e["quantization"]) == (backend, quantization)), None)
            if engine is None:
                continue
            points = sorted((c for c in b["configurations"] if (c["backend"], c["quantization"]) == (backend, quantization)),
                            key=lambda c: c["value"])
            peak = max(points, key=lambda c: c["output_tokens_per_s"]["mean"] or 0, default=None)
            first_util = points[0]["decode"]["utilization"] if points else None
            rows.append([
                _plain(f"{backend} {quantization}"), _plain(label), _fmt(engine["load_time_s"], ",.1f"),
                _fmt(peak["output_tokens_per_s"]["mean"] if peak else None),
                _plain(f"{engine['axis'].replace('_', ' ')} {peak['value']}" if peak else None),
                _plain(points[0]["value"] if points else None),
                Cell(f"{100 * first_util:.1f}%" if first_util is not None else DASH, first_util)])
    intro = ("Load: wall time of loading each engine as the bench measured it (weights, and for vLLM the engine "
             "start-up with compilation and CUDA graph capture). Peak: the highest mean output tokens/s of the "
             "sweep and where it was reached. Decode bandwidth at the sweep's smallest point (batch or "
             "concurrency 1 in a full sweep): how close single-stream decoding comes to the memory bound.")
    head = ["engine", "bench", "load (s)", "peak output tok/s", "at", "smallest point", "decode bandwidth there"]
    return _section("engines", "Engines: load, peak throughput, bandwidth",
                    f'<p class="intro">{intro}</p>' + table(head, rows, cls="compact", table_id="engines-table",
                                                             numeric_from=2))


def _by_value(bench: BenchFile, key: tuple[str, str, str]) -> dict[int, Configuration]:
    return {c["value"]: c for c in bench["configurations"] if (c["backend"], c["quantization"], c["axis"]) == key}


def _memory_mib(c: Configuration) -> float | None:
    memory = c["memory"]
    if memory["nvml_peak_over_idle_mib"] is not None:
        return memory["nvml_peak_over_idle_mib"]
    return memory["backend"].get("peak_allocated_mib")


def _backend_memory(c: Configuration) -> str | None:
    """The backend's own labelled figures (torch peaks; vLLM's weights, KV cache and its peak usage)."""
    figures = [f"{key} {value:,.0f}" if abs(value) >= 1000 else f"{key} {value:.3g}"
               for key, value in c["memory"]["backend"].items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return ", ".join(figures) or None


def _sweep_tables(labels: list[str], benches: list[BenchFile]) -> str:
    keys = list(dict.fromkeys((c["backend"], c["quantization"], c["axis"]) for b in benches
                              for c in b["configurations"]))
    parts = []
    for key in keys:
        points = [_by_value(b, key) for b in benches]
        values = sorted({v for p in points for v in p})
        axis = "batch size" if key[2] == "batch_size" else "in flight"
        head = [axis]
        for i, label in enumerate(labels):
            head += [f"{esc(label)} output tok/s", "± sd"] + ([f"× {esc(labels[0])}"] if i else [])
        throughput_rows = []
        for value in values:
            row = [_plain(value)]
            base = points[0].get(value)
            for i, p in enumerate(points):
                c = p.get(value)
                mean = c["output_tokens_per_s"]["mean"] if c else None
                row += [_fmt(mean), _fmt(c["output_tokens_per_s"]["std"] if c else None)]
                if i:
                    row.append(_ratio(mean, base["output_tokens_per_s"]["mean"] if base else None))
            throughput_rows.append(row)
        detail_head = [axis, "bench", "total tok/s", "samples/s", "latency p50 (ms)", "latency p99 (ms)",
                       "TTFT p50 (ms)", "TPOT p50 (ms)", "decode bandwidth", "peak memory (MiB)",
                       "the backend's memory figures", "harness / bare"]
        detail_rows = []
        for value in values:
            for label, p in zip(labels, points, strict=True):
                c = p.get(value)
                if c is None:
                    continue
                util = c["decode"]["utilization"]
                bare = c["bare"]["harness_over_bare"] if c["bare"] else None
                detail_rows.append([
                    _plain(value), _plain(label), _fmt(c["total_tokens_per_s"]["mean"]),
                    _fmt(c["samples_per_s"]["mean"], ",.2f"), _fmt(c["latency_ms_p50"]), _fmt(c["latency_ms_p99"]),
                    _fmt(c["ttft_ms_p50"]), _fmt(c["tpot_ms_p50"], ",.2f"),
                    Cell(f"{100 * util:.1f}%" if util is not None else DASH, util), _fmt(_memory_mib(c), ",.0f"),
                    _plain(_backend_memory(c)), _fmt(bare, ".3f")])
        ident = f"{key[0]}-{key[1]}"
        parts.append(f"<h3>{esc(key[0])} {esc(key[1])}</h3>"
                     + table(head, throughput_rows, cls="compact", table_id=f"throughput-{ident}")
                     + "<h4>Latency, bandwidth and memory</h4>"
                     + table(detail_head, detail_rows, cls="compact", numeric_from=2, table_id=f"detail-{ident}"))
    intro = ("Means over the timed repeats; the ratio columns divide a bench's output tokens/s by the first "
             "bench's at the same point. Decode bandwidth is the bytes of weights and KV cache read per decode "
             "step, times the steps, over the decode time, against the device's measured copy bandwidth. Peak "
             "memory is NVML's used memory over the idle baseline where a GPU is present, else torch's peak.")
    return _section("sweeps", "Sweeps", f'<p class="intro">{intro}</p>' + "".join(parts))


def _png(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _plots(labels: list[str], stores: list[BenchDir], benches: list[BenchFile]) -> str:
    from harness.bench_plots import comparison_png

    parts = []
    if len(benches) > 1:
        png = comparison_png([(label, b["configurations"]) for label, b in zip(labels, benches, strict=True)])
        parts.append('<h3>All benches: output tokens/s</h3><img class="bench-plot" alt="throughput of every bench" '
                     f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')
    for label, store, bench in zip(labels, stores, benches, strict=True):
        for name in KNOWN_PLOTS:  # only our own file names: a bench file cannot point the page elsewhere
            url = _png(store.plot_path(name)) if name in bench["plots"] else None
            if url:
                parts.append(f"<h3>{esc(label)}: {esc(name)}</h3>"
                             f'<img class="bench-plot" alt="{esc(label)} {esc(name)}" src="{url}">')
    return _section("plots", "Plots", "".join(parts) or '<p class="muted">No plots.</p>')


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}" class="card"><h2>{esc(title)}</h2>{body}</section>'


def render_bench_page(labels: list[str], stores: list[BenchDir], benches: list[BenchFile],
                      title: str | None = None) -> str:
    page_title = title or "Bench: " + " vs ".join(labels)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    css = (ASSETS / "report.css").read_text(encoding="utf-8") + EXTRA_CSS
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (("machines", "Machines"), ("engines", "Model load"),
                                                         ("sweeps", "Sweeps"), ("plots", "Plots")))
    return "".join([
        "<!DOCTYPE html>\n", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page_title)}</title><style>{css}</style></head><body>",
        f'<header class="top"><h1>{esc(page_title)}</h1><p class="subtitle">Base: {esc(labels[0])}'
        + (f" &nbsp; compared: {esc(', '.join(labels[1:]))}" if len(labels) > 1 else "")
        + f'</p><p class="subtitle muted">Generated: {esc(generated)}</p></header>',
        f'<nav class="sections">{nav}</nav><main>',
        _machines(labels, benches), _engines(labels, benches), _sweeps_or_empty(labels, benches),
        _plots(labels, stores, benches), "</main>",
        "<footer><p>Self-contained page built from bench directories only; it loads nothing.</p></footer>",
        "</body></html>\n"])


def _sweeps_or_empty(labels: list[str], benches: list[BenchFile]) -> str:
    if not any(b["configurations"] for b in benches):
        return _section("sweeps", "Sweeps", '<p class="muted">No configuration was measured.</p>')
    return _sweep_tables(labels, benches)


def build_bench_report(paths, out_path, *, title: str | None = None) -> Path:
    """Write the bench page of one or more bench directories (the first is the base); returns its path.
    Raises RunDirError for a directory that is not a readable bench of this schema version."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("a bench report needs at least one bench directory")
    stores = [BenchDir(p) for p in paths]
    benches = [store.read() for store in stores]
    page = render_bench_page(_labels(paths), stores, benches, title)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
