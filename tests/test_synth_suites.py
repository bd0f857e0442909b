"""The procedural suites: determinism, train/test disjointness, gold answers checked independently of the
generators (from meta and from the pixels), image format, and the integer scorer."""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import operator
import re

import numpy as np
import pytest
from PIL import Image

from core.answers import find_numbers
from core.errors import ConfigError
from core.formats import BOXED, REASONING_SOLUTION, THINK_ANSWER, answer_region
from suites import procedural, synth_arith, synth_charts
from suites.base import Item, LoadOptions, ScoringInput, Target

SUITES = (synth_charts.SUITE, synth_arith.SUITE)


@functools.cache
def _load(name: str, split: str, seed: int = 0) -> tuple[Item, ...]:
    suite = synth_charts.SUITE if name == "synth_charts" else synth_arith.SUITE
    return tuple(suite.load(LoadOptions(split=split, seed=seed)))


def _image_sha(item: Item) -> str:
    return hashlib.sha256(item.image_bytes or b"").hexdigest()


# --- contract and determinism ----------------------------------------------------------------------

@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_suite_declaration(suite):
    assert suite.version == "2" and suite.source == "procedural" and suite.default_split == "test"
    assert suite.splits == {"train": 2000, "test": 200}
    assert suite.variants == ()
    with pytest.raises(ConfigError, match="no split"):
        suite.load(LoadOptions(split="validation"))


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_items_have_the_declared_shape(suite):
    items = _load(suite.name, "test")
    assert len(items) == suite.splits["test"]
    assert [it.sample_id for it in items] == [f"test-{i:05d}" for i in range(len(items))]
    for it in items:
        assert it.suite == suite.name and it.answer_type == "integer" and it.error is None
        assert re.fullmatch(r"\d+", it.gold), it.gold
        assert suite.question_text(it) == it.question
        assert all(field in it.meta for field in suite.breakdowns)
        json.dumps(it.target())  # records store the target as JSON


@pytest.mark.parametrize("module", (synth_charts, synth_arith), ids=lambda m: m.NAME)
def test_same_seed_gives_identical_items(module):
    def draw_split():  # afresh, not from the loader's cache
        return procedural.generate(module.NAME, LoadOptions(split="test"), module.SIZES, module.draw_problem)

    first, second = draw_split(), draw_split()
    assert [it.content_sha256() for it in first] == [it.content_sha256() for it in second]
    assert [it.image_bytes for it in first] == [it.image_bytes for it in second]
    assert [it.content_sha256() for it in module.SUITE.load(LoadOptions(split="test"))] == [
        it.content_sha256() for it in first]


def test_loader_hands_out_copies():
    first = synth_charts.SUITE.load(LoadOptions(split="test"))
    first[0].meta["values"] = []
    first[0].meta["question_kind"] = "changed"
    again = synth_charts.SUITE.load(LoadOptions(split="test"))
    assert again[0].meta["question_kind"] != "changed" and again[0].meta["values"]


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_seed_selects_another_world(suite):
    seed0 = [it.content_sha256() for it in _load(suite.name, "test")]
    seed1 = [it.content_sha256() for it in _load(suite.name, "test", 1)]
    assert len(set(seed0) & set(seed1)) < 5


# --- disjointness ----------------------------------------------------------------------------------

def test_partition_keeps_splits_apart_even_in_a_small_key_space():
    # 100 possible problems, 8 of them in test: unpartitioned, 60 train and 5 test draws would collide.
    def draw(rng):
        n = rng.randrange(100)
        return procedural.Draft(key=f"toy:{n}", question=f"What is {n}?", answer=n)

    sizes = {"train": 60, "test": 5}
    train = procedural.generate("toy", LoadOptions(split="train"), sizes, draw)
    test = procedural.generate("toy", LoadOptions(split="test"), sizes, draw)
    assert len(train) == 60 and len(test) == 5
    assert all(procedural.split_of(f"toy:{it.gold}") == "test" for it in test)
    assert not {it.question for it in train} & {it.question for it in test}
    assert len({it.question for it in train}) == 60  # no repeats within a split


