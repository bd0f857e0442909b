"""The report page's JSON payload to its script (reports/assets/report.js), as types: what
reports/page_items.py builds and the script reads, key for key (tests/test_report_page.py checks both).

Keys are short on purpose: a 4 x 1,000-item page carries them thousands of times.
"""

# No `from __future__ import annotations`: on Python 3.11 it hides NotRequired from TypedDict.
from typing import NotRequired, TypedDict


class RunEntry(TypedDict):
    """One run's view of one item (its first attempt, and the mean correctness over attempts)."""

    a: float  # mean correctness over the attempts
    k: NotRequired[int]  # number of attempts, when more than one
    t: NotRequired[str]  # the response, cut to the page's budget
    tl: NotRequired[int]  # the response's full length, when cut
    x: NotRequired[str]  # the extracted answer
    f: NotRequired[bool]  # format verdict
    ff: NotRequired[list[str]]  # format failures
    fin: NotRequired[str]  # finish reason
    e: NotRequired[str]  # why the sample failed
    rw: NotRequired[list[float | None]]  # rewards: format, correctness, total
    rwm: NotRequired[str]  # their reward mode, "suite" or "recipe" (with rw)


class PageItem(TypedDict):
    s: str  # suite
    id: str  # sample id
    q: str | None  # question
    g: str | None  # gold answer
    r: list[RunEntry | None]  # one per run, None where the run lacks the item
    c: NotRequired[list[str]]  # choices
    img: NotRequired[str]  # key into ReportPayload.images
    m: NotRequired[dict[str, str | list[str]]]  # breakdown categories


class FlipList(TypedDict):
    run: int  # index of the candidate run
    suite: str
    fixed: list[int]  # indices into ReportPayload.items
    broken: list[int]


class PageRun(TypedDict):
    label: str
    color: str


class ReportPayload(TypedDict):
    images: dict[str, str]  # key -> data: URL of a JPEG thumbnail
    items: list[PageItem]
    flips: list[FlipList]
    runs: list[PageRun]
    suites: list[str]
