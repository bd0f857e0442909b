"""The terminal view of a run: one row per suite (the accuracy of the run's scoring mode, then the strict
and the official-compatible accuracy side by side with their difference, and the no-answer rate),
then throughput and memory."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Column, Table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def scoring_difference(strict: float | None, official: float | None) -> str:
    """Official-compatible minus strict accuracy, in percentage points ("+4.8")."""
    if strict is None or official is None:
        return "-"
    return f"{100 * (official - strict):+.1f}"


def metrics_table(manifest: dict[str, Any], metrics: dict[str, Any], console: Console | None = None,
                  state: str | None = None) -> None:
    """state: what the header says instead of the status when the run is not finished and complete,
    e.g. "UNFINISHED, PARTIAL NUMBERS"."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped output: do not squeeze the table into 80 columns
            console = Console(width=200)
    model = manifest.get("model", {})
    status = manifest.get("status")
    if state:
        status = f"[bold red]{state}[/]"
    scoring = manifest.get("scoring", "strict")
    console.print(f"run {manifest.get('run_id')}  status {status}  model {model.get('id')}"
                  + (f" + {model['adapter']}" if model.get("adapter") else "")
                  + f"  format {manifest.get('prompt_format')}  scoring {scoring}")
    table = Table(Column("suite", no_wrap=True), "n", "accuracy %", "95% CI", "strict %", "official %",
                  Column("Δ pts", no_wrap=True), "no answer %", "format %", "truncated %", "mean out tok",
                  "errors", "other extractions")
    for name, m in metrics["suites"].items():
        lo, hi = m["accuracy_ci95"]
        variants = ", ".join(f"{k} {_pct(v['accuracy'])}" for k, v in m.get("variants", {}).items())
        strict, official = m.get("accuracy_strict"), m.get("accuracy_official")
        table.add_row(name, str(m["n"]), _pct(m["accuracy"]), f"{_pct(lo)}-{_pct(hi)}", _pct(strict), _pct(official),
                      scoring_difference(strict, official), _pct(m.get("no_answer_rate")),
                      _pct(m["format_compliance"]), _pct(m["truncation_rate"]),
                      "-" if m["mean_output_tokens"] is None else f"{m['mean_output_tokens']:.0f}",
                      str(m.get("errors", 0)), variants or "-")
    console.print(table)
    if any(m.get("accuracy_official") is None for m in metrics["suites"].values()):
        console.print("official %: '-' where the records predate both verdicts; harness rescore RUN fills it in")
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