def test_chart_splits_share_no_image():
    train, test = _load("synth_charts", "train"), _load("synth_charts", "test")
    assert len(train) == 2000
    test_images = {_image_sha(it) for it in test}
    assert len(test_images) == len(test)  # no repeated scene within test either
    assert not test_images & {_image_sha(it) for it in train}
    # The stronger property the partition gives: no test bar-height sequence or shape tally in train.
    def scene(it: Item) -> str:
        return json.dumps(it.meta.get("values") or it.meta.get("counts"), sort_keys=True)
    assert not {scene(it) for it in test} & {scene(it) for it in train}


def test_arith_splits_share_no_question():
    train, test = _load("synth_arith", "train"), _load("synth_arith", "test")
    assert len(train) == 2000
    assert len({it.question for it in test}) == len(test)
    assert not {it.question for it in test} & {it.question for it in train}
    # Renaming is not enough to cross the split: template and numbers never repeat across it.
    def problem(it: Item) -> tuple[str, str]:
        return it.meta["template"], it.meta["expression"]
    assert not {problem(it) for it in test} & {problem(it) for it in train}
    assert not {problem(it) for it in test} & {problem(it) for it in _load("synth_arith", "train", 1)}


# --- gold answers, recomputed ----------------------------------------------------------------------

def _bar_answer(meta: dict) -> int:
    values = dict(zip(meta["labels"], meta["values"], strict=True))
    asked, kind = meta["asked"], meta["question_kind"]
    if kind == "max":
        return max(values.values())
    if kind == "min":
        return min(values.values())
    if kind == "value":
        return values[asked["bar"]]
    if kind == "difference":
        a, b = asked["bars"]
        return values[a] - values[b]
    if kind == "sum":
        return sum(values.values())
    assert kind == "count_above"
    return len([v for v in values.values() if v > asked["threshold"]])


def _shape_answer(meta: dict) -> int:
    asked, total = meta["asked"], 0
    for key, n in meta["counts"].items():
        colour, shape = key.split()
        if asked.get("color") in (None, colour) and asked.get("shape") in (None, shape):
            total += n
    return total


def test_chart_golds_follow_from_meta():
    items = _load("synth_charts", "test")
    assert {it.meta["kind"] for it in items} == {"bar_chart", "shapes"}
    all_kinds = set(synth_charts.BAR_QUESTIONS + synth_charts.SHAPE_QUESTIONS)
    assert {it.meta["question_kind"] for it in items} == all_kinds
    for it in items:
        answer = _bar_answer(it.meta) if it.meta["kind"] == "bar_chart" else _shape_answer(it.meta)
        assert int(it.gold) == answer, (it.sample_id, it.question, it.meta)
        if it.meta["question_kind"] == "value":
            assert it.meta["asked"]["bar"] in it.question


def _decode(item: Item) -> np.ndarray:
    image = Image.open(io.BytesIO(item.image_bytes or b""))
    assert image.format == "PNG" and image.mode == "RGB" and image.size == (224, 224)
    return np.asarray(image)


