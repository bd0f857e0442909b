"""The LLM judge's prompts, written for this project: the MathVista answer extraction and the MathVerse
two-step judge (extract the answer, then judge it against the gold), each an instruction followed by
worked examples and then the case at hand. They follow the official procedures (lupantech/MathVista
`evaluation/extract_answer.py`, ZrrSkywalker/MathVerse `evaluation/extract_answer_s1.py` and
`score_answer_s2.py`) in what they ask for; the wording and the examples are the project's own.

    messages = mathvista_extraction_messages(query, response)   # -> [{"role": "user", "content": "..."}]
    messages = extraction_messages(question, response)          # step 1 of the two-step judge
    messages = judgement_messages(question, gold, extracted)    # step 2: the reply is 1 or 0
    read_extraction("None") is None; read_judgement("Judgement: 1") is True

Change a prompt's text and PROMPT_VERSION changes with it: the judge cache is keyed by the prompt's
hash, so old replies are never read for a new prompt.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# --- MathVista: extract the answer in the form the question's hint asks for ----------------------------
MATHVISTA_INSTRUCTION = (
    "Each case below shows a question about a figure, with a hint saying what form the answer takes, "
    "and a model's response to it. Write down the final answer that the response gives, in the form the "
    "hint asks for: an option letter, an integer, a number with the stated decimal places, or a Python "
    "list. Do not solve the question yourself and do not correct the response. If the response gives "
    "no answer, write None."
)

MATHVISTA_EXAMPLES = [
    (("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
     "Question: Which bar is the tallest?\nChoices:\n(A) red\n(B) green\n(C) blue\n(D) yellow"),
     ("Comparing the heights, the blue bar reaches 40 while the others stay below 30, so the blue one "
     "is the tallest."), "C"),
    (("Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
     "at the end.\nQuestion: How many triangles are there in the figure?"),
     "I count four small triangles, and together they form one large triangle, so five in all.", "5"),
    (("Hint: Please answer the question requiring a floating-point number with one decimal place and provide "
     "the final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: What is the length of side AB? (Unit: cm)"),
     "The legs are 3 cm and 2 cm, so AB = sqrt(9 + 4) = sqrt(13), roughly 3.6 cm.", "3.6"),
    (("Hint: Please answer the question requiring a floating-point number with two decimal places and provide "
     "the final value, e.g., 1.23, 1.34, 1.45, at the end.\nQuestion: What share of the pie chart is the "
     "orange slice?"),
     "The orange slice covers 27 of the 80 units, which is 0.3375; rounded, 0.34.", "0.34"),
    (("Hint: Please answer the question requiring a Python list as an answer and provide the final list, "
     "e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: In which two years did sales fall?"),
     "Sales drop from 2011 to 2012 and again from 2018 to 2019, so they fall in 2012 and in 2019.",
     "[2012, 2019]"),
    (("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
     "Question: Is the number of red cubes less than the number of green spheres?\nChoices:\n(A) Yes\n(B) No"),
     "There are fewer red cubes than green spheres in the picture.", "A"),
    (("Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
     "at the end.\nQuestion: What is the value of x?"),
     "The figure does not give enough lengths to work out x.", "None"),
]


def mathvista_extraction_messages(query: str, response: str) -> list[dict[str, Any]]:
    """The extraction prompt for one MathVista item: `query` is the data set's zero-shot query (hint,
    question, choices)."""
    shots = "\n\n".join(f"{q}\n\nModel response: {r}\n\nExtracted answer: {a}" for q, r, a in MATHVISTA_EXAMPLES)
    case = f"{query}\n\nModel response: {response}\n\nExtracted answer:"
    return [{"role": "user", "content": f"{MATHVISTA_INSTRUCTION}\n\n{shots}\n\n{case}"}]


# --- the two-step judge (MathVerse): step 1, extract -------------------------------------------------
EXTRACTION_INSTRUCTION = (
    "Below is a model's response to a math question. Copy out the final answer it gives and nothing "
    "else: the option letter for a multiple-choice question, otherwise the value or expression, with "
    "its unit if the response states one. Do not judge whether it is right. If the response gives no "
    "final answer, write None."
)

EXTRACTION_EXAMPLES = [
    ("The two angles are supplementary, so angle ABC = 180 - 65 = 115 degrees. The answer is C.", "C"),
    (("Its area is half of base times height: 0.5 * 8 * 5 = 20, so the triangle's area is 20 square "
     "centimetres."), "20 cm^2"),
    ("Setting f(x) = 0 gives x^2 - 4x + 3 = 0, whose roots are x = 1 and x = 3.", "x = 1, x = 3"),
    ("The slope is rise over run, (7 - 1) / (4 - 2) = 3, so the line is y = 3x - 5.", "y = 3x - 5"),
    ("Without the radius of the cylinder there is not enough information to find its volume.", "None"),
]


def extraction_messages(question: str, response: str) -> list[dict[str, Any]]:
    shots = "\n\n".join(f"Model response: {r}\nExtracted answer: {a}" for r, a in EXTRACTION_EXAMPLES)
    case = f"Question: {question}\nModel response: {response}\nExtracted answer:"
    return [{"role": "user", "content": f"{EXTRACTION_INSTRUCTION}\n\n{shots}\n\n{case}"}]


# --- the two-step judge: step 2, judge the extracted answer against the gold -------------------------
JUDGEMENT_INSTRUCTION = (
    "Decide whether a model's answer to a math question agrees with the standard answer. They agree "
    "when they name the same option (for a multiple-choice question the option letter decides), or the "
    "same value written in another equal form, e.g. 1/2 and 0.5, or 50 cm and 0.5 m. Reply with 1 when "
    "they agree and 0 when they do not, and nothing else."
)

JUDGEMENT_EXAMPLES = [
    ("What is the measure of angle ABC?\nChoices:\nA: 65°\nB: 95°\nC: 115°\nD: 125°", "C", "C", "1"),
    ("What is the measure of angle ABC?\nChoices:\nA: 65°\nB: 95°\nC: 115°\nD: 125°", "C", "115°", "1"),
    ("Find the area of the triangle.", "20 cm^2", "0.002 m^2", "1"),
    ("Where does the parabola cross the x-axis?", "x = 1 and x = 3", "x = 1", "0"),
    ("What is the slope of the line?", "3", "-3", "0"),
]


def judgement_messages(question: str, gold: str, extracted: str) -> list[dict[str, Any]]:
    shots = "\n\n".join(f"[Question]: {q}\n[Standard answer]: {g}\n[Model answer]: {m}\nJudgement: {j}"
                        for q, g, m, j in JUDGEMENT_EXAMPLES)
    case = f"[Question]: {question}\n[Standard answer]: {gold}\n[Model answer]: {extracted}\nJudgement:"
    return [{"role": "user", "content": f"{JUDGEMENT_INSTRUCTION}\n\n{shots}\n\n{case}"}]


# --- reading the replies -----------------------------------------------------------------------------
_NO_ANSWER = {"", "none", "n/a", "na", "no answer", "null"}
_LABEL = re.compile(r"^\s*(?:extracted answer|answer)\s*[:：]\s*", re.IGNORECASE)
_VERDICT = re.compile(r"^\W*(?:judge?ment\s*[:：]?\s*)?([01])(?!\d)", re.IGNORECASE)


def read_extraction(reply: str) -> str | None:
    """The extracted answer in a reply (its first line, a repeated label dropped); None when the judge
    says the response gives none."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    text = _LABEL.sub("", lines[0]).strip() if lines else ""
    text = text.strip("`*\"' ")
    return None if text.lower().rstrip(".") in _NO_ANSWER else text


def read_judgement(reply: str) -> bool | None:
    """True for 1, False for 0; None when the reply holds no verdict."""
    found = _VERDICT.match(reply.strip())
    return None if found is None else found.group(1) == "1"


PROMPT_VERSION = hashlib.sha256(repr((MATHVISTA_INSTRUCTION, MATHVISTA_EXAMPLES, EXTRACTION_INSTRUCTION,
                                      EXTRACTION_EXAMPLES, JUDGEMENT_INSTRUCTION,
                                      JUDGEMENT_EXAMPLES)).encode()).hexdigest()[:12]
