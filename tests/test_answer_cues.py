"""The answer cues every suite shares (core/answer_cues.py) and sentence answers (core/claims.py),
including what they must not take for an answer or an abstention."""

from __future__ import annotations

import pytest

from core.answer_cues import abstention, cue_line, letter_called_correct, numbers_in
from core.claims import choice_in_words, read_yes_no


@pytest.mark.parametrize(("text", "line"), [
    ("so the answer is 12", "12"),
    ("The answer is:\n\n(C) 145°", "(C) 145°"),
    ("答案是：C", "C"),
    ("答案为 42", "42"),
    ("The correct option letter is D.", "D."),
    ("Therefore the correct option is C", "C"),
    ("Final answer: 7", "7"),
    ("The answer to the question is 2, as the bar is 5 units", "2, as the bar is 5 units"),
    ("Answer: first B, then, on reflection, the answer is A", "A"),  # the last cue counts
])
def test_cue_line(text, line):
    assert cue_line(text) == line


def test_no_cue():
    assert cue_line("We add 3 and 4 to get 7.") is None
    assert cue_line("This answers the question.") is None  # "answers the" is no cue
    assert cue_line("The answer is") is None


def test_numbers_in_reads_words_in_order():
    assert numbers_in("There are three bars above 1,200 and twenty-one below") == ["3", "1200", "21"]
    assert numbers_in("one of the options", words=False) == []
    assert numbers_in("someone, oneself, tone") == []


def test_letter_called_correct():
    assert letter_called_correct("Therefore, option (E) is the correct answer.") == "E"
    assert letter_called_correct("B is correct") == "B"
    assert letter_called_correct("a is correct") is None


@pytest.mark.parametrize("text", [
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I cannot select either yes or no.",
    "Cannot be determined.",
    "N/A",
    "The length of segment AB cannot be determined from the information given in the figure.",
    "Based on the image, it is not possible to definitively determine whether Coral is the minimum.",
    "There is not enough information to answer.",
    "无法确定",
])
def test_abstentions(text):
    assert abstention(text)


@pytest.mark.parametrize("text", [
    # reasoning that mentions what it cannot do directly is not an abstention
    "We cannot determine x directly from the first equation, so we substitute.\nThen x = 4.\nSo x = 4.",
    "We cannot use the sine rule here. Using the cosine rule instead, c = 5.",
    "The angle is 40°, since the triangle cannot be equilateral.",
    "There are no red cubes left.",
])
def test_not_abstentions(text):
    assert abstention(text) is None


def test_a_choice_that_is_an_abstention_is_an_answer():
    assert abstention("Unable to determine.", ["It would increase.", "Unable to determine."]) is None
    assert abstention("Unable to determine.", ["It would increase.", "It would decrease."])


@pytest.mark.parametrize(("claim", "question", "said"), [
    ("Periwinkle is not the maximum.", "Is Periwinkle the maximum?", False),
    ("Indigo does not have the lowest value.", "Does Indigo have the lowest value?", False),
    ("The bed is much larger than the kitten.", "Is the bed much larger than the kitten?", True),
    ("The bed is smaller than the kitten.", "Is the bed larger than the kitten?", False),
    ("Crimson is not less than Gray.", "Is Crimson less than Gray?", False),
    ("There are fewer cyan jets than big buses.", "Are there fewer cyan jets than big buses?", True),
    ("There are more big buses than cyan jets.", "Are there fewer cyan jets than big buses?", True),
    ("There are more cyan jets than big buses.", "Are there fewer cyan jets than big buses?", False),
    ("The kitchen has a red kettle.", "Is the kettle boiling?", None),
])
def test_read_yes_no(claim, question, said):
    assert read_yes_no(claim, question) is said


def test_choice_in_words():
    choices = ["Grasshoppers will decrease.", "shrews will become extinct", "owls will increase.", "None of the above"]
    assert choice_in_words("it is likely that grasshoppers will decrease in number", choices) == 0
    assert choice_in_words("the letter has been flipped", ["slide", "flip", "turn"]) == 1
    assert choice_in_words("the hottest month is July", ["December, January, and February", "July and August"]) is None
    assert choice_in_words("the hottest month is July", ["December, January, and February", "July and August"],
                           complete=False) == 1
    assert choice_in_words("the value is 5", ["5", "6"]) is None  # numbers are left to the other rules
