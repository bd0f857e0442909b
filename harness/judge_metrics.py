"""The LLM judge's figures in a suite's metrics (`suites.<name>.llm_judge`), from the records' `llm_judge`
verdicts beside the rules' `correct` (harness/llm_judge.py writes them):

    judge_metrics(records) -> {"judged": 12, "verdicts": 12, "accuracy": 0.5, "agreement": 0.75, ...} or None

`accuracy` takes the judge's verdict where it gave one and the rules' elsewhere, averaged per item like
the suite's accuracy (avg@n). Calls, tokens and latency count each distinct prompt once: records with
the same prompt share one call.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def judge_metrics(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    judged = [r for r in records if r.get("llm_judge")]
    if not judged:
        return None
    with_verdict = [r for r in judged if r["llm_judge"].get("correct") is not None]
    by_item: dict[str, list[float]] = defaultdict(list)
    for r in records:
        verdict = (r.get("llm_judge") or {}).get("correct")
        by_item[r["sample_id"]].append(float(bool(r["correct"]) if verdict is None else verdict))
    means = [sum(v) / len(v) for v in by_item.values()]
    calls = {c["prompt_sha256"]: c for r in judged for c in r["llm_judge"].get("calls") or []}
    return {
        "judged": len(judged),
        "verdicts": len(with_verdict),
        "accuracy": sum(means) / len(means) if means else None,
        "agreement": (sum(r["llm_judge"]["correct"] == bool(r["correct"]) for r in with_verdict) / len(with_verdict)
                      if with_verdict else None),
        "rule_right_judge_wrong": sum(1 for r in with_verdict if r["correct"] and not r["llm_judge"]["correct"]),
        "rule_wrong_judge_right": sum(1 for r in with_verdict if not r["correct"] and r["llm_judge"]["correct"]),
        "calls": len(calls),
        "calls_from_cache": sum(1 for c in calls.values() if c.get("cached")),
        "prompt_tokens": sum(c.get("prompt_tokens") or 0 for c in calls.values()),
        "completion_tokens": sum(c.get("completion_tokens") or 0 for c in calls.values()),
        "latency_s": round(sum(c.get("latency_s") or 0.0 for c in calls.values()), 3),
    }
