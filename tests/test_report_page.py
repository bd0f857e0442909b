"""The HTML report without a browser: the numbers it prints for handwritten runs, the comparability
banner, escaping of untrusted run content, the training section, and the `report` command."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.errors import ConfigError
from harness.cli import cli
from reports.i18n import STRINGS
from reports.page import build_report
from reports.page_items import MAX_RESPONSE_CHARS, _even_cap
from reports.page_payload import FlipList, PageItem, PageRun, ReportPayload, RunEntry
from reports.runs import differences, load_runs
from tests.fixtures.run_fixture import write_checkpoint, write_run
from tests.fixtures.typed_shape import shape_problems

T, F = True, False
# synth_arith: 50% -> 90%, 5 fixed and 1 broken: McNemar p = 2 * P(X <= 1 | 6, 1/2) = 2 * 7/64 = 0.219.
ARITH = ([T] * 5 + [F] * 5, [T] * 4 + [F] + [T] * 5)
# synth_charts: 30% -> 100%, 7 fixed, 0 broken: p = 2 / 2^7 = 0.0156; Holm over the two: 2 x 0.0156 = 0.031.
CHARTS = ([T] * 3 + [F] * 7, [T] * 10)


def _items(pattern: list[bool], prefix: str, **extra) -> list[dict]:
    return [{"sample_id": f"{prefix}{i}", "correct": ok, **extra} for i, ok in enumerate(pattern)]


def _pair(root: Path, **cand_kwargs) -> list[Path]:
    meta = [{"operations": "add" if i < 5 else "mul", "steps": str(1 + i % 2)} for i in range(10)]
    base_arith = [dict(item, meta=m) for item, m in zip(_items(ARITH[0], "a"), meta, strict=True)]
    cand_arith = [dict(item, meta=m) for item, m in zip(_items(ARITH[1], "a"), meta, strict=True)]
    base = write_run(root, "base", {"synth_arith": base_arith, "synth_charts": _items(CHARTS[0], "c")})
    cand = write_run(root, "cand", {"synth_arith": cand_arith, "synth_charts": _items(CHARTS[1], "c")},
                     **cand_kwargs)
    return [base, cand]


class _Tables(HTMLParser):
    """Cell texts of every table with an id, and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(page: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def _data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.DOTALL)
    return json.loads(match.group(1))


def _row(table: list[list[str]], suite: str, run: str) -> dict[str, str]:
    head = table[0]
    for row in table[1:]:
        if row[0] == suite and row[1].startswith(run):
            return dict(zip(head, row, strict=True))
    raise AssertionError(f"no row for {suite} / {run}")


def test_summary_shows_accuracy_delta_flips_and_paired_tests(tmp_path):
    page = build_report(_pair(tmp_path), tmp_path / "r.html").read_text(encoding="utf-8")
    summary = _tables(page)["summary-table"]
    assert summary[0] == ["Suite", "Run", "Items", "Accuracy % [95% CI]", "Strict / official % (Δ)", "No answer %",
                          "Format %", "Δ pts [95% CI]", "Fixed", "Broken", "McNemar p", "Holm p", "Change"]
    base = _row(summary, "synth_arith", "base")
    assert base["Items"] == "10" and base["Accuracy % [95% CI]"].startswith("50.0 [")
    assert base["Change"] == "baseline"
    arith = _row(summary, "synth_arith", "cand")
    assert arith["Accuracy % [95% CI]"].startswith("90.0 [")
    assert arith["Δ pts [95% CI]"].startswith("+40.0 [")
    assert (arith["Fixed"], arith["Broken"], arith["McNemar p"], arith["Holm p"]) == ("5", "1", "0.219", "0.219")
    assert arith["Change"] == "not significant"
    charts = _row(summary, "synth_charts", "cand")
    assert charts["Δ pts [95% CI]"].startswith("▲ +70.0 [")  # significant after Holm: marked
    assert (charts["Fixed"], charts["Broken"], charts["McNemar p"], charts["Holm p"]) == ("7", "0", "0.016", "0.031")
    assert charts["Change"] == "better"
    assert 'class="delta pos-sig num" data-sort="0.7' in page  # coloured as a significant gain

    # the flips the page lists are the ones the test counted
    data = _data(page)
    flips = {f["suite"]: f for f in data["flips"]}
    assert [data["items"][i]["id"] for i in flips["synth_arith"]["fixed"]] == ["a5", "a6", "a7", "a8", "a9"]
    assert [data["items"][i]["id"] for i in flips["synth_arith"]["broken"]] == ["a4"]
    assert len(flips["synth_charts"]["fixed"]) == 7 and flips["synth_charts"]["broken"] == []


