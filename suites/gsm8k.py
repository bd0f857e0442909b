"""GSM8K (grade-school math word problems): test 1,319 problems, train 7,473.

One real row of `grade_school_math/data/test.jsonl` (the hub set openai/gsm8k, config "main", has
the same two fields):

    {"question": "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and
                  bakes muffins for her friends every day with four. She sells the remainder at the
                  farmers' market daily for $2 per fresh duck egg. How much in dollars does she make
                  every day at the farmers' market?",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\\nShe makes 9 * 2 = $<<9*2=18>>18
                every day at the farmer's market.\\n#### 18"}

The gold is the text after "#### " with thousands commas removed ("#### 2,125" -> "2125").

Scoring reports two extractions side by side, as lm-evaluation-harness does:
- strict (`correct`): the number in the prompt format's answer block or \\boxed{}, else after the
  last "#### ", else the first number after the last answer cue ("The answer is", "Answer:"; the
  cues every suite shares, core/answer_cues.py); nothing else counts;
- flexible (`variants["flexible_extract"]`): the last number anywhere in the response.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.answer_cues import cue_line, numbers_in
from core.answers import find_numbers, last_number, numbers_equal, to_float
from core.errors import ConfigError
from suites.base import Item, LoadOptions, Score, ScoringInput, Suite
from suites.data_files import hub_rows, local_split_rows, make_ids_unique

SUITE_NAME = "gsm8k"
HUB_ID = "openai/gsm8k"
HUB_CONFIG = "main"
HF_REVISION = "e53f048856ff4f594e959d75785d2c2d37b678ee"
SPLITS = {"test": 1319, "train": 7473}

DATA_DIR_HELP = (
    "--data-dir takes a folder with test.jsonl (and train.jsonl) as in openai/grade-school-math "
    f"(grade_school_math/data), or a snapshot of the Hugging Face set {HUB_ID} (main/test-*.parquet)"
)

_GOLD_MARK = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_NUMBER = r"-?\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_HASH_ANSWER = re.compile(rf"####\s*({_NUMBER})")


# ---------------------------------------------------------------------------------------------
# Loading


def load(opts: LoadOptions) -> list[Item]:
    if opts.split not in SPLITS:
        raise ConfigError(f"gsm8k has splits {', '.join(SPLITS)} (got {opts.split!r})")
    if opts.data_dir is not None:
        rows = local_split_rows(Path(opts.data_dir), opts.split, "GSM8K", DATA_DIR_HELP)
    else:
        rows = list(enumerate(hub_rows(HUB_ID, HUB_CONFIG, opts.split, HF_REVISION, DATA_DIR_HELP)))
    return make_ids_unique([_item_from_row(index, row, opts.split) for index, row in rows])



def gold_from_solution(solution: str) -> str | None:
    """The final answer of a reference solution: after "#### ", commas removed; None without one."""
    found = _GOLD_MARK.search(solution)
    if not found:
        return None
    gold = found.group(1).replace(",", "").strip()
    return gold if to_float(gold) is not None else None


def _item_from_row(index: int, row: Any, split: str) -> Item:
    sample_id = f"{split}-{index:04d}"
    if not isinstance(row, dict):
        return Item(suite=SUITE_NAME, sample_id=sample_id, question="", gold="", error=str(row))
    question, solution = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not isinstance(solution, str):
        return Item(suite=SUITE_NAME, sample_id=sample_id, question=str(question or ""), gold="",
                    error="row has no question or no answer text")
    gold = gold_from_solution(solution)
    if gold is None:
        return Item(suite=SUITE_NAME, sample_id=sample_id, question=question, gold="",
                    error="answer has no '#### <number>' line")
    return Item(suite=SUITE_NAME, sample_id=sample_id, question=question, gold=gold,
                answer_type="float" if "." in gold else "integer")


def question_text(item: Item) -> str:
    return item.question


# ---------------------------------------------------------------------------------------------
# Scoring


def _clean_number(text: str) -> str | None:
    """A number as the comparison reads it: commas, `$` and a trailing period removed."""
    nums = find_numbers(text.replace("$", ""))
    return nums[0] if nums else None


def strict_extract(inp: ScoringInput) -> tuple[str | None, str]:
    """(number, rule): the answer block / boxed value, else "#### N", else the first number after the
    last answer cue ("The answer is N", "Answer: N", "the final answer is:\nN"; core/answer_cues.py)."""
    if inp.region_rule in ("answer_block", "boxed", "solution_block"):
        region = inp.region.strip()
        value = region.replace(",", "").replace("$", "").strip().rstrip(".")
        if to_float(value) is not None:
            return value, f"strict:{inp.region_rule}"
        number = last_number(region.replace("$", ""))
        if number is not None:
            return number, f"strict:{inp.region_rule}>last_number"
    found = _HASH_ANSWER.findall(inp.response)
    if found:
        return _clean_number(found[-1]), "strict:hash"
    cued = cue_line(inp.response)
    numbers = numbers_in(cued.replace("$", "")) if cued else []
    if numbers:
        return numbers[0], "strict:answer_is"
    return None, "strict:none"


def _same_number(extracted: str | None, gold: str) -> bool:
    a, b = to_float(extracted), to_float(gold)
    return a is not None and b is not None and numbers_equal(a, b)


def score(inp: ScoringInput) -> Score:
    gold = inp.target.gold
    strict, rule = strict_extract(inp)
    flexible = last_number(inp.response.replace("$", ""))
    flexible_score = {"extracted": flexible, "correct": _same_number(flexible, gold)}
    return Score(extracted=strict, extractor=rule, correct=_same_number(strict, gold),
                 variants={"flexible_extract": flexible_score})


SUITE = Suite(
    name=SUITE_NAME,
    version="3",
    description="GSM8K: 1,319 grade-school math word problems (text only, integer answers).",
    source=f"{HUB_ID}@{HF_REVISION} (config {HUB_CONFIG})",
    splits=SPLITS,
    default_split="test",
    load=load,
    question_text=question_text,
    score=score,
    data_dir_help=DATA_DIR_HELP,
    notes=(
        "The official check is exact string equality after comma removal; here numbers are compared "
        "by value (after removing commas, '$' and a trailing period), so '18.00' counts as 18. "
        "`correct` is the strict extraction (answer block or \\boxed{}, else '#### N', else the first number "
        "after the last answer cue: 'The answer is N', 'Answer: N', 'the final answer is:' and a new line, "
        "numbers written as words read as numbers); flexible_extract (last number in the response) is reported beside it. The official "
        "prompt format has no data-set query: it sends the bare question."
    ),
)
