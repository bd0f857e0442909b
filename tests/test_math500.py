"""MATH-500: loading and Math-Verify scoring of LaTeX answers (fractions, roots, intervals, equations)."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from core.answers import last_boxed
from core.errors import DataError
from suites import math500
from suites.base import LoadOptions, Target
from tests.fixtures import score_response, write_parquet
from tests.fixtures.math500_fixture import write_math500_fixture


def score(gold: str, response: str, fmt: str = "reasoning-solution"):
    return score_response(math500.score, response, Target(gold=gold, answer_type="expression"), fmt)


def test_fixture_loads(tmp_path):
    items = math500.load(LoadOptions(split="test", data_dir=write_math500_fixture(tmp_path)))
    assert len(items) == 6 and all(it.error is None for it in items)
    assert items[0].sample_id == "test/prealgebra/9001.json"
    assert items[0].meta == {"subject": "Prealgebra", "level": 1}
    assert items[0].gold == "\\frac{1}{2}" and items[0].answer_type == "expression"
    assert math500.question_text(items[0]) == items[0].question
    more = math500.load(LoadOptions(split="test", data_dir=write_math500_fixture(tmp_path / "b", n=9)))
    assert len({it.sample_id for it in more}) == 9


def test_malformed_rows_and_duplicates(tmp_path):
    rows = [{"problem": "P", "answer": "1", "unique_id": "u1", "subject": "Algebra", "level": "Level 3"},
            {"problem": "P", "answer": "", "unique_id": "u2"},
            {"problem": "P", "answer": "2"},
            {"problem": "P", "answer": "3", "unique_id": "u1"}]
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n[1]\n")
    items = math500.load(LoadOptions(split="test", data_dir=tmp_path))
    assert [it.sample_id for it in items] == ["u1", "u2", "row-002", "u1~1", "row-004"]
    assert [it.error is None for it in items] == [True, False, False, False, False]
    assert items[0].meta["level"] == 3


def test_parquet_layout_and_missing_data(tmp_path):
    with pytest.raises(DataError, match="test.jsonl"):
        math500.load(LoadOptions(split="test", data_dir=tmp_path))
    row = {"problem": "P", "solution": "\\boxed{4}", "answer": "4", "subject": "Algebra", "level": 1,
           "unique_id": "test/algebra/1.json"}
    write_parquet([row], tmp_path / "test-00000-of-00001.parquet")
    assert [it.gold for it in math500.load(LoadOptions(split="test", data_dir=tmp_path))] == ["4"]


@pytest.mark.parametrize(("gold", "response", "fmt"), [
    ("\\frac{1}{2}", "<SOLUTION>0.5</SOLUTION>", "reasoning-solution"),
    ("\\frac{1}{2}", "<SOLUTION>\\dfrac12</SOLUTION>", "reasoning-solution"),
    ("\\frac{1}{2}", "<SOLUTION>1/2</SOLUTION>", "reasoning-solution"),
    ("\\frac{1}{2}", "Halving gives \\boxed{\\dfrac{1}{2}}.", "boxed"),
    ("\\frac{\\sqrt{2}}{2}", "<SOLUTION>\\sqrt{2}/2</SOLUTION>", "reasoning-solution"),
    ("\\frac{\\sqrt{2}}{2}", "\\boxed{\\frac{1}{\\sqrt{2}}}", "boxed"),
    ("[2,5)", "<answer>[2, 5)</answer>", "think-answer"),
    ("3", "<SOLUTION>x = 3</SOLUTION>", "reasoning-solution"),
    ("3", "Solving, the answer is $x = 3$.", "official"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "<SOLUTION>(3, \\pi/2)</SOLUTION>", "reasoning-solution"),
    ("\\text{Ann}", "<SOLUTION>Ann</SOLUTION>", "reasoning-solution"),
    ("\\$18.90", "<SOLUTION>\\$18.90</SOLUTION>", "reasoning-solution"),
])
def test_equivalent_answers(gold, response, fmt):
    s = score(gold, response, fmt)
    assert s.correct, s
    assert s.extractor.endswith(">math_verify") and s.extracted


@pytest.mark.parametrize(("gold", "response"), [
    ("\\frac{1}{2}", "<SOLUTION>0.6</SOLUTION>"),
    ("[2,5)", "<SOLUTION>(2, 5)</SOLUTION>"),
    ("\\frac{\\sqrt{2}}{2}", "<SOLUTION>\\sqrt{2}</SOLUTION>"),
])
def test_wrong_answers(gold, response):
    assert not score(gold, response).correct


def test_no_answer_is_a_wrong_score():
    s = score("3", "<SOLUTION></SOLUTION>")
    assert (s.extracted, s.extractor, s.correct) == (None, "answer_block>none", False)
    assert score("3", "The figure shows a triangle.", "official").extractor == "response>none"
    # an abstention earns nothing, even with the gold in it
    s = score("3", "I cannot tell. It might be 3.", "official")
    assert (s.extracted, s.extractor, s.correct) == (None, "response>abstention", False)


def test_scoring_off_the_main_thread():
    # Math-Verify's signal-based timeout fails outside the main thread; the wrapper turns it off there.
    results = []
    worker = threading.Thread(
        target=lambda: results.append(score("\\frac{1}{2}", "<SOLUTION>0.5</SOLUTION>")))
    worker.start()
    worker.join()
    assert results and results[0].correct


def test_real_test_split_golds_verify_against_themselves(reference_data):
    items = math500.load(LoadOptions(split="test", data_dir=reference_data / "math500"))
    assert len(items) == math500.SUITE.splits["test"] == 500
    assert all(it.error is None for it in items)
    assert Counter(it.meta["level"] for it in items) == {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}
    assert Counter(it.meta["subject"] for it in items)["Algebra"] == 124
    rows = {r["unique_id"]: r for r in map(json.loads, (reference_data / "math500" / "test.jsonl").open())}
    failures = []
    for it in items:
        solution = rows[it.sample_id]["solution"]
        if not score(it.gold, f"\\boxed{{{it.gold}}}", "boxed").correct:
            failures.append(("self", it.sample_id, it.gold))
        if last_boxed(solution) is None or not score(it.gold, solution, "boxed").correct:
            failures.append(("solution", it.sample_id, it.gold))
    assert failures == []
