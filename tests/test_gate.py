"""The regression gate: pass, regression, format floor, incomparable runs (each exit code and message),
Holm over suites, and an A/A simulation bounding its false-alarm rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from core.errors import ConfigError, RunDirError
from harness.cli import cli
from reports.gate import gate
from reports.runs import Run, load_run
from tests.fixtures.run_fixture import write_run


def _items(n_right, n_wrong, start=0, **extra):
    flags = [True] * n_right + [False] * n_wrong
    return [{"sample_id": f"q{start + i:03d}", "correct": c, **extra} for i, c in enumerate(flags)]


def _flip(items, n_break=0, n_fix=0):
    """A copy where the first n_break right items turn wrong and the first n_fix wrong ones right."""
    out, broken, fixed = [], 0, 0
    for item in items:
        item = dict(item)
        if item["correct"] and broken < n_break:
            item["correct"], broken = False, broken + 1
        elif not item["correct"] and fixed < n_fix:
            item["correct"], fixed = True, fixed + 1
        out.append(item)
    return out


def _invoke(*args):
    return CliRunner().invoke(cli, ["gate", *(str(a) for a in args)])


@pytest.fixture
def base_items():
    return {"synth_arith": _items(80, 20), "synth_charts": _items(70, 30)}


def test_pass_when_the_candidate_is_no_worse(tmp_path, base_items):
    base = write_run(tmp_path, "base", base_items)
    cand_items = {"synth_arith": _flip(base_items["synth_arith"], n_break=2, n_fix=3),
                  "synth_charts": base_items["synth_charts"]}
    cand = write_run(tmp_path, "cand", cand_items)
    result = _invoke("--baseline", base, "--candidate", cand)
    assert result.exit_code == 0, result.output
    first, _, rest = result.stdout.partition("\n")
    assert first.startswith("PASS: no regression on 2 suite(s)")
    assert "| synth_arith | 100 | 80.0% | 81.0% | +1.0 |" in rest
    assert "| synth_charts | 100 | 70.0% | 70.0% | +0.0 |" in rest

    as_json = _invoke("--baseline", base, "--candidate", cand, "--json")
    data = json.loads(as_json.stdout)
    assert as_json.exit_code == 0 and data["verdict"] == "pass" and data["exit_code"] == 0
    arith = data["suites"][0]
    assert (arith["suite"], arith["n_fixed"], arith["n_broken"]) == ("synth_arith", 3, 2)
    assert arith["delta_points"] == pytest.approx(1.0)
    assert as_json.stderr.startswith("PASS")


def test_regression_fails_with_the_suite_and_the_drop(tmp_path, base_items):
    base = write_run(tmp_path, "base", base_items)
    cand = write_run(tmp_path, "cand", {"synth_arith": _flip(base_items["synth_arith"], n_break=12),
                                        "synth_charts": base_items["synth_charts"]})
    result = _invoke("--baseline", base, "--candidate", cand)
    assert result.exit_code == 1, result.output
    # 12 broken, 0 fixed: p = 2 / 2^12 = 0.000488, times 2 suites (Holm) = 0.000977
    assert result.stdout.splitlines()[0] == ("FAIL: synth_arith dropped 12.0 points (80.0% -> 68.0%, "
                                             "12 broken / 0 fixed, p=0.000977 after Holm)")
    assert "| regression |" in result.stdout
    # the same drop passes when more is allowed, or when only the other suite is gated
    assert _invoke("--baseline", base, "--candidate", cand, "--max-drop", 15).exit_code == 0
    assert _invoke("--baseline", base, "--candidate", cand, "--suite", "synth_charts").exit_code == 0


def test_a_drop_without_statistical_support_passes(tmp_path):
    base_items = {"s": _items(80, 20)}
    base = write_run(tmp_path, "base", base_items)
    cand = write_run(tmp_path, "cand", {"s": _flip(base_items["s"], n_break=3)})  # p = 2/8 = 0.25
    result = gate(base, cand, max_drop=1.0)
    assert result.exit_code == 0 and result.rows[0].verdict == "drop not significant"
    assert result.rows[0].comparison.p_value == pytest.approx(0.25)


def test_holm_over_gated_suites(tmp_path):
    # 6 broken, 0 fixed on each suite: p = 2 / 2^6 = 0.03125 < 0.05 alone,
    # but Holm over two equal p-values gives 2 * 0.03125 = 0.0625 for both
    base_items = {"s1": _items(50, 50), "s2": _items(50, 50)}
    base = write_run(tmp_path, "base", base_items)
    cand = write_run(tmp_path, "cand", {k: _flip(v, n_break=6) for k, v in base_items.items()})
    alone = gate(base, cand, suites=["s1"])
    assert alone.exit_code == 1 and alone.rows[0].comparison.p_adjusted == pytest.approx(0.03125)
    both = gate(base, cand)
    assert both.exit_code == 0
    assert [r.comparison.p_adjusted for r in both.rows] == pytest.approx([0.0625, 0.0625])


def test_format_floor(tmp_path):
    base = write_run(tmp_path, "base", {"s": _items(80, 20)})
    items = _items(80, 20)
    for item in items[:10]:
        item["format_ok"] = False
    cand = write_run(tmp_path, "cand", {"s": items})
    assert _invoke("--baseline", base, "--candidate", cand, "--min-format", 0.9).exit_code == 0
    result = _invoke("--baseline", base, "--candidate", cand, "--min-format", 0.95)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "FAIL: s format compliance 90.0% is below the floor 95.0%"
    data = json.loads(_invoke("--baseline", base, "--candidate", cand, "--min-format", 0.95, "--json").stdout)
    row = data["suites"][0]
    assert row["cand_format_compliance"] == pytest.approx(0.9) and row["verdict"] == "format"
    assert row["base_format_compliance"] == 1.0


def test_format_floor_needs_a_checkable_format(tmp_path):
    base = write_run(tmp_path, "base", {"s": _items(5, 5)}, prompt_format="official")
    cand = write_run(tmp_path, "cand", {"s": _items(5, 5)}, prompt_format="official")
    result = _invoke("--baseline", base, "--candidate", cand, "--min-format", 0.9)
    assert result.exit_code == 2
    assert "has no format to check" in result.stderr


@pytest.mark.parametrize(("cand_kwargs", "message"), [
    ({"suites": {"other": _items(5, 5)}}, "runs are not comparable: cand has no suite s"),
    ({"content_sha256": "f" * 64}, "s: items differ between base and cand"),
    ({"suite_overrides": {"s": {"split": "train"}}}, "s: split 'test' in base, 'train' in cand"),
    ({"suite_overrides": {"s": {"variant": "numeric"}}}, "s: variant None in base, 'numeric' in cand"),
    ({"prompt_format": "think-answer"}, "prompt format 'reasoning-solution' in base, 'think-answer' in cand"),
    ({"generation": {"max_new_tokens": 512}}, "generation differs between base and cand: max_new_tokens 1024 vs 512"),
    ({"status": "error"}, "run cand is not finished (error: the run stopped with an error)"),
])
def test_incomparable_runs_exit_2(tmp_path, cand_kwargs, message):
    base = write_run(tmp_path, "base", {"s": _items(5, 5)})
    cand_kwargs = dict(cand_kwargs)
    suites = cand_kwargs.pop("suites", {"s": _items(5, 5)})
    cand = write_run(tmp_path, "cand", suites, **cand_kwargs)
    result = _invoke("--baseline", base, "--candidate", cand)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "\n" not in result.stderr.strip()  # one line
    data = json.loads(_invoke("--baseline", base, "--candidate", cand, "--json").stdout)
    assert data["exit_code"] == 2 and data["verdict"] == "error" and message in data["reason"]


def test_unusable_input_exit_2(tmp_path):
    base = write_run(tmp_path, "base", {"s": _items(5, 5)})
    missing = _invoke("--baseline", base, "--candidate", tmp_path / "nope")
    assert missing.exit_code == 2 and missing.stderr.startswith("error: run directory not found")
    broken = write_run(tmp_path, "broken", {"s": _items(5, 5)})
    (broken / "manifest.json").write_text("{not json")
    bad = _invoke("--baseline", base, "--candidate", broken)
    assert bad.exit_code == 2 and "manifest.json is not valid JSON" in bad.stderr
    unknown_suite = _invoke("--baseline", base, "--candidate", base, "--suite", "nope")
    assert unknown_suite.exit_code == 2 and "base has no suite nope" in unknown_suite.stderr
    bad_alpha = _invoke("--baseline", base, "--candidate", base, "--alpha", 1.5)
    assert bad_alpha.exit_code == 2 and "--alpha must be between 0 and 1" in bad_alpha.stderr
    with pytest.raises(RunDirError):
        gate(tmp_path / "nope", base)
    with pytest.raises(ConfigError, match="--min-format"):
        gate(base, base, min_format=95)


def test_overlap_is_a_warning_not_an_error(tmp_path):
    base = write_run(tmp_path, "base", {"s": _items(5, 5)})
    ckpt = {"dir": str(tmp_path / "gone"), "algo": "gspo", "engine": "trl", "base_model": "tiny", "step": 40,
            "effectively_on_policy": True, "overlap": {"n": 2, "suites": {"s": ["q000", "q001"]}}}
    cand = write_run(tmp_path, "cand", {"s": _items(5, 5)}, checkpoint=ckpt)
    result = gate(base, cand)
    assert result.exit_code == 0
    assert result.warnings == ["tiny gspo step 40: 2 item(s) of s were in its training data"]
    assert "- ⚠️ tiny gspo step 40: 2 item(s) of s were in its training data" in result.to_markdown()


# --- A/A simulation: the same model evaluated twice with sampling noise ------------------------------
SIM_MANIFEST = {"schema_version": 1, "status": "finished", "prompt_format": "reasoning-solution",
                "generation": {"max_new_tokens": 1024, "temperature": 0.6, "top_p": 1.0, "top_k": 0, "n": 1,
                               "seed": 0},
                "suites": [{"name": "sim", "split": "test", "variant": None, "content_sha256": "0" * 64}]}


def _memory_run(label: str, correct: np.ndarray) -> Run:
    records = [{"suite": "sim", "sample_id": str(i), "attempt": 0, "correct": bool(c), "format_ok": True}
               for i, c in enumerate(correct)]
    return Run(path=Path(label), manifest={**SIM_MANIFEST, "run_id": label}, metrics={}, records=records,
               label=label)


def _alarm_rate(rng, n_pairs, n_items, max_drop, alpha, shift=0.0):
    alarms = 0
    for _ in range(n_pairs):
        p = rng.beta(0.5, 0.5, size=n_items)  # items mostly easy or hard, as real suites are
        base = _memory_run("base", rng.random(n_items) < p)
        cand = _memory_run("cand", rng.random(n_items) < np.clip(p - shift, 0, 1))
        alarms += gate(base, cand, max_drop=max_drop, alpha=alpha, n_boot=20).exit_code == 1
    return alarms / n_pairs


def test_aa_simulation_false_alarm_rate_is_below_alpha():
    rng = np.random.default_rng(2024)
    alpha = 0.05
    rate_default = _alarm_rate(rng, 500, 200, max_drop=1.0, alpha=alpha)
    rate_no_margin = _alarm_rate(rng, 500, 200, max_drop=0.0, alpha=alpha)
    print(f"A/A false alarm rate: {rate_default:.3f} (max_drop 1), {rate_no_margin:.3f} (max_drop 0)")
    assert rate_default <= alpha
    assert rate_no_margin <= alpha
    # and the gate is not blind: lowering every item's p by 0.2 (about 17 points after clipping at 0)
    # is caught nearly always
    assert _alarm_rate(rng, 50, 200, max_drop=1.0, alpha=alpha, shift=0.2) >= 0.9


def test_gate_accepts_loaded_runs_and_reports_labels(tmp_path):
    base = load_run(write_run(tmp_path, "base", {"s": _items(5, 5)}))
    cand = load_run(write_run(tmp_path, "cand", {"s": _items(5, 5)}))
    result = gate(base, cand)
    assert (result.baseline, result.candidate, result.exit_code) == ("base", "cand", 0)
    assert json.loads(result.to_json())["settings"]["suites"] == ["s"]


def test_gate_on_runs_written_by_the_runner(tmp_path):
    """Real run directories (the evaluation loop with a scripted backend), not handwritten ones."""
    from harness.backends.scripted import ScriptedBackend
    from harness.config import EvalConfig
    from harness.runner import run_eval
    from suites import SUITES
    from suites.base import LoadOptions

    suite = SUITES["synth_arith"]
    gold = {i.sample_id: i.gold for i in suite.load(LoadOptions(split=suite.default_split))}

    def answers(right):
        def answer(request, attempt):
            sample_id = request.request_id.split("/", 1)[1]
            value = int(gold[sample_id]) + (0 if right(sample_id) else 1)
            return f"<REASONING>r</REASONING><SOLUTION>{value}</SOLUTION>"
        return answer

    def evaluate(name, right):
        cfg = EvalConfig.from_dict({"model": "scripted", "suites": ["synth_arith"], "limit": 12,
                                    "out": str(tmp_path / name)})
        return run_eval(cfg, backend=ScriptedBackend(answers(right)), progress=False)

    base = evaluate("base", lambda sid: True)
    rerun = evaluate("rerun", lambda sid: True)
    worse = evaluate("worse", lambda sid: int(sid[-2:]) % 3 == 0)  # 8 of 12 broken: p = 2 / 2^8
    assert gate(base, rerun).exit_code == 0
    result = gate(base, worse)
    assert result.exit_code == 1 and result.rows[0].comparison.n_broken == 8
    assert result.rows[0].comparison.p_value == pytest.approx(2 / 256)
