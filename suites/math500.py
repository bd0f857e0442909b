"""MATH-500: the 500-problem MATH test subset of "Let's Verify Step by Step" (PRM800K).

One real row of `test.jsonl` (the hub set HuggingFaceH4/MATH-500 ships the same file):

    {"problem": "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your
                 answer in the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$",
     "solution": "We have that $r = \\sqrt{0^2 + 3^2} = 3.$ ... Therefore, the polar coordinates are
                  $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"}

Scoring is Math-Verify's, as in its `math_500` task: the gold is `answer` read as
`$\\boxed{answer}$`, the prediction is the answer region (the format's answer block, or the last
\\boxed{}, or else the whole response), and `verify(gold, prediction)` decides (gold first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.answer_cues import abstention
from core.errors import ConfigError
from suites.base import Item, LoadOptions, Score, ScoringInput, Suite
from suites.data_files import hub_rows, local_split_rows, make_ids_unique
from suites.latex_verify import (
    extracted_text,
    parse_answer,
    parse_boxed_content,
    parse_gold_boxed,
    parse_response,
    verify_parsed,
)

SUITE_NAME = "math500"
HUB_ID = "HuggingFaceH4/MATH-500"
HF_REVISION = "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be"
SPLIT = "test"

DATA_DIR_HELP = (
    "--data-dir takes a folder with test.jsonl (problem, solution, answer, subject, level, unique_id; "
    f"PRM800K's math_splits/test.jsonl), or a snapshot of the Hugging Face set {HUB_ID} "
    "(test.jsonl, or test-*.parquet)"
)


# ---------------------------------------------------------------------------------------------
# Loading


def load(opts: LoadOptions) -> list[Item]:
    if opts.split != SPLIT:
        raise ConfigError(f"math500 has only the {SPLIT} split (got {opts.split!r})")
    if opts.data_dir is not None:
        rows = local_split_rows(Path(opts.data_dir), SPLIT, "MATH-500", DATA_DIR_HELP)
    else:
        rows = list(enumerate(hub_rows(HUB_ID, None, SPLIT, HF_REVISION, DATA_DIR_HELP)))
    return make_ids_unique([_item_from_row(index, row) for index, row in rows])



def _level(value: Any) -> int | str | None:
    # PRM800K stores an int; other MATH copies write "Level 3".
    if value is None:
        return None
    text = str(value).removeprefix("Level").strip()
    return int(text) if text.isdigit() else text


def _item_from_row(index: int, row: Any) -> Item:
    fallback_id = f"row-{index:03d}"
    if not isinstance(row, dict):
        return Item(suite=SUITE_NAME, sample_id=fallback_id, question="", gold="", error=str(row))
    unique_id = row.get("unique_id")
    sample_id = str(unique_id) if isinstance(unique_id, str) and unique_id else fallback_id
    problem, answer = row.get("problem"), row.get("answer")
    meta = {"subject": row.get("subject"), "level": _level(row.get("level"))}
    if not isinstance(problem, str) or not isinstance(answer, str) or not answer.strip():
        return Item(suite=SUITE_NAME, sample_id=sample_id, question=str(problem or ""), gold="", meta=meta,
                    error="row has no problem or no answer")
    error = None if sample_id != fallback_id else "row has no unique_id"
    return Item(suite=SUITE_NAME, sample_id=sample_id, question=problem, gold=answer,
                answer_type="expression", meta=meta, error=error)


def question_text(item: Item) -> str:
    return item.question


# ---------------------------------------------------------------------------------------------
# Scoring


def score(inp: ScoringInput) -> Score:
    gold = parse_gold_boxed(inp.target.gold)
    if inp.region_rule == "boxed":
        prediction = parse_boxed_content(inp.region)
    elif abstention(inp.region):  # "I cannot determine ..." earns nothing, whatever number it holds
        return Score(extracted=None, extractor=f"{inp.region_rule}>abstention", correct=False)
    elif inp.region_rule == "response":
        prediction = parse_response(inp.response)
    else:
        prediction = parse_answer(inp.region)
    if not prediction:
        return Score(extracted=None, extractor=f"{inp.region_rule}>none", correct=False)
    return Score(extracted=extracted_text(prediction), extractor=f"{inp.region_rule}>math_verify",
                 correct=verify_parsed(gold, prediction))


SUITE = Suite(
    name=SUITE_NAME,
    version="2",
    description="MATH-500: 500 competition math problems (text only, LaTeX answers), 7 subjects, levels 1-5.",
    source=f"{HUB_ID}@{HF_REVISION}",
    splits={SPLIT: 500},
    default_split=SPLIT,
    load=load,
    question_text=question_text,
    score=score,
    breakdowns=("subject", "level"),
    data_dir_help=DATA_DIR_HELP,
    notes=(
        "Scored with Math-Verify (gold `$\\boxed{answer}$`, prediction parsed with LaTeX and expression "
        "rules, verify(gold, prediction)), as Math-Verify's math_500 task does; the Hendrycks MATH "
        "string normaliser and the PRM800K grader can differ on edge cases. The prediction is the "
        "format's answer block or last \\boxed{} when present, else Math-Verify's own search of the "
        "whole response; an answer without \\boxed{} that abstains ('cannot be determined', a refusal) is no "
        "answer. The official prompt format has no data-set query: it sends the bare problem."
    ),
)