def test_summary_shows_both_scorings_and_the_no_answer_rate(tmp_path):
    # q0 right; q1 an abstention the official fallback happens to credit; q2, q3 wrong answers.
    items = [{"sample_id": "q0", "correct": True}, {"sample_id": "q1", "correct": False, "answered": False,
                                                    "correct_official": True},
             {"sample_id": "q2", "correct": False}, {"sample_id": "q3", "correct": False}]
    base = write_run(tmp_path, "base", {"synth_arith": items})
    cand = write_run(tmp_path, "cand", {"synth_arith": items})
    page = build_report([base, cand], tmp_path / "r.html").read_text(encoding="utf-8")
    row = _row(_tables(page)["summary-table"], "synth_arith", "base")
    assert row["Accuracy % [95% CI]"].startswith("25.0 [")
    assert (row["Strict / official % (Δ)"], row["No answer %"]) == ("25.0 / 50.0 (+25.0)", "25.0")
    runs = _tables(page)["runs-table"]
    assert runs[0][4] == "Scoring" and runs[1][4] == "strict"
    manifest = json.loads((cand / "manifest.json").read_text())
    (cand / "manifest.json").write_text(json.dumps({**manifest, "scoring": "official"}))
    page = build_report([base, cand], tmp_path / "r2.html").read_text(encoding="utf-8")
    assert "scoring &#x27;strict&#x27; in base, &#x27;official&#x27; in cand" in page


def test_breakdowns_per_category_with_deltas(tmp_path):
    page = build_report(_pair(tmp_path), tmp_path / "r.html").read_text(encoding="utf-8")
    # synth_arith "operations": add = items 0-4 (base 5/5, cand 4/5), mul = items 5-9 (base 0/5, cand 5/5)
    rows = [re.sub(r"<[^>]+>", " ", r).split() for r in re.findall(r"<tr>(.*?)</tr>", page)]
    assert ["add", "5", "100.0", "80.0", "-20.0"] in rows
    assert ["mul", "5", "0.0", "100.0", "+100.0"] in rows


def test_banner_lists_every_incomparability(tmp_path):
    overlap = {"n": 2, "suites": {"synth_arith": ["a1", "a2"]}}
    paths = _pair(tmp_path, prompt_format="think-answer", generation={"temperature": 0.7},
                  content_sha256={"synth_charts": "f" * 64}, checkpoint={"dir": str(tmp_path / "gone"),
                                                                        "algo": "grpo", "step": 5, "overlap": overlap})
    page = build_report(paths, tmp_path / "r.html").read_text(encoding="utf-8")
    banner = re.search(r'<div class="banner warn" id="comparability".*?</div>', page, re.DOTALL).group(0)
    kinds = differences(load_runs(paths))
    assert {kind for kind, _ in kinds} >= {"content", "prompt_format", "generation", "overlap"}
    for _, message in kinds:
        assert f"<li>{message.replace(chr(39), '&#x27;')}</li>" in banner


