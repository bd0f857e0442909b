"""Prompt formats, the answer region of a response, format compliance and the training rewards.

The rewards are the Unsloth vision-GRPO recipe's, so that the evaluation and the trainer agree on
what "well formatted" and "correct" mean:
- format reward: +1 for exactly one reasoning block, +1 for exactly one solution block, -2 when
  `addCriterion` plus newlines make up half or more of the characters (a Qwen2.5-VL failure mode);
- correctness reward, in one of two modes (`REWARD_MODES`):
  - `suite` (the default): the suite scorer's verdict, `Score.correct` (its extraction and numeric
    tolerance included): 2.0 when correct, else 0, so the model is trained toward exactly the
    "correct" it is evaluated on;
  - `recipe`: the notebook's string rule, kept to reproduce it: 2.0 when the single solution block
    (newlines removed) equals the gold answer string, 1.5 when both parse as the same number (this
    tier is the harness's addition), else 0;
- total: 0.3 x format + 1.0 x correctness (weights configurable).

    rewards(response, gold, fmt, mode="suite", correct=score.correct)   # harness.scoring.judge does this
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.answers import last_boxed, numbers_equal, to_float


@dataclass(frozen=True)
class PromptFormat:
    name: str
    reasoning_tags: tuple[str, str] | None  # (open, close); None for the non-tag formats
    answer_tags: tuple[str, str] | None
    instruction: str  # appended after the question; "" for `official`
    description: str


REASONING_SOLUTION = PromptFormat(
    name="reasoning-solution",
    reasoning_tags=("<REASONING>", "</REASONING>"),
    answer_tags=("<SOLUTION>", "</SOLUTION>"),
    instruction=("First think step by step and write your reasoning between <REASONING> and </REASONING>. "
                 "Then write only the final answer between <SOLUTION> and </SOLUTION>."),
    description="The Unsloth vision-RL recipe's tags: <REASONING>...</REASONING><SOLUTION>...</SOLUTION>.",
)
THINK_ANSWER = PromptFormat(
    name="think-answer",
    reasoning_tags=("<think>", "</think>"),
    answer_tags=("<answer>", "</answer>"),
    instruction=("First think step by step inside <think> and </think>. "
                 "Then write only the final answer inside <answer> and </answer>."),
    description="R1-style tags: <think>...</think><answer>...</answer>.",
)
BOXED = PromptFormat(
    name="boxed", reasoning_tags=None, answer_tags=None,
    instruction="Reason step by step, and put your final answer within \\boxed{}.",
    description="Free reasoning with the final answer in \\boxed{}.",
)
OFFICIAL = PromptFormat(
    name="official", reasoning_tags=None, answer_tags=None, instruction="",
    description="The data set's own query (MathVista `query`, MathVerse `query_cot`), unchanged.",
)

PROMPT_FORMATS: dict[str, PromptFormat] = {f.name: f for f in (REASONING_SOLUTION, THINK_ANSWER, BOXED, OFFICIAL)}

FAILURE_KINDS = (
    "missing_reasoning", "missing_answer", "duplicated_reasoning", "duplicated_answer",
    "out_of_order", "unclosed", "empty_reasoning", "empty_answer", "degenerate",
)


def blocks(text: str, tags: tuple[str, str]) -> list[str]:
    """Contents of every closed block, non-greedy, as the recipe's regex finds them."""
    open_, close = (re.escape(t) for t in tags)
    return re.findall(f"{open_}(.*?){close}", text, re.DOTALL)


def answer_region(response: str, fmt: PromptFormat) -> tuple[str, str]:
    """The part of the response that holds the final answer, and the rule that chose it.

    Tag formats: the last closed answer block. Otherwise (and as a fallback): the last \\boxed{};
    else the whole response, so that a rule-based extractor still gets a chance.
    """
    if fmt.answer_tags:
        found = blocks(response, fmt.answer_tags)
        if found:
            return found[-1].strip(), "answer_block"
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed.strip(), "boxed"
    return response, "response"


def is_degenerate(text: str) -> bool:
    """The recipe's addCriterion check: `addCriterion` and newlines are >= 50% of the characters."""
    if not text:
        return False
    removed = text.replace("addCriterion", "").replace("\n", "")
    return (len(text) - len(removed)) / len(text) >= 0.5


