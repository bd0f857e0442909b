"""synth_charts: procedural chart-reading and counting problems with integer answers (the default suite).

Two kinds of 224x224 RGB PNG images, drawn with PIL (a small matplotlib figure takes about 30 ms to
render, a PIL image under 2 ms, so the 2,000-item train split builds in a few seconds):
- bar_chart: 3-6 bars with short category names under them and their integer heights above them;
  questions ask for the tallest or shortest value, one bar's value, a difference, the sum, or how
  many bars exceed a threshold;
- shapes: 3-12 circles, squares and triangles in red, blue and green on a grid; questions ask how many
  of a colour, a shape, a coloured shape, or in total.

One item (test split, seed 0), image bytes left out:
    Item(suite="synth_charts", sample_id="test-00000", question="What is the value of ant?", gold="14",
         answer_type="integer",
         meta={"kind": "bar_chart", "question_kind": "value",
               "labels": ["ant", "dog", "fox", "kiwi", "rose", "yak"], "values": [14, 1, 28, 38, 30, 4],
               "asked": {"bar": "ant"}})

The train and test splits never share a scene: the split is decided by the scene's structure (the bar
heights, or the count of each coloured shape), see suites/procedural.py. Images are byte-identical for a
given seed with the pinned Pillow (text is drawn with Pillow's built-in font).
"""

from __future__ import annotations

import functools
import random
from typing import Any

from suites import procedural

NAME = "synth_charts"
SIZES = {"train": 2000, "test": 200}
CANVAS = 224

CATEGORY_NAMES = ("ant", "bee", "cat", "dog", "elm", "fig", "fox", "owl", "yak", "oak", "kiwi", "lime",
                  "pear", "plum", "rose", "sun", "tea", "jam", "ink", "gem")
BAR_FILLS = ((66, 114, 196), (221, 132, 82), (85, 168, 104), (196, 78, 82), (129, 114, 179),
             (100, 100, 100))
SHAPE_COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (30, 150, 60)}
SHAPE_KINDS = ("circle", "square", "triangle")
GRID = 5  # shapes sit in distinct cells of a GRID x GRID layout, so they never overlap

BAR_QUESTIONS = ("max", "min", "value", "difference", "sum", "count_above")
SHAPE_QUESTIONS = ("color_shape", "shape", "color", "total")


@functools.lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


# --- bar charts ----------------------------------------------------------------------------------

