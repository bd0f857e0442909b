"""The regression gate: does a candidate run lose accuracy (or format compliance) against a baseline?

A suite fails when the candidate's accuracy is lower by more than `max_drop` percentage points AND
McNemar's exact test supports the drop (p < alpha after Holm over the gated suites), or when the
candidate's format compliance is below `min_format`. Exit codes: 0 pass, 1 regression, 2 unusable
input (the runs cannot be compared).

    from reports.gate import gate
    result = gate("runs/base", "runs/cand", max_drop=1.0, alpha=0.05, min_format=0.9)
    print(result.reason)  # exit code: result.exit_code
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, HarnessError, RunDirError
from reports.runs import Run, differences, load_run
from reports.stats import PairedComparison, compare, holm

# Differences that make a comparison meaningless; a train/eval overlap is only a warning.
BLOCKING = ("suite_missing", "content", "split", "variant", "prompt_format", "scoring", "generation")


@dataclass
class GateRow:
    """One gated suite: the paired comparison (0-1 fractions), format compliance and the verdict."""

    comparison: PairedComparison
    base_format: float | None
    cand_format: float | None
    regression: bool  # dropped more than max_drop and significant after Holm
    below_format: bool
    verdict: str  # "ok", "regression", "format", "regression, format", or "drop not significant"

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {"suite": c.suite, "n_items": c.n_items, "base_accuracy": c.base_acc,
                "cand_accuracy": c.cand_acc, "delta_points": 100 * c.delta,
                "ci95_points": [100 * c.ci_low, 100 * c.ci_high], "n_fixed": c.n_fixed,
                "n_broken": c.n_broken, "p_value": c.p_value, "p_holm": c.p_adjusted,
                "base_format_compliance": self.base_format, "cand_format_compliance": self.cand_format,
                "regression": self.regression, "below_format": self.below_format, "verdict": self.verdict}


@dataclass
class GateResult:
    exit_code: int  # 0 pass, 1 regression, 2 unusable input
    reason: str  # one line
    rows: list[GateRow] = field(default_factory=list)
    baseline: str = ""
    candidate: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def unusable(cls, reason: str, **settings: Any) -> GateResult:
        return cls(exit_code=2, reason=f"error: {reason}", settings=settings)

    @property
    def verdict(self) -> str:
        return {0: "pass", 1: "fail"}.get(self.exit_code, "error")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "exit_code": self.exit_code, "reason": self.reason,
                "baseline": self.baseline, "candidate": self.candidate, "settings": self.settings,
                "suites": [r.to_dict() for r in self.rows], "warnings": self.warnings}

    def to_json(self) -> str:
        """The result as JSON (for CI scripts)."""
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        """A Markdown summary (for a pull-request comment): verdict, one table row per suite, notes."""
        icon = {0: "✅", 1: "❌"}.get(self.exit_code, "⚠️")
        lines = [f"### {icon} Regression gate: {self.verdict.upper()}", "", self.reason, ""]
        if self.rows:
            lines += [f"Baseline `{self.baseline}`, candidate `{self.candidate}`.", "",
                      ("| suite | items | baseline | candidate | Δ points | 95% CI | fixed | broken "
                       "| p (Holm) | cand. format | verdict |"),
                      "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
            for r in self.rows:
                c = r.comparison
                fmt = "n/a" if r.cand_format is None else f"{100 * r.cand_format:.1f}%"
                lines.append(f"| {c.suite} | {c.n_items} | {100 * c.base_acc:.1f}% | {100 * c.cand_acc:.1f}% "
                             f"| {100 * c.delta:+.1f} | [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}] "
                             f"| {c.n_fixed} | {c.n_broken} | {c.p_adjusted:.3g} | {fmt} | {r.verdict} |")
            lines.append("")
        if self.settings:
            lines.append(_settings_line(self.settings))
        lines += [f"- ⚠️ {w}" for w in self.warnings]
        return "\n".join(lines).rstrip() + "\n"


def _settings_line(settings: dict[str, Any]) -> str:
    parts = []
    if settings.get("suites"):
        parts.append("suites " + ", ".join(settings["suites"]))
    parts.append(f"max drop {settings.get('max_drop_points'):g} points, alpha {settings.get('alpha'):g} (Holm)")
    if settings.get("min_format") is not None:
        parts.append(f"format floor {100 * settings['min_format']:.1f}%")
    return "Settings: " + "; ".join(parts) + "."


def _format_compliance(run: Run, suite: str) -> float | None:
    values = [bool(r["format_ok"]) for r in run.records_of(suite) if r.get("format_ok") is not None]
    return sum(values) / len(values) if values else None


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _check_settings(max_drop: float, alpha: float, min_format: float | None) -> None:
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be >= 0 accuracy points, got {max_drop}")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}")
    if min_format is not None and not 0 <= min_format <= 1:
        raise ConfigError(f"--min-format is a share between 0 and 1, got {min_format}")


def _check_usable(base: Run, cand: Run, suites: list[str], allow_partial: bool = False) -> list[str]:
    """Raise for runs that cannot be compared on these suites; return the warnings. A run that is not
    finished (running, unfinished, duplicated, error) is unusable unless allow_partial."""
    for run in (base, cand):
        if run.state is not None and not run.state.finished and not allow_partial:
            raise RunDirError(f"run {run.label} is not finished ({run.state.line}); or pass --allow-partial to "
                              "gate on the items both runs have")
    found = differences([base, cand], suites)
    blocking = [message for kind, message in found if kind in BLOCKING]
    if blocking:
        raise ConfigError("runs are not comparable: " + "; ".join(blocking))
    return [message for kind, message in found if kind not in BLOCKING]


def gate(baseline: Run | str | Path, candidate: Run | str | Path, suites: list[str] | None = None,
         max_drop: float = 1.0, alpha: float = 0.05, min_format: float | None = None,
         n_boot: int = 2000, allow_partial: bool = False) -> GateResult:
    """Gate a candidate run against a baseline run (paths or loaded Runs).

    max_drop: allowed accuracy drop in percentage points; alpha: significance level after Holm over
    the gated suites (default: every suite of the baseline); min_format: floor (0-1) on the
    candidate's format compliance; allow_partial: gate runs that are not finished on the items both
    have (their state is listed in the warnings). Raises RunDirError / ConfigError for unusable input.

        result = gate("runs/base", "runs/cand", suites=["mathvista_testmini"], max_drop=2.0)
        if result.exit_code:
            print(result.to_markdown())
    """
    _check_settings(max_drop, alpha, min_format)
    base, cand = _as_run(baseline), _as_run(candidate)
    gated = list(dict.fromkeys(suites)) if suites else base.suites()
    if not gated:
        raise RunDirError(f"run {base.label} has no suites to gate")
    warnings = _check_usable(base, cand, gated, allow_partial)
    extra = [s for s in cand.suites() if s not in gated]
    if extra and not suites:
        warnings.append(f"not gated: {', '.join(extra)} (only in the candidate)")
    comparisons = [compare(base, cand, s, n_boot=n_boot) for s in gated]
    for c, adjusted in zip(comparisons, holm([c.p_value for c in comparisons]), strict=True):
        c.p_adjusted = adjusted
    rows, problems = [], []
    for c in comparisons:
        cand_format = _format_compliance(cand, c.suite)
        if min_format is not None and cand_format is None:
            raise ConfigError(f"--min-format given, but {c.suite} has no format to check "
                              f"(prompt format {cand.manifest.get('prompt_format')!r})")
        dropped = -100 * c.delta > max_drop
        regression = dropped and c.p_adjusted < alpha
        below = min_format is not None and cand_format is not None and cand_format < min_format
        verdict = ", ".join(v for v, hit in (("regression", regression), ("format", below)) if hit)
        verdict = verdict or ("drop not significant" if dropped else "ok")
        rows.append(GateRow(c, _format_compliance(base, c.suite), cand_format, regression, below, verdict))
        if regression:
            problems.append(f"{c.suite} dropped {-100 * c.delta:.1f} points ({100 * c.base_acc:.1f}% -> "
                            f"{100 * c.cand_acc:.1f}%, {c.n_broken} broken / {c.n_fixed} fixed, "
                            f"p={c.p_adjusted:.3g} after Holm)")
        if below:
            problems.append(f"{c.suite} format compliance {100 * cand_format:.1f}% is below "
                            f"the floor {100 * min_format:.1f}%")
    if problems:
        reason = "FAIL: " + "; ".join(problems)
    else:
        worst = min(comparisons, key=lambda c: c.delta)
        reason = (f"PASS: no regression on {len(rows)} suite(s) (max drop {max_drop:g} points, alpha {alpha:g}; "
                  f"largest change {100 * worst.delta:+.1f} points on {worst.suite})")
    settings = {"suites": gated, "max_drop_points": max_drop, "alpha": alpha, "min_format": min_format}
    return GateResult(exit_code=1 if problems else 0, reason=reason, rows=rows, baseline=base.label,
                      candidate=cand.label, settings=settings, warnings=warnings)


def gate_verdict(baseline: Run | str | Path, candidate: Run | str | Path, suites: list[str] | None = None,
                 max_drop: float = 1.0, alpha: float = 0.05, min_format: float | None = None,
                 allow_partial: bool = False) -> GateResult:
    """gate(), with unusable input returned as a verdict (exit code 2, reason "error: ...") instead of
    raised: what a CI script reading the JSON summary needs."""
    try:
        return gate(baseline, candidate, suites, max_drop, alpha, min_format, allow_partial=allow_partial)
    except HarnessError as exc:
        return GateResult.unusable(str(exc), suites=suites, max_drop_points=max_drop, alpha=alpha,
                                   min_format=min_format)


__all__ = ["GateResult", "GateRow", "gate", "gate_verdict"]
