"""Paired statistics for comparing two runs on the same items.

Both runs answered the same items, so the comparison is paired: McNemar's exact test on the items
one run got right and the other wrong, and a bootstrap over items for the accuracy difference.
Several comparisons at once (suites x candidates) are corrected with Holm's step-down method.

    from reports.stats import compare_all
    for c in compare_all(load_runs(["runs/base", "runs/cand"])):
        print(c.suite, f"{100 * c.delta:+.1f} points", c.p_adjusted)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError
from reports.runs import Run

# Bootstrap resamples are drawn in blocks so that memory stays bounded on large suites.
_BOOT_BLOCK_CELLS = 2_000_000


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b = baseline right / candidate wrong, c = the reverse.

    Under "no difference" each discordant item is equally likely to go either way, so
    min(b, c) ~ Binomial(b + c, 1/2); the p-value doubles the lower tail (capped at 1).

        mcnemar_exact(1, 6)  # 0.125
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    # Exact integer arithmetic (C(n, i+1) = C(n, i) * (n - i) / (i + 1)); one rounding at the end.
    term = total = 1
    for i in range(min(b, c)):
        term = term * (n - i) // (i + 1)
        total += term
    return min(1.0, 2 * total / 2**n)


def paired_bootstrap(base: Sequence[float], cand: Sequence[float], n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """(delta, lo, hi): delta = mean(cand) - mean(base), with a percentile interval from resampling items.

    Items are resampled with replacement and both runs keep their pairing, so the interval reflects
    the item-level correlation between the runs (narrower than two independent intervals).

        paired_bootstrap([1, 0, 1, 1], [1, 1, 1, 1], seed=0)  # (0.25, 0.0, 0.75)
    """
    a = np.asarray(base, dtype=float)
    b = np.asarray(cand, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"base and cand must be equal-length sequences, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("paired_bootstrap needs at least one item")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    diffs = b - a
    n = len(diffs)
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_BLOCK_CELLS // n)
    means = np.empty(n_boot)
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        means[start:start + rows] = diffs[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(diffs.mean()), float(lo), float(hi)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    The k-th smallest of m p-values is multiplied by (m - k + 1); the running maximum keeps the
    adjusted values monotone, and they are capped at 1. Reject where adjusted < alpha.

        holm([0.01, 0.04, 0.03])  # [0.03, 0.06, 0.06]
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class PairedComparison:
    """One candidate vs the baseline on one suite; accuracies and delta are 0-1 fractions."""

    suite: str
    n_items: int
    base_acc: float
    cand_acc: float
    delta: float
    ci_low: float
    ci_high: float
    n_fixed: int  # baseline wrong, candidate right (majority over attempts)
    n_broken: int  # baseline right, candidate wrong
    p_value: float
    p_adjusted: float
    baseline: str = ""  # run labels, so a flat list of comparisons says which runs it compares
    candidate: str = ""


def compare(base: Run, cand: Run, suite: str, n_boot: int = 2000, seed: int = 0) -> PairedComparison:
    """Compare cand with base on the sample_ids both runs have for `suite`.

    With several attempts per item, McNemar uses each item's majority (mean >= 0.5) and the
    bootstrap the item means. p_adjusted equals p_value here (compare_all adjusts).

        c = compare(base, cand, "synth_arith")
        print(f"{100 * c.delta:+.1f} points [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}], p={c.p_value:.3f}")
    """
    for run in (base, cand):
        if suite not in run.suites():
            raise ConfigError(f"suite {suite} is not in run {run.label}")
    a, b = base.item_correct(suite), cand.item_correct(suite)
    ids = sorted(set(a) & set(b))
    if not ids:
        raise ConfigError(f"{suite}: runs {base.label} and {cand.label} share no items")
    base_means = [a[i] for i in ids]
    cand_means = [b[i] for i in ids]
    broken = sum(1 for x, y in zip(base_means, cand_means, strict=True) if x >= 0.5 > y)
    fixed = sum(1 for x, y in zip(base_means, cand_means, strict=True) if y >= 0.5 > x)
    delta, lo, hi = paired_bootstrap(base_means, cand_means, n_boot=n_boot, seed=seed)
    p = mcnemar_exact(broken, fixed)
    return PairedComparison(suite=suite, n_items=len(ids), base_acc=float(np.mean(base_means)),
                            cand_acc=float(np.mean(cand_means)), delta=delta, ci_low=lo, ci_high=hi,
                            n_fixed=fixed, n_broken=broken, p_value=p, p_adjusted=p,
                            baseline=base.label, candidate=cand.label)


def compare_all(runs: list[Run], suites: list[str] | None = None, n_boot: int = 2000,
                seed: int = 0) -> list[PairedComparison]:
    """Every run after the first vs runs[0] on every suite, Holm-adjusted over all of the comparisons.

    suites: default the baseline's suites. A (run, suite) pair is skipped when either run lacks the
    suite or they share no items (comparability() reports that).

        rows = compare_all(load_runs(["runs/base", "runs/a", "runs/b"]))
    """
    if len(runs) < 2:
        return []
    base = runs[0]
    wanted = suites if suites is not None else base.suites()
    out = []
    for cand in runs[1:]:
        for suite in wanted:
            if suite not in base.suites() or suite not in cand.suites():
                continue
            if not set(base.item_correct(suite)) & set(cand.item_correct(suite)):
                continue
            out.append(compare(base, cand, suite, n_boot=n_boot, seed=seed))
    for row, adjusted in zip(out, holm([r.p_value for r in out]), strict=True):
        row.p_adjusted = adjusted
    return out
