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
extraction step asks GPT; here `extract_answer` stands in for it with documented rules. The parts:
suites/mathvista_data.py (loading, the query), suites/mathvista_answers.py (extraction, the strict
and official-compatible verdicts), suites/mathvista_official.py (the official normalisation) and
suites/mathvista_outputs.py (official output files, for `harness score`).
"""


from __future__ import annotations

from suites.base import Suite
from suites.mathvista_answers import extract_answer, score
from suites.mathvista_data import (
    DATA_DIR_HELP,
    HF_REVISION,
    HUB_ID,
    QUERY_HINTS,
    SPLIT,
    SUITE_NAME,
    is_numeric_answer,
    load,
    official_query,
    question_text,
)
from suites.mathvista_official import listed_choices, normalize_extracted_answer, safe_equal
from suites.mathvista_outputs import score_predictions

__all__ = ["DATA_DIR_HELP", "HF_REVISION", "HUB_ID", "QUERY_HINTS", "SPLIT", "SUITE", "SUITE_NAME", "extract_answer",
           "is_numeric_answer", "load", "normalize_extracted_answer", "official_query", "question_text",
           "safe_equal", "score", "score_predictions"]

SUITE = Suite(
    name=SUITE_NAME,
    version="3",
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
    shown_choices=listed_choices,
    notes=(
        "Normalisation and comparison are the official ones (normalize_extracted_answer + safe_equal). "
        "Deviation: the official GPT answer extraction is replaced by rules: the choice text in any case, "
        "an option letter (alone, on the last line, quoted, or after an answer cue such as 'The answer is:', "
        "'答案是:', 'the correct option letter is'), a number (after a cue, in bold, the one a one-sentence "
        "answer adds to the question's, numbers written as words, else the last), the last bracketed list "
        "(spacing put in Python's form), a yes/no question restated as a sentence, a choice named in other "
        "words or with a modal verb ('plants may increase'), a label the question defines ('Image A' for "
        "'(a): Image A'). "
        "Strict scoring (the default) credits no abstention ('Cannot be determined', 'N/A', a refusal) "
        "and no text that names no option; --scoring official maps any extraction, abstentions included, "
        "to the nearest choice as the official pipeline does. On the released official outputs the rules "
        "still differ from GPT's extraction on some items (see the agreement section below). Where an "
        "official output file's query lists the options in another order than `choices`, a letter means "
        "the option listed under it; official-compatible scoring maps it through `choices` as the official "
        "pipeline does. Variant "
        "numeric keeps items whose answer parses as a number (the Unsloth recipe's filter; multi-choice "
        "items with numeric choices included)."
    ),
)
