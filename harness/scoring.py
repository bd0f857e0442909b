"""One response in, every judgement out: extraction, official correctness, format, rewards.

Used by the runner as results arrive, by `harness rescore` on stored records, and by the trainer's
reward functions, so the three can never disagree. In the default reward mode (`suite`) the
correctness reward is the suite's verdict itself; `recipe` keeps the notebook's string rule.
"""

from __future__ import annotations

from typing import Any

from core.formats import DEFAULT_REWARD_MODE, PromptFormat, answer_region, format_failures, rewards
from suites.base import ScoringInput, Suite, Target


def judge(suite: Suite, response: str, fmt: PromptFormat, target: Target,
          reward_weights: dict[str, float] | None = None, reward_mode: str = DEFAULT_REWARD_MODE,
          scoring: str = "strict") -> dict[str, Any]:
    """The scoring fields of a record (see docs/run-directory.md). `correct` is the verdict of the
    run's scoring mode; both verdicts are kept beside it, so a report can show them side by side."""
    region, rule = answer_region(response, fmt)
    score = suite.score(ScoringInput(response=response, region=region, region_rule=rule, target=target))
    failures = format_failures(response, fmt)
    return {
        "extracted": score.extracted,
        "extractor": score.extractor,
        "answered": score.answered,
        "correct": score.verdict(scoring),
        "correct_strict": bool(score.correct),
        "correct_official": score.verdict("official"),
        "scores": score.variants,
        "format_ok": None if failures is None else not failures,
        "format_failures": failures or [],
        "rewards": {"mode": reward_mode, **rewards(response, target.gold, fmt, score.extracted, reward_weights,
                                                   target.choices, mode=reward_mode, correct=bool(score.correct))},
    }


def failed_judgement(fmt: PromptFormat) -> dict[str, Any]:
    """Scoring fields of a sample that produced no response (a malformed item or image)."""
    applicable = fmt.reasoning_tags is not None or fmt.name == "boxed"
    return {
        "extracted": None, "extractor": "none", "answered": False, "correct": False, "correct_strict": False,
        "correct_official": False, "scores": {},
        "format_ok": False if applicable else None, "format_failures": [],
        "rewards": {"mode": DEFAULT_REWARD_MODE, "format": None, "correctness": 0.0, "total": None},
    }
