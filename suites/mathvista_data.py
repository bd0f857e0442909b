"""MathVista testmini data: the loader (GitHub JSON, parquet, the hub), the question as shown, the
data set's own zero-shot query. suites/mathvista.py declares the suite.

    items = load(LoadOptions(split="testmini", data_dir=Path("MathVista/data")))
    items[0].query   # "Hint: Please answer the question and provide the correct option letter, ..."
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError
from suites.base import Item, LoadOptions
from suites.data_files import (
    find_parquet,
    hub_rows,
    make_ids_unique,
    read_image_file,
    read_json,
    read_parquet,
)

SUITE_NAME = "mathvista_testmini"
HUB_ID = "AI4Math/MathVista"
HF_REVISION = "2b6ad69445fbb5695c9b165475e8decdbeb97747"  # main on the hub ("Update README.md")
SPLIT = "testmini"

DATA_DIR_HELP = (
    "--data-dir takes either the GitHub layout of lupantech/MathVista (testmini.json or "
    "data/testmini.json, with the images/ folder beside it or one level up) or a snapshot of the "
    f"Hugging Face set {HUB_ID} (data/testmini-*.parquet)"
)

# The five hint lines of the data set's own `query`, keyed by (answer type, precision).
QUERY_HINTS = {
    ("multi_choice", None): "Please answer the question and provide the correct option letter, "
                            "e.g., A, B, C, D, at the end.",
    ("integer", None): "Please answer the question requiring an integer answer and provide the final "
                       "value, e.g., 1, 2, 3, at the end.",
    ("float", 1): "Please answer the question requiring a floating-point number with one decimal place "
                  "and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    ("float", 2): "Please answer the question requiring a floating-point number with two decimal places "
                  "and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    ("list", None): "Please answer the question requiring a Python list as an answer and provide the "
                    "final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}


# ---------------------------------------------------------------------------------------------
# Loading


def load(opts: LoadOptions) -> list[Item]:
    if opts.split != SPLIT:
        raise ConfigError(f"mathvista_testmini has only the {SPLIT} split (got {opts.split!r})")
    if opts.variant not in (None, "numeric"):
        raise ConfigError(f"mathvista_testmini has no variant {opts.variant!r}; variants: numeric")
    if opts.data_dir is not None:
        items = _load_local(Path(opts.data_dir))
    else:
        rows = hub_rows(HUB_ID, None, SPLIT, HF_REVISION, DATA_DIR_HELP, image_column="decoded_image")
        items = [_item_from_row(row, None) for row in rows]
    items = make_ids_unique(items)
    if opts.variant == "numeric":
        items = [it for it in items if is_numeric_answer(it.gold)]
    return items


def is_numeric_answer(answer: str) -> bool:
    """The Unsloth recipe's filter: the answer string parses as a float (multi-choice included)."""
    try:
        float(answer)
    except (TypeError, ValueError):
        return False
    return True


def _load_local(data_dir: Path) -> list[Item]:
    for candidate in (data_dir / "testmini.json", data_dir / "data" / "testmini.json"):
        if candidate.is_file():
            return _load_github_json(candidate)
    parquets = find_parquet(data_dir, SPLIT)
    if parquets:
        return [_item_from_row(row, None, base=data_dir) for row in read_parquet(parquets, DATA_DIR_HELP)]
    raise DataError(f"no MathVista testmini found in {data_dir}; {DATA_DIR_HELP}")


def _load_github_json(path: Path) -> list[Item]:
    entries = read_json(path, DATA_DIR_HELP)
    if not isinstance(entries, dict):
        raise DataError(f"{path.name} must map pid -> problem (got {type(entries).__name__}); {DATA_DIR_HELP}")
    image_roots = (path.parent, path.parent.parent)
    items = []
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            items.append(_broken_item(str(key), f"entry is a {type(entry).__name__}, not an object"))
            continue
        image = entry.get("image")
        image_bytes, image_error = (read_image_file(image, image_roots, "beside testmini.json or one folder up")
                                    if image else (None, "entry has no image path"))
        items.append(_item_from_row({**entry, "pid": entry.get("pid", key)}, image_bytes, image_error))
    return items


def _item_from_row(row: dict[str, Any], image_bytes: bytes | None, image_error: str | None = None,
                   base: Path | None = None) -> Item:
    """One problem (GitHub entry, parquet or hub row) in the harness's shape; never raises."""
    pid = str(row.get("pid", "?"))
    try:
        if image_bytes is None and image_error is None:
            image_bytes, image_error = _decoded_image_bytes(row.get("decoded_image"), base)
        if row.get("answer") is None or row.get("question") is None:
            return _broken_item(pid, "entry has no question or no answer")
        question_type = row["question_type"]
        official_type = row["answer_type"]
        choices = list(row["choices"]) if row.get("choices") is not None else None
        metadata = dict(row.get("metadata") or {})
        if metadata.get("skills") is not None:
            metadata["skills"] = list(metadata["skills"])
        item = Item(
            suite=SUITE_NAME, sample_id=pid, question=str(row["question"]), gold=str(row["answer"]),
            answer_type="multi_choice" if question_type == "multi_choice" else (
                official_type if official_type in ("integer", "float", "list") else "text"),
            choices=choices, unit=row.get("unit") or None, precision=_precision(row.get("precision")),
            image_bytes=image_bytes, image_source=str(row.get("image") or "decoded_image field"),
            meta={"question_type": question_type, "answer_type": official_type, **metadata},
            error=image_error,
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _broken_item(pid, f"unreadable entry ({type(exc).__name__}: {exc})")
    item.query = row.get("query") or official_query(item)
    return item


def _decoded_image_bytes(cell: Any, base: Path | None) -> tuple[bytes | None, str | None]:
    if isinstance(cell, dict) and cell.get("bytes"):
        return bytes(cell["bytes"]), None
    path = cell.get("path") if isinstance(cell, dict) else None
    if path and base is not None:
        return read_image_file(path, (base,), "beside testmini.json or one folder up")
    return None, "row has no decoded_image bytes"


def _precision(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(float(value))


def _broken_item(pid: str, message: str) -> Item:
    return Item(suite=SUITE_NAME, sample_id=pid, question="", gold="", error=message)


def question_text(item: Item) -> str:
    """The question as the tag formats show it: the unit, then the lettered choices."""
    text = f"{item.question} (Unit: {item.unit})" if item.unit else item.question
    if item.answer_type == "multi_choice" and item.choices:
        text += "\nChoices:\n" + "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(item.choices))
    return text


def official_query(item: Item) -> str | None:
    """The data set's zero-shot `query` (a hint line, the question, the choices); the GitHub JSON
    lacks it. None where no official hint exists."""
    kind = "multi_choice" if item.answer_type == "multi_choice" else item.answer_type
    hint = QUERY_HINTS.get((kind, item.precision if kind == "float" else None))
    if hint is None:
        return None
    return f"Hint: {hint}\nQuestion: {question_text(item)}".strip()