def format_failures(response: str, fmt: PromptFormat) -> list[str] | None:
    """Failure kinds of a response under a prompt format; [] is compliant; None: not applicable."""
    if fmt.reasoning_tags is None or fmt.answer_tags is None:
        if fmt.name == "boxed":
            fails = [] if last_boxed(response) is not None else ["missing_answer"]
            return fails + (["degenerate"] if is_degenerate(response) else [])
        return None
    fails: list[str] = []
    spans = {}
    for kind, (open_, close) in (("reasoning", fmt.reasoning_tags), ("answer", fmt.answer_tags)):
        n_open, n_close = response.count(open_), response.count(close)
        closed = blocks(response, (open_, close))
        if n_open == 0 and n_close == 0:
            fails.append(f"missing_{kind}")
        elif n_open > 1 or n_close > 1:
            fails.append(f"duplicated_{kind}")
        if n_open > n_close:
            fails.append("unclosed")
        if len(closed) == 1 and not closed[0].strip():
            fails.append(f"empty_{kind}")
        if n_open:
            spans[kind] = response.find(open_)
    if len(spans) == 2 and spans["answer"] < spans["reasoning"]:
        fails.append("out_of_order")
    if is_degenerate(response):
        fails.append("degenerate")
    return sorted(set(fails), key=FAILURE_KINDS.index)  # canonical order; "unclosed" may arise twice


def format_reward(response: str, fmt: PromptFormat = REASONING_SOLUTION) -> float:
    tags = (fmt.reasoning_tags, fmt.answer_tags)
    if tags[0] is None or tags[1] is None:
        raise ValueError(f"prompt format {fmt.name!r} has no tags: the format reward is undefined")
    score = 0.0
    score += 1.0 if len(blocks(response, tags[0])) == 1 else 0.0
    score += 1.0 if len(blocks(response, tags[1])) == 1 else 0.0
    if is_degenerate(response):
        score -= 2.0
    return score


def correctness_reward(response: str, gold: str, fmt: PromptFormat = REASONING_SOLUTION,
                       extracted: str | None = None, choices: list[str] | None = None) -> float:
    """2.0 exact match, 1.5 same number, else 0. Tag formats read the single answer block (as the
    recipe does); the other formats compare the scorer's extracted answer. For a multi-choice item the
    gold choice's letter ("B") is an exact match too, since the prompt shows lettered choices."""
    if fmt.answer_tags is not None:
        found = blocks(response, fmt.answer_tags)
        if len(found) != 1:
            return 0.0
        answer = found[0].replace("\n", "")
    elif extracted is not None:
        answer = extracted
    else:
        return 0.0
    if answer == gold or (choices and gold in choices and answer.strip() in _letters(choices, gold)):
        return 2.0
    a, g = to_float(answer), to_float(gold)
    if a is not None and g is not None and numbers_equal(a, g):
        return 1.5
    return 0.0


def _letters(choices: list[str], gold: str) -> set[str]:
    letter = chr(ord("A") + choices.index(gold))
    return {letter, f"({letter})"}


DEFAULT_REWARD_WEIGHTS = {"format": 0.3, "correctness": 1.0}
REWARD_MODES = {
    "suite": "correctness from the suite scorer's verdict (Score.correct): 2.0 when correct, else 0",
    "recipe": "the Unsloth recipe's string rule: 2.0 exact match, 1.5 same number, else 0",
}
DEFAULT_REWARD_MODE = "suite"
# A correct verdict earns the recipe's top tier, so the format/correctness weights keep their balance.
VERDICT_REWARD = 2.0


def rewards(response: str, gold: str, fmt: PromptFormat, extracted: str | None = None,
            weights: dict[str, float] | None = None, choices: list[str] | None = None, *,
            mode: str = "recipe", correct: bool | None = None) -> dict[str, float | None]:
    """All training rewards of one response; `format` and `total` are None for non-tag formats.
    mode "suite" needs the suite's verdict in `correct`; mode "recipe" ignores it."""
    w = weights or DEFAULT_REWARD_WEIGHTS
    if mode == "suite":
        if correct is None:
            raise ValueError("reward mode 'suite' needs the suite's verdict (correct)")
        correctness = VERDICT_REWARD if correct else 0.0
    elif mode == "recipe":
        correctness = correctness_reward(response, gold, fmt, extracted, choices)
    else:
        raise ValueError(f"unknown reward mode {mode!r}; choose one of: {', '.join(REWARD_MODES)}")
    if fmt.answer_tags is None:
        return {"format": None, "correctness": correctness, "total": None}
    fmt_r = format_reward(response, fmt)
    return {"format": fmt_r, "correctness": correctness,
            "total": w["format"] * fmt_r + w["correctness"] * correctness}
