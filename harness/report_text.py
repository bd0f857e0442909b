"""The terminal view of a run: one row per suite, then throughput and memory."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Column, Table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def metrics_table(manifest: dict[str, Any], metrics: dict[str, Any], console: Console | None = None,
                  state: str | None = None) -> None:
    """state: what the header says instead of the status when the run is not finished and complete,
    e.g. "UNFINISHED, PARTIAL NUMBERS"."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped output: do not squeeze the table into 80 columns
            console = Console(width=160)
    model = manifest.get("model", {})
    status = manifest.get("status")
    if state:
        status = f"[bold red]{state}[/]"
    console.print(f"run {manifest.get('run_id')}  status {status}  model {model.get('id')}"
                  + (f" + {model['adapter']}" if model.get("adapter") else "")
                  + f"  format {manifest.get('prompt_format')}")
    table = Table(Column("suite", no_wrap=True), "n", "accuracy %", "95% CI", "format %", "truncated %", "mean out tok",
                  "errors", "other extractions")
    for name, m in metrics["suites"].items():
        lo, hi = m["accuracy_ci95"]
        variants = ", ".join(f"{k} {_pct(v['accuracy'])}" for k, v in m.get("variants", {}).items())
        table.add_row(name, str(m["n"]), _pct(m["accuracy"]), f"{_pct(lo)}-{_pct(hi)}",
                      _pct(m["format_compliance"]), _pct(m["truncation_rate"]),
                      "-" if m["mean_output_tokens"] is None else f"{m['mean_output_tokens']:.0f}",
                      str(m.get("errors", 0)), variants or "-")
    console.print(table)
    for line in judge_lines(manifest, metrics):
        console.print(line)
    failures = {n: m["format_failures"] for n, m in metrics["suites"].items() if m["format_failures"]}
    for name, counts in failures.items():
        console.print(f"format failures {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    t, mem = metrics["throughput"], metrics["memory"]
    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)
    console.print(f"throughput: {num(t['samples_per_s'], '.2f')} samples/s, "
                  f"{num(t['output_tokens_per_s'], '.1f')} output tokens/s over {t['wall_s']:.1f} s generation; "
                  f"latency p50 {num(t['latency_s_p50'], '.2f')} s, p90 {num(t['latency_s_p90'], '.2f')} s")
    if mem.get("note"):
        console.print(f"memory: {mem['note']}")
    else:
        console.print(f"memory: peak allocated {num(mem['peak_allocated_mib'], '.0f')} MiB, reserved "
                      f"{num(mem['peak_reserved_mib'], '.0f')} MiB, NVML peak used "
                      f"{num(mem['nvml_peak_used_mib'], '.0f')} MiB")


def judge_lines(manifest: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """One line per suite an LLM judge looked at: its accuracy beside the rules', agreement and cost."""
    model = (manifest.get("llm_judge") or {}).get("model", "?")
    out = []
    for name, m in metrics["suites"].items():
        j = m.get("llm_judge")
        if not j:
            continue
        agreement = "-" if j["agreement"] is None else f"{100 * j['agreement']:.1f}%"
        out.append(f"judge {model} on {name}: accuracy {_pct(j['accuracy'])} (rules {_pct(m['accuracy'])}); "
                   f"{j['judged']} judged, {j['verdicts']} verdicts, agreement with the rules {agreement} "
                   f"(rules right / judge wrong {j['rule_right_judge_wrong']}, rules wrong / judge right "
                   f"{j['rule_wrong_judge_right']}); {j['calls']} calls ({j['calls_from_cache']} from the cache "
                   f"in the latest pass), {j['prompt_tokens']} prompt + {j['completion_tokens']} completion tokens")
    return out
