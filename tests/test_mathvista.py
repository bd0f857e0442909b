"""MathVista testmini: official normalisation replayed on real outputs, the rule-based extractor,
and the loader on both local layouts."""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image

from core.errors import ConfigError, DataError
from suites.base import LoadOptions, ScoringInput, Target
from suites.mathvista import (
    HF_REVISION,
    SUITE,
    load,
    normalize_extracted_answer,
    official_query,
    question_text,
    safe_equal,
    score,
    score_predictions,
)
from tests.fixtures.mathvista_fixture import fixture_hf_dataset, fixture_problems, write_mathvista_fixture

ANGLES = ["135°", "140°", "145°", "150°"]
DUPLICATED = ["9", "12", "18", "18"]


def norm_mc(extraction, choices=ANGLES, **kw):
    return normalize_extracted_answer(extraction, choices, "multi_choice", "text", None, **kw)


def mc_target(gold="145°", choices=ANGLES):
    return Target(gold=gold, answer_type="multi_choice", choices=choices,
                  meta={"question_type": "multi_choice", "answer_type": "text"})


def free_target(gold, answer_type, precision=None):
    return Target(gold=gold, answer_type=answer_type, precision=precision,
                  meta={"question_type": "free_form", "answer_type": answer_type})


def judge(region, target, rule="answer_block", response=None):
    return score(ScoringInput(response=response or region, region=region, region_rule=rule, target=target))


# --- the official scorer against the released outputs -------------------------------------------

@pytest.mark.parametrize(("name", "accuracy"), [("output_bard.json", 0.348),
                                                ("output_llava_llama_2_13b.json", 0.261)])
def test_stored_extractions_reproduce_official_true_false(reference_data, name, accuracy):
    path = reference_data / "mathvista" / "outputs" / name
    stored = json.loads(path.read_text(encoding="utf-8"))
    result = score_predictions(path, field="extraction")
    changed = [pid for pid, p in stored.items() if result["items"][pid] != p["true_false"]]
    assert not changed, f"items judged differently from the official file: {changed[:20]}"
    assert result["n"] == 1000
    assert result["accuracy"] == pytest.approx(accuracy)


def test_github_json_builds_the_official_query(reference_data):
    items = load(LoadOptions(split="testmini", data_dir=reference_data / "mathvista"))
    assert len(items) == 1000
    assert all(it.error and "not found" in it.error for it in items)  # annotations only, no images
    stored = json.loads((reference_data / "mathvista/outputs/output_bard.json").read_text(encoding="utf-8"))
    differ = {it.sample_id for it in items if it.query != stored[it.sample_id]["query"]}
    # The released queries of these ten 5-choice problems list their choices in an older order.
    assert differ == {"99", "168", "229", "272", "287", "291", "513", "670", "688", "849"}
    by_type = {t: sum(it.answer_type == t for it in items) for t in ("multi_choice", "integer", "float", "list")}
    assert by_type == {"multi_choice": 540, "integer": 418, "float": 40, "list": 2}
    assert {it.precision for it in items if it.answer_type == "float"} == {1, 2}
    numeric = load(LoadOptions(split="testmini", data_dir=reference_data / "mathvista", variant="numeric"))
    assert len(numeric) == 566


# --- normalize_extracted_answer + safe_equal ----------------------------------------------------

def test_multi_choice_letters_map_to_choice_text():
    assert norm_mc("(B)") == "140°"
    assert norm_mc("B") == "140°"
    assert norm_mc("  C  ") == "145°"
    assert norm_mc("(b) because ...") == "140°"  # a parenthesised letter is upper-cased
    assert norm_mc("The answer is (D).") == "150°"
    # A bare lower-case letter is not a letter to the official rule: edit distance decides.
    assert norm_mc("b") == "135°"
    # A letter past the last choice falls back to edit distance as well (no IndexError).
    assert norm_mc("(E)") in ANGLES


def test_multi_choice_text_and_typos_use_levenshtein():
    cats = ["white five", "white three", "white four", "white one", "white two"]
    assert norm_mc("white one", cats) == "white one"
    assert norm_mc("whit thre", cats) == "white three"
    assert norm_mc("145 deg") == "145°"
    assert norm_mc(2, ["1", "2"]) == "2"  # non-strings go through str()
    assert norm_mc("  ", ["ab", "cd"]) == "ab"  # ties: the first choice


def test_empty_extraction_picks_the_shortest_choice():
    choices = ["increase", "fluctuate", "it would decrease", "stay the same"]
    assert norm_mc("", choices) == "increase"
    assert norm_mc("", choices, ignore_empty_extractions=True) is None


