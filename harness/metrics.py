"""Metrics, recomputed from records (and the manifest's run-level measurements) only.

Accuracy with n samples per prompt is pass@1 averaged over the samples (avg@n): each item's mean
correctness, averaged over items. The 95% interval is Wilson's. With one sample per item its n is the
number of items; with several it is the effective sample size of the clustered attempts (Korn and
Graubard's design-effect correction: attempts at one item are correlated, so n_eff = items x
p(1-p) / variance of the item means, kept between the number of items and the number of attempts).
When every attempt is right or every attempt is wrong the variance says nothing, and n_eff is the
number of items: the interval stays honest (0 of 200 items x 2 attempts gives 0.0-1.9%, not 0.0-0.0).

`completeness` says whether the records are all there: items and records expected and present,
duplicated records (a key written twice) and errored items. Metrics are computed on the first record
of each key, so a duplicated run's numbers count each sample once.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from harness.run_schema import METRICS_SCHEMA_VERSION, Metrics
from harness.runstore import first_of_each_key

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = Z95) -> list[float]:
    if n == 0:
        return [0.0, 0.0]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends, not rounding noise
    return [low, 1.0 if successes >= n else min(1.0, centre + half)]


def accuracy_interval(item_means: list[float], attempts_per_item: int) -> list[float]:
    n = len(item_means)
    if n == 0:
        return [0.0, 0.0]
    p = float(np.mean(item_means))
    n_eff = float(n)
    if attempts_per_item > 1 and 0 < p < 1 and n > 1:
        variance = float(np.var(item_means, ddof=1))
        n_eff = n * attempts_per_item if variance == 0 else n * p * (1 - p) / variance
        n_eff = min(max(n_eff, n), n * attempts_per_item)
    return wilson_interval(p * n_eff, n_eff)  # type: ignore[arg-type]


def _rate(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _item_means(records: list[dict[str, Any]], key: str = "correct") -> dict[str, float]:
    by_item: dict[str, list[float]] = defaultdict(list)
    for r in records:
        by_item[r["sample_id"]].append(float(bool(r[key])))
    return {sid: sum(v) / len(v) for sid, v in by_item.items()}


def suite_metrics(records: list[dict[str, Any]], breakdowns: tuple[str, ...] = (),
                  multi_label: tuple[str, ...] = ()) -> dict[str, Any]:
    item_means = _item_means(records)
    attempts = max((r["attempt"] for r in records), default=0) + 1
    accuracy = float(np.mean(list(item_means.values()))) if item_means else None
    applicable = [r for r in records if r.get("format_ok") is not None]
    failures: Counter[str] = Counter()
    for r in applicable:
        failures.update(r.get("format_failures") or [])
    out_tokens = [r["n_output_tokens"] for r in records if r.get("n_output_tokens") is not None]
    generated = [r for r in records if r.get("error") is None]
    reward_means = {}
    for name in ("format", "correctness", "total"):
        vals = [r["rewards"][name] for r in records if (r.get("rewards") or {}).get(name) is not None]
        reward_means[name] = float(np.mean(vals)) if vals else None

    variants: dict[str, Any] = {}
    for name in sorted({v for r in records for v in (r.get("scores") or {})}):
        scored = [r for r in records if "correct" in (r.get("scores") or {}).get(name, {})]
        if scored:
            means = {}
            for sid, vals in _group(scored, lambda r: r["sample_id"]).items():
                means[sid] = float(np.mean([bool(r["scores"][name]["correct"]) for r in vals]))
            variants[name] = {"accuracy": float(np.mean(list(means.values()))), "n": len(means)}

    by: dict[str, dict[str, Any]] = {}
    first_attempt = {r["sample_id"]: r for r in records if r["attempt"] == 0}
    for fld in breakdowns:
        groups: dict[str, list[float]] = defaultdict(list)
        for sid, mean in item_means.items():
            value = (first_attempt.get(sid) or {}).get("meta", {}).get(fld)
            labels = value if fld in multi_label and isinstance(value, list) else [value]
            for label in labels:
                groups[str(label)].append(mean)
        by[fld] = {k: {"accuracy": float(np.mean(v)), "n": len(v)} for k, v in sorted(groups.items())}

    return {
        "n": len(item_means),
        "n_records": len(records),
        "attempts_per_item": attempts,
        "accuracy": accuracy,
        "accuracy_ci95": accuracy_interval(list(item_means.values()), attempts),
        "format_compliance": _rate([bool(r["format_ok"]) for r in applicable]),
        "format_failures": dict(sorted(failures.items())),
        "truncation_rate": _rate([r.get("finish_reason") == "length" for r in generated]),
        "mean_output_tokens": float(np.mean(out_tokens)) if out_tokens else None,
        "errors": sum(1 for r in records if r.get("error") is not None),
        "rewards_mean": reward_means,
        "variants": variants,
        "by": by,
    }


def _group(records, key):
    out = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return out


def throughput(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Generation throughput. A batch's records share its wall time, so wall_s sums distinct batches."""
    batch_time: dict[Any, float] = {}
    for r in records:
        if r.get("batch") is not None and r.get("latency_s") is not None:
            batch_time[r["batch"]] = r["latency_s"]
    wall = sum(batch_time.values())
    generated = [r for r in records if r.get("error") is None and r.get("latency_s") is not None]
    out_tokens = sum(r.get("n_output_tokens") or 0 for r in generated)
    lat = np.array([r["latency_s"] for r in generated]) if generated else None
    pct = (lambda q: float(np.percentile(lat, q))) if lat is not None else (lambda q: None)
    return {
        "wall_s": wall,
        "samples_per_s": len(generated) / wall if wall > 0 else None,
        "output_tokens_per_s": out_tokens / wall if wall > 0 else None,
        "latency_s_p50": pct(50),
        "latency_s_p90": pct(90),
        "latency_s_p99": pct(99),
        "note": "wall_s is generation time (sum of batch wall times), excluding model loading",
    }


