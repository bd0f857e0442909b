"""synth_arith: procedural arithmetic word problems, text only, with non-negative integer answers.

Templates for one operation (add, sub, mul, div) and for two or three chained operations
(two_step, three_step); names and objects vary, and some templates use thousands written with commas
("1,250 bolts", "$2,400") so that answer formatting matters. Division always comes out even.

One item (test split, seed 0):
    Item(suite="synth_arith", sample_id="test-00000",
         question="Sofia buys 20 packs of marbles. Each pack has 29 marbles. How many marbles does she buy?",
         gold="580", answer_type="integer",
         meta={"operations": "mul", "steps": 1, "template": "packs", "expression": "20 * 29"})

`meta["expression"]` is the arithmetic behind the answer (e.g. "12 * 17 - 6 - 128"), kept so tests can check
every gold independently of the generator. The split is decided by the template and its numbers (not
the names or objects), so a test problem is never a renamed train problem; see suites/procedural.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from suites import procedural

NAME = "synth_arith"
SIZES = {"train": 2000, "test": 200}

PEOPLE = (("Tom", "he"), ("Maria", "she"), ("Ali", "he"), ("Priya", "she"), ("Ken", "he"),
          ("Lena", "she"), ("Omar", "he"), ("Sofia", "she"), ("Jack", "he"), ("Mei", "she"))
OBJECTS = ("apples", "marbles", "pencils", "stickers", "cookies", "stamps", "cards", "shells",
           "balloons", "crayons")

NumberDraw = Callable[[random.Random], dict[str, int]]


def _split_even(rng: random.Random, divisors: tuple[int, int], quotients: tuple[int, int]) -> dict[str, int]:
    """{"a", "b"} with b dividing a, so division problems come out even."""
    b, q = rng.randint(*divisors), rng.randint(*quotients)
    return {"a": b * q, "b": b}


def _less(low: int, high: int, least: int = 1) -> NumberDraw:
    """{"a", "b"} with a in [low, high] and least <= b <= a: a subtraction that never goes negative."""
    def draw(rng: random.Random) -> dict[str, int]:
        a = rng.randint(low, high)
        return {"a": a, "b": rng.randint(least, a)}
    return draw


def _then_take(ranges: dict[str, tuple[int, int]], subtotal: Callable[[dict[str, int]], int],
               low: int = 1) -> NumberDraw:
    """The numbers in `ranges`, then one more (the next letter) that is at most their subtotal, to be
    subtracted last: the answer is never negative."""
    def draw(rng: random.Random) -> dict[str, int]:
        numbers = {k: rng.randint(*bounds) for k, bounds in ranges.items()}
        total = subtotal(numbers)
        numbers[chr(ord(max(numbers)) + 1)] = rng.randint(min(low, total), total)
        return numbers
    return draw


@dataclass(frozen=True)
class Template:
    name: str
    operations: str  # the breakdown label: add, sub, mul, div, two_step, three_step
    steps: int
    numbers: NumberDraw
    text: str  # str.format fields: the numbers, plus name, he, He, items
    answer: Callable[[dict[str, int]], int]
    expression: str  # the same computation written out, formatted with the numbers


TEMPLATES = (
    Template("buy_more", "add", 1,
             lambda r: {"a": r.randint(3, 80), "b": r.randint(2, 60)},
             "{name} has {a:,} {items} and buys {b:,} more. How many {items} does {he} have now?",
             lambda n: n["a"] + n["b"], "{a} + {b}"),
    Template("library_books", "add", 1,
             lambda r: {"a": r.randint(1000, 9999), "b": r.randint(100, 2500)},
             "A library had {a:,} books. It received {b:,} new books. How many books does the library "
             "have now?",
             lambda n: n["a"] + n["b"], "{a} + {b}"),
    Template("steps_walked", "add", 1,
             lambda r: {"a": r.randint(1000, 8000), "b": r.randint(1000, 8000)},
             "{name} walked {a:,} steps in the morning and {b:,} steps in the evening. How many steps did "
             "{he} walk in total?",
             lambda n: n["a"] + n["b"], "{a} + {b}"),
    Template("give_away", "sub", 1,
             _less(5, 90),
             "{name} had {a:,} {items} and gave {b:,} of them to a friend. How many {items} does {he} "
             "have left?",
             lambda n: n["a"] - n["b"], "{a} - {b}"),
    Template("bus_stop", "sub", 1,
             _less(10, 90, least=2),  # "1 passengers" reads badly
             "A bus had {a} passengers. At the next stop, {b} passengers got off. How many passengers are "
             "still on the bus?",
             lambda n: n["a"] - n["b"], "{a} - {b}"),
    Template("town_residents", "sub", 1,
             lambda r: {"a": r.randint(2000, 20000), "b": r.randint(100, 1900)},
             "A town had {a:,} residents. This year {b:,} of them moved away. How many residents are left?",
             lambda n: n["a"] - n["b"], "{a} - {b}"),
    Template("packs", "mul", 1,
             lambda r: {"a": r.randint(2, 30), "b": r.randint(2, 40)},
             "{name} buys {a} packs of {items}. Each pack has {b} {items}. How many {items} does {he} buy?",
             lambda n: n["a"] * n["b"], "{a} * {b}"),
    Template("factory_days", "mul", 1,
             lambda r: {"a": r.randint(120, 1500), "b": r.randint(2, 9)},
             "A factory makes {a:,} bolts each day. How many bolts does it make in {b} days?",
             lambda n: n["a"] * n["b"], "{a} * {b}"),
    Template("chair_rows", "mul", 1,
             lambda r: {"a": r.randint(3, 40), "b": r.randint(4, 50)},
             "A hall has {a} rows of chairs with {b} chairs in each row. How many chairs are in the hall?",
             lambda n: n["a"] * n["b"], "{a} * {b}"),
    Template("share_friends", "div", 1,
             lambda r: _split_even(r, (2, 20), (2, 60)),
             "{name} shares {a:,} {items} equally among {b} friends. How many {items} does each friend get?",
             lambda n: n["a"] // n["b"], "{a} / {b}"),
    Template("muffin_boxes", "div", 1,
             lambda r: _split_even(r, (2, 24), (3, 60)),
             "A baker packs {a:,} muffins into boxes of {b}. How many boxes does the baker fill?",
             lambda n: n["a"] // n["b"], "{a} / {b}"),
    Template("school_groups", "div", 1,
             lambda r: _split_even(r, (3, 9), (100, 600)),
             "A school of {a:,} students is split into {b} equal groups. How many students are in each "
             "group?",
             lambda n: n["a"] // n["b"], "{a} / {b}"),
    Template("buy_then_give", "two_step", 2,
             _then_take({"a": (5, 60), "b": (2, 40)}, lambda n: n["a"] + n["b"]),
             "{name} has {a} {items}, buys {b} more, and then gives away {c}. How many {items} does {he} "
             "have now?",
             lambda n: n["a"] + n["b"] - n["c"], "{a} + {b} - {c}"),
    Template("boxes_then_use", "two_step", 2,
             _then_take({"a": (2, 15), "b": (3, 24)}, lambda n: n["a"] * n["b"]),
             "{name} buys {a} boxes of {items} with {b} {items} in each box, and then uses {c} of them. "
             "How many {items} are left?",
             lambda n: n["a"] * n["b"] - n["c"], "{a} * {b} - {c}"),
    Template("weekly_pay", "two_step", 2,
             _then_take({"a": (20, 400), "b": (2, 12)}, lambda n: n["a"] * n["b"], low=10),
             "{name} earns ${a} a week for {b} weeks and then spends ${c:,}. How many dollars does {he} "
             "have left?",
             lambda n: n["a"] * n["b"] - n["c"], "{a} * {b} - {c}"),
    Template("share_then_find", "two_step", 2,
             lambda r: _split_even(r, (2, 10), (2, 30)) | {"c": r.randint(1, 20)},
             "{name} shares {a} {items} equally among {b} friends. Each friend then finds {c} more. How "
             "many {items} does each friend have now?",
             lambda n: n["a"] // n["b"] + n["c"], "{a} / {b} + {c}"),
    Template("packs_then_give", "three_step", 3,
             _then_take({"a": (2, 40), "b": (2, 9), "c": (3, 12)}, lambda n: n["a"] + n["b"] * n["c"]),
             "{name} has {a} {items}. {He} buys {b} packs with {c} {items} in each pack, and then gives "
             "away {d}. How many {items} does {he} have now?",
             lambda n: n["a"] + n["b"] * n["c"] - n["d"], "{a} + {b} * {c} - {d}"),
    Template("theater_seats", "three_step", 3,
             _then_take({"a": (5, 30), "b": (8, 40), "c": (2, 12)}, lambda n: n["a"] * n["b"] - n["c"]),
             "A theater has {a} rows of {b} seats. {c} seats are broken and {d} seats are taken. How many "
             "seats are free?",
             lambda n: n["a"] * n["b"] - n["c"] - n["d"], "{a} * {b} - {c} - {d}"),
    Template("hourly_pay", "three_step", 3,
             _then_take({"a": (10, 40), "b": (3, 10), "c": (2, 20)}, lambda n: n["a"] * n["b"] * n["c"],
                        low=50),
             "{name} earns ${a} an hour and works {b} hours a day for {c} days. Then {he} spends ${d:,}. "
             "How many dollars does {he} have left?",
             lambda n: n["a"] * n["b"] * n["c"] - n["d"], "{a} * {b} * {c} - {d}"),
)
OPERATIONS = tuple(dict.fromkeys(t.operations for t in TEMPLATES))


def draw_problem(rng: random.Random) -> procedural.Draft:
    operations = rng.choice(OPERATIONS)  # each operation kind equally often, whatever its template count
    template = rng.choice([t for t in TEMPLATES if t.operations == operations])
    numbers = template.numbers(rng)
    name, he = rng.choice(PEOPLE)
    objects = rng.choice(OBJECTS)
    question = template.text.format(**numbers, name=name, he=he, He=he.capitalize(), items=objects)
    meta = {"operations": operations, "steps": template.steps, "template": template.name,
            "expression": template.expression.format(**numbers)}
    return procedural.Draft(key=f"{template.name}:{sorted(numbers.items())}", question=question,
                            answer=template.answer(numbers), meta=meta)


SUITE = procedural.suite(
    NAME,
    version="2",
    description="Procedural arithmetic word problems (1-3 operations, text only) with integer answers.",
    sizes=SIZES,
    draw=draw_problem,
    breakdowns=("operations", "steps"),
    notes="Generated from --seed; data_dir is not used. Train and test share no template-and-numbers pair.",
)
