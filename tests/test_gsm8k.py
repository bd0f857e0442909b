"""GSM8K: loading (JSONL, parquet, hub fallback), gold extraction, strict and flexible scoring."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError, DataError
from suites import gsm8k
from suites.base import LoadOptions, Target
from tests.fixtures import score_response, write_parquet
from tests.fixtures.gsm8k_fixture import write_gsm8k_fixture


def score(gold: str, response: str, fmt: str = "reasoning-solution"):
    return score_response(gsm8k.score, response, Target(gold=gold, answer_type="integer"), fmt)


def test_fixture_loads_with_comma_and_negative_golds(tmp_path):
    items = gsm8k.load(LoadOptions(split="test", data_dir=write_gsm8k_fixture(tmp_path)))
    assert [it.sample_id for it in items] == [f"test-{i:04d}" for i in range(6)]
    assert [it.gold for it in items] == ["9", "2125", "-3", "72", "40", "850"]
    assert all(it.answer_type == "integer" and it.image_bytes is None and it.error is None for it in items)
    assert gsm8k.question_text(items[0]) == items[0].question
    train = gsm8k.load(LoadOptions(split="train", data_dir=tmp_path / "gsm8k"))
    assert [it.sample_id for it in train] == ["train-0000", "train-0001", "train-0002"]


def test_malformed_rows_become_error_items(tmp_path):
    lines = [json.dumps({"question": "Q1?", "answer": "1 + 1 = 2\n#### 2"}), "{not json",
             json.dumps({"question": "Q3?", "answer": "no final line"}), json.dumps(["a list"]), "",
             json.dumps({"question": "Q6?", "answer": "#### 1.5"})]
    (tmp_path / "test.jsonl").write_text("\n".join(lines) + "\n")
    items = gsm8k.load(LoadOptions(split="test", data_dir=tmp_path))
    assert [it.sample_id for it in items] == ["test-0000", "test-0001", "test-0002", "test-0003", "test-0005"]
    assert [it.error is None for it in items] == [True, False, False, False, True]
    assert "#### " in items[2].error
    assert items[4].answer_type == "float" and items[4].gold == "1.5"


def test_parquet_layout(tmp_path):
    rows = [{"question": "How many?", "answer": "It is <<2*3=6>>6.\n#### 6"}] * 2
    write_parquet(rows, tmp_path / "main" / "test-00000-of-00001.parquet")
    items = gsm8k.load(LoadOptions(split="test", data_dir=tmp_path))
    assert [(it.sample_id, it.gold) for it in items] == [("test-0000", "6"), ("test-0001", "6")]


def test_missing_data_and_bad_split(tmp_path, offline_hub):
    with pytest.raises(DataError, match="test.jsonl"):
        gsm8k.load(LoadOptions(split="test", data_dir=tmp_path))
    with pytest.raises(ConfigError):
        gsm8k.load(LoadOptions(split="dev", data_dir=tmp_path))

    with pytest.raises(DataError, match="--data-dir"):
        gsm8k.load(LoadOptions(split="test"))


def test_gold_from_solution():
    assert gsm8k.gold_from_solution("Total 2,125.\n#### 2,125") == "2125"
    assert gsm8k.gold_from_solution("#### -3") == "-3"
    assert gsm8k.gold_from_solution("no answer") is None


@pytest.mark.parametrize(("gold", "response", "fmt", "extractor"), [
    ("2125", "<REASONING>17*125</REASONING><SOLUTION>2,125</SOLUTION>", "reasoning-solution",
     "strict:answer_block"),
    ("18", "<SOLUTION>$18.00</SOLUTION>", "reasoning-solution", "strict:answer_block"),
    ("18", "<SOLUTION>18 dollars</SOLUTION>", "reasoning-solution", "strict:answer_block>last_number"),
    ("-3", "So it is \\boxed{-3}.", "boxed", "strict:boxed"),
    ("18", "16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18", "official", "strict:hash"),
    ("2125", "The answer is 2,125.", "official", "strict:answer_is"),
    ("18", "The answer is $18.", "official", "strict:answer_is"),
    # the answer cues every suite shares
    ("18", "She sells 9 eggs at $2 each.\nThe final answer is:\n18", "official", "strict:answer_is"),
    ("18", "9 eggs x $2 = $18\nAnswer: 18 dollars", "official", "strict:answer_is"),
    ("18", "每天卖 9 个蛋，每个 2 美元。答案是：18", "official", "strict:answer_is"),
    ("3", "The answer is three, since 5 - 2 = 3 apples remain", "official", "strict:answer_is"),
])
def test_strict_extraction_correct(gold, response, fmt, extractor):
    s = score(gold, response, fmt)
    assert s.correct and s.extractor == extractor
    assert s.variants["flexible_extract"]["correct"]


def test_the_cued_number_wins_over_the_last_one():
    s = score("2", "So the answer to the question is 2, as each of the 5 boxes holds 4.", "official")
    assert (s.extracted, s.extractor, s.correct) == ("2", "strict:answer_is", True)
    assert s.variants["flexible_extract"] == {"extracted": "4", "correct": False}


def test_strict_fails_where_only_flexible_finds_the_number():
    s = score("18", "First 16, then 18", "official")
    assert (s.extracted, s.extractor, s.correct) == (None, "strict:none", False)
    assert s.variants["flexible_extract"] == {"extracted": "18", "correct": True}


def test_wrong_answers():
    assert not score("18", "<SOLUTION>17</SOLUTION>").correct
    s = score("18", "#### 17\nOn reflection, 18", "official")
    assert (s.extracted, s.correct, s.variants["flexible_extract"]["correct"]) == ("17", False, True)
    assert not score("18", "<SOLUTION>eighteen</SOLUTION>").correct


def test_real_test_split(reference_data):
    items = gsm8k.load(LoadOptions(split="test", data_dir=reference_data / "gsm8k"))
    assert len(items) == gsm8k.SUITE.splits["test"] == 1319
    assert all(it.error is None for it in items)
    assert len({it.sample_id for it in items}) == 1319
    raw = [json.loads(line) for line in (reference_data / "gsm8k" / "test.jsonl").read_text().splitlines()]
    assert sum("," in r["answer"].split("####")[-1] for r in raw) == 14
    assert items[146].gold == "2125" and items[611].gold == "1450000"
    assert sorted(it.gold for it in items if it.gold.startswith("-")) == ["-10", "-3"]
    assert score(items[611].gold, "<SOLUTION>1,450,000</SOLUTION>").correct
    assert all(score(it.gold, f"#### {it.gold}", "official").correct for it in items)
