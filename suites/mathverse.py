"""MathVerse testmini: 788 visual math problems, each in 5 versions (3,940 items), plus Text Only.

One real row (the GitHub `data/testmini.json` shape; the hub copy adds `question_for_eval`, the full
question text for the judge, which Vision Only rows need because their `question` is empty):

    {"sample_index": "3422", "problem_index": "685", "problem_version": "Text Lite",
     "question": "The radius is 3 cm. Find L.\\n\\nGive your answer rounded down to the nearest cm.",
     "image": "images_version_1-4/image_685.png", "answer": "14", "question_type": "free-form",
     "metadata": {"split": "testmini", "source": "Geo3D_collected", "subject": "Solid Geometry",
                  "subfield": "Length"},
     "query_wo": "Please directly answer the question and provide the final value, e.g., 1, 2.5, 300.\\n
                  Question: The radius is 3 cm. ...",
     "query_cot": "Please first conduct reasoning, and then answer the question and provide the final
                   value, e.g., 1, 2.5, 300, at the end.\\nQuestion: The radius is 3 cm. ..."}

Multi-choice rows keep their choices inside the question ("Choices:\\nA:40°\\nB:60°..."); the gold is
a letter ("B", sometimes "(B)"), two letters for "choose 2" problems ("C\\nD"), or, in four rows, the
choice text itself ("False"); the loader stores single golds as the bare letter. The official scorer asks GPT to extract and then to judge; this suite
replaces both steps with rules (see `score` and SUITE.notes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.answer_cues import abstention, numbers_in
from core.errors import ConfigError, DataError
from core.formats import OFFICIAL, answer_region
from suites.base import SCORING_MODES, Item, LoadOptions, Score, ScoringInput, Suite, Target
from suites.data_files import (
    find_parquet,
    hub_rows,
    make_ids_unique,
    read_image_file,
    read_json_list,
    read_parquet,
)
from suites.latex_verify import extracted_text, parse_answer, verify_parsed
from suites.mathverse_answers import (
    answer_cue_tail,
    gold_choice_letters,
    letter_set,
    numbers_match,
    numeric_value,
    pick_choice_letter,
    same_text,
)

SUITE_NAME = "mathverse_testmini"
HUB_ID = "AI4Math/MathVerse"
HF_REVISION = "3bc86196678bad115a923d2851c6821dbe235939"
SPLITS = {"testmini": 3940, "testmini_text_only": 788}
VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only", "Text Only")

DATA_DIR_HELP = (
    "--data-dir takes the GitHub layout of ZrrSkywalker/MathVerse (testmini.json and "
    "testmini_text_only.json, directly or under data/, with the images/ folder beside them) or a "
    f"snapshot of the Hugging Face set {HUB_ID} (testmini.json and images/, or testmini-*.parquet and "
    "testmini_text_only-*.parquet)"
)

_CHOICES_HEADER = re.compile(r"(?:^|\n)[ \t]*Choices?[ \t]*[:：][ \t]*\n")
_CHOICE_LINE = re.compile(r"[ \t]*\(?([A-H])\)?[ \t]*[:.：)][ \t]*(.*)")


# ---------------------------------------------------------------------------------------------
# Loading


def load(opts: LoadOptions) -> list[Item]:
    if opts.split not in SPLITS:
        raise ConfigError(f"{SUITE_NAME} has splits {', '.join(SPLITS)} (got {opts.split!r})")
    if opts.data_dir is not None:
        rows, image_roots = _local_rows(Path(opts.data_dir), opts.split)
    else:
        rows = hub_rows(HUB_ID, opts.split, "testmini", HF_REVISION, DATA_DIR_HELP, image_column="image")
        image_roots = ()
    return make_ids_unique([_item_from_row(i, row, image_roots) for i, row in enumerate(rows)])


def _local_rows(data_dir: Path, split: str) -> tuple[list[Any], tuple[Path, ...]]:
    for folder in (data_dir, data_dir / "data"):
        path = folder / f"{split}.json"
        if path.is_file():
            roots = (folder / "images", folder, folder.parent / "images")
            return read_json_list(path, DATA_DIR_HELP), roots
    parquets = find_parquet(data_dir, split)
    if parquets:
        roots = tuple(dict.fromkeys(p.parent for p in parquets))
        return read_parquet(parquets, DATA_DIR_HELP), roots
    raise DataError(f"no MathVerse {split} found in {data_dir}; {DATA_DIR_HELP}")


def split_choices(text: str) -> tuple[str, list[str] | None]:
    """(question without its choice block, choice texts), or (text, None) when there is no block of
    consecutive lettered lines A, B, C... after a "Choices:" line at the end of the question."""
    headers = list(_CHOICES_HEADER.finditer(text))
    if not headers:
        return text, None
    header = headers[-1]
    choices: list[str] = []
    lines = text[header.end():].splitlines()
    for n, line in enumerate(lines):
        m = _CHOICE_LINE.fullmatch(line)
        if m and m.group(1) == chr(ord("A") + len(choices)):
            choices.append(m.group(2).strip())
        elif line.strip() and len(choices) >= 2:  # a stray line after the block stays with the question
            return "\n".join([text[:header.start()].rstrip(), *lines[n:]]).strip(), choices
        elif line.strip():
            return text, None
    if len(choices) < 2:
        return text, None
    return text[:header.start()].rstrip(), choices


def _image_bytes(cell: Any, roots: tuple[Path, ...]) -> tuple[bytes | None, str | None]:
    """Bytes of the row's image: inline (parquet / hub) or a file under one of `roots`."""
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return bytes(cell["bytes"]), None
        cell = cell.get("path")
    if not cell:
        return None, "row has no image"
    return read_image_file(cell, roots, "under the data folder (or its images/ folder)")


