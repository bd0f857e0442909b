"""MathVerse answer rules: option letters, and numbers written with LaTeX, units and degree signs.

MathVerse golds are written by hand: "Area $=113.1 \\mathrm{~cm}^{2}$", "315^\\circT", "118掳T" (a
degree sign read in the wrong encoding), "\\frac{\\sqrt{30}}{2}", "(B)", "C\\nD". These helpers turn
such strings, and model answers, into something comparable: a float, a set of letters, or a
normalised text.
"""

from __future__ import annotations

import ast
import math
import operator
import re

from core.answer_cues import cue_line, letter_called_correct
from core.answers import numbers_equal, to_float

_LETTERS = "ABCDEFGH"

_CUE_LETTER = re.compile(r"[\s*$(\[\"'“‘]*(?:(?i:option|choice)\s*)?\(?([A-H])\)?(?![A-Za-z0-9])")
_LONE_LETTER = re.compile(r"\(?([A-H])\)?\s*[.:：)]?")
_LEADING_LETTER = re.compile(r"\(?([A-H])\)?\s*[:.：)]\s*\S")
_PAREN_LETTER = re.compile(r"\(([A-H])\)")
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z0-9\\])([A-H])(?![A-Za-z0-9])")

_DEGREE = re.compile(r"(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree)(?:\s*T\b)?")
_TEXT_GROUP = re.compile(r"\\(?:text|mathrm|mbox|textrm|operatorname)\s*\{([^{}]*)\}")
_UNIT = re.compile(r"\s*(?:square\s+|cubic\s+)?(?:km\s*/\s*h|cm|mm|km|m|kg|g|metres?|meters?|litres?|"
                   r"liters?|units?|inches|inch|in|ft|feet|yards?|miles?|degrees?)"
                   r"\s*(?:\^\s*\{?\s*[23]\s*\}?|²|³)?\s*$", re.IGNORECASE)


def fix_mojibake(text: str) -> str:
    # "°" (UTF-8 C2 B0) decoded as GBK reads "掳"; some golds carry it.
    return text.replace("掳", "°").replace("−", "-")


def _plain(text: str) -> str:
    """Markdown emphasis, math delimiters and \\text{} wrappers removed."""
    text = _TEXT_GROUP.sub(r"\1", fix_mojibake(text))
    for token in ("**", "$", "\\(", "\\)", "\\[", "\\]"):
        text = text.replace(token, "")
    return text.strip()


def answer_cue_tail(response: str) -> str | None:
    """The text after the last answer cue (the shared cues of core/answer_cues.py: "the answer is",
    "Answer:", "答案是", "the correct option letter is"), to the end of its line (or the next line when
    the cue ends its line); None when the response has no cue."""
    line = cue_line(response)
    return line.rstrip(".").strip() if line else None


# ---------------------------------------------------------------------------------------------
# Option letters


def gold_choice_letters(gold: str, choices: list[str] | None) -> frozenset[str] | None:
    """The gold as a set of option letters: "B", "(B)", "C\\nD"; a gold written as a choice's text
    becomes that choice's letter. None when the gold is neither (then it is scored as free-form)."""
    parts = [p for p in re.split(r"[\s,;/]+|\band\b", gold.strip()) if p]
    letters = [m.group(1) for p in parts if (m := re.fullmatch(r"\(?([A-H])\)?[.:]?", p))]
    if parts and len(letters) == len(parts):
        return frozenset(letters)
    for i, choice in enumerate(choices or []):
        if same_text(choice, gold):
            return frozenset(_LETTERS[i])
    return None


def letter_set(text: str) -> frozenset[str]:
    """Every option letter named in a short answer ("C, D", "(A) and (C)")."""
    return frozenset(_STANDALONE_LETTER.findall(_plain(text)))


def pick_choice_letter(text: str, choices: list[str] | None, whole_response: bool) -> tuple[str | None, str]:
    """(letter, rule). A short answer region may be just the letter, start with it ("B: 60°"), or
    be a choice's text; any text may say "the answer is B" or "Answer: (B)". A whole response is
    read only through its answer cue or its last line, where stray capitals are rarer."""
    plain = _plain(text)
    allowed = _LETTERS[:len(choices)] if choices else _LETTERS
    tail = answer_cue_tail(plain)
    if tail is not None:
        cue = _CUE_LETTER.match(tail)
        if cue and cue.group(1) in allowed:
            return cue.group(1), "answer_cue"
        named = _choice_named(tail, choices)
        if named:
            return named, "answer_cue>choice_text"
    called = letter_called_correct(plain)
    if called and called in allowed:
        return called, "letter_called_correct"
    if whole_response:
        lines = [line.strip() for line in plain.splitlines() if line.strip()]
        if not lines:
            return None, "none"
        letter, how = _letter_of_short_answer(lines[-1], choices, allowed)
        return letter, f"last_line>{how}" if letter else "none"
    return _letter_of_short_answer(plain, choices, allowed)


