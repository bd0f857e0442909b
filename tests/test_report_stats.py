"""Paired statistics against hand-computed values, and compare() on handwritten run directories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import ConfigError
from reports.runs import load_run, load_runs
from reports.stats import compare, compare_all, holm, mcnemar_exact, paired_bootstrap
from tests.fixtures.run_fixture import write_run


# --- McNemar ------------------------------------------------------------------------------------------
# Two-sided exact p = 2 * P(X <= min(b, c)), X ~ Binomial(b + c, 1/2), capped at 1.
@pytest.mark.parametrize(("b", "c", "expected"), [
    # n = 7: P(X <= 1) = (C(7,0) + C(7,1)) / 2^7 = (1 + 7) / 128 = 1/16; doubled: 1/8
    (1, 6, 0.125),
    (6, 1, 0.125),
    # n = 5: P(X <= 0) = 1 / 32; doubled: 1/16
    (0, 5, 0.0625),
    # n = 30: sum_{i<=10} C(30,i) = 1+30+435+4060+27405+142506+593775+2035800+5852925+14307150+30045015
    #                             = 53,009,102; p = 2 * 53,009,102 / 2^30 = 106,018,204 / 1,073,741,824
    (10, 20, 106_018_204 / 1_073_741_824),
    # n = 2: P(X <= 1) = 3/4; doubled 1.5, capped at 1
    (1, 1, 1.0),
    # no discordant pairs: no evidence either way
    (0, 0, 1.0),
    # n = 1: P(X <= 0) = 1/2; doubled: 1
    (0, 1, 1.0),
])
def test_mcnemar_exact_hand_computed(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_large_counts_match_the_normal_approximation():
    # b=500, c=600: continuity-corrected chi2 = (|b - c| - 1)^2 / (b + c) = 99^2 / 1100 = 8.91, whose
    # p-value is erfc(sqrt(8.91 / 2)) = 0.00284; the exact test agrees closely at this size.
    approx = math.erfc(math.sqrt(99**2 / 1100 / 2))
    assert mcnemar_exact(500, 600) == pytest.approx(approx, rel=0.05)
    assert 0 < mcnemar_exact(5000, 5400) < 1e-4  # no float overflow or underflow at large n


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 3)


# --- Holm -----------------------------------------------------------------------------------------------
def test_holm_on_a_handwritten_list():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1 and monotone: 0.5*2 = 1.0, then max(1.0, 0.6) = 1.0
    assert holm([0.6, 0.5]) == [1.0, 1.0]
    assert holm([0.02]) == [0.02]
    assert holm([]) == []


# --- bootstrap ------------------------------------------------------------------------------------------
def test_bootstrap_interval_contains_delta_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    base = rng.random(1600) < 0.6
    cand = np.where(rng.random(1600) < 0.8, base, ~base)  # paired: 80% of items agree
    widths = []
    for n in (50, 200, 1600):
        delta, lo, hi = paired_bootstrap(base[:n], cand[:n], seed=0)
        assert delta == pytest.approx(cand[:n].mean() - base[:n].mean())
        assert lo <= delta <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # the interval is about the normal one, +-1.96 * sd(diffs) / sqrt(n), halving when n quadruples
    diffs = cand.astype(float) - base.astype(float)
    normal_width = 2 * 1.96 * diffs.std(ddof=1) / math.sqrt(1600)
    assert widths[2] == pytest.approx(normal_width, rel=0.15)


def test_bootstrap_is_deterministic_for_a_seed():
    base = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1] * 5
    cand = [1, 1, 1, 0, 0, 1, 1, 0, 1, 1] * 5
    assert paired_bootstrap(base, cand, seed=3) == paired_bootstrap(base, cand, seed=3)
    assert paired_bootstrap(base, cand, seed=3)[1:] != paired_bootstrap(base, cand, seed=4)[1:]


def test_bootstrap_of_identical_runs_is_a_point():
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)


def test_bootstrap_rejects_unpaired_input():
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([1, 0], [1])
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap([], [])


# --- compare on run directories ----------------------------------------------------------------------
def _items(correct):
    return [{"sample_id": f"q{i:02d}", "correct": c} for i, c in enumerate(correct)]


def test_compare_counts_fixed_and_broken_items(tmp_path):
    base_correct = [True] * 14 + [False] * 6
    cand_correct = list(base_correct)
    cand_correct[0] = cand_correct[1] = False  # 2 broken
    for i in range(14, 19):  # 5 fixed
        cand_correct[i] = True
    base = load_run(write_run(tmp_path, "base", {"synth_arith": _items(base_correct)}))
    cand = load_run(write_run(tmp_path, "cand", {"synth_arith": _items(cand_correct)}))
    c = compare(base, cand, "synth_arith")
    assert (c.n_items, c.n_broken, c.n_fixed) == (20, 2, 5)
    assert (c.base_acc, c.cand_acc) == (pytest.approx(0.70), pytest.approx(0.85))
    assert c.delta == pytest.approx(0.15)
    assert c.ci_low <= c.delta <= c.ci_high
    # n = 7: 2 * (C(7,0) + C(7,1) + C(7,2)) / 2^7 = 2 * 29 / 128
    assert c.p_value == pytest.approx(58 / 128) and c.p_adjusted == c.p_value
    assert (c.baseline, c.candidate) == ("base", "cand")


def test_compare_uses_shared_items_and_majority_over_attempts(tmp_path):
    base = load_run(write_run(tmp_path, "base", {"s": [
        {"sample_id": "a", "correct": [True, True, False]},
        {"sample_id": "b", "correct": [False, False, True]},
        {"sample_id": "only-base", "correct": [True, True, True]},
    ]}, attempts=3))
    cand = load_run(write_run(tmp_path, "cand", {"s": [
        {"sample_id": "a", "correct": [False, False, True]},  # majority right -> wrong: broken
        {"sample_id": "b", "correct": [False, True, False]},  # stays wrong
    ]}, attempts=3))
    c = compare(base, cand, "s")
    assert c.n_items == 2 and (c.n_broken, c.n_fixed) == (1, 0)
    # item means: base (2/3 + 1/3) / 2 = 0.5, cand (1/3 + 1/3) / 2 = 1/3
    assert c.base_acc == pytest.approx(0.5) and c.cand_acc == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="suite nope is not in run base"):
        compare(base, cand, "nope")


def test_compare_all_holm_adjusts_over_every_comparison(tmp_path):
    base_items = {"s1": _items([True] * 10 + [False] * 10), "s2": _items([True] * 20)}
    worse = {"s1": _items([False] * 20), "s2": _items([True] * 12 + [False] * 8)}
    better = {"s1": _items([True] * 20), "s2": _items([True] * 20)}
    runs = load_runs([write_run(tmp_path, n, items)
                      for n, items in (("base", base_items), ("worse", worse), ("better", better))])
    rows = compare_all(runs)
    assert [(r.candidate, r.suite) for r in rows] == [("worse", "s1"), ("worse", "s2"),
                                                      ("better", "s1"), ("better", "s2")]
    assert [r.p_adjusted for r in rows] == pytest.approx(holm([r.p_value for r in rows]))
    assert rows[3].p_value == 1.0 and rows[3].delta == 0.0
    assert compare_all(runs, suites=["s2"])[0].suite == "s2"
    assert compare_all(runs[:1]) == []
