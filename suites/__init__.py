"""The suite table: every benchmark the harness knows, one module each, listed once here."""

from __future__ import annotations

from core.errors import ConfigError
from suites import gsm8k, math500, mathverse, mathvista, synth_arith, synth_charts
from suites.base import Item, LoadOptions, Score, ScoringInput, Suite, Target

SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        synth_charts.SUITE,
        synth_arith.SUITE,
        mathvista.SUITE,
        mathverse.SUITE,
        gsm8k.SUITE,
        math500.SUITE,
    )
}

DEFAULT_SUITES = ("synth_charts", "synth_arith")

__all__ = ["DEFAULT_SUITES", "SUITES", "Item", "LoadOptions", "Score", "ScoringInput", "Suite", "Target",
           "get_suite"]


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}")
    return SUITES[name]
