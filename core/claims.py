"""Answers stated as sentences: a yes/no question answered by restating it, a choice named in other words.

    read_yes_no("Based on the image, Periwinkle is not the maximum.", "Is Periwinkle the maximum?")  # False
    read_yes_no("There are more rubber choppers than big motorbikes.",
                "Are there fewer big motorbikes than rubber choppers?")                            # True
    choice_in_words("the adult spider population would decrease.",
                    ["Adult spider population would double.", "Adults spider population would decrease"])  # 1

A restatement is read only when it repeats most of the question's content words; its polarity flips
with each negation the question lacks ("is not", "does not have"), with a comparative of the other
direction ("more" for "fewer") and with the compared things swapped round "than".
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    ["a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "and", "or", "but", "if", "then", "than", "that", "this", "these", "those", "there", "here", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "has", "have", "had", "will", "would", "can", "could", "should", "may", "might", "must", "it", "its", "it's", "they", "them", "their", "he", "she", "his", "her", "we", "you", "i", "what", "which", "who", "whom", "whose", "how", "when", "where", "why", "based", "image", "graph", "picture", "figure", "chart", "according", "shown", "given"])
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|cannot)\b|n't\b", re.IGNORECASE)
_DOWN = frozenset(["fewer", "less", "smaller", "lower", "shorter", "younger", "lighter", "cheaper", "narrower", "thinner", "slower"])
_UP = frozenset(["more", "greater", "larger", "bigger", "higher", "taller", "older", "heavier", "longer", "wider", "thicker", "faster"])
_LEAD_IN = re.compile(r"^\s*(?:(?:based\s+on|according\s+to|from|looking\s+at|in)\s+(?:the\s+)?"
                      r"(?:given\s+)?(?:image|graph|picture|figure|chart|diagram|plot|information|data)[^,]*,\s*)",
                      re.IGNORECASE)
_CONCLUSION = re.compile(r"^\s*(?:therefore|thus|hence|so|in\s+conclusion|overall)\b[,:]?\s*", re.IGNORECASE)


def _stem(word: str) -> str:
    """A rough stem, enough to match "frogs"/"Frog", "flipped"/"flip", "decreased"/"decrease"."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("es") and len(word) > 4 and word[-3] in "sxz":
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word


def content_words(text: str, drop: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased, stemmed words that carry meaning (no articles, copulas, pronouns, or `drop`)."""
    return [_stem(w) for w in _WORD.findall(text.lower().replace("’", "'"))
            if w not in _STOP and w not in drop and len(w) > 1]


def claim_sentence(sentences: list[str]) -> str | None:
    """The sentence that states the answer: a closing "Therefore, ..." when there is one, else the
    first; a lead-in like "Based on the image," is dropped."""
    if not sentences:
        return None
    last = sentences[-1]
    claim = _CONCLUSION.sub("", last) if _CONCLUSION.match(last) else sentences[0]
    return _LEAD_IN.sub("", claim).strip()


def read_yes_no(claim: str, question: str, min_overlap: float = 0.6) -> bool | None:
    """True (yes) or False (no) when `claim` restates `question` (a yes/no question); None when it
    does not repeat at least `min_overlap` of the question's content words."""
    asked = content_words(question, drop=_DOWN | _UP)
    said = set(content_words(claim))
    if not asked or sum(w in said for w in asked) / len(asked) < min_overlap:
        return None
    flips = len(_NEGATION.findall(claim)) - len(_NEGATION.findall(question))
    q_words, c_words = set(re.findall(r"[a-z]+", question.lower())), set(re.findall(r"[a-z]+", claim.lower()))
    for group, other in ((_DOWN, _UP), (_UP, _DOWN)):
        if q_words & group and not c_words & group and c_words & other:
            flips += 1
    if _swapped_round_than(question, claim):
        flips += 1
    return flips % 2 == 0


def _swapped_round_than(question: str, claim: str) -> bool:
    """Whether the things compared round "than" changed sides ("fewer A than B" / "more B than A")."""
    q, c = re.split(r"\bthan\b", question.lower(), maxsplit=1), re.split(r"\bthan\b", claim.lower(), maxsplit=1)
    if len(q) < 2 or len(c) < 2:
        return False
    q_left, q_right, c_left = _compared(q[0]), set(content_words(q[1])[:3]), _compared(c[0])
    return len(c_left & q_right) > len(c_left & q_left)


def _compared(left: str) -> set[str]:
    """The thing compared on the left of "than": the words after the comparative ("fewer big
    motorbikes"), or the last words where there is no comparative word."""
    words = re.findall(r"[a-z]+", left)
    at = max((i for i, w in enumerate(words) if w in _DOWN | _UP), default=None)
    if at is None:
        return set(content_words(left)[-3:])
    return set(content_words(" ".join(words[at + 1:]))[:3])


def choice_in_words(text: str, choices: list[str], complete: bool = True) -> int | None:
    """The index of the one choice whose content words `text` contains: all of them (`complete`), or
    else the largest share; None when no choice, or more than one, fits best. Choices without words
    (numbers, angles) are left to the other rules."""
    said = set(content_words(text))
    shares = {}
    for i, choice in enumerate(choices):
        words = [w for w in content_words(choice) if not w.isdigit()]
        if words:
            shares[i] = sum(w in said for w in words) / len(words)
    if not shares:
        return None
    best = max(shares.values())
    winners = [i for i, share in shares.items() if share == best]
    if len(winners) != 1 or best == 0 or (complete and best < 1):
        return None
    return winners[0]
