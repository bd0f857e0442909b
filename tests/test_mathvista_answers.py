"""MathVista answer rules on responses written the way models write them: each case the official
scorer's GPT step reads and the rules once missed, abstentions (never credited in strict scoring), the
official-compatible fallback, and the agreement with the official verdicts on the released outputs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.cli import cli
from suites.base import ScoringInput, Target
from suites.mathvista import score, score_predictions
from suites.mathvista_agreement import agreement
from suites.mathvista_official import listed_choices
from suites.mathvista_outputs import problem_target

ANGLES = ["30°", "40°", "50°", "60°"]


def mc(gold, choices, question=None):
    return Target(gold=gold, answer_type="multi_choice", choices=choices, question=question,
                  meta={"question_type": "multi_choice", "answer_type": "text"})


def free(gold, answer_type="integer", precision=None, question=None):
    return Target(gold=gold, answer_type=answer_type, precision=precision, question=question,
                  meta={"question_type": "free_form", "answer_type": answer_type})


def read(response, target):
    """The scorer on a whole response, as `harness eval --prompt-format official` gives it."""
    return score(ScoringInput(response=response, region=response, region_rule="response", target=target))


# --- the cases the rules missed -------------------------------------------------------------------

@pytest.mark.parametrize(("response", "target", "extracted", "rule"), [
    # the letter after "The answer is:", a colon and a new line
    ("∠BOC is a central angle on the same arc as ∠A, so ∠A = 1/2 ∠BOC = 50°.\n\nThe answer is:\nC",
     mc("50°", ANGLES), "C", "answer_is_letter"),
    ("Looking at the chart, the tallest bar belongs to 2019. The answer is: **(B)**",
     mc("2019", ["2018", "2019", "2020"]), "B", "answer_is_letter"),
    # the letter after "答案是:"
    ("由图可知，∠BOC = 2∠A = 100°，所以∠A = 50°。\n答案是: C", mc("50°", ANGLES), "C", "answer_is_letter"),
    ("因为 AB ∥ CD，所以 ∠1 = ∠2 = 40°。答案是：B", mc("40°", ANGLES), "B", "answer_is_letter"),
    # "the correct option letter is D", "the correct option is C", a quoted "C."
    ("The angle at the centre is twice the inscribed angle, 2 × 30° = 60°. The correct option letter is D.",
     mc("60°", ANGLES), "D", "answer_is_letter"),
    ("Since the triangle is isosceles, both base angles are 50°, so the correct option is C",
     mc("50°", ANGLES), "C", "answer_is_letter"),
    ('Adding the two angles gives 50°, which matches the third choice, so I would pick "C."',
     mc("50°", ANGLES), "C", "quoted_letter"),
    (("The length of AB cannot be read directly, but by similar triangles it is 6. Therefore, option (C) is "
     "the correct answer."), mc("6", ["2", "4", "6", "8"]), "C", "letter_called_correct"),
    # a letter alone on the last line
    ("The shaded part covers three of the eight equal sectors, which is 3/8 of the circle.\n\nB",
     mc("3/8", ["1/4", "3/8", "1/2", "5/8"]), "B", "last_line_letter"),
    ("Counting the cubes layer by layer gives 4 + 3 + 2 = 9.\n**(D)**", mc("9", ["6", "7", "8", "9"]), "D",
     "last_line_letter"),
])
def test_letters_the_rules_now_read(response, target, extracted, rule):
    s = read(response, target)
    assert (s.extracted, s.extractor) == (extracted, f"response>{rule}")
    assert s.correct and s.official_correct and s.answered


@pytest.mark.parametrize(("response", "target", "extracted"), [
    ("Yes, the function is continuous at every point of its domain.", mc("yes", ["yes", "no"]), "yes"),
    ("No. The gray bar is taller than the blue one in 2015.", mc("no", ["yes", "no"]), "no"),
    ("The capital shown on the map is Tokyo.", mc("tokyo", ["beijing", "tokyo", "seoul"]), "tokyo"),
    ("Based on the image, the largest part of the lung is the superior lobes.",
     mc("Superior lobes", ["Inferior lobes", "Cardiac notch", "Superior lobes", "Middle lobe"]), "Superior lobes"),
])
def test_choice_text_matches_in_any_case(response, target, extracted):
    s = read(response, target)
    assert s.extracted == extracted and s.correct


@pytest.mark.parametrize(("response", "target", "extracted", "rule"), [
    ("There are three objects left after subtracting all the blue shiny spheres.", free("3"), "3",
     "sentence_number"),
    ("Only two sequences have a negative influence score.", free("2"), "2", "sentence_number"),
    ("The answer is twenty-one.", free("21"), "21", "answer_is_number"),
    # the cued number wins over the last one
    (("Comparing the bars, the answer to the question is 2, as the shorter bar measures 5 units and the "
     "longer one 7 units."), free("2"), "2", "answer_is_number"),
    ("The age gap between the two people in the image is 10 years.", free("10"), "10", "sentence_number"),
    ("There are 2 items sold less than 5 units in at least one store.", free("2"), "2", "sentence_number"),
])
def test_numbers_the_rules_now_read(response, target, extracted, rule):
    s = read(response, target)
    assert (s.extracted, s.extractor) == (extracted, f"response>{rule}")
    assert s.correct


@pytest.mark.parametrize(("response", "question", "extracted"), [
    # the number the question does not give answers it
    ("The function value first reaches 3 at the point (2, 3) on the graph.",
     "When does the function value first reach 3?", "2"),
    ("The total cost of buying 2.5 kilograms of rice is $7.50.",
     "Maya buys 2.5 kilograms of rice. What is the total cost? (Unit: $)", "7.50"),
    ("The percentage was over 20% in 4 years.", "In how many years was the percentage over 20%?", "4"),
    # a sentence that only repeats the question's numbers ends with its answer
    ("The model has 12 stars divided into 4 equal rows, with each row containing 4 stars.",
     "The model has 12 stars divided into 4 equal rows. There are (_) stars in each row.", "4"),
    # ... and a number a copula introduces still wins
    ("The man is 40 years old and the boy is 12, so the age gap between them is 28 years.",
     "What is the age gap between the two people?", "28"),
])
def test_a_one_sentence_answer_gives_the_number_it_adds_to_the_question(response, question, extracted):
    s = read(response, free(extracted, "float" if "." in extracted else "integer",
                            precision=2 if "." in extracted else None, question=question))
    assert (s.extracted, s.extractor) == (extracted, "response>sentence_number")


def test_the_last_number_still_answers_a_reasoned_response():
    response = ("The first bar is 12 and the second is 25.\nAdding them: 12 + 25 = 37.\nSo the total is 37")
    s = read(response, free("37"))
    assert (s.extracted, s.extractor, s.correct) == ("37", "response>last_number", True)


# --- sentences: a restated yes/no question, a choice in other words ---------------------------------

@pytest.mark.parametrize(("response", "question", "gold", "said"), [
    ("Based on the image, Periwinkle is not the maximum. The maximum is actually the color blue.",
     "Is Periwinkle the maximum?", "no", "no"),
    ("Based on the image, there are fewer tiny red trucks than small blue bicycles.",
     "Are there fewer tiny red trucks than small blue bicycles?", "Yes", "Yes"),
    ("The function is not differentiable at every point.", "Is this function differentiable at every point?",
     "No", "No"),
    # the compared things swap sides round "than": the same comparative says no
    ("Based on the image, there are more big green things in front of the bus than big red rubber buses.",
     "Are there more big red rubber buses in front of the bus than big green things?", "No", "No"),
    # ... and the other comparative with the sides swapped says yes
    ("Based on the image, there are more rubber choppers than big motorbikes.",
     "Are there fewer big motorbikes than rubber choppers?", "Yes", "Yes"),
])
def test_a_restated_yes_no_question_is_read(response, question, gold, said):
    s = read(response, mc(gold, ["Yes", "No"] if gold[0].isupper() else ["yes", "no"], question))
    assert (s.extracted, s.extractor, s.correct) == (said, "response>restated_yes_no", True)


def test_a_sentence_that_does_not_restate_the_question_is_no_answer():
    s = read("The picture shows a kitchen with a red kettle.", mc("Yes", ["Yes", "No"], "Is the kettle boiling?"))
    assert (s.extracted, s.answered, s.correct) == (None, False, False)


def test_a_choice_named_in_other_words():
    choices = ["Adult spider population would remain the same", "Adult spider population would double.",
               "Adults spider population would decrease", "Adult spider population would increase."]
    response = ("If all the spider eggs were eaten by a predator, the adult spider population would decrease. "
                "This is because the eggs represent the next generation of spiders.")
    s = read(response, mc(choices[2], choices))
    assert (s.extracted, s.extractor, s.correct) == (choices[2], "response>choice_in_words", True)


def test_a_choice_stated_with_a_modal_verb():
    choices = ["plants decrease", "plants increase", "nothing happens", "none of the above"]
    question = "What happens if caterpillars decrease?"
    response = ("If caterpillars decrease, plants may increase in the food chain. This is because fewer "
                "caterpillars eat the leaves. However, this is a generalization and may not apply to all "
                "ecosystems.")
    s = read(response, mc("plants increase", choices, question))
    assert (s.extracted, s.extractor, s.correct) == ("plants increase", "response>claim_choice_text", True)
    target = mc("plants increase", choices, question)
    s = read("With fewer caterpillars, the plants would decrease in number.", target)
    assert s.extracted == "plants decrease" and not s.correct
    # a negated modal states no choice
    s = read("If caterpillars decrease, plants will not increase.", target)
    assert s.extracted != "plants increase"


def test_a_label_choice_named_by_its_definition_in_the_question():
    question = ("The 3 images shown below are encoded with JPEG coding. Which image has the most non-zero AC "
                "coefficients? (a): Image A, (b): Image B, (c): Image C.")
    choices = ["(c)", "(a)", "(b)"]
    target = mc("(b)", choices, question)
    s = read("Judging by the expected DCT coefficients, the image with the most non-zero AC coefficients "
             "is Image B.", target)
    assert (s.extracted, s.extractor, s.correct, s.official_correct) == (
        "(b)", "response>claim_defined_label", True, False)
    # Strictly, an option's own text is that option even where it reads as a letter; the official
    # normalisation reads "(b)" as the letter B (choices[1], "(a)"), as it does with GPT's extraction.
    s = read("Image B has the most high-frequency detail, so the answer is (b).", target)
    assert (s.extracted, s.correct, s.official_correct) == ("(b)", True, False)
    assert s.variants["official"]["prediction"] == "(a)"


def test_a_response_that_lists_every_option_names_none():
    response = "The radius is 0.5 times the original radius.\n\nChoose the correct option letter:\n\n(A) 1\n(B) √{3}\n(C) 2\n(D) 3"
    s = read(response, mc("2", ["1", "√{3}", "2", "3"]))
    assert s.extracted is None and not s.correct


# --- abstentions: no credit in strict scoring, whatever they contain --------------------------------

@pytest.mark.parametrize(("response", "target"), [
    ("I cannot select either yes or no, since the image does not show the back of the building.",
     mc("no", ["yes", "no"])),
    ("Cannot be determined", mc("No", ["Yes", "No"])),
    ("N/A", mc("0-5", ["11-15", "21-25", "6-10", "16-20", "0-5"])),
    ("Sorry, I can't help with images of people yet.", mc("Yes", ["Yes", "No"])),
    ("I can't process this file.", mc("No", ["Yes", "No"])),
    ("Based on the image, it is not possible to definitively determine whether Dark Blue is the high median.",
     mc("no", ["yes", "no"], "Is Dark Blue the high median?")),
    # a number in a refusal that happens to equal the gold
    ("The exact height cannot be determined from the image; the pole could be anywhere from 4 to 6 m.",
     free("6")),
    ("I'm sorry, but I can't see the image, so I can't count the 3 bars you mention.", free("3")),
])
def test_abstentions_earn_nothing_in_strict_scoring(response, target):
    s = read(response, target)
    assert (s.extracted, s.extractor, s.answered, s.correct) == (None, "response>abstention", False, False)


def test_official_scoring_maps_an_abstention_to_the_nearest_choice():
    # "N/A" is nearer to "No" than to "Yes": the official pipeline credits it when the gold is No.
    s = read("N/A", mc("No", ["Yes", "No"]))
    assert not s.correct and s.official_correct
    assert s.variants["official"] == {"extracted": "N/A", "prediction": "No"}
    # The number in a hedge is what the official extraction would keep.
    s = read("The exact height cannot be determined from the image; it looks like about 6 m.", free("6"))
    assert not s.correct and s.official_correct


def test_a_choice_that_is_an_abstention_is_an_answer():
    choices = ["8", "12", "16", "不能确定"]
    assert read("不能确定", mc("不能确定", choices)).correct
    s = read("The radius is not given, so the length cannot be found from the figure. Answer: D", mc("不能确定", choices))
    assert s.extracted == "D" and s.correct
    s = read("Unable to determine.", mc("Unable to determine.", ["It would increase.", "Unable to determine."]))
    assert s.answered and s.correct


# --- official output files: missing extractions, agreement with the official verdicts ---------------

def test_items_without_an_extraction_are_no_answer_and_counted(tmp_path):
    problems = {
        "1": {"question_type": "free_form", "answer_type": "integer", "choices": None, "precision": None,
              "answer": "3", "response": "There are 3 bars.", "extraction": "3"},
        "2": {"question_type": "multi_choice", "answer_type": "text", "choices": ["Yes", "No"], "precision": None,
              "answer": "No", "response": "N/A"},
        "3": {"question_type": "free_form", "answer_type": "integer", "choices": None, "precision": None,
              "answer": "5", "response": "5"},
    }
    path = tmp_path / "output_model.json"
    path.write_text(json.dumps(problems), encoding="utf-8")
    for scoring in ("strict", "official"):
        result = score_predictions(path, "extraction", scoring=scoring)
        assert (result["items"], result["missing_field"], result["no_answer"]) == (
            {"1": True, "2": False, "3": False}, 2, 2)
    result = score_predictions(path, "response", scoring="official")
    assert result["items"] == {"1": True, "2": True, "3": True} and result["missing_field"] == 0
    out = CliRunner().invoke(cli, ["score", "--suite", "mathvista_testmini", "--predictions", str(path)])
    assert out.exit_code == 0, out.output
    assert "accuracy 0.3333 on 3 items" in out.stdout and "no answer: 2" in out.stdout
    assert "2 item(s) have no 'extraction' field: scored as no answer" in out.stderr


# --- a query that lists the options in another order than `choices` --------------------------------

LISTING_QUERY = ("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, "
                 "at the end.\nQuestion: What is the lowest fat level given?\nChoices:\n(A) 1.2%\n(B) 1.5%\n"
                 "(C) 1.4%\n(D) 1.3%")
LISTING_PROBLEM = {"question": "What is the lowest fat level given?",
                   "choices": ["1.3%", "1.4%", "1.5%", "1.2%"], "precision": None, "answer": "1.2%",
                   "question_type": "multi_choice", "answer_type": "text", "query": LISTING_QUERY}


def test_the_options_as_the_query_lists_them():
    assert listed_choices(LISTING_QUERY, LISTING_PROBLEM["choices"]) == ["1.2%", "1.5%", "1.4%", "1.3%"]
    # listed in stored order, no listing, or a listing of another length: nothing to keep
    assert listed_choices(LISTING_QUERY, ["1.2%", "1.5%", "1.4%", "1.3%"]) is None
    assert listed_choices("Question: How many bars are there?", ["1", "2"]) is None
    assert listed_choices(LISTING_QUERY, ["1.2%", "1.5%", "1.4%"]) is None
    # other texts are kept as listed; a stored choice with a stray space is given as stored
    query = "Question: What time is shown?\nChoices:\n(A) 1:30\n(B) 5:30\n(C) 4:30"
    assert listed_choices(query, ["9:30", "4:30 ", "5:30"]) == ["1:30", "5:30", "4:30 "]
    assert listed_choices("Choices:\n(A) up\n(B) down", ["up ", "down"]) is None


@pytest.mark.parametrize(("response", "strict", "official"), [
    # the letter of the listing: strictly the option listed under it (A: 1.2%, the gold); officially
    # the letter goes through the stored choices (choices[0] is 1.3%), as GPT's letter does
    ("The fat levels are 1.2%, 1.5%, 1.4% and 1.3%; the lowest is the first one, so the answer is (A).",
     True, False),
    # the option's text: the listing's letter D, which the official normalisation maps to choices[3]
    ("The lowest fat level given is 1.3%.", False, True),
])
def test_letters_name_the_options_as_the_query_listed_them(response, strict, official):
    target = problem_target(LISTING_PROBLEM)
    assert target.meta["listed_choices"] == ["1.2%", "1.5%", "1.4%", "1.3%"]
    s = read(response, target)
    assert (s.correct, s.official_correct) == (strict, official)


def test_an_output_file_is_scored_against_its_queries_listing(tmp_path):
    problems = {"7": {**LISTING_PROBLEM, "response": "The lowest fat level given is 1.3%.",
                      "extraction": "D"},
                "8": {**LISTING_PROBLEM, "response": "So the answer is (A).", "extraction": "A"}}
    path = tmp_path / "output_model.json"
    path.write_text(json.dumps(problems), encoding="utf-8")
    # the stored extractions give the official verdicts: D -> choices[3] is the gold, A is not
    assert score_predictions(path, "extraction")["items"] == {"7": True, "8": False}
    assert score_predictions(path, "response", scoring="official")["items"] == {"7": True, "8": False}
    assert score_predictions(path, "response", scoring="strict")["items"] == {"7": False, "8": True}


OUTPUTS = ("output_bard.json", "output_llava_llama_2_13b.json")
# Measured with `python -m suites.mathvista_agreement` (docs/suites.md lists the classes): the most
# disagreements with the official verdicts each file may have, strict and official-compatible. In the
# LLaVA file 13 items are ones where GPT's extraction contradicts an answer the response states
# explicitly ("The correct answer is (C) 60°." extracted as B), which no rule reproduces. Strict
# scoring also differs on the items whose query listed the options in another order than `choices`
# (3 Bard, 5 LLaVA): it reads the letter the model saw, where the official verdict does not.
MOST_DISAGREEMENTS = {"output_bard.json": {"strict": 23, "official": 13},
                      "output_llava_llama_2_13b.json": {"strict": 32, "official": 20}}


@pytest.mark.parametrize("name", OUTPUTS)
def test_agreement_with_the_official_verdicts(reference_data, name):
    path = reference_data / "mathvista" / "outputs" / name
    stored = json.loads(path.read_text(encoding="utf-8"))
    measured = agreement(path)
    for scoring in ("strict", "official"):
        assert measured[scoring]["disagreements"] <= MOST_DISAGREEMENTS[name][scoring], measured[scoring]
        result = score_predictions(path, "response", scoring=scoring)
        differ = sum(result["items"][pid] != p["true_false"] for pid, p in stored.items())
        assert differ == measured[scoring]["disagreements"]
        # the stored GPT extractions reproduce every official verdict, in either mode
        extraction = score_predictions(path, "extraction", scoring=scoring)
        assert all(extraction["items"][pid] == p["true_false"] for pid, p in stored.items())
    assert measured["official"]["agreement"] >= 0.98
