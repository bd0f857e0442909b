"""How far the harness's rule-based MathVista scoring agrees with the official GPT-based verdicts.

Reads official output files (`results/<model>/output_*.json`: each item's raw `response`, the GPT
`extraction`, the official `prediction` and `true_false`), scores every response with the harness's
rules in both scoring modes, and sorts each item where a verdict differs from `true_false` into a class:

    uv run python -m suites.mathvista_agreement path/to/output_bard.json path/to/output_llava*.json
    uv run python -m suites.mathvista_agreement --json --examples 3 outputs/*.json

Classes (the harness's verdict against the official one):
- abstention: the response abstains; the official fallback maps GPT's "N/A" (or its copy of the
  refusal) to a choice. Strict scoring never credits it; official-compatible scoring maps the
  response's own words, which can land on another choice than GPT's rewording.
- unread_sentence: the rules find no answer (it is only stated as a sentence); GPT read one, right.
- not_an_option: the rules read a text that names no option; the official fallback maps it to the gold.
- gpt_contradicts_response: the response states its answer explicitly (a cue, a letter, the choice
  text, a bare number) and the GPT extraction is something else (GPT answering the question itself).
- different_reading: both read an answer, from different parts of a free-text response.
- official_unparsable: the GPT extraction cannot be normalised ("2000 and 2005"); the rules read the gold.
- listing_order: the query listed the options in another order than `choices`; the official verdict
  maps GPT's letter (a letter of the listing the model answered) through `choices`, and read against
  the listing GPT's extraction gets the other verdict. Strict scoring reads the listing; the official-
  compatible mode maps through `choices` as the official pipeline does.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.formats import OFFICIAL, answer_region
from suites.base import SCORING_MODES, ScoringInput, Target
from suites.mathvista_answers import NOT_AN_OPTION, read_as_option, score
from suites.mathvista_official import normalize_for_target, safe_equal
from suites.mathvista_outputs import problem_target

# Extraction rules that read an answer the response states explicitly.
EXPLICIT_RULES = ("answer_is", "choice_letter", "choice_text", "claim_choice_text", "claim_choice_value", "int",
                  "float", "last_line_letter", "letter_called_correct", "quoted_letter", "leading_yes_no", "paren_letter", "bracket_list")
CLASSES = ("listing_order", "abstention", "unread_sentence", "not_an_option", "gpt_contradicts_response",
           "different_reading", "official_unparsable")


def classify(problem: dict[str, Any], scoring: str) -> tuple[bool, str | None, dict[str, Any]]:
    """(harness verdict, disagreement class or None when it agrees with true_false, details)."""
    target = problem_target(problem)
    response = str(problem.get("response") or "")
    region, region_rule = answer_region(response, OFFICIAL)
    verdict = score(ScoringInput(response=response, region=region, region_rule=region_rule, target=target))
    mine = verdict.verdict(scoring)
    rule = verdict.extractor.split(">", 1)[1]
    official = bool(problem["true_false"])
    details = {"extracted": verdict.extracted, "rule": rule, "gpt_extraction": problem.get("extraction"),
               "official_prediction": problem.get("prediction"), "gold": problem["answer"]}
    if mine == official:
        return mine, None, details
    listed = target.meta.get("listed_choices")
    if listed and _verdict_on_listing(problem.get("extraction"), replace(target, choices=listed)) != official:
        return mine, "listing_order", details
    if rule == "abstention":
        return mine, "abstention", details
    if official:  # the official verdict credits it, the harness does not
        if verdict.extracted is None:
            return mine, "unread_sentence", details
        if rule in NOT_AN_OPTION:
            return mine, "not_an_option", details
    elif normalize_for_target(problem.get("extraction"), target) is None:
        return mine, "official_unparsable", details
    explicit = any(rule.startswith(r) for r in EXPLICIT_RULES)
    return mine, "gpt_contradicts_response" if explicit else "different_reading", details


def _verdict_on_listing(extraction: Any, shown: Target) -> bool:
    """GPT's extraction read against the options as the model was shown them (an option's own text is
    that option, "(b)" included)."""
    prediction = read_as_option(extraction, shown)
    return prediction is not None and safe_equal(prediction, shown.gold)


def agreement(path: Path, examples: int = 0) -> dict[str, Any]:
    problems = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, Any] = {"file": Path(path).name, "n": len(problems),
                           "official_accuracy": sum(bool(p["true_false"]) for p in problems.values()) / len(problems)}
    for scoring in SCORING_MODES:
        counts: Counter[str] = Counter()
        shown: dict[str, list[Any]] = defaultdict(list)
        correct = 0
        for pid, problem in problems.items():
            mine, kind, details = classify(problem, scoring)
            correct += mine
            if kind is not None:
                counts[kind] += 1
                if len(shown[kind]) < examples:
                    shown[kind].append({"pid": pid, **details, "response_tail": str(problem["response"])[-200:]})
        out[scoring] = {"accuracy": correct / len(problems), "agreement": 1 - sum(counts.values()) / len(problems),
                        "disagreements": sum(counts.values()),
                        "by_class": {k: counts[k] for k in CLASSES if counts[k]}, "examples": dict(shown)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="official output_*.json files")
    parser.add_argument("--examples", type=int, default=0, help="items shown per class")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    results = [agreement(path, args.examples) for path in args.files]
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return
    for r in results:
        print(f"{r['file']}: official accuracy {r['official_accuracy']:.3f} on {r['n']} items")
        for scoring in SCORING_MODES:
            m = r[scoring]
            classes = ", ".join(f"{k} {v}" for k, v in m["by_class"].items()) or "-"
            print(f"  {scoring:8s} accuracy {m['accuracy']:.3f}  agreement {m['agreement']:.1%} "
                  f"({m['disagreements']} disagree: {classes})")
            for kind, items in m["examples"].items():
                for e in items:
                    print(f"    {kind} pid {e['pid']}: gold {e['gold']!r}, harness {e['extracted']!r} ({e['rule']}), "
                          f"GPT {e['gpt_extraction']!r}; ...{e['response_tail'][-120:]!r}")


if __name__ == "__main__":
    main()
