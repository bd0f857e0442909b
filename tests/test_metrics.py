"""Metrics from records: intervals, avg@n, breakdowns, throughput, memory."""

import pytest

from harness.metrics import (
    accuracy_interval,
    compute_metrics,
    memory,
    suite_metrics,
    throughput,
    wilson_interval,
)
from harness.run_schema import METRICS_SCHEMA_VERSION


def rec(sid, correct, attempt=0, **kw):
    base = {"suite": "s", "sample_id": sid, "attempt": attempt, "correct": correct, "format_ok": True,
            "format_failures": [], "n_output_tokens": 10, "finish_reason": "stop", "latency_s": 1.0,
            "batch": "0-0", "error": None, "rewards": {"format": 2.0, "correctness": 2.0 * correct,
                                                       "total": 0.6 + 2.0 * correct}, "scores": {}, "meta": {}}
    base.update(kw)
    return base


def test_wilson_matches_hand_computed_values():
    # 8/10 at z=1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71681, half 0.22657
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == [0.0, 0.0]
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)


def test_avg_at_n_averages_attempts_per_item():
    records = [rec("a", True, 0), rec("a", False, 1), rec("b", True, 0), rec("b", True, 1)]
    m = suite_metrics(records)
    assert m["n"] == 2 and m["n_records"] == 4 and m["attempts_per_item"] == 2
    assert m["accuracy"] == pytest.approx(0.75)
    lo, hi = m["accuracy_ci95"]
    assert lo < 0.75 < hi
    assert accuracy_interval([0.5, 1.0], 2) == m["accuracy_ci95"]


def test_format_truncation_and_failure_counts():
    records = [
        rec("a", True),
        rec("b", False, format_ok=False, format_failures=["missing_answer", "unclosed"], finish_reason="length"),
        rec("c", False, format_ok=False, format_failures=["missing_answer"]),
        rec("d", False, error="image could not be decoded", format_ok=False, n_output_tokens=None,
            finish_reason=None, latency_s=None),
    ]
    m = suite_metrics(records)
    assert m["format_compliance"] == pytest.approx(0.25)
    assert m["format_failures"] == {"missing_answer": 2, "unclosed": 1}
    assert m["truncation_rate"] == pytest.approx(1 / 3)  # errored samples generated nothing
    assert m["errors"] == 1
    assert m["accuracy"] == pytest.approx(0.25)


def test_format_compliance_is_none_when_not_applicable():
    m = suite_metrics([rec("a", True, format_ok=None)])
    assert m["format_compliance"] is None


def test_breakdowns_with_multi_label_fields():
    records = [rec("a", True, meta={"task": "FQA", "skills": ["ARI", "STA"]}),
               rec("b", False, meta={"task": "FQA", "skills": ["ARI"]}),
               rec("c", True, meta={"task": "GPS", "skills": []})]
    m = suite_metrics(records, breakdowns=("task", "skills"), multi_label=("skills",))
    assert m["by"]["task"] == {"FQA": {"accuracy": 0.5, "n": 2}, "GPS": {"accuracy": 1.0, "n": 1}}
    assert m["by"]["skills"] == {"ARI": {"accuracy": 0.5, "n": 2}, "STA": {"accuracy": 1.0, "n": 1}}


def test_variant_accuracy_is_reported_beside_the_official_one():
    records = [rec("a", False, scores={"flexible_extract": {"extracted": "4", "correct": True}}),
               rec("b", False, scores={"flexible_extract": {"extracted": None, "correct": False}})]
    m = suite_metrics(records)
    assert m["accuracy"] == 0.0
    assert m["variants"] == {"flexible_extract": {"accuracy": 0.5, "n": 2}}


def test_throughput_counts_each_batch_once():
    records = [rec("a", True, batch="0-0", latency_s=2.0, n_output_tokens=10),
               rec("b", True, batch="0-0", latency_s=2.0, n_output_tokens=30),
               rec("c", True, batch="1-0", latency_s=1.0, n_output_tokens=20)]
    t = throughput(records)
    assert t["wall_s"] == pytest.approx(3.0)
    assert t["samples_per_s"] == pytest.approx(1.0)
    assert t["output_tokens_per_s"] == pytest.approx(20.0)
    assert t["latency_s_p50"] == pytest.approx(2.0)


def test_memory_is_null_with_a_note_on_cpu_and_max_over_sessions():
    cpu = {"measurements": {"sessions": [{"memory": {"peak_allocated_mib": None, "peak_reserved_mib": None,
                                                     "nvml_peak_used_mib": None, "note": "no CUDA device"}}]}}
    assert memory(cpu) == {"peak_allocated_mib": None, "peak_reserved_mib": None, "nvml_peak_used_mib": None,
                           "note": "no CUDA device"}
    gpu = {"measurements": {"sessions": [
        {"memory": {"peak_allocated_mib": 100.0, "peak_reserved_mib": 120.0, "nvml_peak_used_mib": 900.0}},
        {"memory": {"peak_allocated_mib": 150.0, "peak_reserved_mib": 110.0, "nvml_peak_used_mib": 800.0}}]}}
    assert memory(gpu) == {"peak_allocated_mib": 150.0, "peak_reserved_mib": 120.0, "nvml_peak_used_mib": 900.0}


def test_compute_metrics_lists_every_manifest_suite():
    manifest = {"run_id": "r", "suites": [{"name": "s"}, {"name": "empty"}], "measurements": {"sessions": []}}
    m = compute_metrics([rec("a", True)], manifest, {})
    assert set(m["suites"]) == {"s", "empty"}
    assert m["suites"]["empty"]["n"] == 0 and m["suites"]["empty"]["accuracy"] is None
    assert m["schema_version"] == METRICS_SCHEMA_VERSION and m["run_id"] == "r"
