"""Where a response states its answer: the answer cues, numbers written as words, and abstentions.

One set of rules for every suite whose scorer reads free text (MathVista, MathVerse, GSM8K), so that
"The answer is:\\nC", "答案是: C" or "the correct option letter is D" read the same everywhere:

    cue_line("...so the answer to the question is 2, as the bar is 5 units")  # "2, as the bar is 5 units"
    numbers_in("There are three objects left")                                 # ["3"]
    abstention("I cannot select either yes or no.")                           # "cannot select"

`abstention` finds refusals and non-answers ("Cannot be determined", "N/A", "Sorry, I can't help with
images"): the harness's own scoring never credits them, even when a number in them equals the gold.
"""

from __future__ import annotations

import re

from core.answers import find_numbers

# "the answer is", "The final answer:", "the answer to the question is", "Answer:", "the correct option
# (letter) is", "答案是" / "答案为" / "答案:" and the like. The text after the last one holds the answer.
ANSWER_CUE = re.compile(
    r"(?:\bfinal\s+answer(?:\s+(?:is|would\s+be))?"
    r"|\b(?:correct\s+|right\s+)?answer(?:\s+(?:to|for)\s+(?:the|this)\s+(?:question|problem))?"
    r"\s*(?:is|would\s+be|should\s+be|=)(?![A-Za-z])"
    r"|\banswer\s*[:：]"
    r"|\b(?:correct|right|best)\s+(?:option|choice)(?:\s+letter)?\s+(?:is|would\s+be)(?![A-Za-z])"
    r"|\boption\s+letter\s+is(?![A-Za-z])"
    r"|答案\s*(?:应该?是|應該?是|应为|應為|是|为|為|[:：]))"
    r"\s*(?:therefore\s+)?[:：]?",
    re.IGNORECASE,
)

# The cue after the letter: "Therefore, option (E) is the correct answer", "(B) is correct".
_LETTER_IS_CORRECT = re.compile(
    r"(?:\b(?:option|choice|answer)\s*)?(?<![A-Za-z])\(?([A-H])\)?\s+is\s+(?:the\s+)?(?:correct|right|best)"
    r"(?:\s+(?:answer|option|choice))?\b", re.IGNORECASE)

