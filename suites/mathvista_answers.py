"""MathVista's rule-based answer extraction (standing in for the official GPT step) and its two verdicts.

    s = score(ScoringInput(response=text, region=text, region_rule="response", target=target))
    s.extracted, s.extractor      # "C", "response>answer_is_letter"; None when no answer was given
    s.correct                     # strict: the harness's own verdict
    s.official_correct            # official-compatible: the official nearest-choice fallback applied

Strict scoring credits only an answer that names an option (its letter or its text) or a number, and
never an abstention ("Cannot be determined", "N/A", a refusal). Official-compatible scoring does what
evaluation/calculate_score.py does with a GPT extraction: whatever was extracted, abstentions and
texts that are not an option included, is mapped to the choice at the smallest edit distance; where
the rules find nothing, the text GPT would most likely have copied (the response) is mapped instead.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from core.answer_cues import abstention, cue_line, letter_called_correct, numbers_in, sentences
from core.answers import find_numbers, to_float
from core.claims import choice_in_words, claim_sentence, read_yes_no
from suites.base import Score, ScoringInput, Target
from suites.mathvista_official import normalize_for_target, official_types, safe_equal

_LONE_LETTER = re.compile(r"[\s*(\[\"'“‘]*(?:(?i:option|choice)\s*)?\(?([A-Za-z])\)?[\s.:)*\]\"'”’]*")
_CUE_LETTER = re.compile(r"[\s*$\"'“‘]*(?:(?i:option|choice)\s*)?[\s*$\"'“‘(\[]*([A-Z])(?![A-Za-z0-9])")
_QUOTED_LETTER = re.compile(r"[\"“‘']\(?([A-Z])\)?\.[\"”’']")  # "C." (not "C", often a point's name)
_LEADING_LETTER = re.compile(r"\s*\**\(?([A-Z])[).:](?:\s|$)")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_BRACKET_LIST = re.compile(r"\[[^\[\]]*\]")
_LEADING_YES_NO = re.compile(r"[\s*\"'“]*(yes|no)\b", re.IGNORECASE)
_CONCLUSION = re.compile(r"\s*(?:therefore|thus|hence|so|in\s+conclusion)\b", re.IGNORECASE)
_COPULA_NUMBER = re.compile(
    r"(?:\b(?:is|are|was|were|be|equals?|totals?)\s+|=\s*)(?:approximately\s+|about\s+|around\s+|roughly\s+|only\s+|"
    r"exactly\s+|just\s+|nearly\s+|almost\s+)?((?:-?\d[\d,.]*|[a-z]+(?:-[a-z]+)?))(?![\w-])", re.IGNORECASE)

_MODAL = r"(?:may|might|will|would|could|can|should|must)(?:\s+(?:also|likely|probably))?"
# A label that the question defines: "... coefficients? (a): Image A, (b): Image B, (c): Image C."
_LABEL_DEFINITION = re.compile(r"(\([A-Za-z]\))\s*[:：]\s*([^,;:\n()]+?)\s*(?=[,;\n]|\.(?:\s|$)|$)")

# Rules whose extraction is not an option: strict scoring does not map it to the nearest choice.
NOT_AN_OPTION = frozenset({"raw", "claim_not_an_option"})


def extract_answer(region: str, target: Target, whole_response: bool = False,
                   abstain: bool = True) -> tuple[str | None, str]:
    """(answer string for the normaliser, rule name); None when no rule finds an answer.

    Multi-choice: the choice text (any case); a lone letter ("C", "(C)", "**C.**", '"C."'); the
    letter, choice text or choice value after the last answer cue ("The answer is:\\nC", "答案是: C",
    "the correct option letter is D"); a leading "C. ..." / "(C) ..."; a letter alone on the last line;
    a leading "Yes, ..."; the last "(C)"; a restated yes/no question; the one choice the claim sentence
    names (its text, a modal verb allowed: "plants may increase"; its value; a label the question
    defines: "Image A" for "(a): Image A"); the last choice text mentioned; a choice in other words;
    else, for a short answer block, the text itself (not an option). Integer/float: the official
    int()/float() fast paths; the first number after the last answer cue (number words read as
    numbers); the last bold number; in a one-sentence response, the number it adds to the question's
    (see _sentence_number); the last number. List: the last [...] with ", " separators.
    With `abstain`, a refusal or a "cannot be determined" ends the search before the weaker rules
    (everything after the cue): it is no answer."""
    text = region.strip()
    if not text:
        return None, "empty"
    question_type, kind = official_types(target)
    if question_type == "multi_choice":
        return _extract_choice(text, target.choices or [], whole_response, abstain, target.question)
    if kind == "list":
        if abstain and abstention(text):
            return None, "abstention"
        found = _BRACKET_LIST.findall(text)
        if not found:
            return None, "no_list"
        # The official comparison is a plain string one, so spacing is put in Python's own form.
        return "[" + ", ".join(e.strip() for e in found[-1][1:-1].split(",")) + "]", "bracket_list"
    return _extract_number(text, kind, abstain, target.question)


def _extract_number(text: str, kind: str, abstain: bool, question: str | None) -> tuple[str | None, str]:
    # The official fast paths: a bare integer / float response is taken as it is.
    try:
        return (str(int(text)), "int") if kind == "integer" else (str(float(text)), "float")
    except ValueError:
        pass
    # "25 m^2" must not read as 2: exponents written on units are dropped first.
    text = re.sub(r"(?<=[A-Za-z])\^\{?-?\d+\}?", "", text)
    cued = cue_line(text)
    if cued is not None and numbers_in(cued):
        return numbers_in(cued)[0], "answer_is_number"
    if abstain and abstention(text):
        return None, "abstention"
    # Markdown answers put the result in bold: "so there are **3** groups".
    bold = [n for span in re.findall(r"\*\*(.+?)\*\*", text) for n in find_numbers(span)[-1:]]
    if bold:
        return bold[-1], "bold_number"
    parts = sentences(text)
    if len(parts) == 1 and numbers_in(text):
        return _sentence_number(text, question), "sentence_number"
    numbers = find_numbers(text)
    if numbers:
        return numbers[-1], "last_number"
    worded = numbers_in(parts[-1]) if parts else []
    return (worded[-1], "last_number") if worded else (None, "no_number")


def _extract_choice(text: str, choices: list[str], whole_response: bool, abstain: bool,
                    question: str | None) -> tuple[str | None, str]:
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    text = _without_option_list(text, letters)
    if not text:
        return None, "options_listed"
    same = _same_text_choice(text, choices)
    if same is not None:
        return same, "choice_text"
    lone = _LONE_LETTER.fullmatch(text)
    if lone and lone.group(1).upper() in letters:
        return lone.group(1).upper(), "choice_letter"
    cued = cue_line(text)
    if cued is not None:
        lead = _CUE_LETTER.match(cued)
        if lead and lead.group(1) in letters:
            return lead.group(1), "answer_is_letter"
        named = _same_text_choice(cued, choices) or _mentioned_choice(cued, choices, first=True)
        if named is not None:
            return named, "answer_is_choice_text"
        valued = _choice_of_value(cued, choices)
        if valued is not None:
            return valued, "answer_is_choice_value"
    called = letter_called_correct(text)
    if called in letters:
        return called, "letter_called_correct"
    quoted = [m for m in _QUOTED_LETTER.findall(text) if m in letters]
    if quoted:
        return quoted[-1], "quoted_letter"  # 'so I would pick "C."'

    lead = _LEADING_LETTER.match(text)
    if lead and lead.group(1) in letters:
        return lead.group(1), "choice_letter"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = _LONE_LETTER.fullmatch(lines[-1]) if len(lines) > 1 else None
    if last and last.group(1).upper() in letters and last.group(1).isupper():
        return last.group(1), "last_line_letter"
    if abstain and abstention(text, choices):
        return None, "abstention"
    yes_no = _LEADING_YES_NO.match(text)
    if yes_no and _same_text_choice(yes_no.group(1), choices):
        return _same_text_choice(yes_no.group(1), choices), "leading_yes_no"
    in_parentheses = [m for m in _PAREN_LETTER.findall(text) if m in letters]
    if in_parentheses and set(in_parentheses) != set(letters):  # every option listed is no answer
        return in_parentheses[-1], "paren_letter"
    parts = sentences(text)
    if question and {_fold(c) for c in choices} == {"yes", "no"}:
        said = read_yes_no(claim_sentence(parts) or "", question)
        if said is not None:
            return _same_text_choice("yes" if said else "no", choices), "restated_yes_no"
    for sentence in _claim_order(parts):
        named = _mentioned_choices(sentence, choices)
        if len(named) == 1:
            return named[0], "claim_choice_text"
        if named:  # "140° and 150° are too wide": a sentence naming several options is no claim
            continue
        labelled = _defined_labels_named(sentence, choices, question)
        if len(labelled) == 1:
            return labelled[0], "claim_defined_label"  # "... is Image A." for "(a): Image A"
        valued = _choice_of_value(sentence, choices)
        if valued is not None:
            return valued, "claim_choice_value"
        stated = _stated_numbers(sentence) if _CONCLUSION.match(sentence) else []
        if stated:
            return stated[0], "claim_not_an_option"  # "Therefore, z = 28." where no choice is 28
    named = _mentioned_choice(text, choices, first=False)
    if named is not None:
        return named, "choice_text_contained"
    worded = _choice_in_sentences(text, choices, complete=True)
    if worded is not None:
        return worded, "choice_in_words"
    if not whole_response:
        return text, "raw"  # a short answer block that names no option
    return None, "no_choice"


def _without_option_list(text: str, letters: list[str]) -> str:
    """The text without a copy of the lettered option list ("(A) 1\n(B) √{3}\n..."): a response that
    repeats every option names none of them."""
    listed = [line for line in text.splitlines() if re.match(r"\s*\(?([A-Z])\)\s*\S", line)]
    heads = {re.match(r"\s*\(?([A-Z])\)", line).group(1) for line in listed}
    if len(letters) < 2 or not set(letters) <= heads:
        return text
    return "\n".join(line for line in text.splitlines() if line not in listed).strip()


def _claim_order(parts: list[str]) -> list[str]:
    """The sentences that may state the answer, most likely first: a closing "Therefore, ...", then
    the first and the last sentence (the last first in a longer response, which reasons before it
    concludes)."""
    if not parts:
        return []
    ends = [parts[0], parts[-1]] if len(parts) <= 3 else [parts[-1], parts[0]]
    if _CONCLUSION.match(parts[-1]):
        ends.insert(0, parts[-1])
    return list(dict.fromkeys(ends))


def _sentence_number(sentence: str, question: str | None) -> str:
    """The answer of a one-sentence response, which restates the question around it: a number the
    question does not give ("The function value first reaches 2 at the point (1, 2)" for "When does
    the function value first reach 2?" answers 1), the last one a copula introduces ("The age gap
    between the two people is 10 years", "at x = 1 the slope is 2.54"), else the first one. Where the
    sentence only repeats the question's numbers, the last one ("9 dots divided into 3 equal groups,
    with each group containing 3 dots"): the restatement comes first, the answer ends it."""
    given = set(numbers_in(question or ""))
    numbers = numbers_in(sentence)
    stated = [n for n in _stated_numbers(sentence) if n not in given]
    new = [n for n in numbers if n not in given]
    return stated[-1] if stated else new[0] if new else numbers[-1]


def _stated_numbers(sentence: str) -> list[str]:
    """Numbers a copula or an equals sign introduces: "the missing value is 15", "z = 28"."""
    return [n for m in _COPULA_NUMBER.finditer(sentence) for n in numbers_in(m.group(1))]


def _defined_labels_named(sentence: str, choices: list[str], question: str | None) -> list[str]:
    """The label choices ("(a)") whose definition in the question ("(a): Image A") `sentence` names."""
    labels = {c.strip().lower(): c for c in choices}
    named = [labels[label.lower()] for label, name in _LABEL_DEFINITION.findall(question or "")
             if label.lower() in labels and re.search(_choice_pattern(name), sentence, re.IGNORECASE)]
    return list(dict.fromkeys(named))


def _mentioned_choices(text: str, choices: list[str]) -> list[str]:
    """The distinct choices named in `text` (any case, whole words); a mention inside another choice's
    mention does not count ("2" inside "√{2}")."""
    spans = {c: [m.span() for m in re.finditer(_choice_pattern(c), text, re.IGNORECASE)]
             for c in dict.fromkeys(choices) if c.strip()}
    every = [(c, span) for c, found in spans.items() for span in found]

    def inside(choice: str, span: tuple[int, int]) -> bool:
        return any(o != choice and o_span[0] <= span[0] and span[1] <= o_span[1] and o_span != span
                   for o, o_span in every)

    return [c for c, found in spans.items() if any(not inside(c, span) for span in found)]


def _choice_in_sentences(text: str, choices: list[str], complete: bool) -> str | None:
    """The choice named in other words by the claim sentence, or else by the first or the last one
    ("the adult spider population would decrease" names "Adults spider population would decrease")."""
    parts = sentences(text)
    for sentence in dict.fromkeys(s for s in (claim_sentence(parts), *parts[:1], *parts[-1:]) if s):
        index = choice_in_words(sentence, choices, complete)
        if index is not None:
            return choices[index]
    return None


_LATEX_SPELLINGS = (("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
                    ("\\sqrt", "√"), ("^{\\circ}", "°"), ("^\\circ", "°"), ("\\circ", "°"), ("\\pi", "π"),
                    ("$", ""), ("\\(", ""), ("\\)", ""))


def _fold(text: str) -> str:
    """A choice's text for comparison: no case, spaces, bold, math delimiters or final period, and one
    spelling of roots, degrees and pi ("\\frac{3\\sqrt{5}}{2}" is "\\frac { 3√{5} } { 2 }")."""
    text = text.strip().strip("*").strip().rstrip(".")
    for spelling, canonical in _LATEX_SPELLINGS:
        text = text.replace(spelling, canonical)
    return re.sub(r"\s+", "", text).lower()


def _same_text_choice(text: str, choices: list[str]) -> str | None:
    """The choice `text` is, ignoring case, spacing, bold, LaTeX spelling and a final period."""
    if text in choices:
        return text
    folded = _fold(text)
    return next((c for c in choices if c.strip() and _fold(c) == folded), None)


def _mentioned_choice(text: str, choices: list[str], first: bool) -> str | None:
    """The choice text named in `text`, ignoring case (the first or the last mention; longest on
    ties), matched whole-word so that "12" does not fire inside "120"."""
    best: tuple[int, int] | None = None
    chosen = None
    for choice in choices:
        if not choice.strip():
            continue
        spans = [m.span() for m in re.finditer(_choice_pattern(choice), text, re.IGNORECASE)]
        if not spans:
            continue
        start, end = spans[0] if first else spans[-1]
        key = (-start, end - start) if first else (end, end - start)
        if best is None or key > best:
            best, chosen = key, choice
    return chosen


def _choice_pattern(choice: str) -> str:
    """A choice's text as a whole-word pattern, so that "12" does not fire inside "120"; in a choice of
    plain words a modal verb may stand between two of them ("plants may increase" states "plants
    increase"; "plants may not increase" does not)."""
    words = choice.split()
    if len(words) > 1 and all(w.isalpha() for w in words):
        pattern = rf"\s+(?:{_MODAL}\s+)?".join(re.escape(w) for w in words)
    else:
        pattern = re.escape(choice.strip())
    if choice.strip()[0].isalnum():
        pattern = r"(?<![\w.])" + pattern
    if choice.strip()[-1].isalnum():
        pattern += r"(?![\w]|\.\d)"
    return pattern


def _choice_of_value(text: str, choices: list[str]) -> str | None:
    """The one choice whose number equals the last number of `text` that any choice has ("the ladder
    is 4.40 meters" names "4.40米"; "AB is 3.0" names "3"); None when no or several choices match."""
    values = {i: _choice_value(c) for i, c in enumerate(choices)}
    for number in reversed(find_numbers(text)):
        value = float(number)
        matching = {choices[i] for i, v in values.items() if v is not None and v == value}
        if len(matching) == 1:
            return matching.pop()
        if matching:
            return None
    return None


def _choice_value(choice: str) -> float | None:
    """The number a choice states, unit or degree sign aside ("145°", "4.40米", "3mm"); None otherwise."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:°|%|[A-Za-z\u4e00-\u9fff]{1,6}\.?)?\s*", choice)
    return to_float(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------
# The verdicts


def read_as_option(extracted: Any, shown: Target) -> Any:
    """What an extraction answers among the options as shown: an option's own text is that option, even
    one that reads as a letter ("(b)"); anything else goes through the official normalisation."""
    return extracted if extracted in (shown.choices or []) else normalize_for_target(extracted, shown)


def score(inp: ScoringInput) -> Score:
    """Strict verdict in `correct`, the official-compatible one in `official_correct`.

    Where the prompt listed the options in another order than `choices` (meta["listed_choices"]), the
    response is read against the listing it answered: strictly, a letter means the option listed
    under it; officially, a letter or option text becomes the listing's letter, which the official
    normalisation then maps through `choices` as GPT's letter is."""
    target = inp.target
    listed = target.meta.get("listed_choices")
    shown = replace(target, choices=listed) if listed else target
    whole = inp.region_rule == "response"
    extracted, rule = extract_answer(inp.region, shown, whole_response=whole)
    prediction = None
    if extracted is not None and rule not in NOT_AN_OPTION:
        prediction = read_as_option(extracted, shown)
    official_text = official_extraction(replace(inp, target=shown), extracted, rule)
    if listed and official_text in listed:
        official_text = chr(ord("A") + listed.index(official_text))
    official_prediction = normalize_for_target(official_text, target) if official_text is not None else None
    return Score(extracted=extracted, extractor=f"{inp.region_rule}>{rule}",
                 correct=prediction is not None and safe_equal(prediction, target.gold),
                 official_correct=official_prediction is not None and safe_equal(official_prediction, target.gold),
                 variants={"official": {"extracted": official_text, "prediction": official_prediction}})


def official_extraction(inp: ScoringInput, extracted: str | None, rule: str) -> str | None:
    """What the official pipeline would have normalised: the extraction when there is one; for an
    abstention, what the rules read when abstentions are not set aside, else the text itself; for an
    empty answer, "" (the official rule then takes the shortest choice)."""
    if extracted is not None:
        return extracted
    if rule == "empty":
        return ""
    if rule == "abstention":
        again, _ = extract_answer(inp.region, inp.target, whole_response=True, abstain=False)
        if again is not None:
            return again
    question_type, _ = official_types(inp.target)
    if question_type != "multi_choice":
        return None
    # GPT names the choice a sentence speaks of, where one has more of its words than the others.
    return _choice_in_sentences(inp.region, inp.target.choices or [], complete=False) or inp.region.strip()
