"""Benchmark: scoring and metrics for 10,000 records (target: under 2 s on a CPU).

Run with timings:  uv run pytest tests/test_bench_scoring.py --benchmark-enable
(Plain `pytest` runs each benchmark once, as a test, without timing.)
"""

from __future__ import annotations

import random

import pytest

from core.formats import REASONING_SOLUTION
from harness.metrics import compute_metrics
from harness.runner import score_record, suite_specs
from suites import SUITES
from suites.base import LoadOptions

N_RECORDS = 10_000
RESPONSES = (
    "<REASONING>Add the two numbers: {g} in total.</REASONING><SOLUTION>{g}</SOLUTION>",
    "<REASONING>The bars sum to {g}.</REASONING><SOLUTION>{g}</SOLUTION> extra",
    "I think the answer is {g} but let me check... it is 7.",
    "<REASONING>long reasoning cut off at the limit",
    "addCriterion\naddCriterion\n\n",
    "<SOLUTION>(B)</SOLUTION><REASONING>backwards</REASONING>",
)


def make_records(n: int = N_RECORDS) -> tuple[list[dict], dict]:
    rng = random.Random(0)
    items = [i for name in ("synth_arith", "synth_charts") for i in SUITES[name].load(LoadOptions("train"))]
    records = []
    for k in range(n):
        item = items[k % len(items)]
        records.append({
            "suite": item.suite, "sample_id": item.sample_id, "attempt": k // len(items), "question": item.question,
            "choices": item.choices, "gold": item.gold, "image": None, "prompt_sha256": "0" * 64,
            "response": rng.choice(RESPONSES).format(g=item.gold), "n_prompt_tokens": 100,
            "n_output_tokens": rng.randint(5, 300), "finish_reason": rng.choice(["stop", "length"]),
            "latency_s": 1.0, "batch": f"0-{k // 32}", "error": None,
            "target": {"answer_type": item.answer_type, "unit": item.unit, "precision": item.precision},
            "meta": item.meta,
        })
    manifest = {"run_id": "bench", "suites": [{"name": "synth_arith"}, {"name": "synth_charts"}],
                "generation": {"n": 1}, "measurements": {"sessions": []}}
    return records, manifest


@pytest.fixture(scope="module")
def workload():
    return make_records()


def score_and_aggregate(records, manifest):
    suites = {name: SUITES[name] for name in ("synth_arith", "synth_charts")}
    for r in records:
        score_record(r, suites[r["suite"]], REASONING_SOLUTION)
    return compute_metrics(records, manifest, suite_specs(manifest))


def test_bench_score_and_metrics_10k(benchmark, workload):
    records, manifest = workload
    metrics = benchmark.pedantic(score_and_aggregate, args=(records, manifest), rounds=3, iterations=1)
    assert sum(m["n_records"] for m in metrics["suites"].values()) == N_RECORDS
    assert 0 < metrics["suites"]["synth_arith"]["format_compliance"] < 1
    if benchmark.stats is not None:  # timings are only collected with --benchmark-enable
        assert benchmark.stats.stats.mean < 2.0