def memory(manifest: dict[str, Any]) -> dict[str, Any]:
    """Peak memory over every session of the run (a resumed run has several)."""
    sessions = (manifest.get("measurements") or {}).get("sessions") or []
    out: dict[str, Any] = {}
    for key in ("peak_allocated_mib", "peak_reserved_mib", "nvml_peak_used_mib"):
        vals = [s["memory"][key] for s in sessions if (s.get("memory") or {}).get(key) is not None]
        out[key] = max(vals) if vals else None
    notes = {s["memory"].get("note") for s in sessions if (s.get("memory") or {}).get("note")}
    if all(v is None for v in out.values()):
        out["note"] = "; ".join(sorted(notes)) or "no memory measurement recorded"
    return out


def completeness(records: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    """Are all records there, once each? Totals and per suite; `complete` is true when every expected
    record is present exactly once. `errored` counts items whose records carry an error."""
    attempts = int((manifest.get("generation") or {}).get("n") or 1)
    keys = Counter((r["suite"], r["sample_id"], r["attempt"]) for r in records)
    suites = {}
    for entry in manifest.get("suites", []):
        name = entry["name"]
        mine = [k for k in keys if k[0] == name]
        present = len({k[1] for k in mine})
        expected = entry.get("n_items", present)  # a hand-made manifest without counts expects what is there
        suites[name] = {
            "items_expected": expected,
            "items_present": present,
            "records_expected": expected * attempts,
            "records_present": len(mine),
            "duplicated": sum(keys[k] - 1 for k in mine),
            "errored": len({r["sample_id"] for r in records if r["suite"] == name and r.get("error") is not None}),
        }
    totals = {field: sum(s[field] for s in suites.values()) for field in (
        "items_expected", "items_present", "records_expected", "records_present", "duplicated", "errored")}
    stray = sum(1 for k in keys if k[0] not in suites)
    complete = (totals["records_present"] == totals["records_expected"] and totals["duplicated"] == 0
                and not stray)
    return {"complete": complete, **totals, "suites": suites}


def compute_metrics(records: list[dict[str, Any]], manifest: dict[str, Any],
                    suite_specs: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> Metrics:
    """suite_specs: suite name -> (breakdown fields, multi-label fields)."""
    state = completeness(records, manifest)
    records = first_of_each_key(records)
    by_suite = _group(records, lambda r: r["suite"])
    suites = {}
    for name in [s["name"] for s in manifest.get("suites", [])] or sorted(by_suite):
        breakdowns, multi = suite_specs.get(name, ((), ()))
        suites[name] = suite_metrics(by_suite.get(name, []), breakdowns, multi)
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run_id": manifest.get("run_id"),
        "completeness": state,
        "suites": suites,
        "throughput": throughput(records),
        "memory": memory(manifest),
    }