_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
WORD_VALUES = {w: i for i, w in enumerate(_SMALL)} | {w: 10 * (i + 2) for i, w in enumerate(_TENS)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_WORD = "(?:" + "|".join([*_TENS, *_SMALL, *_SCALES]) + ")"
# A number as digits (commas, decimals), or a run of English number words ("twenty-one", "one thousand",
# "two hundred and five"), which _word_numbers splits into numbers.
_NUMBER_OR_WORD = re.compile(
    rf"(?<![\w.]){_WORD}(?:(?:[- ]+|\s+and\s+){_WORD})*(?![\w-])"
    r"|-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+",
    re.IGNORECASE,
)

# Refusals and non-answers, kept to phrases about the question as a whole, so that reasoning like
# "we cannot determine x directly" is not one; see `abstention` for which sentences are read.
_CANNOT = (r"(?:can\s*not|can't|can’t|could\s+not|couldn't|unable\s+to|not\s+able\s+to|impossible\s+to|"
           r"not\s+possible\s+to|no\s+way\s+to|hard\s+to|difficult\s+to)")
_ADVERB = r"(?:definitively|accurately|precisely|exactly|reliably|definitely|really|directly|clearly|confidently)"
_ABSTAIN = re.compile(
    rf"\b{_CANNOT}\s+(?:{_ADVERB}\s+)?(?:help|assist|process|answer|see\s+the\s+image|view\s+the\s+image|"
    r"access|provide\s+(?:an?\s+)?(?:answer|accurate|definitive|specific))"
    rf"|\b{_CANNOT}\s+(?:{_ADVERB}\s+)?(?:determine|tell|say|decide|select|choose|pick|identify|infer|conclude|"
    r"know|answer)\s+(?:whether|which|what|who|if|how\s+many|either|for\s+sure|with\s+certainty|"
    r"the\s+(?:answer|correct|exact\s+answer))"
    rf"|\b{_CANNOT}\s+(?:{_ADVERB}\s+)?(?:be\s+)?(?:determined?|tell|say|decide|know|answered)\s*[.!]?\s*$"
    r"|\b(?:cannot|can't|can\s+not)\s+be\s+(?:determined|answered|known)(?=\s*(?:[.!,;]|$|(?:from|based\s+on|"
    r"with)\s+(?:the\s+)?(?:given\s+)?(?:image|figure|graph|information|diagram|picture|chart|data|question)))"
    r"|\bnot\s+(?:enough|sufficient)\s+(?:information|data|detail)|\binsufficient\s+(?:information|data)"
    r"|\bthere\s+is\s+no\s+(?:correct\s+|right\s+|valid\s+)?answer\b|^\s*no\s+answer\b"
    r"|(?:^|\s)n/a\.?\s*$|\bnone\s+of\s+the\s+(?:options|choices)\s+(?:is|are)\s+correct"
    r"|\bI\s*(?:am|'m)\s+(?:sorry|not\s+sure|unable)|^\s*sorry\b|\bI\s+(?:do\s+not|don't)\s+know\b"
    r"|\bas\s+an\s+AI\b|无法(?:确定|判断|回答)|不能(?:确定|判断)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def cue_tail(text: str) -> str | None:
    """Everything after the last answer cue; None when the text has no cue."""
    cues = list(ANSWER_CUE.finditer(text))
    return text[cues[-1].end():] if cues else None


def cue_line(text: str) -> str | None:
    """The rest of the last answer cue's line, or the next non-empty line when the cue ends its line
    ("The answer is:\\n\\n(C)"); None when the text has no cue or nothing follows it."""
    tail = cue_tail(text)
    if tail is None:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[0] if lines else None


def letter_called_correct(text: str) -> str | None:
    """The option letter that the text calls correct after naming it ("option (E) is the correct
    answer"), the last such; None when there is none. Only capitals count as letters."""
    found = [m.group(1) for m in _LETTER_IS_CORRECT.finditer(text) if m.group(1).isupper()]
    return found[-1] if found else None


def numbers_in(text: str, words: bool = True) -> list[str]:
    """Numbers in reading order, commas removed; with `words`, English number words ("three",
    "twenty-one") count too, as digits ("3", "21")."""
    if not words:
        return find_numbers(text)
    out = []
    for m in _NUMBER_OR_WORD.finditer(text):
        token = m.group(0).lower()
        if token[0].isalpha():
            out.extend(str(n) for n in _word_numbers(re.split(r"[- ]+", token)))
        else:
            out.append(token.replace(",", ""))
    return out


def _word_numbers(words: list[str]) -> list[int]:
    """The numbers a run of number words spells: ["one", "thousand"] -> [1000], ["twenty", "one"] ->
    [21], ["two", "hundred", "and", "five"] -> [205]; a unit after a unit starts a new number
    (["three", "two"] -> [3, 2]), and so does "and" between plain numbers ("two and three")."""
    numbers: list[int] = []
    total = current = 0
    last: str | None = None

    def flush() -> None:
        nonlocal total, current
        if last is not None:
            numbers.append(total + current)
        total = current = 0

    for word in words:
        if word == "and":
            if last not in _SCALES:
                flush()
                last = None
            continue
        if word in _SCALES:
            if word == "hundred":
                current = max(current, 1) * 100
            else:
                total, current = total + max(current, 1) * _SCALES[word], 0
        else:
            value = WORD_VALUES[word]
            follows_tens = last in _TENS and value < 10
            if last is not None and last not in _SCALES and not follows_tens:
                flush()
            current += value
        last = word
    flush()
    return numbers


def sentences(text: str) -> list[str]:
    """Non-empty sentences and lines, in order (a rough split: enough to find a first or last claim)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def abstention(text: str, choices: list[str] | None = None) -> str | None:
    """The phrase by which `text` declines to answer, or None. Only the first and the last sentence are
    read: a refusal says so at once or in its conclusion, while reasoning that mentions what it
    "cannot determine" directly sits in between. A phrase that is one of the choices ("Unable to
    determine.", "不能确定") is an answer, not an abstention."""
    parts = sentences(text)
    if not parts:
        return None
    for sentence in dict.fromkeys((parts[0], parts[-1])):
        found = _ABSTAIN.search(sentence)
        if found and not _names_a_choice(sentence, choices):
            return found.group(0).strip()
    return None


def _names_a_choice(sentence: str, choices: list[str] | None) -> bool:
    low = sentence.lower()
    return any(c.strip() and _ABSTAIN.search(c) and c.strip().rstrip(".").lower() in low for c in choices or [])
