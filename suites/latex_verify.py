"""Math-Verify, wrapped for the suites' scorers: parse a gold or a predicted answer, then compare.

Math-Verify bounds its parsing and comparison time with `signal.alarm`, which only works in the main
thread (elsewhere it raises). The wrappers pass a timeout in the main thread and none in any other,
so a scorer gives the same verdicts wherever it runs; off the main thread a pathological expression
is not cut short. Any error inside Math-Verify counts as "no answer" / "not equal", never raises.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

TIMEOUT_S = 5

# LaTeX commands and \text{...} groups are not prose; what is left decides how a region is parsed.
_LATEX_COMMAND = re.compile(r"\\(?:text|mathrm|mbox|textbf|begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+")
_PROSE_WORD = re.compile(r"[A-Za-z]{3,}")
_DELIMITED = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed|\\fbox")  # an escaped \$ is a dollar sign


def _timeout() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _configs() -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(), ExprExtractionConfig()]


def _parse(text: str, configs: list[Any]) -> list[Any]:
    from math_verify import parse

    try:
        return parse(text, configs, parsing_timeout=_timeout())
    except Exception:  # noqa: BLE001 -- a parse failure is "no answer"
        return []


@functools.lru_cache(maxsize=8192)  # each gold is parsed once per process, not once per response
def parse_gold_boxed(answer: str) -> list[Any]:
    """A reference answer given as bare LaTeX (MATH `answer`), read as `$\\boxed{answer}$`."""
    from math_verify import LatexExtractionConfig

    return _parse(f"$\\boxed{{{answer}}}$", [LatexExtractionConfig(boxed_match_priority=0)])


def parse_answer(text: str) -> list[Any]:
    """A free-written answer (a model's answer block, or a data set's answer string).

    Text with math delimiters is parsed as it is. Bare text is read as one math expression (so that
    "[2, 5)" is an interval and "x = 3" an equation) unless it reads as prose ("18 dollars",
    "The answer is 5"), in which case Math-Verify looks for the answer inside it; whichever reading
    finds nothing, the other is tried.
    """
    text = text.strip()
    if not text:
        return []
    configs = _configs()
    if _DELIMITED.search(text):
        return _parse(text, configs)
    as_math = f"${text}$"
    prose = bool(_PROSE_WORD.search(_LATEX_COMMAND.sub(" ", text)))
    first, second = (text, as_math) if prose else (as_math, text)
    return _parse(first, configs) or _parse(second, configs)


def parse_boxed_content(content: str) -> list[Any]:
    """The content of a \\boxed{} the response already had (the region rule "boxed")."""
    return _parse(f"$\\boxed{{{content}}}$", _configs())


def parse_response(response: str) -> list[Any]:
    """A whole response: Math-Verify's own search for the final answer (boxed first, then LaTeX,
    then plain expressions)."""
    return _parse(response, _configs())


def verify_parsed(gold: list[Any], prediction: list[Any]) -> bool:
    """Math-Verify's comparison; the order matters (gold first)."""
    if not gold or not prediction:
        return False
    from math_verify import verify

    try:
        return bool(verify(gold, prediction, timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001 -- an uncomparable pair is "not equal"
        return False


def extracted_text(parsed: list[Any]) -> str | None:
    """The answer string Math-Verify matched (its second result), else the parsed value as text."""
    if not parsed:
        return None
    return str(parsed[-1]) if len(parsed) > 1 else str(parsed[0])
