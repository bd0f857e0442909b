"""Scoring a prediction file in MathVista's official output format (`harness score`).

The official `results/<model>/output_*.json` maps pid -> problem with the annotation fields,
`response` (the model's text), `extraction` (the GPT extraction), `prediction` and `true_false`.

    result = score_predictions("output_bard.json", field="response", scoring="official")
    result["accuracy"], result["no_answer"], result["items"]["1"]

field "extraction" normalises the stored GPT extraction the official way (in either scoring mode:
the extraction step is the official one, the modes differ in how the harness reads a response);
field "response" runs the harness's own extraction on the raw response and gives the verdict of the
scoring mode. An item without the field is scored as no answer (wrong) and counted in `missing_field`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError
from core.formats import OFFICIAL, answer_region
from suites.base import SCORING_MODES, Item, LoadOptions, ScoringInput, Target
from suites.data_files import read_json
from suites.mathvista_answers import score
from suites.mathvista_data import SPLIT, load
from suites.mathvista_official import listed_choices, normalize_for_target, safe_equal


def score_predictions(path: str | Path, field: str = "extraction", data_dir: Path | None = None,
                      scoring: str = "strict") -> dict[str, Any]:
    """Score an official output file. Missing answers are filled in from the data set (`data_dir`,
    else the hub). Returns {accuracy, n, scoring, field, no_answer, missing_field, items, answered}."""
    if field not in ("extraction", "response"):
        raise ConfigError(f"field must be 'extraction' or 'response' (got {field!r})")
    if scoring not in SCORING_MODES:
        raise ConfigError(f"scoring must be one of {', '.join(SCORING_MODES)} (got {scoring!r})")
    path = Path(path)
    problems = read_json(path, what="predictions ")
    if not isinstance(problems, dict) or not problems:
        raise DataError(f"{path.name} must be a non-empty object mapping pid -> problem")
    golds: dict[str, Item] = {}
    if any(isinstance(p, dict) and "answer" not in p for p in problems.values()):
        golds = {it.sample_id: it for it in load(LoadOptions(split=SPLIT, data_dir=data_dir))}
    items: dict[str, bool] = {}
    answered: dict[str, bool] = {}
    missing = 0
    for pid, problem in problems.items():
        if not isinstance(problem, dict):
            raise DataError(f"{path.name}: problem {pid} is not an object")
        target = problem_target(problem, golds.get(str(pid)), path.name, pid)
        if field not in problem:
            missing += 1
            items[str(pid)], answered[str(pid)] = False, False
        elif field == "extraction":
            prediction = normalize_for_target(problem["extraction"], target)
            items[str(pid)] = prediction is not None and safe_equal(prediction, target.gold)
            answered[str(pid)] = problem["extraction"] not in (None, "")
        else:
            response = str(problem["response"] or "")
            region, rule = answer_region(response, OFFICIAL)
            verdict = score(ScoringInput(response=response, region=region, region_rule=rule, target=target))
            items[str(pid)], answered[str(pid)] = verdict.verdict(scoring), verdict.answered
    return {"accuracy": sum(items.values()) / len(items), "n": len(items), "scoring": scoring, "field": field,
            "no_answer": sum(not a for a in answered.values()), "missing_field": missing, "items": items,
            "answered": answered}


def problem_target(problem: dict[str, Any], item: Item | None = None, file_name: str = "predictions",
                   pid: Any = "?") -> Target:
    """The target of one problem of an official output file (the answer from `item` where the file
    has none). Where the problem's `query` lists the options in another order than `choices`, the
    listing is kept in meta["listed_choices"]: the model answered by that listing's letters."""
    answer = problem["answer"] if "answer" in problem else getattr(item, "gold", None)
    if answer is None:
        raise DataError(f"{file_name}: problem {pid} has no answer and is not in the data set")
    try:
        meta = {"question_type": problem["question_type"], "answer_type": problem["answer_type"]}
        listed = listed_choices(problem.get("query"), problem["choices"])
        if listed is not None:
            meta["listed_choices"] = listed
        return Target(gold=answer, answer_type=problem["answer_type"], choices=problem["choices"],
                      precision=problem["precision"], meta=meta,
                      question=problem.get("question", getattr(item, "question", None)))
    except KeyError as exc:
        raise DataError(f"{file_name}: problem {pid} has no {exc.args[0]!r} field") from exc