def _render_bars(labels: list[str], values: list[int], fill: tuple[int, int, int], top: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(image)
    left, right, base, ceiling = 12, CANVAS - 12, CANVAS - 26, 24
    slot = (right - left) / len(values)
    width = slot * 0.6
    draw.line([(left, base), (right, base)], fill="black", width=1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        centre = left + slot * (i + 0.5)
        height = round((base - ceiling) * value / top)
        x0, x1 = round(centre - width / 2), round(centre + width / 2)
        draw.rectangle([x0, base - height, x1, base - 1], fill=fill)
        draw.text((centre, base - height - 3), str(value), fill="black", font=_font(12), anchor="mb")
        draw.text((centre, base + 5), label, fill="black", font=_font(12), anchor="mt")
    return procedural.png_bytes(image)


def _draw_bar_chart(rng: random.Random) -> procedural.Draft:
    count = rng.randint(3, 6)
    top = rng.choice((20, 50, 100))
    labels = sorted(rng.sample(CATEGORY_NAMES, count))
    values = [rng.randint(1, top) for _ in range(count)]
    fill = rng.choice(BAR_FILLS)
    kind = rng.choice(BAR_QUESTIONS)
    asked: dict[str, Any] = {}
    if kind == "max":
        question, answer = "What is the value of the tallest bar?", max(values)
    elif kind == "min":
        question, answer = "What is the value of the shortest bar?", min(values)
    elif kind == "value":
        i = rng.randrange(count)
        asked = {"bar": labels[i]}
        question, answer = f"What is the value of {labels[i]}?", values[i]
    elif kind == "difference":
        i, j = rng.sample(range(count), 2)
        if values[i] < values[j]:
            i, j = j, i  # the larger first, so the answer is never negative
        asked = {"bars": [labels[i], labels[j]]}
        question = f"What is the difference between the value of {labels[i]} and the value of {labels[j]}?"
        answer = values[i] - values[j]
    elif kind == "sum":
        question, answer = "What is the sum of the values of all bars?", sum(values)
    else:
        # A threshold equal to no bar's value, so "taller than" never hinges on a tie.
        free = [t for t in range(1, top) if t not in values]
        threshold = rng.choice(free)
        asked = {"threshold": threshold}
        question = f"How many bars have a value greater than {threshold}?"
        answer = sum(v > threshold for v in values)
    meta = {"kind": "bar_chart", "question_kind": kind, "labels": labels, "values": values, "asked": asked}
    return procedural.Draft(key=f"bars:{values}", question=question, answer=answer, meta=meta,
                            render=lambda: _render_bars(labels, values, fill, top))


# --- counted shapes ------------------------------------------------------------------------------

def _render_shapes(placed: list[tuple[str, str, int, int, int]]) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(image)
    for colour, shape, cx, cy, r in placed:
        fill = SHAPE_COLOURS[colour]
        box = [cx - r, cy - r, cx + r, cy + r]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    return procedural.png_bytes(image)


def _draw_shapes(rng: random.Random) -> procedural.Draft:
    count = rng.randint(3, 12)
    cell = CANVAS // GRID
    placed = []
    for slot in rng.sample(range(GRID * GRID), count):
        r = rng.randint(11, 16)
        cx = (slot % GRID) * cell + cell // 2 + rng.randint(-(cell // 2 - r - 2), cell // 2 - r - 2)
        cy = (slot // GRID) * cell + cell // 2 + rng.randint(-(cell // 2 - r - 2), cell // 2 - r - 2)
        placed.append((rng.choice(tuple(SHAPE_COLOURS)), rng.choice(SHAPE_KINDS), cx, cy, r))
    counts = {f"{c} {s}": 0 for c in SHAPE_COLOURS for s in SHAPE_KINDS}
    for colour, shape, *_ in placed:
        counts[f"{colour} {shape}"] += 1
    kind = rng.choice(SHAPE_QUESTIONS)
    asked: dict[str, str] = {}
    if kind == "color_shape":
        # Mostly a pair that is present; now and then one that is absent (answer 0).
        present = [k for k, n in counts.items() if n]
        colour, shape = rng.choice(present if rng.random() < 0.85 else list(counts)).split()
        asked = {"color": colour, "shape": shape}
        question = f"How many {colour} {shape}s are there?"
    elif kind == "shape":
        shape = rng.choice(SHAPE_KINDS)
        asked = {"shape": shape}
        question = f"How many {shape}s are there?"
    elif kind == "color":
        colour = rng.choice(tuple(SHAPE_COLOURS))
        asked = {"color": colour}
        question = f"How many {colour} shapes are there?"
    else:
        question = "How many shapes are there in total?"
    answer = count_shapes({k: n for k, n in counts.items() if n}, asked)
    meta = {"kind": "shapes", "question_kind": kind, "counts": {k: n for k, n in counts.items() if n},
            "asked": asked}
    return procedural.Draft(key=f"shapes:{sorted(counts.items())}", question=question, answer=answer,
                            meta=meta, render=lambda: _render_shapes(placed))


def count_shapes(counts: dict[str, int], asked: dict[str, str]) -> int:
    """How many shapes match `asked` ({"color"?, "shape"?}) given counts keyed "colour shape"."""
    total = 0
    for key, n in counts.items():
        colour, shape = key.split()
        if asked.get("color", colour) == colour and asked.get("shape", shape) == shape:
            total += n
    return total


def draw_problem(rng: random.Random) -> procedural.Draft:
    return _draw_bar_chart(rng) if rng.random() < 0.5 else _draw_shapes(rng)


SUITE = procedural.suite(
    NAME,
    version="2",
    description="Procedural bar charts and counted shapes (PIL, 224x224) with integer answers.",
    sizes=SIZES,
    draw=draw_problem,
    breakdowns=("kind", "question_kind"),
    notes="Generated from --seed; data_dir is not used. Train and test share no scene.",
)
