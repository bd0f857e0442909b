"""The report's reward calculator (reports/assets/rewards.js) must give Python's rewards, in a real browser.

Every case of tests/fixtures/reward_cases.json goes through core.formats here and through
rewards.js in headless Chromium; the two must be equal case by case (floats exactly, failure lists
in order). The fixture holds inputs only, so it cannot drift from the Python rules.

    python3 -m uv run --locked pytest tests/test_reward_calculator.py -q

Without a chromium executable the browser tests skip, unless HARNESS_REQUIRE_BROWSER=1 (CI), where
they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from core.answers import to_float
from core.formats import (
    DEFAULT_REWARD_WEIGHTS,
    FAILURE_KINDS,
    PROMPT_FORMATS,
    answer_region,
    blocks,
    format_failures,
    rewards,
)

REPO = Path(__file__).resolve().parents[1]
REWARDS_JS = REPO / "reports" / "assets" / "rewards.js"
CASES_FILE = Path(__file__).parent / "fixtures" / "reward_cases.json"

# Strings where JS and Python number parsing could part ways, beyond those the cases produce.
EXTRA_NUMBERS = [
    "", " ", ".", "-", "+", "1.", ".5", "-.5e-3", "1e", "e5", "1E+3", "1.e5", "0001.500", "1_000.000_1",
    "_1", "1_", "1__0", "1_.5", "1._5", "1e_5", "1e5_0", "+-1", "--1", "1.2.3", "0x10", "0b1", "1e400",
    "-1e400", "1e-400", "inf", "-Infinity", "nan", "1,2,3", "$-5", "-$5", "5%%", "5%.", "5.%", "%5",
    "1 2", "1\t", "\t1", "1\x0b", "1\x1c", "\x1c1", "1\x85", "1\u2028", "1\u00a0", "1\u00a0000", "\ufeff1",
    "\u0661\u066b5", "\uff11\uff0e\uff15", "\U0001d7d9", "\u00b2", "\u2155", "\u2167", "9" * 400,
    "0." + "0" * 330 + "1", "1" + "0" * 308, "2" + "0" * 308,
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    debian = Path("/usr/bin/chromium")
    return str(debian) if debian.is_file() else None


def skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and HARNESS_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(reason)


def load_cases() -> list[dict[str, Any]]:
    """The fixture's cases with responses expanded (list parts joined, {"repeat", "times"} multiplied)."""
    cases = json.loads(CASES_FILE.read_text(encoding="utf-8"))["cases"]
    for case in cases:
        if isinstance(case["response"], list):
            parts = case["response"]
            case["response"] = "".join(p if isinstance(p, str) else p["repeat"] * p["times"] for p in parts)
    return cases


CASES = load_cases()


