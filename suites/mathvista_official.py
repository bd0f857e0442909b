"""MathVista's official answer normalisation and comparison (evaluation/calculate_score.py), as it is.

    normalize_extracted_answer("(B)", ["135°", "140°"], "multi_choice", "text", None)   # "140°"
    normalize_extracted_answer("N/A", ["Yes", "No"], "multi_choice", "text", None)      # "No"
    safe_equal("140°", "140°")                                                           # True

Anything extracted for a multi-choice item becomes a choice: a letter in parentheses or a bare
capital letter names one, anything else (an abstention such as "N/A" included) is mapped to the
choice at the smallest edit distance. The harness's strict scoring does not do that last step; its
`official` scoring mode does (see suites/mathvista_answers.py).

In 10 testmini problems the query the models were shown lists the options in another order than the
stored `choices` (pid 229: "(E) 0.33%" where choices[4] is "0.30%"; pid 272 lists other texts too).
GPT extracts the letter as the query lists it, and the normalisation maps that letter through
`choices`; `listed_choices` gives the listing, so that a response can be read against it:

    listed_choices(query, ["0.33%", "0.31%", "0.29%", "0.32%", "0.30%"])
    # ["0.30%", "0.32%", "0.31%", "0.29%", "0.33%"]: the options in the query's order
"""

from __future__ import annotations

import re
from typing import Any

from Levenshtein import distance

from suites.base import Target


def normalize_extracted_answer(extraction: Any, choices: list[str] | None, question_type: str,
                               answer_type: str, precision: Any,
                               ignore_empty_extractions: bool = False) -> str | None:
    """The official answer normalisation; None where it cannot produce an answer."""
    try:
        if question_type == "multi_choice":
            return nearest_choice(extraction, choices or [], ignore_empty_extractions)
        if answer_type == "integer":
            return str(int(float(extraction)))  # truncates: "5.5" -> "5"
        if answer_type == "float":
            return str(round(float(extraction), int(precision)))  # hub precision is a float
        if answer_type == "list":
            return str(extraction)
    except Exception:  # noqa: BLE001 -- the official rule: any failure means no answer
        return None
    return None


def nearest_choice(extraction: Any, choices: list[str], ignore_empty: bool = False) -> str | None:
    """The official multi-choice rule: a letter names its choice, anything else gets the nearest one."""
    # Only a str is stripped; anything else goes through str() as it is (None becomes "None").
    text = extraction.strip() if isinstance(extraction, str) else str(extraction)
    if ignore_empty and not text:
        return None
    in_parentheses = re.findall(r"\(([a-zA-Z])\)", text)
    if in_parentheses:
        text = in_parentheses[0].upper()
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    if text in letters:
        return choices[letters.index(text)]
    if not choices:
        return None
    # Smallest edit distance, first choice on ties: so "" picks the shortest choice.
    distances = [distance(text, choice) for choice in choices]
    return choices[distances.index(min(distances))]


# An option line of a query's listing: "(A) 0.30%".
_LISTED_OPTION = re.compile(r"^\(([A-Z])\)[ \t]?(.*)$", re.MULTILINE)


def listed_choices(query: str | None, choices: list[str] | None) -> list[str] | None:
    """The options as the query's "Choices:" block lists them, where that differs from the stored
    `choices` (another order, or even other texts: pid 272 lists "(C) 5:30" where choices[2] is
    "4:30"); a listed text equal to a stored choice but for surrounding spaces is given as stored.
    None where the query lists the stored choices in their order, or has no listing of as many
    options, lettered from A."""
    if not query or not choices or "Choices:" not in query:
        return None
    listed = _LISTED_OPTION.findall(query.rsplit("Choices:", 1)[1])
    if [letter for letter, _ in listed] != [chr(ord("A") + i) for i in range(len(choices))]:
        return None
    by_text = {c.strip(): c for c in choices}
    shown = [by_text.get(text.strip(), text.strip()) for _, text in listed]
    return None if shown == list(choices) else shown


def safe_equal(prediction: Any, answer: Any) -> bool:
    try:
        return bool(prediction == answer)
    except Exception:  # noqa: BLE001 -- the official rule: an uncomparable pair is wrong
        return False


def official_types(target: Target) -> tuple[str, str]:
    """(question_type, answer_type) as the official code reads them; records keep both in meta."""
    if "question_type" in target.meta:
        return target.meta["question_type"], target.meta.get("answer_type", target.answer_type)
    if target.answer_type == "multi_choice":
        return "multi_choice", "text"
    return "free_form", target.answer_type


def normalize_for_target(extraction: Any, target: Target) -> str | None:
    question_type, answer_type = official_types(target)
    return normalize_extracted_answer(extraction, target.choices, question_type, answer_type, target.precision)