def test_comparable_runs_get_the_all_clear(tmp_path):
    page = build_report(_pair(tmp_path), tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'class="banner ok" id="comparability"' in page
    assert 'class="banner warn" id="comparability"' not in page


PAYLOADS = {
    "model": '<img src=x onerror="window.__pwned=1">',
    "sample_id": '"><script>window.__pwned=1</script>',
    "question": "</script><script>window.__pwned=1</script> --><!-- ",
    "choices": ["<b onmouseover=window.__pwned=1>A</b>", "javascript:window.__pwned=1"],
    "gold": "</textarea><svg onload=window.__pwned=1>",
    "response": "</script><img src=x onerror=window.__pwned=1>\u2028\u2029 <a href='javascript:alert(1)'>x</a>",
}


def test_untrusted_run_content_is_only_present_escaped(tmp_path):
    item = {"sample_id": PAYLOADS["sample_id"], "correct": False, "question": PAYLOADS["question"],
            "choices": PAYLOADS["choices"], "gold": PAYLOADS["gold"], "response": PAYLOADS["response"]}
    base = write_run(tmp_path, "base", {"synth_arith": [item]}, model=PAYLOADS["model"])
    cand = write_run(tmp_path, "cand", {"synth_arith": [dict(item, correct=True)]})
    page = build_report([base, cand], tmp_path / "r.html").read_text(encoding="utf-8")
    # the only elements are the page's own: 4 scripts, no img/svg/a/b from the data
    assert len(re.findall(r"<script\b", page, re.IGNORECASE)) == 4
    for raw in ("<img", "<svg onload", "<b ", "<a href='java", "\u2028", "\u2029", "<!-- "):
        assert raw not in page, raw
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page  # the model name, as text
    # JSON data: nothing closes the script element, and every string reads back unchanged
    data = _data(page)
    entry = data["items"][0]
    assert (entry["id"], entry["q"], entry["c"], entry["g"]) == (
        PAYLOADS["sample_id"], PAYLOADS["question"], PAYLOADS["choices"], PAYLOADS["gold"])
    assert entry["r"][0]["t"] == PAYLOADS["response"]
    assert data["runs"][0]["label"] == "base"
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_images_are_embedded_once_and_only_from_the_images_dir(tmp_path):
    items = [{"sample_id": str(i), "correct": i % 2 == 0, "image": True} for i in range(3)]
    base = write_run(tmp_path, "base", {"synth_charts": items})
    cand = write_run(tmp_path, "cand", {"synth_charts": items})
    page = build_report([base, cand], tmp_path / "r.html").read_text(encoding="utf-8")
    data = _data(page)
    assert len(data["images"]) == 3 and all(u.startswith("data:image/jpeg;base64,") for u in data["images"].values())
    assert [item.get("img") for item in data["items"]] == ["0", "1", "2"]

    # a record naming a file outside images/ gets no picture
    (tmp_path / "secret.jpg").write_bytes((base / "images" / "synth_charts__0.jpg").read_bytes())
    records = [json.loads(line) for line in (base / "records.jsonl").read_text().splitlines()]
    for r in records:
        r["image"] = "../../secret.jpg"
    (base / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (cand / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    data = _data(build_report([base, cand], tmp_path / "r2.html").read_text(encoding="utf-8"))
    assert data["images"] == {} and all("img" not in item for item in data["items"])


def test_long_responses_are_cut_with_their_full_length_kept(tmp_path):
    long = "x" * (MAX_RESPONSE_CHARS + 500)
    base = write_run(tmp_path, "base", {"synth_arith": [{"sample_id": "1", "correct": False, "response": long}]})
    cand = write_run(tmp_path, "cand", {"synth_arith": [{"sample_id": "1", "correct": True}]})
    entry = _data(build_report([base, cand], tmp_path / "r.html").read_text(encoding="utf-8"))["items"][0]["r"][0]
    assert len(entry["t"]) == MAX_RESPONSE_CHARS and entry["tl"] == len(long)


def test_several_attempts_flip_by_majority(tmp_path):
    # item 0: 1/3 -> 2/3 (fixed), item 1: 2/3 -> 3/3 (no flip), item 2: 2/3 -> 1/3 (broken)
    base = write_run(tmp_path, "base", {"synth_arith": [
        {"sample_id": "0", "correct": [T, F, F]}, {"sample_id": "1", "correct": [T, T, F]},
        {"sample_id": "2", "correct": [T, T, F]}]}, attempts=3)
    cand = write_run(tmp_path, "cand", {"synth_arith": [
        {"sample_id": "0", "correct": [T, T, F]}, {"sample_id": "1", "correct": [T, T, T]},
        {"sample_id": "2", "correct": [F, T, F]}]}, attempts=3)
    page = build_report([base, cand], tmp_path / "r.html").read_text(encoding="utf-8")
    data = _data(page)
    assert [(f["fixed"], f["broken"]) for f in data["flips"]] == [([0], [2])]
    assert data["items"][1]["r"][1] == {**data["items"][1]["r"][1], "a": 1.0, "k": 3}
    row = _row(_tables(page)["summary-table"], "synth_arith", "cand")
    assert (row["Fixed"], row["Broken"]) == ("1", "1") and row["Δ pts [95% CI]"].startswith("+11.1 [")


def test_even_cap_shares_the_budget():
    assert _even_cap([10, 20, 30], 100) == MAX_RESPONSE_CHARS  # everything fits
    assert _even_cap([10, 100, 100], 110) == 50  # the short one whole, the rest split evenly


def _checkpoint_runs(tmp_path, *, on_policy: bool) -> list[Path]:
    ckpt = tmp_path / "ckpt"
    log = [{"step": s, "reward": 0.5 + s / 10, "rewards/format_reward/mean": 0.9, "kl": 0.01 * s,
            "completions/mean_length": 100 - s, "step_time": 2.0} for s in range(1, 6)]
    write_run(ckpt / "evals", "step-2", {"synth_arith": _items([T, F, F, F], "a")})
    write_run(ckpt / "evals", "step-4", {"synth_arith": _items([T, T, T, F], "a")})
    write_checkpoint(ckpt, "gspo", log, [{"step": 2, "run_dir": "evals/step-2"},
                                         {"step": 4, "run_dir": "evals/step-4"},
                                         {"step": 6, "run_dir": "evals/missing"}],
                     effectively_on_policy=on_policy)
    base = write_run(tmp_path, "base", {"synth_arith": _items([T, F, F, F], "a")})
    trained = write_run(tmp_path, "trained", {"synth_arith": _items([T, T, T, F], "a")},
                        checkpoint={"dir": str(ckpt), "algo": "gspo", "engine": "trl", "step": 4,
                                    "base_model": "tiny", "effectively_on_policy": on_policy})
    moved = write_run(tmp_path, "moved", {"synth_arith": _items([T, T, F, F], "a")},
                      checkpoint={"dir": str(tmp_path / "elsewhere"), "algo": "grpo", "step": 4})
    return [base, trained, moved]


def test_training_section_curves_evals_and_notes(tmp_path):
    page = build_report(_checkpoint_runs(tmp_path, on_policy=True), tmp_path / "r.html").read_text(encoding="utf-8")
    training = page[page.index('<section id="training"'):page.index('<section id="rewards"')]
    curves = re.findall(r'data-curve="([^"]+)"', training)
    assert curves == ["reward", "rewards/format_reward/mean", "completions/mean_length", "kl", "step_time"]
    assert 'data-note="training.on_policy"' in training
    assert 'data-note="training.missing_dir"' in training  # the "moved" run
    rows = [re.sub(r"<[^>]+>", " ", r).split() for r in re.findall(r"<tr>(.*?)</tr>", training)]
    assert [r[-3:] for r in rows if r[-3:-2] == ["synth_arith"]] == [["synth_arith", "2", "25.0"],
                                                                     ["synth_arith", "4", "75.0"]]
    assert "evals/missing" in training  # listed as not found
    assert training.count("<svg") == len(curves) + 1  # one accuracy-by-step chart

    page = build_report(_checkpoint_runs(tmp_path / "b", on_policy=False), tmp_path / "r2.html").read_text(
        encoding="utf-8")
    assert 'data-note="training.on_policy"' not in page


def test_reward_modes_are_shown_and_the_calculator_says_it_is_the_recipes(tmp_path):
    # Records and checkpoints written before the reward modes used the recipe's rule: the page says so.
    runs = _checkpoint_runs(tmp_path, on_policy=False)
    page = build_report(runs, tmp_path / "r.html").read_text(encoding="utf-8")
    rewards = page[page.index('<section id="rewards"'):]
    assert 'data-reward-modes="recipe"' in rewards and 'data-note="rewards.suite_mode"' not in rewards
    assert {e["rwm"] for item in _data(page)["items"] for e in item["r"] if e and "rw" in e} == {"recipe"}
    # A checkpoint trained in the suite mode, evaluated into records holding the suite mode's rewards.
    suite_rewards = {"mode": "suite", "format": 2.0, "correctness": 2.0, "total": 2.6}
    trained = write_run(tmp_path / "s", "trained", {"synth_arith": _items([T, F], "a", rewards=suite_rewards)},
                        checkpoint={"dir": str(tmp_path / "ckpt"), "algo": "gspo", "engine": "trl", "step": 4,
                                    "base_model": "tiny", "reward_mode": "suite"})
    page = build_report([runs[0], trained], tmp_path / "r2.html").read_text(encoding="utf-8")
    rewards = page[page.index('<section id="rewards"'):]
    assert 'data-reward-modes="suite recipe"' in rewards and 'data-note="rewards.suite_mode"' in rewards
    assert "recipe reward mode" in rewards  # the calculator's own scope, in its introduction
    training = _tables(page)["training-table"]
    assert [dict(zip(training[0], r, strict=True))["Reward mode"] for r in training[1:]] == ["suite"]
    # trained on one process: entries older than multi-process training say nothing of it
    assert [dict(zip(training[0], r, strict=True))["Training processes"] for r in training[1:]] == ["1"]
    two = write_run(tmp_path / "d", "two-gpus", {"synth_arith": _items([T, F], "a", rewards=suite_rewards)},
                    checkpoint={"dir": str(tmp_path / "ckpt2"), "algo": "grpo", "engine": "trl", "step": 4,
                                "base_model": "tiny", "reward_mode": "suite", "world_size": 2, "global_batch_size": 16})
    page = build_report([runs[0], two], tmp_path / "r3.html").read_text(encoding="utf-8")
    row = dict(zip(*_tables(page)["training-table"], strict=True))
    assert (row["Training processes"], row["Completions per step (all processes)"]) == ("2", "16")
    modes = {e["rwm"] for item in _data(page)["items"] for e in item["r"] if e and "rw" in e}
    assert modes == {"suite", "recipe"}


def test_every_page_string_exists_in_both_languages(tmp_path):
    assert set(STRINGS["en"]) == set(STRINGS["zh"])
    page = build_report(_pair(tmp_path), tmp_path / "r.html", lang="zh").read_text(encoding="utf-8")
    assert '<html lang="zh-CN"' in page and STRINGS["zh"]["summary.title"] in page
    used = set(re.findall(r'data-i18n(?:-ph|-aria|-svg)?="([^"]+)"', page))
    script = (Path(__file__).parents[1] / "reports" / "assets" / "report.js").read_text()
    used |= set(re.findall(r'(?:i18nSpan|t)\("([a-z_.]+)"', script))
    used |= set(re.findall(r'key: "([a-z_.]+)"', script))
    assert used and used <= set(STRINGS["en"]), used - set(STRINGS["en"])


def test_build_report_refuses_bad_input(tmp_path):
    base = write_run(tmp_path, "base", {"synth_arith": _items([T], "a")})
    with pytest.raises(ConfigError, match="at least two runs"):
        build_report([base], tmp_path / "r.html")
    with pytest.raises(ConfigError, match="language"):
        build_report([base, base], tmp_path / "r.html", lang="fr")


def test_report_command(tmp_path):
    paths = [str(p) for p in _pair(tmp_path)]
    out = tmp_path / "sub" / "report.html"
    result = CliRunner().invoke(cli, ["report", *paths, "-o", str(out), "--title", "<b>step 40</b>"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "<h1>&lt;b&gt;step 40&lt;/b&gt;</h1>" in out.read_text(encoding="utf-8")

    result = CliRunner().invoke(cli, ["report", paths[0], "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: a report compares at least two runs (the first is the baseline), got 1"]

    missing = tmp_path / "nope"
    result = CliRunner().invoke(cli, ["report", paths[0], str(missing), "-o", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]


def test_the_page_data_has_the_payload_types_shape_and_the_script_reads_every_key(tmp_path):
    images = [{"sample_id": f"a{i}", "correct": ok, "image": True, "choices": ["1", "2"], "meta": {"level": "1"}}
              for i, ok in enumerate(ARITH[0])]
    images[0].update(error="image could not be decoded")
    images[1].update(format_ok=False, format_failures=["missing_answer"])
    long = [{"sample_id": f"a{i}", "correct": [ok, ok], "response": "x" * (MAX_RESPONSE_CHARS + 50)}
            for i, ok in enumerate(ARITH[1])]
    base = write_run(tmp_path, "base", {"synth_arith": images})
    cand = write_run(tmp_path, "cand", {"synth_arith": long[:9]}, attempts=2)
    data = _data(build_report([base, cand], tmp_path / "r.html").read_text(encoding="utf-8"))
    assert shape_problems(data, ReportPayload) == []
    entries = [e for item in data["items"] for e in item["r"] if e]
    assert set(RunEntry.__annotations__) == {k for e in entries for k in e}  # every key exercised
    assert any(item["r"][1] is None for item in data["items"])  # an item the candidate lacks
    script = (Path(__file__).resolve().parents[1] / "reports" / "assets" / "report.js").read_text()
    unread = [key for t in (ReportPayload, PageItem, RunEntry, FlipList, PageRun) for key in t.__annotations__
              if not re.search(rf"\.{key}\b", script)]
    assert not unread, f"report.js never reads {unread}"
