"""Format compliance kinds and the recipe's training rewards."""

import pytest

from core.formats import (
    BOXED,
    OFFICIAL,
    PROMPT_FORMATS,
    REASONING_SOLUTION,
    THINK_ANSWER,
    answer_region,
    correctness_reward,
    format_failures,
    format_reward,
    is_degenerate,
    rewards,
)

RS = REASONING_SOLUTION


@pytest.mark.parametrize(
    "response, expected",
    [
        ("<REASONING>2+2=4</REASONING><SOLUTION>4</SOLUTION>", []),
        ("<REASONING>a</REASONING>\n\n<SOLUTION> 4 </SOLUTION> trailing", []),
        ("The answer is 4", ["missing_reasoning", "missing_answer"]),
        ("<REASONING>a</REASONING> 4", ["missing_answer"]),
        ("<SOLUTION>4</SOLUTION>", ["missing_reasoning"]),
        ("<REASONING>a</REASONING><REASONING>b</REASONING><SOLUTION>4</SOLUTION>", ["duplicated_reasoning"]),
        ("<REASONING>a</REASONING><SOLUTION>4</SOLUTION><SOLUTION>5</SOLUTION>", ["duplicated_answer"]),
        ("<SOLUTION>4</SOLUTION><REASONING>a</REASONING>", ["out_of_order"]),
        ("<REASONING>long thinking that was cut off", ["missing_answer", "unclosed"]),
        ("<REASONING>a</REASONING><SOLUTION>4", ["unclosed"]),
        ("<REASONING>a</REASONING><SOLUTION>  </SOLUTION>", ["empty_answer"]),
        ("<REASONING></REASONING><SOLUTION>4</SOLUTION>", ["empty_reasoning"]),
        ("addCriterion\n\naddCriterion\n" * 5, ["missing_reasoning", "missing_answer", "degenerate"]),
    ],
)
def test_format_failure_kinds(response, expected):
    assert format_failures(response, RS) == expected


def test_think_answer_uses_its_own_tags():
    assert format_failures("<think>x</think><answer>3</answer>", THINK_ANSWER) == []
    assert format_failures("<REASONING>x</REASONING><SOLUTION>3</SOLUTION>", THINK_ANSWER) == [
        "missing_reasoning", "missing_answer"]


def test_non_tag_formats():
    assert format_failures("so \\boxed{3}", BOXED) == []
    assert format_failures("so 3", BOXED) == ["missing_answer"]
    assert format_failures("anything", OFFICIAL) is None
    assert set(PROMPT_FORMATS) == {"reasoning-solution", "think-answer", "boxed", "official"}


def test_degenerate_threshold_is_half_the_characters():
    assert is_degenerate("addCriterion" + "x" * 12)  # exactly 50%
    assert not is_degenerate("addCriterion" + "x" * 13)
    assert not is_degenerate("")


@pytest.mark.parametrize(
    "response, fmt_reward",
    [
        ("<REASONING>a</REASONING><SOLUTION>4</SOLUTION>", 2.0),
        ("<REASONING>a</REASONING>", 1.0),
        ("<REASONING>a</REASONING><REASONING>b</REASONING><SOLUTION>4</SOLUTION>", 1.0),
        ("nothing", 0.0),
        ("addCriterion\n" * 10, -2.0),
        ("<REASONING>a</REASONING><SOLUTION>4</SOLUTION>" + "addCriterion\n" * 20, 0.0),
    ],
)
def test_format_reward(response, fmt_reward):
    assert format_reward(response, RS) == fmt_reward


@pytest.mark.parametrize(
    "solution, gold, expected",
    [
        ("4", "4", 2.0),
        ("4.0", "4", 1.5),
        ("1,000", "1000", 1.5),
        ("\n12\n", "12", 2.0),  # the recipe removes newlines before comparing
        (" 12", "12", 1.5),  # not an exact string match, but the same number
        ("five", "5", 0.0),
        ("3", "4", 0.0),
        ("145°", "145°", 2.0),
    ],
)
def test_correctness_reward(solution, gold, expected):
    assert correctness_reward(f"<REASONING>r</REASONING><SOLUTION>{solution}</SOLUTION>", gold, RS) == expected


def test_correctness_reward_needs_exactly_one_solution_block():
    two = "<SOLUTION>4</SOLUTION><SOLUTION>4</SOLUTION>"
    assert correctness_reward(two, "4", RS) == 0.0
    assert correctness_reward("4", "4", RS) == 0.0


def test_combined_reward_weights():
    r = rewards("<REASONING>a</REASONING><SOLUTION>4</SOLUTION>", "4", RS)
    assert r == {"format": 2.0, "correctness": 2.0, "total": pytest.approx(0.3 * 2 + 2.0)}
    r = rewards("<REASONING>a</REASONING><SOLUTION>4</SOLUTION>", "4", RS, weights={"format": 1, "correctness": 0})
    assert r["total"] == 2.0
    boxed = rewards("\\boxed{4}", "4", BOXED, extracted="4")
    assert boxed == {"format": None, "correctness": 2.0, "total": None}


def test_answer_region():
    assert answer_region("<REASONING>x</REASONING><SOLUTION> 7 </SOLUTION>", RS) == ("7", "answer_block")
    assert answer_region("so \\boxed{\\frac{1}{2}}", RS) == ("\\frac{1}{2}", "boxed")
    assert answer_region("just 7", RS) == ("just 7", "response")


def test_multi_choice_letter_of_the_gold_choice_is_an_exact_match():
    choices = ["120°", "145°", "160°"]
    block = "<REASONING>r</REASONING><SOLUTION>{}</SOLUTION>"
    assert correctness_reward(block.format("B"), "145°", RS, choices=choices) == 2.0
    assert correctness_reward(block.format("(B)"), "145°", RS, choices=choices) == 2.0
    assert correctness_reward(block.format("A"), "145°", RS, choices=choices) == 0.0
    assert correctness_reward(block.format("B"), "145°", RS) == 0.0