def _item_from_row(index: int, row: Any, image_roots: tuple[Path, ...]) -> Item:
    """One row (GitHub JSON, parquet or hub) in the harness's shape; never raises."""
    if not isinstance(row, dict):
        return Item(suite=SUITE_NAME, sample_id=f"row-{index}", question="", gold="", error=str(row))
    sample_id = str(row["sample_index"]) if row.get("sample_index") not in (None, "") else f"row-{index}"
    metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    version = row.get("problem_version")
    meta = {"problem_version": version, "subject": metadata.get("subject"),
            "subfield": metadata.get("subfield"), "question_type": row.get("question_type"),
            "problem_index": row.get("problem_index"), "source": metadata.get("source")}
    answer, question, query = row.get("answer"), row.get("question"), row.get("query_cot")
    question_for_eval = row.get("question_for_eval")
    if isinstance(question_for_eval, str) and question_for_eval.strip():
        question = question_for_eval
    problems = []
    if not isinstance(answer, str) or not answer.strip():
        problems.append("no answer")
    if not isinstance(question, str) or not isinstance(query, str):
        problems.append("no question or query_cot")
    if row.get("question_type") not in ("multi-choice", "free-form"):
        problems.append(f"unknown question_type {row.get('question_type')!r}")
    if problems:
        return Item(suite=SUITE_NAME, sample_id=sample_id, question=str(question or ""),
                    gold=str(answer or ""), meta=meta, error="row has " + ", ".join(problems))
    image_bytes, image_error = None, None
    if version != "Text Only" or row.get("image"):
        image_bytes, image_error = _image_bytes(row.get("image"), image_roots)
    multi_choice = row["question_type"] == "multi-choice"
    body, choices = split_choices(question) if multi_choice else (question, None)
    gold = answer
    letters = gold_choice_letters(answer, choices) if multi_choice else None
    if letters and len(letters) == 1 and next(iter(letters)) != answer:
        # "(B)" and a choice's text become the letter, so that exact-match rewards see "B"
        gold, meta["official_answer"] = next(iter(letters)), answer
    return Item(suite=SUITE_NAME, sample_id=sample_id, question=body, gold=gold,
                answer_type="multi_choice" if multi_choice else "expression", choices=choices,
                query=query, image_bytes=image_bytes, image_source=_image_source(row.get("image")), meta=meta,
                error=image_error)


def _image_source(cell: Any) -> str | None:
    path = cell.get("path") if isinstance(cell, dict) else cell
    return str(path) if path else ("image field" if cell else None)


