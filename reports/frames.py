"""Runs as pandas DataFrames, for notebooks and ad-hoc analysis.

    from reports.frames import metrics_frame, records_frame
    m = metrics_frame(["runs/base", "runs/cand"])      # one row per run x suite
    r = records_frame(["runs/base", "runs/cand"])      # one row per record
    r.pivot_table(index="sample_id", columns="run_label", values="correct")
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from reports.runs import Run, load_runs

# Nested record fields flattened into "<field>.<key>" columns (scores one level deeper: scores.<name>.<key>).
_FLATTENED = ("rewards", "meta", "target")

_THROUGHPUT_KEYS = ("wall_s", "samples_per_s", "output_tokens_per_s", "latency_s_p50", "latency_s_p90",
                    "latency_s_p99")
_MEMORY_KEYS = ("peak_allocated_mib", "peak_reserved_mib", "nvml_peak_used_mib")


RunsLike = Run | str | Path | Iterable[Run | str | Path]


def _runs(paths_or_runs: RunsLike) -> list[Run]:
    items = [paths_or_runs] if isinstance(paths_or_runs, (Run, str, Path)) else list(paths_or_runs)
    loaded = iter(load_runs([p for p in items if not isinstance(p, Run)]))
    return [p if isinstance(p, Run) else next(loaded) for p in items]


def _run_columns(run: Run) -> dict[str, Any]:
    ckpt = run.checkpoint or {}
    return {"run": run.manifest.get("run_id") or run.path.name, "run_label": run.label,
            "run_path": str(run.path), "model": (run.manifest.get("model") or {}).get("id"),
            "prompt_format": run.manifest.get("prompt_format"), "algo": ckpt.get("algo"),
            "checkpoint_step": ckpt.get("step")}


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in record.items() if k not in (*_FLATTENED, "scores")}
    for name in _FLATTENED:
        for key, value in (record.get(name) or {}).items():
            row[f"{name}.{key}"] = value
    for variant, fields in (record.get("scores") or {}).items():
        for key, value in (fields.items() if isinstance(fields, dict) else [("value", fields)]):
            row[f"scores.{variant}.{key}"] = value
    return row


def records_frame(paths_or_runs: RunsLike) -> pd.DataFrame:
    """One row per record of every run: the record keys, nested rewards/meta/target/scores flattened
    to "rewards.total", "meta.task", "scores.flexible_extract.correct", ..., and the run's columns
    run, run_label, run_path, model, prompt_format, algo, checkpoint_step.

        df = records_frame(["runs/base", "runs/cand"])
        df.groupby(["run_label", "suite"])["correct"].mean()
    """
    rows = []
    for run in _runs(paths_or_runs):
        common = _run_columns(run)
        rows.extend({**common, **_flatten(r)} for r in run.records)
    return pd.DataFrame(rows)


def metrics_frame(paths_or_runs: RunsLike) -> pd.DataFrame:
    """One row per run x suite: n, accuracy, ci_low, ci_high, format_compliance, truncation_rate,
    mean_output_tokens, errors, rewards_mean.*, suite split/variant/content_sha256, then the run's
    throughput (wall_s, samples_per_s, ...) and peak memory (*_mib) columns, repeated on each suite row.

        m = metrics_frame(["runs/base", "runs/cand"])
        m.pivot(index="suite", columns="run_label", values="accuracy")
    """
    rows = []
    for run in _runs(paths_or_runs):
        common = _run_columns(run)
        throughput = run.metrics.get("throughput") or {}
        memory = run.metrics.get("memory") or {}
        for suite in run.suites():
            m = (run.metrics.get("suites") or {}).get(suite) or {}
            entry = run.suite_entry(suite) or {}
            ci = m.get("accuracy_ci95") or [None, None]
            row = {**common, "suite": suite, "split": entry.get("split"), "variant": entry.get("variant"),
                   "content_sha256": entry.get("content_sha256"), "n": m.get("n"),
                   "n_records": m.get("n_records"), "attempts_per_item": m.get("attempts_per_item"),
                   "accuracy": m.get("accuracy"), "ci_low": ci[0], "ci_high": ci[1],
                   "format_compliance": m.get("format_compliance"), "truncation_rate": m.get("truncation_rate"),
                   "mean_output_tokens": m.get("mean_output_tokens"), "errors": m.get("errors")}
            for key, value in (m.get("rewards_mean") or {}).items():
                row[f"rewards_mean.{key}"] = value
            row.update({k: throughput.get(k) for k in _THROUGHPUT_KEYS})
            row.update({k: memory.get(k) for k in _MEMORY_KEYS})
            rows.append(row)
    return pd.DataFrame(rows)