def python_result(case: dict[str, Any]) -> dict[str, Any]:
    """What the calculator must show: core.formats.rewards plus the failures and the compared answer."""
    fmt = PROMPT_FORMATS[case["format"]]
    response = case["response"]
    if fmt.answer_tags is None:
        # The suite scorer's extracted answer when the case gives one; else the answer region stands in.
        compared = case.get("extracted", answer_region(response, fmt)[0])
    else:
        found = blocks(response, fmt.answer_tags)
        compared = found[0].replace("\n", "") if len(found) == 1 else None
    extracted = compared if fmt.answer_tags is None else None
    result = rewards(response, case["gold"], fmt, extracted, None, case.get("choices"))
    return {**result, "failures": format_failures(response, fmt), "extracted": compared}


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (python3 -m uv sync --group dev)")
    chromium = find_chromium()
    if chromium is None:
        skip_or_fail("no chromium executable found (Debian: apt-get install chromium)")
    script = REWARDS_JS.read_text(encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            pg = browser.new_page()
            pg.set_content('<!doctype html><meta charset="utf-8"><title>rewards</title>'
                           f'<div id="reward-calculator"></div><script>{script}</script>')
            yield pg
        finally:
            browser.close()


def test_fixture_covers_every_format_failure_kind_and_tier():
    assert len(CASES) >= 60
    assert len({c["id"] for c in CASES}) == len(CASES), "case ids must be unique"
    assert {c["format"] for c in CASES} == set(PROMPT_FORMATS)
    results = [python_result(c) for c in CASES]
    reached = {kind for r in results for kind in r["failures"] or []}
    assert reached == set(FAILURE_KINDS)
    assert {r["correctness"] for r in results} == {0.0, 1.5, 2.0}
    assert any(r["format"] == -2.0 for r in results), "no degenerate case loses the format reward"
    letter_hits = [c for c, r in zip(CASES, results, strict=True)
                   if c.get("choices") and r["correctness"] == 2.0 and r["extracted"] != c["gold"]]
    assert letter_hits, "no case scores through a multi-choice letter"
    assert any(c["response"] == "" for c in CASES)
    assert any(c["gold"] == "" for c in CASES)
    assert any(any(ord(ch) > 0xFFFF for ch in c["response"]) for c in CASES), "no astral code points"
    assert max(len(c["response"]) for c in CASES) > 10_000


def test_script_is_safe_to_inline():
    script = REWARDS_JS.read_text(encoding="utf-8")
    assert "</script" not in script.lower()
    assert "<!--" not in script
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script


def test_rewards_match_python_case_by_case(page):
    keys = ("response", "gold", "format", "choices", "extracted")
    js_cases = [{k: c[k] for k in keys if k in c} for c in CASES]  # an absent key arrives as undefined
    got = page.evaluate(
        "cases => cases.map(c =>"
        " HarnessRewards.rewards(c.response, c.gold, c.format, c.choices, c.extracted))",
        js_cases)
    mismatches = []
    for case, js in zip(CASES, got, strict=True):
        expected = python_result(case)
        if js != expected:
            mismatches.append(f"{case['id']}: python {expected} != js {js}")
    assert not mismatches, "\n".join(mismatches)


def test_answer_region_and_number_parsing_match_python(page):
    responses = [c["response"] for c in CASES]
    got = page.evaluate(
        """([responses, formats, numbers]) => ({
            regions: responses.map(r => formats.map(f => HarnessRewards.answerRegion(r, f))),
            numbers: numbers.map(s => HarnessRewards.toFloat(s)),
        })""",
        [responses, list(PROMPT_FORMATS), EXTRA_NUMBERS + [c["gold"] for c in CASES]])
    for response, regions in zip(responses, got["regions"], strict=True):
        for fmt, region in zip(PROMPT_FORMATS.values(), regions, strict=True):
            expected = answer_region(response, fmt)
            assert (region["region"], region["rule"]) == expected, (response[:80], fmt.name)
    numbers = EXTRA_NUMBERS + [c["gold"] for c in CASES]
    parsed = {s: v for s, v in zip(numbers, got["numbers"], strict=True)}
    assert parsed == {s: to_float(s) for s in numbers}


def test_constants_match_python(page):
    js = page.evaluate("({formats: HarnessRewards.PROMPT_FORMATS, kinds: HarnessRewards.FAILURE_KINDS,"
                       " weights: HarnessRewards.DEFAULT_REWARD_WEIGHTS})")
    assert js["kinds"] == list(FAILURE_KINDS)
    assert js["weights"] == DEFAULT_REWARD_WEIGHTS
    assert list(js["formats"]) == list(PROMPT_FORMATS)
    for name, fmt in PROMPT_FORMATS.items():
        mirrored = js["formats"][name]
        assert mirrored["description"] == fmt.description
        assert mirrored["reasoningTags"] == (list(fmt.reasoning_tags) if fmt.reasoning_tags else None)
        assert mirrored["answerTags"] == (list(fmt.answer_tags) if fmt.answer_tags else None)


def shown(widget) -> dict[str, str]:
    return {key: widget.locator(f'[data-reward="{key}"]').text_content()
            for key in ("format", "correctness", "total", "failures", "extracted")}


def test_widget_recomputes_as_the_reader_types(page):
    page.evaluate("HarnessRewards.mount(document.getElementById('reward-calculator'))")
    widget = page.locator("#reward-calculator")
    assert shown(widget)["failures"] == "none"  # the built-in example is compliant

    widget.locator("select.reward-calc-format").select_option("think-answer")
    response = widget.locator("textarea.reward-calc-response")
    response.fill("")
    response.press_sequentially("<think>x</think><answer>1,000</answer>")
    widget.locator("input.reward-calc-gold").fill("1000")
    expected = rewards("<think>x</think><answer>1,000</answer>", "1000", PROMPT_FORMATS["think-answer"])
    assert expected["correctness"] == 1.5
    assert shown(widget) == {"format": repr(expected["format"]), "correctness": "1.5",
                             "total": repr(expected["total"]), "failures": "none", "extracted": '"1,000"'}

    # Multi-choice: the gold choice's letter counts as exact.
    widget.locator("textarea.reward-calc-choices").fill("10\n12\n14")
    widget.locator("input.reward-calc-gold").fill("12")
    response.fill("<answer>(B)</answer>")
    assert shown(widget)["correctness"] == "2.0"
    assert shown(widget)["failures"] == "missing_reasoning"

    # The reader's text is shown as text, never parsed as markup.
    response.fill("<think><b>bold</b></think><answer><img src=x onerror=alert(1)></answer>")
    assert widget.locator("b, img").count() == 0
    assert shown(widget)["extracted"] == '"<img src=x onerror=alert(1)>"'

    widget.locator("select.reward-calc-format").select_option("official")
    assert shown(widget)["format"] == "n/a"
    assert shown(widget)["failures"] == "n/a"
    assert widget.locator(".reward-calc-note").is_visible()


def test_widget_takes_labels_and_a_starting_record(page):
    page.evaluate("""() => {
        const box = document.createElement("div");
        box.id = "second";
        document.body.appendChild(box);
        window.secondWidget = HarnessRewards.mount(box, {formatReward: "Format-Belohnung", none: "keine"},
                                                   {response: "\\\\boxed{7}", gold: "7", format: "boxed"});
    }""")
    widget = page.locator("#second")
    assert widget.locator("dt").first.text_content() == "Format-Belohnung"
    assert widget.locator("select.reward-calc-format").input_value() == "boxed"
    assert shown(widget) == {"format": "n/a", "correctness": "2.0", "total": "n/a", "failures": "keine",
                             "extracted": '"7"'}

    # A re-mount (the page does one on a language switch) can carry the reader's input over.
    widget.locator("textarea.reward-calc-choices").fill("3\n7\n\n")
    page.evaluate("""() => {
        const box = document.getElementById("second");
        const typed = window.secondWidget.values();
        box.replaceChildren();
        HarnessRewards.mount(box, {formatReward: "格式奖励"}, typed);
    }""")
    assert widget.locator("dt").first.text_content() == "格式奖励"
    assert widget.locator("textarea.reward-calc-choices").input_value() == "3\n7"
    assert shown(widget)["correctness"] == "2.0"
