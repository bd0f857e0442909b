"""Training data: a suite's split or a local dataset, the seeded held-out subset, the contamination
guard, and the conversational dataset TRL's GRPOTrainer reads.

    data = load_training_data(cfg)          # TrainData(items, held_out_ids, ...)
    overlap = guard(cfg, data)              # raises DataError on overlap unless cfg.allow_overlap
    dataset = to_trl_dataset(data.items, cfg)
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from core.errors import DataError
from core.formats import PROMPT_FORMATS
from harness.config import EvalConfig
from harness.contamination import Fingerprints, overlap_summary
from harness.images import decode
from harness.prompts import messages, prompt_text
from suites import get_suite
from suites.base import Item, LoadOptions
from suites.data_files import make_ids_unique, read_json_list, read_jsonl, read_parquet
from trainers.config import TrainConfig

LOCAL_HELP = ("a local dataset is a .parquet, .jsonl or .json file (or a directory of .parquet files) with "
              "columns question, answer and optionally image (bytes, {bytes}, or a path relative to the "
              "file), choices, sample_id, answer_type, unit, precision")


@dataclass
class TrainData:
    items: list[Item]  # what is trained on (held-out items removed)
    held_out_ids: dict[str, list[str]]  # suite -> ids held out for evaluation (recorded in the checkpoint)
    source: list[dict[str, Any]]  # per suite or dataset: name, split, source, n_items
    mix: dict[str, Any] | None = None  # per source: weight, share, available, used, repeated (with cfg.mix)

    @cached_property
    def fingerprints(self) -> Fingerprints:
        """Ids and image/text hashes of the training items (decoding every image: computed once)."""
        return Fingerprints.of(self.items)

    def kinds(self) -> dict[str, int]:
        """How many training items have a picture and how many are text only."""
        with_image = sum(item.image_bytes is not None for item in self.items)
        return {"image": with_image, "text": len(self.items) - with_image}

    def sha256(self) -> str:
        """Hash of the training set: every item's content hash, in order."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(item.content_sha256().encode())
        return h.hexdigest()


def load_training_data(cfg: TrainConfig) -> TrainData:
    """The training items: each source (a suite's split, or the local dataset) cut to `limit`, the
    seeded held-out items removed, then drawn by the `mix` weights when there are any."""
    if cfg.dataset:
        items = load_local_dataset(Path(cfg.dataset))
        loaded = {items[0].suite if items else Path(cfg.dataset).stem: items}
        source = [{"name": next(iter(loaded)), "split": None, "source": str(cfg.dataset), "n_items": len(items)}]
    else:
        loaded, source = {}, []
        for name in cfg.suites:
            suite = get_suite(name)
            split = cfg.split_of(name)
            if split not in suite.splits:
                raise DataError(f"suite {name} has no split {split!r}; splits: {', '.join(suite.splits)}")
            data_dir = cfg.data_dir.get(name) or cfg.data_dir.get("*")
            loaded[name] = suite.load(LoadOptions(split=split, data_dir=Path(data_dir) if data_dir else None,
                                                  seed=cfg.seed))
            source.append({"name": name, "split": split, "source": suite.source, "version": suite.version,
                           "n_items": len(loaded[name])})
    broken = [i for group in loaded.values() for i in group if i.error]
    if broken:
        source.append({"skipped_malformed": [f"{i.suite}:{i.sample_id}" for i in broken][:100],
                       "n_skipped": len(broken)})
    items = [i for group in loaded.values() for i in [j for j in group if not j.error][: cfg.limit or None]]
    held_out: dict[str, list[str]] = {}
    if cfg.held_out:
        if cfg.held_out >= len(items):
            raise DataError(f"held_out {cfg.held_out} leaves nothing to train on ({len(items)} items)")
        chosen = sorted(random.Random(f"held-out:{cfg.held_out_seed}").sample(range(len(items)), cfg.held_out))
        for index in chosen:
            held_out.setdefault(items[index].suite, []).append(items[index].sample_id)
        keep = set(range(len(items))) - set(chosen)
        items = [item for i, item in enumerate(items) if i in keep]
    if not items:
        raise DataError("the training data is empty")
    data = TrainData(items, held_out, source)
    if cfg.mix:
        data.items, data.mix = mixed(items, cfg.mix, cfg.seed)
    return data