def test_duplicated_choices():
    assert norm_mc("C", DUPLICATED) == "18"
    assert norm_mc("D", DUPLICATED) == "18"
    assert norm_mc("18", DUPLICATED) == "18"
    assert norm_mc("12", DUPLICATED) == "12"


def test_integer_normalisation_truncates():
    def norm(x):
        return normalize_extracted_answer(x, None, "free_form", "integer", None)

    assert norm("5.5") == "5"
    assert norm("-2.7") == "-2"
    assert norm("2.0") == "2"
    assert norm("1e3") == "1000"
    assert norm(" 7 ") == "7"
    assert norm("seven") is None
    assert norm(None) is None
    assert norm("inf") is None


def test_float_normalisation_rounds_to_precision():
    def norm(x, precision):
        return normalize_extracted_answer(x, None, "free_form", "float", precision)

    assert norm("1.23", 1) == "1.2"
    assert norm("3", 1) == "3.0"
    assert norm("2.5449", 2) == "2.54"
    assert norm("2.5449", 2.0) == "2.54"  # the hub stores precision as a float
    assert norm("0.129", 2.0) == "0.13"
    assert norm("1.2", None) is None
    assert norm("about one", 1) is None


def test_list_answers_compare_as_exact_strings():
    def norm(x):
        return normalize_extracted_answer(x, None, "free_form", "list", None)

    assert safe_equal(norm("[2014, 2016]"), "[2014, 2016]")
    assert not safe_equal(norm("[2014,2016]"), "[2014, 2016]")
    assert norm([2014, 2016]) == "[2014, 2016]"
    assert norm(["2014", "2016"]) == "['2014', '2016']"


def test_safe_equal_is_plain_equality():
    class Unequal:
        def __eq__(self, other):
            raise RuntimeError("cannot compare")

    assert safe_equal("1.2", "1.2")
    assert not safe_equal("1.2", 1.2)
    assert not safe_equal(None, "x")
    assert not safe_equal(Unequal(), "x")


# --- the rule-based extractor (more cases from realistic responses: tests/test_mathvista_answers.py) --

@pytest.mark.parametrize(("region", "extracted", "rule"), [
    ("145°", "145°", "choice_text"),
    ("C", "C", "choice_letter"),
    ("(C)", "C", "choice_letter"),
    ("**C.**", "C", "choice_letter"),
    ("The answer is C", "C", "answer_is_letter"),
    ("Answer: (C) 145°", "C", "answer_is_letter"),
    ("so the answer is 145°.", "145°", "answer_is_choice_text"),
    ("C. 145°", "C", "choice_letter"),
    ("Both (A) and (B) are too small; (C) fits.", "C", "paren_letter"),
    ("It measures 145° in total", "145°", "claim_choice_text"),
    ("145 degrees", "145°", "claim_choice_value"),
    (("The options 140° and 150° are too wide. Measured with a protractor, the marked angle comes to 145° in "
     "total. The check agrees. Nothing else fits."), "145°", "choice_text_contained"),
])
def test_choice_extraction(region, extracted, rule):
    s = judge(region, mc_target())
    assert (s.extracted, s.extractor) == (extracted, f"answer_block>{rule}")
    assert s.correct and s.official_correct
    assert s.variants["official"]["prediction"] == "145°"


def test_an_answer_that_is_no_option_is_wrong_strictly_and_the_nearest_choice_officially():
    s = judge("145.5°", mc_target())
    assert (s.extracted, s.extractor, s.answered) == ("145.5°", "answer_block>raw", True)
    assert not s.correct  # strict: 145.5° is no option
    assert s.official_correct and s.variants["official"]["prediction"] == "145°"  # official: nearest choice


def test_choice_extraction_on_a_whole_response():
    s = judge("The picture is too dark to see the angle marks.", mc_target(), rule="response")
    assert (s.extracted, s.extractor, s.correct, s.answered) == (None, "response>no_choice", False, False)
    s = judge("The options 140° and 1450 are wrong, the angle is 145°", mc_target(), rule="response")
    assert s.extracted == "145°" and s.correct
    s = judge("Since DK=16, CD = 18. Answer: D", mc_target("18", DUPLICATED), rule="response")
    assert s.extracted == "D" and s.correct


def test_empty_answer_is_no_answer_strictly_and_the_shortest_choice_officially():
    s = judge("  ", mc_target(gold="135°", choices=["135°", "140°", "1450°"]))
    assert (s.extracted, s.extractor, s.answered) == (None, "answer_block>empty", False)
    assert not s.correct
    assert s.official_correct  # the official rule maps an empty extraction to the shortest choice
    assert not judge("", free_target("1000", "integer")).official_correct