def question_text(item: Item) -> str:
    """What the model is asked under the tag formats: the question part of the official query, so
    that each version shows exactly the text it is meant to (Vision Only: none, the question is in
    the image), and for multi-choice the official request for an option letter."""
    query = item.query or ""
    if "Question:" in query:
        shown = query.split("Question:", 1)[1].strip()
    elif item.meta.get("problem_version") == "Vision Only" or not item.question:
        shown = "Answer the question shown in the image."
    else:
        shown = item.question + ("\nChoices:\n" + "\n".join(f"{chr(ord('A') + i)}: {c}"
                                                             for i, c in enumerate(item.choices))
                                 if item.choices else "")
    if item.answer_type == "multi_choice":
        shown += "\nAnswer with the correct option letter, e.g., A, B, C, D."
    return shown


# ---------------------------------------------------------------------------------------------
# Scoring (rule-based stand-in for the official GPT extraction and judgement)


def score(inp: ScoringInput) -> Score:
    target = inp.target
    if _abstains(inp):
        return Score(extracted=None, extractor=f"{inp.region_rule}>abstention", correct=False)
    if target.answer_type == "multi_choice":
        gold_letters = gold_choice_letters(target.gold, target.choices)
        if gold_letters:
            return _score_choice(inp, gold_letters)
    return _score_free_form(inp)


def _abstains(inp: ScoringInput) -> bool:
    """A refusal or "cannot be determined", in the text after the answer cue or else in the region;
    a choice whose text is such a phrase is an answer."""
    choices = inp.target.choices
    tail = answer_cue_tail(inp.region)
    return bool(abstention(tail if tail is not None else inp.region, choices))


def _short_answer(inp: ScoringInput) -> str:
    """The text that holds the answer: the answer region, or for a whole response the text after
    its last answer cue ("the answer is", "Answer:") or else its last non-empty line."""
    if inp.region_rule != "response":
        return inp.region.strip()
    tail = answer_cue_tail(inp.response)
    if tail is not None:
        return tail
    lines = [line.strip() for line in inp.response.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _score_choice(inp: ScoringInput, gold: frozenset[str]) -> Score:
    rule = inp.region_rule
    if len(gold) > 1:
        found = letter_set(_short_answer(inp))
        extracted = ",".join(sorted(found)) or None
        return Score(extracted=extracted, extractor=f"{rule}>letter_set", correct=found == gold)
    letter, how = pick_choice_letter(inp.region, inp.target.choices, whole_response=rule == "response")
    return Score(extracted=letter, extractor=f"{rule}>{how}", correct=letter is not None and letter in gold)


def _score_free_form(inp: ScoringInput) -> Score:
    rule, gold = inp.region_rule, inp.target.gold
    candidate = _short_answer(inp)
    gold_value = numeric_value(gold)
    if gold_value is not None:
        value = numeric_value(candidate)
        if value is not None:
            return Score(extracted=candidate, extractor=f"{rule}>numeric",
                         correct=numbers_match(value, gold_value, gold))
    if candidate and same_text(candidate, gold):
        return Score(extracted=candidate, extractor=f"{rule}>text", correct=True)
    prediction = parse_answer(candidate) if candidate else []
    if prediction and verify_parsed(parse_answer(gold.replace("掳", "°")), prediction):
        return Score(extracted=extracted_text(prediction), extractor=f"{rule}>math_verify", correct=True)
    if gold_value is not None:
        numbers = numbers_in(candidate)  # "There are three." reads as 3
        if numbers:
            value = float(numbers[-1])
            return Score(extracted=numbers[-1], extractor=f"{rule}>last_number",
                         correct=numbers_match(value, gold_value, gold))
    if prediction:
        return Score(extracted=extracted_text(prediction), extractor=f"{rule}>math_verify", correct=False)
    return Score(extracted=candidate or None, extractor=f"{rule}>none", correct=False)


# ---------------------------------------------------------------------------------------------
# Scoring an official output file


def score_predictions(path: str | Path, field: str = "response", data_dir: Path | None = None,
                      scoring: str = "strict") -> dict:
    """Score a file in the official output format (a list of rows with `model_answer`, and after
    the official step 1 `extraction`). field "response" reads `model_answer`; "extraction" reads
    `extraction` as an answer that needs no further extraction. Rows without an `answer` take it
    from the data set (`data_dir`, else the hub); rows without the field are scored as no answer.
    The official judge is GPT's, so both scoring modes give the rules' verdict."""
    if field not in ("extraction", "response"):
        raise ConfigError(f"field must be 'extraction' or 'response' (got {field!r})")
    if scoring not in SCORING_MODES:
        raise ConfigError(f"scoring must be one of {', '.join(SCORING_MODES)} (got {scoring!r})")
    path = Path(path)
    rows = read_json_list(path, "the file must be a MathVerse output list (e.g. output_testmini.json)")
    golds: dict[str, Item] = {}
    if any(isinstance(r, dict) and "answer" not in r for r in rows):
        text_only = all(isinstance(r, dict) and r.get("problem_version") == "Text Only" for r in rows)
        split = "testmini_text_only" if text_only else "testmini"
        golds = {it.sample_id: it for it in load(LoadOptions(split=split, data_dir=data_dir))}
    results: dict[str, bool] = {}
    answered: dict[str, bool] = {}
    missing = 0
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path.name}: row {i} is not an object")
        key = field if field == "extraction" or "model_answer" not in row else "model_answer"
        sample_id = str(row.get("sample_index", i))
        target = _target_of(row, golds.get(sample_id), path.name)
        if key not in row:
            missing += 1
            results[sample_id], answered[sample_id] = False, False
            continue
        text = str(row[key] or "")
        region, rule = (text, "extraction") if field == "extraction" else answer_region(text, OFFICIAL)
        verdict = score(ScoringInput(response=text, region=region, region_rule=rule, target=target))
        results[sample_id], answered[sample_id] = verdict.verdict(scoring), verdict.answered
    if not results:
        raise DataError(f"{path.name} holds no rows")
    return {"accuracy": sum(results.values()) / len(results), "n": len(results), "scoring": scoring,
            "field": field, "no_answer": sum(not a for a in answered.values()), "missing_field": missing,
            "items": results, "answered": answered}


