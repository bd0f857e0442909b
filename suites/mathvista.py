"""MathVista testmini (1,000 problems): loading, the official normalisation, a rule-based extractor.

One real item (pid 506), as the GitHub `data/testmini.json` stores it (the Hugging Face copy adds
`decoded_image` and `query`, and stores `precision` as a float):

    {"pid": "506", "question": "Between which two years does the line  graph saw its maximum peak?",
     "image": "images/506.jpg", "choices": null, "unit": null, "precision": null,
     "answer": "[2014, 2016]", "question_type": "free_form", "answer_type": "list",
     "metadata": {"split": "testmini", "language": "english", "img_width": 850, "img_height": 600,
                  "source": "ChartQA", "category": "general-vqa", "task": "figure question answering",
                  "context": "line plot", "grade": "not applicable", "skills": ["statistical reasoning"]}}

Scoring follows evaluation/calculate_score.py: the extracted answer is normalised by
`normalize_extracted_answer` and compared by `safe_equal` (plain string equality). The official
extraction step asks GPT; here `extract_answer` stands in for it with documented rules.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from Levenshtein import distance

from core.answers import find_numbers
from core.errors import ConfigError, DataError
from core.formats import OFFICIAL, answer_region
from suites.base import Item, LoadOptions, Score, ScoringInput, Suite, Target
from suites.data_files import (
    find_parquet,
    hub_rows,
    make_ids_unique,
    read_image_file,
    read_json,
    read_parquet,
)

SUITE_NAME = "mathvista_testmini"
HUB_ID = "AI4Math/MathVista"
HF_REVISION = "2b6ad69445fbb5695c9b165475e8decdbeb97747"  # main on the hub ("Update README.md")
SPLIT = "testmini"

DATA_DIR_HELP = (
    "--data-dir takes either the GitHub layout of lupantech/MathVista (testmini.json or "
    "data/testmini.json, with the images/ folder beside it or one level up) or a snapshot of the "
    f"Hugging Face set {HUB_ID} (data/testmini-*.parquet)"
)

# The five hint lines of the data set's own `query`, keyed by (answer type, precision).
QUERY_HINTS = {
    ("multi_choice", None): "Please answer the question and provide the correct option letter, "
                            "e.g., A, B, C, D, at the end.",
    ("integer", None): "Please answer the question requiring an integer answer and provide the final "
                       "value, e.g., 1, 2, 3, at the end.",
    ("float", 1): "Please answer the question requiring a floating-point number with one decimal place "
                  "and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    ("float", 2): "Please answer the question requiring a floating-point number with two decimal places "
                  "and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    ("list", None): "Please answer the question requiring a Python list as an answer and provide the "
                    "final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}


# ---------------------------------------------------------------------------------------------
# Loading


def load(opts: LoadOptions) -> list[Item]:
    if opts.split != SPLIT:
        raise ConfigError(f"mathvista_testmini has only the {SPLIT} split (got {opts.split!r})")
    if opts.variant not in (None, "numeric"):
        raise ConfigError(f"mathvista_testmini has no variant {opts.variant!r}; variants: numeric")
    if opts.data_dir is not None:
        items = _load_local(Path(opts.data_dir))
    else:
        rows = hub_rows(HUB_ID, None, SPLIT, HF_REVISION, DATA_DIR_HELP, image_column="decoded_image")
        items = [_item_from_row(row, None) for row in rows]
    items = make_ids_unique(items)
    if opts.variant == "numeric":
        items = [it for it in items if is_numeric_answer(it.gold)]
    return items


def is_numeric_answer(answer: str) -> bool:
    """The Unsloth recipe's filter: the answer string parses as a float (multi-choice included)."""
    try:
        float(answer)
    except (TypeError, ValueError):
        return False
    return True


def _load_local(data_dir: Path) -> list[Item]:
    for candidate in (data_dir / "testmini.json", data_dir / "data" / "testmini.json"):
        if candidate.is_file():
            return _load_github_json(candidate)
    parquets = find_parquet(data_dir, SPLIT)
    if parquets:
        return [_item_from_row(row, None, base=data_dir) for row in read_parquet(parquets, DATA_DIR_HELP)]
    raise DataError(f"no MathVista testmini found in {data_dir}; {DATA_DIR_HELP}")