def mixed(items: list[Item], weights: dict[str, float], seed: int) -> tuple[list[Item], dict[str, Any]]:
    """The items drawn so that each source (suite) makes up its weight's share of as many items as there
    are: a source with fewer items than its share is repeated whole (then a seeded draw for the rest),
    one with more is drawn from without repetition. Returns the items and the record of the mix."""
    by_source: dict[str, list[Item]] = {}
    for item in items:
        by_source.setdefault(item.suite, []).append(item)
    unknown = sorted(set(weights) - set(by_source))
    unweighted = sorted(set(by_source) - set(weights))
    if unknown or unweighted:
        raise DataError(f"mix must weigh every training source and nothing else: sources {', '.join(by_source)}; "
                        + (f"unknown {', '.join(unknown)}" if unknown else f"no weight for {', '.join(unweighted)}"))
    total_weight = sum(weights.values())
    rng = random.Random(f"mix:{seed}")
    out: list[Item] = []
    record: dict[str, Any] = {}
    for name, group in by_source.items():
        share = weights[name] / total_weight
        n = max(1, round(len(items) * share))
        whole, rest = divmod(n, len(group))
        drawn = group * whole + [group[i] for i in sorted(rng.sample(range(len(group)), rest))]
        out += drawn
        record[name] = {"weight": weights[name], "share": round(share, 6), "available": len(group),
                        "used": len(drawn), "repeated": whole > 1 or (whole == 1 and rest > 0)}
    return out, record


def load_local_dataset(path: Path) -> list[Item]:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise DataError(f"no .parquet files in {path}; {LOCAL_HELP}")
        rows: list[Any] = read_parquet(files, LOCAL_HELP)
    elif not path.is_file():
        raise DataError(f"dataset {path} does not exist; {LOCAL_HELP}")
    elif path.suffix == ".parquet":
        rows = read_parquet([path], LOCAL_HELP)
    elif path.suffix == ".jsonl":
        rows = [row for _, row in read_jsonl(path, LOCAL_HELP)]
    elif path.suffix == ".json":
        rows = read_json_list(path, LOCAL_HELP)
    else:
        raise DataError(f"dataset {path.name}: unknown file type; {LOCAL_HELP}")
    base = path if path.is_dir() else path.parent
    name = path.stem
    items = [_local_item(row, i, name, base) for i, row in enumerate(rows)]
    return make_ids_unique(items)


def _local_item(row: Any, index: int, name: str, base: Path) -> Item:
    if not isinstance(row, dict):
        return Item(suite=name, sample_id=str(index), question="", gold="", error=str(row))
    missing = [k for k in ("question", "answer") if row.get(k) in (None, "")]
    sample_id = str(row.get("sample_id", row.get("pid", row.get("id", index))))
    if missing:
        return Item(suite=name, sample_id=sample_id, question=str(row.get("question") or ""), gold="",
                    error=f"row {index} lacks {', '.join(missing)}")
    image_bytes, error = _image_bytes(row.get("image"), base)
    choices = row.get("choices")
    return Item(suite=name, sample_id=sample_id, question=str(row["question"]), gold=str(row["answer"]),
                answer_type=row.get("answer_type") or "text", choices=list(choices) if choices else None,
                unit=row.get("unit") or None, precision=row.get("precision"), image_bytes=image_bytes,
                error=error)


def _image_bytes(value: Any, base: Path) -> tuple[bytes | None, str | None]:
    if value is None or value == "":
        return None, None
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"]), None
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), None
    if isinstance(value, str):
        if value.startswith("data:") and "," in value:
            return base64.b64decode(value.split(",", 1)[1]), None
        path = base / value
        if path.is_file():
            return path.read_bytes(), None
        return None, f"image file {value} not found beside the dataset"
    return None, f"image column holds a {type(value).__name__}"