@pytest.mark.parametrize(("region", "target", "extracted", "rule", "correct"), [
    ("1000", free_target("1000", "integer"), "1000", "int", True),
    ("The answer is 1,000 g. Check: 2 x 500", free_target("1000", "integer"), "1000", "answer_is_number", True),
    ("roughly 5.5 litres", free_target("5", "integer"), "5.5", "sentence_number", True),
    ("area = 25 m^2", free_target("25", "integer"), "25", "sentence_number", True),
    ("The bars measure 12 and 25.\nTheir sum is 37", free_target("37", "integer"), "37", "last_number", True),
    ("so **3** groups (of 40 bars)", free_target("3", "integer"), "3", "bold_number", True),
    ("1.20", free_target("1.2", "float", 1), "1.2", "float", True),
    ("d = 1.23 m", free_target("1.2", "float", 1), "1.23", "sentence_number", True),
    ("d = 1.23 m", free_target("1.23", "float", 2), "1.23", "sentence_number", True),
    ("no idea", free_target("1.2", "float", 1), None, "no_number", False),
    ("[2014,2016]", free_target("[2014, 2016]", "list"), "[2014, 2016]", "bracket_list", True),
    ("years [2014, 2015]", free_target("[2014, 2016]", "list"), "[2014, 2015]", "bracket_list", False),
    ("2014 and 2016", free_target("[2014, 2016]", "list"), None, "no_list", False),
])
def test_free_form_extraction(region, target, extracted, rule, correct):
    s = judge(region, target, rule="boxed")
    assert (s.extracted, s.extractor, s.correct) == (extracted, f"boxed>{rule}", correct)


def test_rule_based_scoring_of_released_responses(reference_data):
    # A sanity bound, not a reproduction: the rules stand in for GPT extraction.
    path = reference_data / "mathvista" / "outputs" / "output_bard.json"
    result = score_predictions(path, field="response")
    assert result["n"] == 1000 and 0.30 <= result["accuracy"] <= 0.40


# --- score_predictions input handling -------------------------------------------------------------

def test_score_predictions_fills_missing_answers_from_the_data(tmp_path):
    data_dir = write_mathvista_fixture(tmp_path / "data", "github")
    problems = fixture_problems(6)
    outputs = {}
    for pid, p in problems.items():
        entry = {k: p[k] for k in ("question_type", "answer_type", "choices", "precision")}
        outputs[pid] = {**entry, "extraction": p["answer"], "response": f"The answer is {p['answer']}"}
    path = tmp_path / "out.json"
    path.write_text(json.dumps(outputs), encoding="utf-8")
    assert score_predictions(path, "extraction", data_dir=data_dir)["accuracy"] == 1.0
    assert score_predictions(path, "response", data_dir=data_dir)["accuracy"] == 1.0


def test_score_predictions_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError):
        score_predictions(bad, "extraction")
    with pytest.raises(DataError):
        score_predictions(tmp_path / "absent.json", "extraction")
    bad.write_text(json.dumps({"99": {"question_type": "free_form", "answer_type": "integer",
                                      "choices": None, "precision": None}}), encoding="utf-8")
    with pytest.raises(DataError, match="99 has no answer and is not in the data set"):
        score_predictions(bad, "extraction", data_dir=write_mathvista_fixture(tmp_path / "data", "github"))
    bad.write_text(json.dumps({"1": {"answer_type": "integer", "choices": None, "precision": None,
                                     "answer": "3", "extraction": "3"}}), encoding="utf-8")
    with pytest.raises(DataError, match="question_type"):
        score_predictions(bad, "extraction")
    with pytest.raises(ConfigError):
        score_predictions(bad, "prediction")
    with pytest.raises(ConfigError):
        score_predictions(bad, "extraction", scoring="lenient")


# --- loading ----------------------------------------------------------------------------------

def _load(data_dir, variant=None):
    return load(LoadOptions(split="testmini", data_dir=data_dir, variant=variant))