def _letter_of_short_answer(text: str, choices: list[str] | None, allowed: str) -> tuple[str | None, str]:
    text = text.strip()
    for pattern, how in ((_LONE_LETTER, "letter"), (_LEADING_LETTER, "leading_letter")):
        m = pattern.fullmatch(text) if how == "letter" else pattern.match(text)
        if m and m.group(1) in allowed:
            return m.group(1), how
    named = _choice_named(text, choices)
    if named:
        return named, "choice_text"
    in_parentheses = [x for x in _PAREN_LETTER.findall(text) if x in allowed]
    if in_parentheses:
        return in_parentheses[-1], "paren_letter"
    return None, "none"


def _choice_named(text: str, choices: list[str] | None) -> str | None:
    for i, choice in enumerate(choices or []):
        if choice.strip() and same_text(choice, text.rstrip(".")):
            return _LETTERS[i]
    return None


def same_text(a: str, b: str) -> bool:
    """Equal after dropping case, spaces, math delimiters, \\text{} and a final period."""
    def norm(s: str) -> str:
        return re.sub(r"\s+", "", _plain(s)).rstrip(".").lower()
    return norm(a) == norm(b)


# ---------------------------------------------------------------------------------------------
# Numbers with units and LaTeX


def numeric_value(text: str) -> float | None:
    """The number a short answer states, or None when it is not a single number.

    Tolerates math delimiters, a left-hand side ("Area $=113.1$", "L = 14"), units (\\text{},
    \\mathrm{}, cm, m^2, units), degree signs with an optional bearing "T", \\frac, \\sqrt and \\pi.
    """
    t = _plain(text)
    t = _DEGREE.sub("", t)
    for token in ("\\left", "\\right", "\\,", "\\;", "\\!", "\\quad", "~"):
        t = t.replace(token, " ")
    t = t.replace("\\%", "%")
    t = re.split(r"=|≈|\\approx", t)[-1].strip().rstrip(".").strip()
    for _ in range(3):
        t = _UNIT.sub("", t).strip()
    if not t:
        return None
    plain_number = re.fullmatch(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d+)?%?", t.replace(" ", ""))
    value = to_float(t) if plain_number and re.search(r"\d", t) else None
    return value if value is not None else _evaluate_latex(t)


def numbers_match(value: float, gold_value: float, gold_text: str) -> bool:
    """Equal, or equal once rounded to the decimals the gold is written with ("53.1301" ~ "53.13")."""
    if numbers_equal(value, gold_value):
        return True
    decimals = re.findall(r"\d\.(\d+)", gold_text)
    if len(decimals) == 1:
        places = len(decimals[0])
        return round(value, places) == round(gold_value, places)
    return False


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _evaluate_latex(text: str) -> float | None:
    """Arithmetic in LaTeX (numbers, + - * / ^, \\frac, \\sqrt, \\pi) as a float; None for anything else."""
    s = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    previous = None
    while previous != s:  # innermost groups first, so nesting unwinds
        previous = s
        s = re.sub(r"\\sqrt\s*\{([^{}]*)\}", r"sqrt(\1)", s)
        s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"((\1)/(\2))", s)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"((\1)/(\2))", s)
    s = re.sub(r"\\sqrt\s*(\d+)", r"sqrt(\1)", s)
    s = s.replace("\\pi", " pi ").replace("π", " pi ").replace("\\cdot", "*").replace("\\times", "*")
    s = s.replace("×", "*").replace("{", "(").replace("}", ")").replace("^", "**")
    if re.search(r"[^\d.+\-*/() ]", re.sub(r"sqrt|pi", "", s)):
        return None
    s = re.sub(r"(\d|\)|pi)\s*(?=sqrt|pi|\()", r"\1*", s)
    s = re.sub(r"\)\s*(?=\d)", ")*", s)
    try:
        value = _eval_node(ast.parse(s.strip(), mode="eval").body)
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _eval_node(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id == "pi":
        return math.pi
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        inner = _eval_node(node.operand)
        return None if inner is None else _OPERATORS[type(node.op)](inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if left is None or right is None or (isinstance(node.op, ast.Pow) and abs(right) > 64):
            return None
        return _OPERATORS[type(node.op)](left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt"
            and len(node.args) == 1 and not node.keywords):
        inner = _eval_node(node.args[0])
        return None if inner is None else math.sqrt(inner)
    return None
