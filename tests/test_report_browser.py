"""The report page in a real headless Chromium: no script errors, the numbers, sorting, the language
switch, the flips filters, the reward calculator, and model outputs that try to run script.

Uses the system's Chromium (never a downloaded browser); skips without one, except under
HARNESS_REQUIRE_BROWSER=1 (CI), where a missing browser fails. A full-page screenshot goes to
$HARNESS_ARTIFACTS_DIR (default: test-artifacts/ at the repository root) as report.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reports.i18n import STRINGS
from reports.page import build_report
from tests.fixtures.run_fixture import write_run

REPO = Path(__file__).resolve().parents[1]
T, F = True, False


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def _unavailable(reason: str):
    if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (HARNESS_REQUIRE_BROWSER=1 requires the browser tests to run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        _unavailable("no chromium found on PATH or at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright python package is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True)
        yield chromium
        chromium.close()


class Page:
    """A loaded report with its console errors, page errors and dialogs recorded."""

    def __init__(self, browser, path: Path):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


def _items(pattern, prefix, meta=None):
    return [{"sample_id": f"{prefix}{i}", "correct": ok, "image": True, **({"meta": meta(i)} if meta else {})}
            for i, ok in enumerate(pattern)]


def meta(i: int) -> dict:
    return {"operations": "add" if i < 5 else "mul", "steps": "1"}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    base = write_run(root, "base", {"synth_arith": _items([T] * 5 + [F] * 5, "a", meta),
                                    "synth_charts": _items([T] * 3 + [F] * 7, "c")})
    # vs base: synth_arith 5 fixed (a5-a9) and 1 broken (a4); synth_charts 7 fixed
    cand = write_run(root, "cand", {"synth_arith": _items([T] * 4 + [F] + [T] * 5, "a", meta),
                                    "synth_charts": _items([T] * 10, "c")})
    other = write_run(root, "other", {"synth_arith": _items([F] * 10, "a", meta)}, throughput=80)
    return build_report([base, cand, other], root / "report.html")


def _artifacts_dir() -> Path:
    folder = Path(os.environ.get("HARNESS_ARTIFACTS_DIR") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_page_renders_the_summary_without_errors(browser, report):
    view = Page(browser, report)
    page = view.page
    rows = page.locator("#summary-table tbody tr")
    assert rows.count() == 5  # synth_arith x 3 runs, synth_charts x 2
    cand_arith = page.locator("#summary-table tbody tr", has_text="synth_arith").filter(has_text="cand")
    cells = cand_arith.locator("td").all_inner_texts()
    assert cells[3].startswith("90.0") and cells[4] == "90.0 / 90.0 (+0.0)" and cells[5] == "0.0"
    assert cells[7].startswith("+40.0")
    assert cells[8:12] == ["5", "1", "0.219", "0.219"]
    assert page.locator("#reward-calculator .reward-calc").count() == 1
    assert page.locator('#reward-calculator [data-reward="total"]').inner_text() == "2.6"
    assert page.locator("#item-view .item-card").count() == 1  # the explorer shows its first item
    page.screenshot(path=str(_artifacts_dir() / "report.png"), full_page=True)
    assert view.errors == [] and view.dialogs == []


def test_tables_sort_by_clicking_a_header(browser, report):
    page = Page(browser, report).page
    header = page.locator("#summary-table th").nth(3)  # accuracy

    def column():
        return [float(v) for v in page.locator("#summary-table tbody tr td:nth-child(4)").evaluate_all(
            "cells => cells.map(c => c.dataset.sort)")]

    header.click()
    assert column() == sorted(column()) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert column() == sorted(column(), reverse=True) and header.get_attribute("aria-sort") == "descending"
    assert column()[0] == 1.0  # cand on synth_charts: 10/10


def test_language_switch_changes_the_page_text(browser, report):
    view = Page(browser, report)
    page = view.page
    title = page.locator("#summary h2")
    assert title.inner_text() == STRINGS["en"]["summary.title"]
    page.click('.lang-switch button[data-lang="zh"]')
    assert title.inner_text() == STRINGS["zh"]["summary.title"]
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("#summary-table th").nth(8).inner_text() == STRINGS["zh"]["col.fixed"]
    assert page.locator("#flip-list .badge").first.inner_text() == STRINGS["zh"]["dir.fixed"]
    assert page.locator("#flip-search").get_attribute("placeholder") == STRINGS["zh"]["filter.search"]
    assert page.locator("#reward-calculator dt").first.inner_text() == STRINGS["zh"]["rw.formatReward"]
    assert STRINGS["zh"]["plot.tokens"] in page.locator("#format svg").first.inner_html()
    assert page.locator("#summary-table td").first.inner_text() == "synth_arith"  # data is not translated
    page.click('.lang-switch button[data-lang="en"]')
    assert title.inner_text() == STRINGS["en"]["summary.title"]
    assert view.errors == []


def test_flips_filters(browser, report):
    view = Page(browser, report)
    page = view.page
    cards = page.locator("#flip-list .item-card")
    count = page.locator("#flip-count")
    assert page.locator("#flip-run option").all_inner_texts() == ["cand", "other"]
    assert (count.get_attribute("data-fixed"), count.get_attribute("data-broken")) == ("12", "1")
    assert cards.count() == 13
    page.select_option("#flip-direction", "broken")
    assert cards.count() == 1 and cards.first.get_attribute("data-sample-id") == "a4"
    page.select_option("#flip-direction", "")
    page.select_option("#flip-suite", "synth_arith")
    assert cards.count() == 6
    page.select_option("#flip-category", label="operations: mul")
    assert sorted(cards.evaluate_all("cs => cs.map(c => c.dataset.sampleId)")) == ["a5", "a6", "a7", "a8", "a9"]
    page.fill("#flip-search", "a7")
    assert cards.count() == 1
    # the other candidate broke everything the baseline had right on synth_arith
    page.fill("#flip-search", "")
    page.select_option("#flip-run", "2")
    assert (count.get_attribute("data-fixed"), count.get_attribute("data-broken")) == ("0", "5")
    assert cards.first.locator(".resp").count() == 3  # every run side by side
    assert view.errors == []


SCRIPT_PAYLOADS = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    "<a href=\"javascript:window.__pwned = 3\">click</a>",
    "</script><script>window.__pwned = 4; alert(4)</script>",
    "</textarea><img src=x onerror=alert(5)>",
    "--><!--<script>alert(6)</script>-->",
    "line\u2028separator\u2029<svg onload=alert(7)>",
]


def test_model_outputs_cannot_run_script(browser, tmp_path):
    payload = "\n".join(SCRIPT_PAYLOADS)
    long_payload = payload + "\n" + "padding " * 120  # long enough to sit collapsed in <details>
    items = [{"sample_id": f"x{i}", "correct": False, "response": text, "question": SCRIPT_PAYLOADS[i],
              "choices": SCRIPT_PAYLOADS[:3], "gold": SCRIPT_PAYLOADS[3 + i]}
             for i, text in enumerate((payload, long_payload))]
    base = write_run(tmp_path, "base", {"synth_arith": items}, model=SCRIPT_PAYLOADS[1])
    cand = write_run(tmp_path, "cand", {"synth_arith": [dict(item, correct=True) for item in items]},
                     model=SCRIPT_PAYLOADS[0])
    path = build_report([base, cand], tmp_path / "payloads.html", title=SCRIPT_PAYLOADS[3])
    view = Page(browser, path)
    page = view.page
    page.locator("#flip-list details").first.evaluate("d => { d.open = true; }")
    page.locator("#item-picker button").nth(1).click()
    page.locator("#item-view details").first.evaluate("d => { d.open = true; }")
    page.click('.lang-switch button[data-lang="zh"]')  # re-renders every dynamic part
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert view.dialogs == []
    # the payloads are on the page as text
    responses = page.locator("#flip-list pre.response").all_inner_texts()
    assert any(SCRIPT_PAYLOADS[0] in r and SCRIPT_PAYLOADS[3] in r for r in responses)
    assert page.locator("h1").inner_text() == SCRIPT_PAYLOADS[3]
    assert SCRIPT_PAYLOADS[1] in page.locator("#runs-table").inner_text()
    assert page.locator("#flip-list .question").first.inner_text() == SCRIPT_PAYLOADS[0]
    assert page.locator("img:not(.thumb)").count() == 0 and page.locator("a[href^='javascript']").count() == 0
    assert view.errors == []


def test_an_unfinished_run_is_marked_at_the_top_of_the_page(browser, tmp_path):
    items = {"synth_arith": _items([T, F] * 5, "a", meta)}
    base = write_run(tmp_path, "base", items)
    partial = write_run(tmp_path, "partial", items, status="running")
    records = partial / "records.jsonl"
    records.write_text("".join(records.read_text().splitlines(keepends=True)[:4]))  # killed after 4 of 10
    (partial / "metrics.json").unlink()
    view = Page(browser, build_report([base, partial], tmp_path / "report.html"))
    page = view.page
    tag = page.locator("header .tag.state-unfinished")
    assert tag.inner_text() == STRINGS["en"]["state.unfinished"]
    box = tag.bounding_box()  # in the first screen of a 1400 x 900 window, not in a column off to the right
    assert box is not None and box["y"] + box["height"] <= 900 and box["x"] + box["width"] <= 1400
    assert "4 of 10 records present" in tag.get_attribute("title")
    banner = page.locator("#comparability")
    assert "warn" in banner.get_attribute("class") and "unfinished: 4 of 10 records" in banner.inner_text()
    runs_tag = page.locator("#runs-table .tag.state-unfinished").bounding_box()
    assert runs_tag is not None and runs_tag["x"] + runs_tag["width"] <= 1400
    page.click('.lang-switch button[data-lang="zh"]')
    assert tag.inner_text() == STRINGS["zh"]["state.unfinished"]
    assert view.errors == []