def _blobs(pixels: np.ndarray) -> list[tuple[int, int, int]]:
    """The colour at the centroid of each 4-connected non-white region."""
    ink = (pixels < 250).any(axis=2)
    seen = np.zeros_like(ink)
    found = []
    for y0, x0 in zip(*np.nonzero(ink), strict=True):
        if seen[y0, x0]:
            continue
        stack, points = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            points.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < 224 and 0 <= nx < 224 and ink[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        cy, cx = np.mean(points, axis=0).round().astype(int)
        found.append(tuple(int(c) for c in pixels[cy, cx]))
    return found


def test_images_show_what_meta_says():
    items = _load("synth_charts", "test")
    for it in items:
        _decode(it)  # every image decodes as 224x224 RGB PNG
    colours = {rgb: name for name, rgb in synth_charts.SHAPE_COLOURS.items()}
    shapes = [it for it in items if it.meta["kind"] == "shapes"][:6]
    for it in shapes:
        drawn = [colours[c] for c in _blobs(_decode(it))]
        for colour in colours.values():
            expected = sum(n for key, n in it.meta["counts"].items() if key.startswith(colour + " "))
            assert drawn.count(colour) == expected, (it.sample_id, colour)
    bars = [it for it in items if it.meta["kind"] == "bar_chart"][:10]
    for it in bars:
        pixels = _decode(it)
        row = (pixels[196] < 250).any(axis=1)  # just above the axis line: only bars are drawn there
        runs = list(zip(*_run_edges(row), strict=True))
        assert len(runs) == len(it.meta["values"]), it.sample_id
        heights = [int((pixels[:197, (a + b) // 2] < 250).any(axis=1)[::-1].argmin()) for a, b in runs]
        order = sorted(range(len(heights)), key=lambda i: it.meta["values"][i])
        assert [heights[i] for i in order] == sorted(heights), it.sample_id


def _run_edges(row: np.ndarray) -> tuple[list[int], list[int]]:
    padded = np.concatenate([[False], row, [False]]).astype(int)
    diff = np.diff(padded)
    return list(np.nonzero(diff == 1)[0]), list(np.nonzero(diff == -1)[0])


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    assert isinstance(node, ast.Constant) and isinstance(node.value, int), ast.dump(node)
    return node.value


def test_arith_golds_follow_from_the_expression():
    items = _load("synth_arith", "test") + _load("synth_arith", "train")[:300]
    for it in items:
        expression = it.meta["expression"]
        assert _evaluate(ast.parse(expression, mode="eval")) == int(it.gold), (it.question, expression)
        # The question states exactly the expression's numbers, in order.
        assert find_numbers(it.question) == re.findall(r"\d+", expression), it.question
        assert it.meta["steps"] == len(re.findall(r" [-+*/] ", expression))
    test = _load("synth_arith", "test")
    assert {it.meta["operations"] for it in test} == set(synth_arith.OPERATIONS)
    assert any(re.search(r"\d,\d{3}", it.question) for it in test)  # thousands separators appear
    assert any(int(it.gold) >= 1000 for it in test)


# --- scoring ---------------------------------------------------------------------------------------

def _score(suite, region: str, rule: str, gold: str, response: str | None = None):
    inp = ScoringInput(response=response if response is not None else region, region=region,
                       region_rule=rule, target=Target(gold=gold, answer_type="integer"))
    return suite.score(inp)


@pytest.mark.parametrize(("region", "rule", "gold", "extracted", "extractor", "correct"), [
    ("42", "answer_block", "42", "42", "answer_block>number", True),
    (" 1,234 ", "answer_block", "1234", "1234", "answer_block>number", True),
    ("$1,234.", "boxed", "1234", "1234", "boxed>number", True),
    ("42.0", "answer_block", "42", "42.0", "answer_block>number", True),
    ("41", "answer_block", "42", "41", "answer_block>number", False),
    ("-3", "answer_block", "3", "-3", "answer_block>number", False),
    ("3 boxes of 4, so 12 apples", "answer_block", "12", "12", "answer_block>last_number", True),
    ("The answer is 7", "response", "7", "7", "response>last_number", True),
    ("12 + 7 = 19, so he has 19 apples.", "response", "19", "19", "response>last_number", True),
    ("I cannot tell.", "response", "7", None, "none", False),
    ("seven", "answer_block", "7", None, "none", False),
    ("", "boxed", "7", None, "none", False),
])
@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_scorer_cases(suite, region, rule, gold, extracted, extractor, correct):
    score = _score(suite, region, rule, gold)
    assert (score.extracted, score.extractor, score.correct) == (extracted, extractor, correct)


@pytest.mark.parametrize(("fmt", "response"), [
    (REASONING_SOLUTION, "<REASONING>100 plus 1,134.</REASONING><SOLUTION> 1,234 </SOLUTION>"),
    (THINK_ANSWER, "<think>100 + 1134</think><answer>1234</answer>"),
    (BOXED, "So 100 + 1,134 = \\boxed{1,234}."),
    (BOXED, "So 100 + 1,134 = 1,234."),
])
def test_scorer_reads_the_prompt_formats_answer_region(fmt, response):
    region, rule = answer_region(response, fmt)
    score = _score(synth_arith.SUITE, region, rule, "1234", response)
    assert score.correct and score.extracted == "1234"


def test_gold_scores_correct_against_itself():
    for suite in SUITES:
        for it in _load(suite.name, "test")[:20]:
            target = Target.from_dict(it.target())
            assert suite.score(ScoringInput(it.gold, it.gold, "answer_block", target)).correct
