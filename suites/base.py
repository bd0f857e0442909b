"""The suite contract: what every benchmark file in this package provides.

A suite is a small declarative object: a name and version, a loader that yields `Item`s, the text of
the question as the model sees it, and a scorer that turns a response into a `Score`. The scorer only
reads fields that records keep (gold, choices, answer_type, meta), so `harness rescore` can re-score a
run from its records alone, and the trainer can use the same scorer as its reward.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

AnswerType = Literal["multi_choice", "integer", "float", "list", "text", "expression"]


@dataclass
class Item:
    """One evaluation sample, in the harness's common shape."""

    suite: str
    sample_id: str
    question: str  # the question text only: no choices, no hint
    gold: str  # the official answer string (for multi-choice: the choice text, as MathVista stores it)
    answer_type: AnswerType = "text"
    choices: list[str] | None = None
    unit: str | None = None
    precision: int | None = None  # decimal places for float answers (MathVista)
    query: str | None = None  # the data set's own prompt, used by the `official` prompt format
    image_bytes: bytes | None = None  # encoded image exactly as the data set ships it (decoded lazily)
    image_source: str | None = None  # where the image came from (a file path or a field), for error messages
    meta: dict[str, Any] = field(default_factory=dict)  # breakdown fields (task, skills, level, ...)
    error: str | None = None  # a malformed item: recorded as a failed sample, never dropped

    def target(self) -> dict[str, Any]:
        """The fields a scorer may read; stored in every record so re-scoring needs no data set."""
        return {
            "gold": self.gold,
            "answer_type": self.answer_type,
            "choices": self.choices,
            "unit": self.unit,
            "precision": self.precision,
            "meta": self.meta,
            "question": self.question,
        }

    def content_sha256(self) -> str:
        """Hash of everything that defines the item, image bytes included."""
        h = hashlib.sha256()
        target = {k: v for k, v in self.target().items() if k != "question"}  # hashed once, as before
        h.update(json.dumps([self.sample_id, self.question, self.query, target],
                            sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(hashlib.sha256(self.image_bytes or b"").digest())
        return h.hexdigest()


@dataclass(frozen=True)
class Target:
    """What a scorer sees: the answer side of an item (rebuilt from a record when re-scoring)."""

    gold: str
    answer_type: AnswerType = "text"
    choices: list[str] | None = None
    unit: str | None = None
    precision: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # The question text, for answers that restate it ("The bed is larger than the kitten." for "Is the
    # bed larger than the kitten?"); None where it is not known.
    question: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Target:
        return cls(gold=d["gold"], answer_type=d.get("answer_type", "text"), choices=d.get("choices"),
                   unit=d.get("unit"), precision=d.get("precision"), meta=d.get("meta") or {},
                   question=d.get("question"))


# How a verdict is reached: `strict` is the harness's own rule (an answer must be given: abstentions
# and texts that name no option earn nothing); `official` reproduces the benchmark's official pipeline
# where it is more lenient (MathVista maps any extraction to the nearest choice). Suites whose
# official rule is their strict one give the same verdict in both.
ScoringMode = Literal["strict", "official"]
SCORING_MODES: tuple[str, ...] = ("strict", "official")


@dataclass(frozen=True)
class Score:
    """The verdict on one response. Extraction and comparison are kept apart and both recorded."""

    extracted: str | None  # the answer string the comparison used (None: no answer was given or found)
    extractor: str  # which rule produced it, e.g. "solution_block>choice_letter", "response>abstention"
    correct: bool  # the strict verdict: the suite's rule (or its documented rule-based stand-in)
    # Other extractions reported side by side, e.g. GSM8K "flexible_extract": {"extracted", "correct"}.
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The official-compatible verdict where it can differ from `correct`; None: the same as `correct`.
    official_correct: bool | None = None

    @property
    def answered(self) -> bool:
        """Whether an answer was extracted (an abstention or an empty response is no answer)."""
        return self.extracted is not None

    def verdict(self, scoring: str = "strict") -> bool:
        """The verdict under a scoring mode (see SCORING_MODES)."""
        if scoring == "official" and self.official_correct is not None:
            return bool(self.official_correct)
        return bool(self.correct)


@dataclass(frozen=True)
class LoadOptions:
    split: str
    data_dir: Path | None = None  # a local copy in the layout the suite documents
    variant: str | None = None  # e.g. MathVista "numeric"
    image_size: tuple[int, int] | None = None  # resize images (RGB) before prompting, e.g. (512, 512)
    seed: int = 0  # for procedural suites


# A scorer gets the answer region of the response (the prompt format's answer block when present,
# else the whole response; `region_rule` says which) and the full response, and returns a Score.
Scorer = Callable[["ScoringInput"], Score]


@dataclass(frozen=True)
class ScoringInput:
    response: str  # the full model response
    region: str  # the prompt format's answer block, or the whole response when there is none
    region_rule: str  # "solution_block", "answer_block", "boxed", "response"
    target: Target


@dataclass(frozen=True)
class Suite:
    name: str
    version: str  # bump when loading, prompting or scoring changes
    description: str
    source: str  # hub id and pinned revision, or "procedural"
    splits: dict[str, int]  # split name -> official item count
    default_split: str
    load: Callable[[LoadOptions], list[Item]]
    question_text: Callable[[Item], str]  # question as shown under the tag formats (choices, unit)
    score: Scorer
    breakdowns: tuple[str, ...] = ()  # meta fields reported in metrics `by`
    multi_label: tuple[str, ...] = ()  # meta fields holding lists (each label counted)
    variants: tuple[str, ...] = ()  # accepted LoadOptions.variant values
    data_dir_help: str = ""  # the local layout `--data-dir` expects, shown when loading fails
    notes: str = ""  # deviations from the official protocol, shown by `harness suites`
    # The options as a prompt's text lists them, where that differs from `choices` (the data set's own
    # query may list them in another order): (prompt text, choices) -> listing or None. Kept in the
    # record's meta as `listed_choices`, so the scorer reads a letter as the option the model saw.
    shown_choices: Callable[[str, list[str] | None], list[str] | None] | None = None
    # Scores an external prediction file in the benchmark's official output format (`harness score`):
    # (path, field, data_dir) -> {"accuracy", "n", "items": {id: bool}}. None where there is no such format.
    score_predictions: Callable[..., dict[str, Any]] | None = None
