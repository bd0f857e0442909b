"""MathVerse: loading (GitHub JSON, parquet), choice parsing, prompts per version, rule-based scoring."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError, DataError
from suites import mathverse
from suites.base import LoadOptions, ScoringInput, Target
from suites.mathverse_answers import gold_choice_letters, numeric_value
from tests.fixtures import score_response, write_parquet
from tests.fixtures.mathverse_fixture import write_mathverse_fixture

CHOICES = ["30°", "45°", "60°", "75°"]


def score(gold: str, response: str, fmt: str = "reasoning-solution", choices: list[str] | None = None,
          multi_choice: bool = False):
    target = Target(gold=gold, answer_type="multi_choice" if multi_choice else "expression", choices=choices)
    return score_response(mathverse.score, response, target, fmt)


def test_fixture_loads_all_versions(tmp_path):
    data_dir = write_mathverse_fixture(tmp_path, n_problems=2)
    items = mathverse.load(LoadOptions(split="testmini", data_dir=data_dir))
    assert [it.sample_id for it in items] == [str(i) for i in range(1, 11)]
    assert [it.meta["problem_version"] for it in items[:5]] == list(mathverse.VERSIONS[:5])
    assert all(it.error is None and it.image_bytes.startswith(b"\x89PNG") for it in items)
    first = items[0]
    assert first.answer_type == "multi_choice" and first.gold == "C" and first.choices == CHOICES
    assert "Choices" not in first.question and first.query.startswith("Please first conduct reasoning")
    assert items[5].answer_type == "expression" and items[5].choices is None
    json.dumps([it.target() for it in items])  # records must be able to store the target
    text_only = mathverse.load(LoadOptions(split="testmini_text_only", data_dir=data_dir))
    assert [it.sample_id for it in text_only] == ["1", "2"]
    assert all(it.image_bytes is None and it.error is None for it in text_only)


def test_question_text_shows_each_version_its_own_text(tmp_path):
    data_dir = write_mathverse_fixture(tmp_path, n_problems=2, with_question_for_eval=True)
    items = {it.sample_id: it for it in mathverse.load(LoadOptions(split="testmini", data_dir=data_dir))}
    vision_only = items["10"]
    assert vision_only.meta["problem_version"] == "Vision Only"
    assert vision_only.question.startswith("A cylinder")  # question_for_eval, for records and judges
    assert mathverse.question_text(vision_only) == "Answer the question shown in the image."
    assert mathverse.question_text(items["9"]) == "Find L."
    shown = mathverse.question_text(items["4"])
    assert shown.startswith("What is the size of angle AED?\nChoices:\nA:30°")
    assert shown.endswith("Answer with the correct option letter, e.g., A, B, C, D.")


def test_parquet_layout_keeps_image_bytes(tmp_path):
    data_dir = write_mathverse_fixture(tmp_path / "src", n_problems=1)
    rows = json.loads((data_dir / "testmini.json").read_text())
    for row in rows:
        row["image"] = {"bytes": (data_dir / "images" / row["image"]).read_bytes(), "path": row["image"]}
        row["question_for_eval"] = rows[0]["question"]
    hub = tmp_path / "hub"
    write_parquet(rows, hub / "testmini-00000-of-00001.parquet")
    items = mathverse.load(LoadOptions(split="testmini", data_dir=hub))
    assert len(items) == 5 and all(it.error is None for it in items)
    assert items[0].image_bytes == (data_dir / "images" / "images_version_1-4" / "image_1.png").read_bytes()
    with pytest.raises(DataError, match="testmini_text_only"):
        mathverse.load(LoadOptions(split="testmini_text_only", data_dir=hub))


def test_malformed_rows_become_error_items(tmp_path):
    data_dir = write_mathverse_fixture(tmp_path, n_problems=1)
    rows = json.loads((data_dir / "testmini.json").read_text())
    rows[1]["answer"] = None
    rows[2]["image"] = "images_version_1-4/missing.png"
    rows[3]["sample_index"] = rows[0]["sample_index"]
    rows.append("not a row")
    (data_dir / "testmini.json").write_text(json.dumps(rows))
    items = mathverse.load(LoadOptions(split="testmini", data_dir=data_dir))
    assert len(items) == 6
    assert [it.error is None for it in items] == [True, False, False, False, True, False]
    assert "missing.png" in items[2].error and items[3].sample_id == "1~1"


def test_missing_data_and_bad_split(tmp_path, offline_hub):
    with pytest.raises(DataError, match="testmini.json"):
        mathverse.load(LoadOptions(split="testmini", data_dir=tmp_path))
    (tmp_path / "testmini.json").write_text("{broken")
    with pytest.raises(DataError, match="cannot read"):
        mathverse.load(LoadOptions(split="testmini", data_dir=tmp_path))
    with pytest.raises(ConfigError):
        mathverse.load(LoadOptions(split="test", data_dir=tmp_path))

    with pytest.raises(DataError, match="--data-dir"):
        mathverse.load(LoadOptions(split="testmini"))


def test_split_choices():
    assert mathverse.split_choices("Q?\nChoices:\nA:40°\nB:60°") == ("Q?", ["40°", "60°"])
    assert mathverse.split_choices("Q\nChoice:\nA. True\nB. False") == ("Q", ["True", "False"])
    assert mathverse.split_choices("Q\nChoices:\nA.$x$\nB.$y$\n102") == ("Q\n102", ["$x$", "$y$"])
    assert mathverse.split_choices("Find L.") == ("Find L.", None)


def test_gold_letters():
    assert gold_choice_letters("(B)", None) == {"B"}
    assert gold_choice_letters("C\nD", None) == {"C", "D"}
    assert gold_choice_letters("False", ["True", "False"]) == {"B"}
    assert gold_choice_letters("090^\\circ T", None) is None


@pytest.mark.parametrize(("gold", "response", "fmt", "extractor"), [
    ("D", "<SOLUTION>D</SOLUTION>", "reasoning-solution", "answer_block>letter"),
    ("D", "<SOLUTION>(D)</SOLUTION>", "reasoning-solution", "answer_block>letter"),
    ("D", "<SOLUTION>D: 75°</SOLUTION>", "reasoning-solution", "answer_block>leading_letter"),
    ("(B)", "<SOLUTION>B</SOLUTION>", "reasoning-solution", "answer_block>letter"),
    ("B", "<SOLUTION>45°</SOLUTION>", "reasoning-solution", "answer_block>choice_text"),
    ("B", "\\boxed{B}", "boxed", "boxed>letter"),
    ("B", "Angle ABC is 45, so the answer is B.", "official", "response>answer_cue"),
    ("B", "Reasoning about point A.\nAnswer: (B)", "official", "response>answer_cue"),
    ("B", "Point A is not it.\nB", "official", "response>last_line>letter"),
    # the answer cues every suite shares
    ("B", "Angle ABC is 45°.\nThe answer is:\n\n(B)", "official", "response>answer_cue"),
    ("B", "由图可知∠ABC = 45°。答案是: B", "official", "response>answer_cue"),
    ("B", "Angle ABC is 45°, so the correct option letter is B.", "official", "response>answer_cue"),
    ("B", 'So I would pick "B." as the correct choice is "B"', "official", "response>answer_cue"),
    ("B", "Angle ABC is 45°. Therefore, option (B) is the correct answer.", "official",
     "response>letter_called_correct"),
    ("C\nD", "<SOLUTION>C, D</SOLUTION>", "reasoning-solution", "answer_block>letter_set"),
])
def test_multi_choice_letters(gold, response, fmt, extractor):
    s = score(gold, response, fmt, choices=CHOICES, multi_choice=True)
    assert s.correct and s.extractor == extractor


@pytest.mark.parametrize(("response", "multi_choice"), [
    ("The figure does not give the radius, so the length cannot be determined.", False),
    ("I cannot select either option from this image; it could be A or B.", True),
    ("Sorry, I can't help with images of people yet.", True),
    ("The answer is: cannot be determined from the given information (perhaps 14)", False),
])
def test_abstentions_earn_nothing(response, multi_choice):
    gold = "B" if multi_choice else "14"
    s = score(gold, response, "official", choices=CHOICES if multi_choice else None, multi_choice=multi_choice)
    assert (s.extracted, s.extractor, s.correct) == (None, "response>abstention", False)


def test_numbers_written_as_words():
    assert score("3", "Counting the faces on the front, there are three.", "official").correct


def test_multi_choice_wrong_or_unreadable():
    assert not score("C\nD", "<SOLUTION>C</SOLUTION>", choices=CHOICES, multi_choice=True).correct
    assert not score("B", "<SOLUTION>A</SOLUTION>", choices=CHOICES, multi_choice=True).correct
    s = score("B", "Points A and B lie on the circle.", "official", choices=CHOICES, multi_choice=True)
    assert (s.extracted, s.correct) == (None, False)
    # A text gold without parsed choices (Vision Only, no question_for_eval) is compared as text.
    assert score("False", "<SOLUTION>false</SOLUTION>", multi_choice=True).correct


@pytest.mark.parametrize(("gold", "answer"), [
    ("14", "14 cm"),
    ("118掳T", "118°T"),
    ("315^\\circT", "315°"),
    ("60^\\circ", "60"),
    ("Area $=113.1 \\mathrm{~cm}^{2}$", "113.1 cm^2"),
    ("Area $=9 \\pi \\mathrm{cm}^{2}$", "9\\pi"),
    ("\\frac{\\sqrt{30}}{2}", "\\sqrt{30}/2"),
    ("4\\sqrt{6}", "$4\\sqrt{6}$"),
    ("$\\frac{4}{5}$", "0.8"),
    ("$-\\frac{21}{29}$", "-21/29"),
    ("53.13", "53.1301"),
    ("2191.7 metres", "L = 2191.7 m"),
    ("1688", "1,688"),
    ("y=-2 x+5", "y = -2x + 5"),
    ("(-2,1]", "(-2, 1]"),
    ("even", "Even"),
])
def test_free_form_equivalent(gold, answer):
    s = score(gold, f"<SOLUTION>{answer}</SOLUTION>")
    assert s.correct, s


@pytest.mark.parametrize(("gold", "answer"), [("14", "14.32"), ("14", "13 cm"), ("\\frac{4}{5}", "0.85"),
                                              ("60^\\circ", "120°"), ("(-2,1]", "(-2, 1)")])
def test_free_form_wrong(gold, answer):
    assert not score(gold, f"<SOLUTION>{answer}</SOLUTION>").correct


def test_numeric_value():
    assert numeric_value("Circumference $=50.27 \\mathrm{~cm}$") == pytest.approx(50.27)
    assert numeric_value("\\frac{1225\\pi }{2} \\text { units }^2") == pytest.approx(1225 * 3.14159265 / 2)
    assert numeric_value("(2,-2)") is None and numeric_value("S 23.5 ^\\circ W") is None


def test_real_text_only_split_and_official_sample(reference_data):
    items = mathverse.load(LoadOptions(split="testmini_text_only", data_dir=reference_data / "mathverse"))
    assert len(items) == mathverse.SUITE.splits["testmini_text_only"] == 788
    assert all(it.error is None and it.image_bytes is None for it in items)
    multi_choice = [it for it in items if it.answer_type == "multi_choice"]
    assert len(multi_choice) == 436 and all(it.choices for it in multi_choice)
    by_id = {it.sample_id: it for it in items}
    assert (by_id["517"].gold, by_id["517"].meta["official_answer"]) == ("C", "(C)")
    assert (by_id["429"].gold, by_id["429"].meta["official_answer"]) == ("B", "False")
    assert by_id["440"].gold == "C\nD"
    for it in items:  # every gold scores correct against itself
        target = Target.from_dict(it.target())
        assert mathverse.score(ScoringInput(response=it.gold, region=it.gold, region_rule="answer_block",
                                            target=target)).correct, it.sample_id
    sample = reference_data / "mathverse" / "output_testmini_sample.json"
    result = mathverse.score_predictions(sample, "response")
    # Four versions answer 14 (the gold); the Vision Only response misreads the figure and says 13.
    assert result["n"] == 5 and result["items"] == {"3421": True, "3422": True, "3423": True, "3424": True,
                                                    "3425": False}
