"""Metrics, recomputed from records (and the manifest's run-level measurements) only.

`accuracy` is the verdict of the run's scoring mode (the manifest's `scoring`); `accuracy_strict` and
`accuracy_official` are both verdicts side by side, and `no_answer_rate` the share of generated
records from which no answer was extracted (abstentions, empty or unreadable responses).

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

from harness.judge_metrics import judge_metrics
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


def _verdict_accuracy(records: list[dict[str, Any]], key: str) -> float | None:
    """avg@n accuracy of one verdict (correct_strict, correct_official); None when a record lacks it
    (a run written before both verdicts were kept, until it is rescored)."""
    if not records or any(r.get(key) is None for r in records):
        return None
    return float(np.mean(list(_item_means(records, key).values())))


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
    # A record written before `answered` existed counts as answered when something was extracted.
    answered = [r.get("answered", r.get("extracted") is not None) for r in generated]
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

    out = {
        "n": len(item_means),
        "n_records": len(records),
        "attempts_per_item": attempts,
        "accuracy": accuracy,
        "accuracy_ci95": accuracy_interval(list(item_means.values()), attempts),
        "accuracy_strict": _verdict_accuracy(records, "correct_strict"),
        "accuracy_official": _verdict_accuracy(records, "correct_official"),
        "no_answer_rate": _rate([not a for a in answered]),
        "format_compliance": _rate([bool(r["format_ok"]) for r in applicable]),
        "format_failures": dict(sorted(failures.items())),
        "truncation_rate": _rate([r.get("finish_reason") == "length" for r in generated]),
        "mean_output_tokens": float(np.mean(out_tokens)) if out_tokens else None,
        "errors": sum(1 for r in records if r.get("error") is not None),
        "rewards_mean": reward_means,
        "variants": variants,
        "by": by,
    }
    judged = judge_metrics(records)
    if judged is not None:  # a judge pass looked at some record: its figures beside the rules'
        out["llm_judge"] = judged
    return out


def _group(records, key):
    out = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return out


def _percentiles(values: list[float], name: str) -> dict[str, float | None]:
    arr = np.array(values) if values else None
    return {f"{name}_p{q}": (float(np.percentile(arr, q)) if arr is not None else None) for q in (50, 90, 99)}


def throughput(records: list[dict[str, Any]], sessions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Generation throughput, the same for every backend. wall_s is the sessions' generation time
    (harness/run_session.py says what it counts); a run written before sessions recorded it sums the
    wall times of its distinct batches. Prompt tokens count once per item."""
    timed = {str(i) for i, s in enumerate(sessions or []) if s.get("generation_s") is not None}
    wall = sum(s["generation_s"] for s in (sessions or []) if s.get("generation_s") is not None)
    batch_time: dict[Any, float] = {}
    for r in records:
        batch = r.get("batch")
        if batch is not None and r.get("latency_s") is not None and str(batch).split("-")[0] not in timed:
            batch_time[batch] = r["latency_s"]
    wall += sum(batch_time.values())
    generated = [r for r in records if r.get("error") is None and r.get("latency_s") is not None]
    out_tokens = sum(r.get("n_output_tokens") or 0 for r in generated)
    prompts = {(r["suite"], r["sample_id"]): r.get("n_prompt_tokens") or 0 for r in generated}
    prompt_tokens = sum(prompts.values())
    per_token = [(r["request_latency_s"] - r["ttft_s"]) / (r["n_output_tokens"] - 1) for r in generated
                 if r.get("request_latency_s") is not None and r.get("ttft_s") is not None
                 and (r.get("n_output_tokens") or 0) > 1]

    def rate(amount: float) -> float | None:
        return amount / wall if wall > 0 else None

    return {
        "wall_s": wall,
        "samples_per_s": rate(len(generated)),
        "output_tokens_per_s": rate(out_tokens),
        "prompt_tokens_per_s": rate(prompt_tokens),
        "total_tokens_per_s": rate(out_tokens + prompt_tokens),
        "output_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        **_percentiles([r["latency_s"] for r in generated], "latency_s"),
        **_percentiles([r["ttft_s"] for r in generated if r.get("ttft_s") is not None], "ttft_s"),
        **_percentiles(per_token, "tpot_s"),
        "note": "wall_s is generation time, excluding model loading; latency_s is per request for a streaming "
                "backend, the batch's wall time for a batch backend",
    }


def timings(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a run's time went, summed over its sessions: model load and engine start-up, preparing
    prompts, generation, scoring, writing records, and each session's whole wall time."""
    out: dict[str, Any] = {}
    for key in ("load_time_s", "prepare_s", "generation_s", "scoring_s", "writing_s", "wall_s"):
        values = [s[key] for s in sessions if s.get(key) is not None]
        out[key] = round(sum(values), 3) if values else None
    out["sessions"] = len(sessions)
    return out


def memory(manifest: dict[str, Any]) -> dict[str, Any]:
    """Peak memory over every session of the run (a resumed run has several): the maximum of each
    labelled figure the backends reported (torch's counters, NVML, vLLM's weights and KV cache)."""
    sessions = (manifest.get("measurements") or {}).get("sessions") or []
    out: dict[str, Any] = {key: None for key in ("peak_allocated_mib", "peak_reserved_mib", "nvml_peak_used_mib")}
    for session in sessions:
        for key, value in (session.get("memory") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = value if out.get(key) is None else max(out[key], value)
            else:
                out.setdefault(key, None)
    out.pop("note", None)
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
    sessions = (manifest.get("measurements") or {}).get("sessions") or []
    records = first_of_each_key(records)
    by_suite = _group(records, lambda r: r["suite"])
    suites = {}
    for name in [s["name"] for s in manifest.get("suites", [])] or sorted(by_suite):
        breakdowns, multi = suite_specs.get(name, ((), ()))
        suites[name] = suite_metrics(by_suite.get(name, []), breakdowns, multi)
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run_id": manifest.get("run_id"),
        "scoring": manifest.get("scoring", "strict"),
        "completeness": state,
        "suites": suites,
        "throughput": throughput(records, sessions),
        "timings": timings(sessions),
        "memory": memory(manifest),
    }