def _target_of(row: dict[str, Any], item: Item | None, file_name: str) -> Target:
    if "answer" in row and "question_type" in row:
        multi_choice = row["question_type"] == "multi-choice"
        question = row.get("question_for_eval") or row.get("question") or ""
        return Target(gold=str(row["answer"]), answer_type="multi_choice" if multi_choice else "expression",
                      choices=split_choices(question)[1] if multi_choice else None)
    if item is None:
        raise DataError(f"{file_name}: row {row.get('sample_index')} has no answer and is not in the data")
    return Target.from_dict(item.target())


SUITE = Suite(
    name=SUITE_NAME,
    version="3",
    description=("MathVerse testmini: 788 visual math problems x 5 versions (Text Dominant ... Vision Only); "
                 "split testmini_text_only holds the text-only ablation."),
    source=f"{HUB_ID}@{HF_REVISION}",
    splits=SPLITS,
    default_split="testmini",
    load=load,
    question_text=question_text,
    score=score,
    breakdowns=("problem_version", "subject", "subfield", "question_type"),
    data_dir_help=DATA_DIR_HELP,
    notes=(
        "Deviation: the official scorer asks GPT to extract the answer and then to judge it against the "
        "gold; here rules decide. Multi-choice: the option letter (bare, '(B)', 'B:', 'answer is B', "
        "'Answer: B', or the text of a choice); golds like '(B)' and choice-text golds ('False') are stored "
        "as their letter (the official string in meta official_answer); 'C\\nD' is the set {C, D}, and the "
        "answer must name exactly that set. "
        "Answer cues are the ones every suite shares ('the answer is', 'Answer:', '答案是', 'the correct option "
        "letter is', 'option (B) is the correct answer'); an abstention ('cannot be determined', a refusal) "
        "is no answer. Free-form: numbers compared by value after removing LaTeX, units and degree signs "
        "(decimals beyond the gold's rounded away), else the same normalised text, else Math-Verify; "
        "a whole response without an answer block is read from its last 'answer' cue or last line. "
        "The GPT judge also accepts equivalent units (0.5 m = 50 cm); these rules do not. "
        "`question` holds question_for_eval where the data has it (Vision Only rows have an empty "
        "question); the tag formats show the question part of query_cot instead, so that no version "
        "gets more text than it is meant to."
    ),
    score_predictions=score_predictions,
)