def test_both_layouts_load_the_same_items(tmp_path):
    github = _load(write_mathvista_fixture(tmp_path / "gh", "github"))
    hf = _load(write_mathvista_fixture(tmp_path / "hf", "hf"))
    assert [it.sample_id for it in github] == ["1", "2", "3", "4", "5", "6"]
    for a, b in zip(github, hf, strict=True):
        assert a.error is None and b.error is None
        assert (a.question, a.gold, a.answer_type, a.choices, a.unit, a.precision, a.meta, a.query) == \
               (b.question, b.gold, b.answer_type, b.choices, b.unit, b.precision, b.meta, b.query)
        assert a.image_bytes == b.image_bytes
        assert Image.open(io.BytesIO(a.image_bytes)).size == (64, 48)
    mc, integer, float1, float2, lst, dup = github
    assert (float1.gold, float1.precision) == ("1.2", 1)
    assert (mc.answer_type, mc.gold, mc.meta["answer_type"]) == ("multi_choice", "145°", "text")
    assert isinstance(float2.precision, int) and float2.precision == 2
    assert (integer.unit, lst.answer_type, dup.choices) == ("g", "list", DUPLICATED)
    assert mc.meta["skills"] == ["geometry reasoning", "algebraic reasoning"]
    assert {"task", "grade", "context", "source", "language", "category", "split"} <= set(mc.meta)
    assert question_text(integer) == "What is the total volume of the measuring cup? (Unit: g)"
    assert question_text(mc).endswith("?\nChoices:\n(A) 135°\n(B) 140°\n(C) 145°\n(D) 150°")
    assert official_query(mc) == mc.query


def test_github_layout_under_data_with_images_one_level_up(tmp_path):
    root = write_mathvista_fixture(tmp_path, "github")
    (root / "data").mkdir()
    (root / "testmini.json").rename(root / "data" / "testmini.json")
    items = _load(root)
    assert len(items) == 6 and all(it.error is None and it.image_bytes for it in items)


def test_missing_image_becomes_an_item_error(tmp_path):
    root = write_mathvista_fixture(tmp_path, "github")
    (root / "images" / "3.jpg").unlink()
    items = _load(root)
    assert len(items) == 6
    broken = items[2]
    assert broken.error and "images/3.jpg" in broken.error and broken.image_bytes is None
    assert broken.gold == "1.2"  # the rest of the item is still there to be recorded
    assert all(it.error is None for i, it in enumerate(items) if i != 2)


def test_unreadable_entry_becomes_an_item_error(tmp_path):
    root = write_mathvista_fixture(tmp_path, "github")
    data = json.loads((root / "testmini.json").read_text(encoding="utf-8"))
    del data["2"]["question_type"]
    data["7"] = "not a problem"
    (root / "testmini.json").write_text(json.dumps(data), encoding="utf-8")
    items = _load(root)
    assert [it.sample_id for it in items if it.error] == ["2", "7"]


def test_missing_or_malformed_data_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="testmini"):
        _load(tmp_path / "nowhere")
    (tmp_path / "testmini.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(DataError, match="testmini.json"):
        _load(tmp_path)


def test_hub_rows_load_with_undecoded_images(tmp_path, monkeypatch):
    import datasets

    calls = []

    def from_hub(*args, **kwargs):
        calls.append((args, kwargs))
        return fixture_hf_dataset(6)

    monkeypatch.setattr(datasets, "load_dataset", from_hub)
    items = load(LoadOptions(split="testmini"))
    assert calls[0][0][0] == "AI4Math/MathVista"
    assert calls[0][1] == {"split": "testmini", "revision": HF_REVISION}
    local = _load(write_mathvista_fixture(tmp_path, "github"))
    assert [(it.sample_id, it.query, it.precision, it.image_bytes) for it in items] == \
           [(it.sample_id, it.query, it.precision, it.image_bytes) for it in local]


def test_hub_failure_is_a_one_line_data_error(offline_hub):
    with pytest.raises(DataError) as err:
        load(LoadOptions(split="testmini"))
    assert "\n" not in str(err.value) and "--data-dir" in str(err.value)


def test_numeric_variant_keeps_answers_that_parse_as_numbers(tmp_path):
    items = _load(write_mathvista_fixture(tmp_path, "github"), variant="numeric")
    assert [it.gold for it in items] == ["1000", "1.2", "2.54", "18"]
    with pytest.raises(ConfigError):
        _load(tmp_path, variant="hard")


def test_suite_declaration():
    assert SUITE.name == "mathvista_testmini" and SUITE.splits == {"testmini": 1000}
    assert re.fullmatch(r"[0-9a-f]{40}", HF_REVISION) and SUITE.source == f"AI4Math/MathVista@{HF_REVISION}"
    assert SUITE.multi_label == ("skills",) and "skills" in SUITE.breakdowns
    assert SUITE.variants == ("numeric",) and "GPT" in SUITE.notes
    assert SUITE.score_predictions is score_predictions