def _load_github_json(path: Path) -> list[Item]:
    entries = read_json(path, DATA_DIR_HELP)
    if not isinstance(entries, dict):
        raise DataError(f"{path.name} must map pid -> problem (got {type(entries).__name__}); {DATA_DIR_HELP}")
    image_roots = (path.parent, path.parent.parent)
    items = []
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            items.append(_broken_item(str(key), f"entry is a {type(entry).__name__}, not an object"))
            continue
        image = entry.get("image")
        image_bytes, image_error = (read_image_file(image, image_roots, "beside testmini.json or one folder up")
                                    if image else (None, "entry has no image path"))
        items.append(_item_from_row({**entry, "pid": entry.get("pid", key)}, image_bytes, image_error))
    return items


def _item_from_row(row: dict[str, Any], image_bytes: bytes | None, image_error: str | None = None,
                   base: Path | None = None) -> Item:
    """One problem (GitHub entry, parquet or hub row) in the harness's shape; never raises."""
    pid = str(row.get("pid", "?"))
    try:
        if image_bytes is None and image_error is None:
            image_bytes, image_error = _decoded_image_bytes(row.get("decoded_image"), base)
        if row.get("answer") is None or row.get("question") is None:
            return _broken_item(pid, "entry has no question or no answer")
        question_type = row["question_type"]
        official_type = row["answer_type"]
        choices = list(row["choices"]) if row.get("choices") is not None else None
        metadata = dict(row.get("metadata") or {})
        if metadata.get("skills") is not None:
            metadata["skills"] = list(metadata["skills"])
        item = Item(
            suite=SUITE_NAME, sample_id=pid, question=str(row["question"]), gold=str(row["answer"]),
            answer_type="multi_choice" if question_type == "multi_choice" else (
                official_type if official_type in ("integer", "float", "list") else "text"),
            choices=choices, unit=row.get("unit") or None, precision=_precision(row.get("precision")),
            image_bytes=image_bytes, image_source=str(row.get("image") or "decoded_image field"),
            meta={"question_type": question_type, "answer_type": official_type, **metadata},
            error=image_error,
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _broken_item(pid, f"unreadable entry ({type(exc).__name__}: {exc})")
    item.query = row.get("query") or official_query(item)
    return item


def _decoded_image_bytes(cell: Any, base: Path | None) -> tuple[bytes | None, str | None]:
    if isinstance(cell, dict) and cell.get("bytes"):
        return bytes(cell["bytes"]), None
    path = cell.get("path") if isinstance(cell, dict) else None
    if path and base is not None:
        return read_image_file(path, (base,), "beside testmini.json or one folder up")
    return None, "row has no decoded_image bytes"


def _precision(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(float(value))


def _broken_item(pid: str, message: str) -> Item:
    return Item(suite=SUITE_NAME, sample_id=pid, question="", gold="", error=message)


def question_text(item: Item) -> str:
    """The question as the tag formats show it: the unit, then the lettered choices."""
    text = f"{item.question} (Unit: {item.unit})" if item.unit else item.question
    if item.answer_type == "multi_choice" and item.choices:
        text += "\nChoices:\n" + "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(item.choices))
    return text


def official_query(item: Item) -> str | None:
    """The data set's zero-shot `query` (a hint line, the question, the choices); the GitHub JSON
    lacks it. None where no official hint exists."""
    kind = "multi_choice" if item.answer_type == "multi_choice" else item.answer_type
    hint = QUERY_HINTS.get((kind, item.precision if kind == "float" else None))
    if hint is None:
        return None
    return f"Hint: {hint}\nQuestion: {question_text(item)}".strip()


# ---------------------------------------------------------------------------------------------
# Official normalisation (evaluation/calculate_score.py)


def normalize_extracted_answer(extraction: Any, choices: list[str] | None, question_type: str,
                               answer_type: str, precision: Any,
                               ignore_empty_extractions: bool = False) -> str | None:
    """The official answer normalisation; None where it cannot produce an answer."""
    try:
        if question_type == "multi_choice":
            return _nearest_choice(extraction, choices or [], ignore_empty_extractions)
        if answer_type == "integer":
            return str(int(float(extraction)))  # truncates: "5.5" -> "5"
        if answer_type == "float":
            return str(round(float(extraction), int(precision)))  # hub precision is a float
        if answer_type == "list":
            return str(extraction)
    except Exception:  # noqa: BLE001 -- the official rule: any failure means no answer
        return None
    return None


def _nearest_choice(extraction: Any, choices: list[str], ignore_empty: bool) -> str | None:
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
    # Smallest edit distance, first choice on ties: so "" picks the shortest choice.
    distances = [distance(text, choice) for choice in choices]
    return choices[distances.index(min(distances))]


def safe_equal(prediction: Any, answer: Any) -> bool:
    try:
        return bool(prediction == answer)
    except Exception:  # noqa: BLE001 -- the official rule: an uncomparable pair is wrong
        return False


# ---------------------------------------------------------------------------------------------
# Rule-based extraction (stands in for the official GPT step)

_ANSWER_MARKER = re.compile(r"(?i:answer)\s*(?:is|:|：)|答案\s*[是为:：]")
_LONE_LETTER = re.compile(r"[\s*(\[]*(?:(?i:option|choice)\s*)?\(?([A-Za-z])\)?[\s.:)*\]]*")
_LEADING_LETTER = re.compile(r"\s*\**\(?([A-Z])[).:](?:\s|$)")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_BRACKET_LIST = re.compile(r"\[[^\[\]]*\]")


def extract_answer(region: str, target: Target, whole_response: bool = False) -> tuple[str | None, str]:
    """(answer string for the normaliser, rule name); None when no rule finds an answer.

    Multi-choice: the exact choice text; a lone letter ("C", "(C)", "C."); the letter or choice text
    after the last "answer is"/"Answer:"; a leading "C. ..." / "(C) ..."; the last "(C)"; the last
    choice text mentioned; else, for a short answer block, the text itself (nearest choice).
    Integer/float: the official int()/float() fast paths; the first number after the last "answer
    is"; the last bold number; the last number. List: the last [...] with ", " separators."""
    text = region.strip()
    if not text:
        return "", "empty"
    question_type, kind = _official_types(target)
    if question_type == "multi_choice":
        return _extract_choice(text, target.choices or [], whole_response)
    if kind == "list":
        found = _BRACKET_LIST.findall(text)
        if not found:
            return None, "no_list"
        # The official comparison is a plain string one, so spacing is put in Python's own form.
        return "[" + ", ".join(e.strip() for e in found[-1][1:-1].split(",")) + "]", "bracket_list"
    return _extract_number(text, kind)


def _extract_number(text: str, kind: str) -> tuple[str | None, str]:
    # The official fast paths: a bare integer / float response is taken as it is.
    try:
        return (str(int(text)), "int") if kind == "integer" else (str(float(text)), "float")
    except ValueError:
        pass
    # "25 m^2" must not read as 2: exponents written on units are dropped first.
    text = re.sub(r"(?<=[A-Za-z])\^\{?-?\d+\}?", "", text)
    tail = _after_last_answer_marker(text)
    if tail is not None and find_numbers(tail):
        return find_numbers(tail)[0], "answer_is_number"
    # Markdown answers put the result in bold: "so there are **3** groups".
    bold = [n for span in re.findall(r"\*\*(.+?)\*\*", text) for n in find_numbers(span)[-1:]]
    if bold:
        return bold[-1], "bold_number"
    numbers = find_numbers(text)
    return (numbers[-1], "last_number") if numbers else (None, "no_number")


def _after_last_answer_marker(text: str) -> str | None:
    marks = list(_ANSWER_MARKER.finditer(text))
    return text[marks[-1].end():] if marks else None


def _extract_choice(text: str, choices: list[str], whole_response: bool) -> tuple[str | None, str]:
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    if text in choices:
        return text, "choice_text"
    lone = _LONE_LETTER.fullmatch(text)
    if lone and lone.group(1).upper() in letters:
        return lone.group(1).upper(), "choice_letter"
    tail = _after_last_answer_marker(text)
    if tail is not None:
        lead = re.match(r"[\s*$]*(?:(?i:option|choice)\s*)?\(?([A-Z])(?![A-Za-z0-9])", tail)
        if lead and lead.group(1) in letters:
            return lead.group(1), "answer_is_letter"
        named = _mentioned_choice(tail, choices, first=True)
        if named is not None:
            return named, "answer_is_choice_text"
    lead = _LEADING_LETTER.match(text)
    if lead and lead.group(1) in letters:
        return lead.group(1), "choice_letter"
    in_parentheses = [m for m in _PAREN_LETTER.findall(text) if m in letters]
    if in_parentheses:
        return in_parentheses[-1], "paren_letter"
    named = _mentioned_choice(text, choices, first=False)
    if named is not None:
        return named, "choice_text_contained"
    if not whole_response:
        return text, "raw"  # a short answer block: the normaliser picks the nearest choice
    return None, "no_choice"


def _mentioned_choice(text: str, choices: list[str], first: bool) -> str | None:
    """The choice text named in `text` (the first or the last mention; longest on ties), matched
    whole-word so that "12" does not fire inside "120"."""
    best: tuple[int, int] | None = None
    chosen = None
    for choice in choices:
        if not choice.strip():
            continue
        pattern = re.escape(choice.strip())
        if choice.strip()[0].isalnum():
            pattern = r"(?<![\w.])" + pattern
        if choice.strip()[-1].isalnum():
            pattern += r"(?![\w]|\.\d)"
        spans = [m.span() for m in re.finditer(pattern, text)]
        if not spans:
            continue
        start, end = spans[0] if first else spans[-1]
        key = (-start, end - start) if first else (end, end - start)
        if best is None or key > best:
            best, chosen = key, choice
    return chosen


def score(inp: ScoringInput) -> Score:
    target = inp.target
    extracted, rule = extract_answer(inp.region, target, whole_response=inp.region_rule == "response")
    extractor = f"{inp.region_rule}>{rule}"
    if extracted is None:
        return Score(extracted=None, extractor=extractor, correct=False,
                     variants={"official": {"prediction": None}})
    prediction = _normalize_for_target(extracted, target)
    return Score(extracted=extracted, extractor=extractor, correct=safe_equal(prediction, target.gold),
                 variants={"official": {"prediction": prediction}})


def _official_types(target: Target) -> tuple[str, str]:
    """(question_type, answer_type) as the official code reads them; records keep both in meta."""
    if "question_type" in target.meta:
        return target.meta["question_type"], target.meta.get("answer_type", target.answer_type)
    if target.answer_type == "multi_choice":
        return "multi_choice", "text"
    return "free_form", target.answer_type


def _normalize_for_target(extraction: Any, target: Target) -> str | None:
    question_type, answer_type = _official_types(target)
    return normalize_extracted_answer(extraction, target.choices, question_type, answer_type, target.precision)


# ---------------------------------------------------------------------------------------------
# Scoring an official output file


def score_predictions(path: str | Path, field: str = "extraction", data_dir: Path | None = None) -> dict:
    """Score a prediction file in the official output format (pid -> problem with `extraction` or
    `response`). Missing answers are filled in from the data set (`data_dir`, else the hub)."""
    if field not in ("extraction", "response"):
        raise ConfigError(f"field must be 'extraction' or 'response' (got {field!r})")
    path = Path(path)
    problems = read_json(path, what="predictions ")
    if not isinstance(problems, dict) or not problems:
        raise DataError(f"{path.name} must be a non-empty object mapping pid -> problem")
    golds: dict[str, Item] | None = None
    if any(isinstance(p, dict) and "answer" not in p for p in problems.values()):
        golds = {it.sample_id: it for it in load(LoadOptions(split=SPLIT, data_dir=data_dir))}
    results = {}
    for pid, problem in problems.items():
        if not isinstance(problem, dict) or field not in problem:
            raise DataError(f"{path.name}: problem {pid} has no {field!r} field")
        answer = problem["answer"] if "answer" in problem else getattr(golds.get(pid), "gold", None)
        try:
            target = Target(gold=answer, answer_type=problem["answer_type"], choices=problem["choices"],
                            precision=problem["precision"],
                            meta={"question_type": problem["question_type"],
                                  "answer_type": problem["answer_type"]})
        except KeyError as exc:
            raise DataError(f"{path.name}: problem {pid} has no {exc.args[0]!r} field") from exc
        if field == "extraction":
            prediction = _normalize_for_target(problem["extraction"], target)
            results[str(pid)] = safe_equal(prediction, answer)
        else:
            region, rule = answer_region(str(problem["response"] or ""), OFFICIAL)
            results[str(pid)] = score(ScoringInput(response=str(problem["response"] or ""), region=region,
                                                   region_rule=rule, target=target)).correct
    return {"accuracy": sum(results.values()) / len(results), "n": len(results), "items": results}


SUITE = Suite(
    name=SUITE_NAME,
    version="1",
    description="MathVista testmini: 1,000 visual math problems (multi-choice, integer, float, list).",
    source=f"{HUB_ID}@{HF_REVISION}",
    splits={SPLIT: 1000},
    default_split=SPLIT,
    load=load,
    question_text=question_text,
    score=score,
    breakdowns=("question_type", "answer_type", "task", "skills", "grade", "context", "source", "language",
                "category"),
    multi_label=("skills",),
    variants=("numeric",),
    data_dir_help=DATA_DIR_HELP,
    score_predictions=score_predictions,
    notes=(
        "Normalisation and comparison are the official ones (normalize_extracted_answer + safe_equal). "
        "Deviation: the official GPT answer extraction is replaced by rules (choice text, option letter, "
        "'answer is ...', last number, last bracketed list; list spacing put in Python's form), so "
        "scores can differ from GPT-extracted ones. Variant numeric keeps items whose answer parses "
        "as a number (the Unsloth recipe's filter; multi-choice items with numeric choices included)."
    ),
)
