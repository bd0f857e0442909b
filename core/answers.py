"""Answer-string helpers shared by the suites' scorers: numbers, \\boxed{}, light normalisation."""

from __future__ import annotations

import math
import re

# A number as people write it: optional sign, thousands commas, decimals, or a leading-dot decimal.
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def find_numbers(text: str) -> list[str]:
    """All numbers in reading order, commas removed ("1,234.5" -> "1234.5")."""
    return [m.group(0).replace(",", "") for m in _NUMBER.finditer(text)]


def last_number(text: str) -> str | None:
    nums = find_numbers(text)
    return nums[-1] if nums else None


def to_float(s: str | None) -> float | None:
    """Parse a bare number, tolerating `$`, `%`, thousands commas, spaces and a trailing period."""
    if s is None:
        return None
    t = s.strip().replace(",", "").replace("$", "").replace(" ", "")
    t = t.rstrip(".").removesuffix("%")
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def numbers_equal(a: float, b: float) -> bool:
    """Whole numbers must match exactly (1,000,001 apples is not 1,000,000 at any tolerance); other
    numbers within a relative 1e-6, which absorbs float formatting (0.30000000000000004)."""
    if float(a).is_integer() and float(b).is_integer():
        return a == b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...} (or \\fbox{...}) with balanced braces, in order."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end():i - 1])
    return out


def last_boxed(text: str) -> str | None:
    found = boxed_contents(text)
    return found[-1] if found else None
