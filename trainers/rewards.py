"""The training rewards are the evaluation's own: each completion goes through `harness.scoring.judge`
with its item's grader (the item's suite; for a local dataset the suite named by `dataset_grader`), so
its format and correctness rewards are exactly what an evaluation record of the same response holds.

The reward mode (core.formats.REWARD_MODES) picks the correctness reward: `suite` (the default) is the
suite scorer's verdict (2.0 when `Score.correct`, numeric tolerance and extraction included), the
notion of "correct" the model is evaluated on; `recipe` is the Unsloth notebook's string rule (2.0
exact, 1.5 same number), kept to reproduce the notebook. The format reward is the recipe's in both.

TRL calls each function with `completions` (plain strings, or `[{"role": "assistant", "content": ...}]`
for conversational prompts) and every dataset column as a keyword list; its log names the reward by
the function's name: `rewards/format_reward/mean`, `rewards/correctness_reward/mean`.

    format_reward, correctness_reward = make_reward_funcs("reasoning-solution", {"format": 0.3, "correctness": 1.0},
                                                          mode="suite")

`make_compliance_reward` adds the evaluation's format-compliance check as a reward (1 for a compliant
completion, else 0), for `train(..., extra_reward_funcs=[...])`: the recipe's format reward pays in
full for an empty `<SOLUTION></SOLUTION>`, which the compliance check rejects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from core.formats import DEFAULT_REWARD_MODE, PROMPT_FORMATS, REWARD_MODES, format_failures
from core.formats import rewards as recipe_rewards
from harness.scoring import judge
from suites import SUITES
from suites.base import Target

RewardFunc = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """A completion as TRL passes it: a string, or a list of chat messages (the assistant's turn)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return completion_text(completion.get("content", ""))
    if isinstance(completion, list):
        parts = []
        for part in completion:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text") or ""))
            elif isinstance(part, dict) and "content" in part:
                parts.append(completion_text(part["content"]))
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    raise TypeError(f"a completion must be a string or chat messages, got {type(completion).__name__}")


class _Judgements:
    """Both reward functions see the same batch; judging once per (item, completion) serves both."""

    def __init__(self, prompt_format: str, weights: dict[str, float], mode: str):
        self.fmt = PROMPT_FORMATS[prompt_format]
        self.weights = weights
        self.mode = mode
        self._key: tuple | None = None
        self._rewards: list[dict[str, Any]] = []

    def rewards(self, completions: list[Any], graders: list[str], target: list[str]) -> list[dict[str, Any]]:
        texts = [completion_text(c) for c in completions]
        key = (tuple(texts), tuple(graders), tuple(target))
        if key != self._key:
            self._rewards = [self._judge(t, g, json.loads(tg)) for t, g, tg in zip(texts, graders, target, strict=True)]
            self._key = key
        return self._rewards

    def _judge(self, text: str, grader: str, target: dict[str, Any]) -> dict[str, Any]:
        suite = SUITES.get(grader)
        tgt = Target.from_dict(target)
        if suite is None:  # a local dataset without a grader (recipe mode only): the rule on the answer block
            if self.mode != "recipe":
                raise ValueError(f"no suite scorer named {grader!r} to give the {self.mode} reward")
            return recipe_rewards(text, tgt.gold, self.fmt, None, self.weights, tgt.choices)
        return judge(suite, text, self.fmt, tgt, self.weights, reward_mode=self.mode)["rewards"]


def make_reward_funcs(prompt_format: str, weights: dict[str, float], mode: str = DEFAULT_REWARD_MODE) -> list[RewardFunc]:
    """TRL reward functions: the recipe's format reward and the correctness reward of `mode`. They read
    the dataset's `target` column and its `grader` column (older datasets: `suite`)."""
    if mode not in REWARD_MODES:
        raise ValueError(f"unknown reward mode {mode!r}; choose one of: {', '.join(REWARD_MODES)}")
    judged = _Judgements(prompt_format, weights, mode)

    def format_reward(completions: list[Any], target: list[str], suite: list[str] | None = None,
                      grader: list[str] | None = None, **_: Any) -> list[float]:
        return [float(r["format"]) for r in judged.rewards(completions, grader or suite or [], target)]

    def correctness_reward(completions: list[Any], target: list[str], suite: list[str] | None = None,
                           grader: list[str] | None = None, **_: Any) -> list[float]:
        return [float(r["correctness"]) for r in judged.rewards(completions, grader or suite or [], target)]

    return [format_reward, correctness_reward]


def make_compliance_reward(prompt_format: str) -> RewardFunc:
    """1.0 when the completion passes the evaluation's format check (`format_ok`), else 0.0."""
    fmt = PROMPT_FORMATS[prompt_format]
    if fmt.answer_tags is None or fmt.reasoning_tags is None:
        raise ValueError(f"prompt format {prompt_format!r} has no tags: nothing to comply with")

    def format_compliance_reward(completions: list[Any], **_: Any) -> list[float]:
        return [0.0 if format_failures(completion_text(c), fmt) else 1.0 for c in completions]

    return format_compliance_reward