def eval_plan(cfg: TrainConfig, held_out_ids: dict[str, list[str]]) -> EvalConfig | None:
    """The harness evaluation of cfg.eval_suites; a suite that is also trained on (the MathVista
    testmini recipe) is evaluated on its held-out items only."""
    if not cfg.eval_suites:
        return None
    ids = {s: held_out_ids[s] for s in cfg.eval_suites
           if s in held_out_ids and (cfg.eval_split or get_suite(s).default_split) == cfg.split_of(s)}
    return EvalConfig(suites=list(cfg.eval_suites), split=cfg.eval_split, data_dir=dict(cfg.data_dir),
                      image_size=cfg.image_size, prompt_format=cfg.prompt_format, limit=cfg.eval_limit,
                      max_new_tokens=cfg.eval_max_new_tokens or cfg.max_completion_length,
                      batch_size=cfg.eval_batch_size, temperature=cfg.eval_temperature, seed=cfg.seed,
                      sample_ids=ids)


def guard(cfg: TrainConfig, data: TrainData) -> dict[str, Any] | None:
    """Compare training items with the evaluation suites' items (ids, image hashes, texts). Overlap is
    refused unless cfg.allow_overlap; the allowed overlap is returned to be recorded."""
    plan = eval_plan(cfg, data.held_out_ids)
    if plan is None:
        return None
    from harness.runner import plan_suites

    found = {p.suite.name: data.fingerprints.overlap(p.items) for p in plan_suites(plan)}
    summary = overlap_summary(found)
    if summary and not cfg.allow_overlap:
        parts = [f"{suite}: {len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
                 for suite, ids in summary["suites"].items()]
        raise DataError(f"training items overlap the evaluation suites ({'; '.join(parts)}): hold them out "
                        f"(held_out), drop them, or pass --allow-overlap to train anyway (then recorded)")
    return summary


def to_trl_dataset(items: list[Item], cfg: TrainConfig):
    """Conversational prompts with the image, plus the columns the reward functions read (`grader`,
    `target`) and each item's `kind` (image or text). Image items hold their picture in `image`; when
    text items are mixed in, every row holds a list in `images` instead (empty for text), the form TRL
    reads for rows with and without pictures. TRL 1.15 cannot put both kinds in one generation batch,
    so trainers/data_order.py keeps each batch to one kind."""
    from datasets import Dataset, Features, Image, List, Value

    fmt = PROMPT_FORMATS[cfg.prompt_format]
    mixed_kinds = len({item.image_bytes is None for item in items}) > 1
    rows = []
    for item in items:
        suite_text = prompt_text(item, get_suite(item.suite), fmt) if _is_suite(item.suite) else \
            f"{_plain_question(item)}\n\n{fmt.instruction}"
        grader = item.suite if _is_suite(item.suite) else (cfg.dataset_grader or "")
        has_image = item.image_bytes is not None
        row = {"prompt": messages(suite_text, has_image), "suite": item.suite, "grader": grader,
               "sample_id": item.sample_id, "gold": item.gold, "target": _target_json(item),
               "kind": "image" if has_image else "text"}
        picture = decode(item.image_bytes, cfg.image_size) if has_image else None
        if mixed_kinds:
            row["images"] = [picture] if has_image else []
        elif has_image:
            row["image"] = picture
        rows.append(row)
    features = {"prompt": List({"role": Value("string"),
                                "content": List({"type": Value("string"), "text": Value("string")})}),
                "suite": Value("string"), "grader": Value("string"), "sample_id": Value("string"), "gold": Value("string"),
                "target": Value("string"), "kind": Value("string")}
    if mixed_kinds:
        features["images"] = List(Image())
    elif items and items[0].image_bytes is not None:
        features["image"] = Image()
    return Dataset.from_list(rows, features=Features(features))


def _is_suite(name: str) -> bool:
    from suites import SUITES

    return name in SUITES


def _plain_question(item: Item) -> str:
    if not item.choices:
        return item.question
    letters = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(item.choices))
    return f"{item.question}\nChoices:\n{letters}"


def _target_json(item: Item) -> str:
    import json

    return json.dumps({k: v for k, v in item.target().items() if k != "meta"} | {"meta": item.meta},
                      ensure_ascii=False, default=str)
