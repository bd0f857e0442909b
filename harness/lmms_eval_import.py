"""`harness import lmms-eval`: lmms-eval's sample logs of MathVista, MathVerse and GSM8K as a run directory.

    path = import_lmms_eval("logs/Qwen__Qwen2.5-VL-7B-Instruct", out="runs/qwen-lmms",
                            data_dir={"*": "data/MathVista"})

Each logged document is matched to the harness item it was made from: the suite's own data, loaded as
`harness eval` loads it (`data_dir`, else the hub), so that the run's suite hashes equal those of a
harness run on the same items. The id comes from the log (MathVista `pid`, MathVerse `sample_index`)
or, for GSM8K, from the document's position in the test split; lmms-eval's target must equal the
item's gold, or the import stops (the log is of other data). Each response becomes a record scored by
the harness's own scorer under the `official` prompt format (no tags: the answer is read from the
free-form response, as for a data-set prompt). lmms-eval's own verdict on the document is kept beside
it, in the record's `external` and as the `lmms_eval` entry of `scores` (one per filter for tasks with
several, e.g. `lmms_eval:strict-match`), so `harness show` prints both accuracies. The manifest's
`imported` says where the run came from: lmms-eval's version, the tasks, model and model_args, the
generation settings, and lmms-eval's aggregate results, as the results file gives them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError, RunDirError
from core.formats import OFFICIAL
from harness import provenance
from harness.config import EvalConfig, field_defaults
from harness.contamination import checkpoint_entry
from harness.images import ImageDecodeError, decode, save_thumbnail, thumbnail_name
from harness.lmms_eval_log import LmmsEvalLog, LoggedDoc, TaskLog, read_log
from harness.prompts import prompt_sha256
from harness.run_lifecycle import claimed_run_dir, finalize, now
from harness.runner import SuitePlan, base_record, new_run_id, plan_suites, score_record
from harness.runstore import MANIFEST_SCHEMA_VERSION, RunDir
from suites import get_suite
from suites.base import Item
from suites.gsm8k import gold_from_solution

TOOL = "lmms-eval"
# Keys of model_args that name the model, in the order lmms-eval's own tracker reads them.
MODEL_KEYS = ("peft", "delta", "pretrained", "model", "model_version", "model_name", "model_id", "path", "engine")


@dataclass(frozen=True)
class TaskSpec:
    """How one lmms-eval task maps onto a harness suite."""

    suite: str
    split: str
    verdicts: tuple[str, ...]  # per-sample metrics holding lmms-eval's verdict; the first one present is kept
    id_keys: tuple[str, ...]  # keys of the document (or a metric's dict) naming the sample id; () = by position
    same_gold: Callable[[str, Item], bool]  # lmms-eval's target vs the harness item


def _mathvista_gold(target: str, item: Item) -> bool:
    return target == item.gold


def _mathverse_gold(target: str, item: Item) -> bool:
    return target == item.meta.get("official_answer", item.gold)  # the suite turns "(B)" into "B"


def _gsm8k_gold(target: str, item: Item) -> bool:
    # gsm8k and gsm8k_cot_zeroshot target the whole solution ("... #### 18"), the cot tasks the number.
    gold = gold_from_solution(target) if "####" in target else target.replace(",", "").strip()
    return gold == item.gold


MATHVISTA = TaskSpec("mathvista_testmini", "testmini", ("llm_as_judge_eval", "gpt_eval_score"),
                     ("question_id", "pid"), _mathvista_gold)
MATHVERSE = TaskSpec("mathverse_testmini", "testmini", ("gpt_eval_score", "submission"), ("sample_index",),
                     _mathverse_gold)
GSM8K = TaskSpec("gsm8k", "test", ("exact_match",), (), _gsm8k_gold)

# Every lmms-eval task the import reads (as named in lmms-eval 0.3 to 0.7), and the suite it belongs to.
TASKS: dict[str, TaskSpec] = {
    **{f"mathvista_testmini_{kind}": MATHVISTA for kind in ("cot", "format", "solution")},
    "mathverse_testmini": MATHVERSE,
    **{f"mathverse_testmini_{version}": MATHVERSE
       for version in ("text_dominant", "text_lite", "vision_intensive", "vision_dominant", "vision_only")},
    "mathverse_testmini_text_only": replace(MATHVERSE, split="testmini_text_only"),
    **{name: GSM8K for name in ("gsm8k", "gsm8k_cot", "gsm8k_cot_zeroshot", "gsm8k_cot_llama",
                                "gsm8k_cot_self_consistency")},
}


def import_lmms_eval(path: str | Path, out: str | Path | None = None, data_dir: dict[str, str] | None = None,
                     tasks: list[str] | None = None) -> Path:
    """Write the run directory of the lmms-eval log at `path` (see the module docstring); returns it.
    Unknown tasks, malformed lines and logs of other data raise a HarnessError before anything is written."""
    if out is not None and RunDir(out).exists():
        raise RunDirError(f"{out} already holds a run; choose another -o")
    log = read_log(path, tasks)
    unknown = [t.name for t in log.tasks if t.name not in TASKS]
    if unknown:
        raise ConfigError(f"lmms-eval task {unknown[0]!r} is not one the harness imports (it imports "
                          f"{', '.join(TASKS)}); choose tasks with --task")
    plans, records, n_attempts = _match(log, data_dir or {})
    info = _provenance(log)
    model = _model_name(log.results)
    run_id = new_run_id(model)
    out = Path(out) if out else Path("runs") / run_id
    generation = _generation(log, n_attempts)
    config = {**field_defaults(), "model": model, "backend": TOOL, "suites": [p.suite.name for p in plans],
              "split": None, "data_dir": dict(data_dir or {}), "prompt_format": OFFICIAL.name,
              "max_new_tokens": generation["max_new_tokens"], "temperature": generation["temperature"],
              "top_p": generation["top_p"], "top_k": generation["top_k"], "n_samples": n_attempts,
              "seed": generation["seed"], "out": str(out)}
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION, "run_id": run_id, "created": now(), "finished": None,
        "status": "running", "error": None, "harness": provenance.git_state(),
        "model": {"id": model, "revision": None, "adapter": None, "dtype": _model_arg(log.results, "dtype"),
                  "quantization": None},
        "backend": TOOL, "prompt_format": OFFICIAL.name, "scoring": config["scoring"], "generation": generation,
        "seed": generation["seed"],
        "suites": [_suite_entry(plan) for plan in plans], "config": config,
        "checkpoint": checkpoint_entry(model, {p.suite.name: p.items for p in plans}),
        "packages": {}, "hardware": {}, "measurements": {"sessions": []}, "imported": info,
    }
    with claimed_run_dir(out, resume=False) as run:
        run.write_manifest(manifest)
        for plan in plans:
            _save_thumbnails(plan, records, run.images_dir)
        run.append_records(records)
        finalize(run, manifest)
    return out


# --- matching the log to the harness's items --------------------------------------------------------------
def _match(log: LmmsEvalLog, data_dir: dict[str, str]) -> tuple[list[SuitePlan], list[dict[str, Any]], int]:
    """(one plan per suite holding the imported items in suite order, their scored records, attempts per item)."""
    loaded: dict[str, tuple[str, list[Item]]] = {}
    chosen: dict[str, dict[str, tuple[TaskLog, LoggedDoc]]] = {}
    for task in log.tasks:
        spec = TASKS[task.name]
        if spec.suite in loaded and loaded[spec.suite][0] != spec.split:
            raise ConfigError(f"the log holds {spec.suite} splits {loaded[spec.suite][0]} and {spec.split}; "
                              "a run has one split per suite: import them one at a time with --task")
        if spec.suite not in loaded:
            cfg = EvalConfig.from_dict({"suites": [spec.suite], "split": spec.split, "data_dir": data_dir})
            loaded[spec.suite] = (spec.split, plan_suites(cfg)[0].items)
        items = loaded[spec.suite][1]
        by_id = {item.sample_id: item for item in items}
        mine = chosen.setdefault(spec.suite, {})
        for doc in task.docs:
            where = f"{task.path.name}:{doc.line}"
            sample_id = _sample_id(doc, spec, items, where)
            item = by_id.get(sample_id)
            if item is None:
                raise DataError(f"{where}: doc {doc.doc_id} is {spec.suite} item {sample_id!r}, which the "
                                f"harness's {spec.split} data does not have; check --data-dir")
            if sample_id in mine:
                raise ConfigError(f"{spec.suite} item {sample_id} is answered by tasks {mine[sample_id][0].name} "
                                  f"and {task.name}; import them one at a time with --task")
            if doc.target is not None and not spec.same_gold(doc.target, item):
                raise DataError(f"{where}: doc {doc.doc_id}'s target {doc.target[-40:]!r} is not the gold "
                                f"{item.gold!r} of {spec.suite} item {sample_id}: the log is of other data")
            mine[sample_id] = (task, doc)
    attempts = {len(doc.responses) for docs in chosen.values() for _, doc in docs.values()}
    if len(attempts) > 1:
        raise DataError(f"the log's documents have {sorted(attempts)} responses each; a run has one number "
                        "of attempts per item")
    n_attempts = attempts.pop()
    plans, records = [], []
    for suite_name, (split, items) in loaded.items():
        suite = get_suite(suite_name)
        kept = [item for item in items if item.sample_id in chosen[suite_name]]
        plans.append(SuitePlan(suite, split, kept))
        for item in kept:
            task, doc = chosen[suite_name][item.sample_id]
            records += [_record(item, task, doc, attempt, suite) for attempt in range(n_attempts)]
    return plans, records, n_attempts


def _sample_id(doc: LoggedDoc, spec: TaskSpec, items: list[Item], where: str) -> str:
    if not spec.id_keys:
        if not 0 <= doc.doc_id < len(items):
            raise DataError(f"{where}: doc {doc.doc_id} is past the {len(items)} items of the harness's "
                            f"{spec.suite} {spec.split} data")
        return items[doc.doc_id].sample_id
    sources = [doc.doc or {}] + [m for f in doc.filters for m in f.metrics.values() if isinstance(m, dict)]
    for source in sources:
        for key in spec.id_keys:
            if source.get(key) not in (None, ""):
                return str(source[key])
    raise DataError(f"{where}: doc {doc.doc_id} names no {' or '.join(spec.id_keys)} (its {spec.suite} id)")


def _record(item: Item, task: TaskLog, doc: LoggedDoc, attempt: int, suite: Any) -> dict[str, Any]:
    record = base_record(item)
    counts = doc.token_counts[attempt] if len(doc.token_counts) == len(doc.responses) else None
    record.update(attempt=attempt, response=doc.responses[attempt],
                  prompt_sha256=prompt_sha256(doc.prompt, item.image_bytes) if doc.prompt is not None else None,
                  n_prompt_tokens=(counts or {}).get("input_tokens"),
                  n_output_tokens=(counts or {}).get("output_tokens"))
    record["external"] = {"source": TOOL, "task": task.name, "doc_id": doc.doc_id,
                          "scores": _verdicts(doc, TASKS[task.name])}
    return score_record(record, suite, OFFICIAL)


def _verdicts(doc: LoggedDoc, spec: TaskSpec) -> dict[str, dict[str, Any]]:
    """lmms-eval's verdict per filter: {variant: {metric, value, correct, extracted}}."""
    out = {}
    for result in doc.filters:
        metric, value, extracted = None, None, None
        for key in spec.verdicts:
            found = result.metrics.get(key)
            if isinstance(found, bool | int | float):
                metric, value = key, float(found)
            elif isinstance(found, dict) and "true_false" in found:
                metric, value, extracted = key, float(bool(found["true_false"])), found.get("extraction")
            if metric is not None:
                break
        if extracted is None and result.name != "none" and isinstance(result.filtered, str):
            extracted = result.filtered  # a regex filter's output is lmms-eval's extraction
        name = "lmms_eval" if len(doc.filters) == 1 else f"lmms_eval:{result.name}"
        out[name] = {"metric": metric, "value": value, "correct": None if value not in (0.0, 1.0) else value == 1.0,
                     "extracted": None if extracted is None else str(extracted)}
    return out


def _save_thumbnails(plan: SuitePlan, records: list[dict[str, Any]], folder: Path) -> None:
    """The items' images, as a harness run keeps them (the report shows them)."""
    names: dict[str, str | None] = {}
    for item in plan.items:
        if item.image_bytes is None or item.error is not None:
            continue
        try:
            image = decode(item.image_bytes)
        except ImageDecodeError:
            continue  # lmms-eval answered from its own copy; this one only lacks a thumbnail
        names[item.sample_id] = save_thumbnail(image, folder, thumbnail_name(item.suite, item.sample_id))
    for record in records:
        if record["suite"] == plan.suite.name and record["sample_id"] in names:
            record["image"] = names[record["sample_id"]]


def _suite_entry(plan: SuitePlan) -> dict[str, Any]:
    return {"name": plan.suite.name, "version": plan.suite.version, "split": plan.split, "source": plan.suite.source,
            "variant": None, "image_size": None, "n_items": len(plan.items), "content_sha256": plan.content_sha256()}


# --- what the results file says ------------------------------------------------------------------------------
def _config(results: dict[str, Any]) -> dict[str, Any]:
    return results.get("config") if isinstance(results.get("config"), dict) else {}


def _parse_args(value: Any) -> dict[str, Any]:
    """lmms-eval's "k=v,k=v" argument strings (model_args, gen_kwargs), or a dict as the API passes them."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return {}
    out: dict[str, Any] = {}
    for part in value.split(","):
        key, sep, raw = part.partition("=")
        if sep:
            out[key.strip()] = _scalar(raw.strip())
    return out


def _scalar(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _model_arg(results: dict[str, Any], key: str) -> Any:
    value = _parse_args(_config(results).get("model_args")).get(key)
    return None if value is None else str(value)


def _model_name(results: dict[str, Any]) -> str:
    for key in MODEL_KEYS:
        if _model_arg(results, key):
            return str(_model_arg(results, key))
    return str(results.get("model_name") or _config(results).get("model") or "lmms-eval model")


def _generation(log: LmmsEvalLog, n_attempts: int) -> dict[str, Any]:
    """The manifest's generation: each task's generation_kwargs with the command line's gen_kwargs on top
    (lmms-eval applies them so). Greedy decoding records top_p and top_k as off, as the harness does."""
    cli = _parse_args(_config(log.results).get("gen_kwargs"))
    seed = _config(log.results).get("random_seed")
    found = {}
    for task in log.tasks:
        task_kwargs = task.config.get("generation_kwargs") if isinstance(task.config.get("generation_kwargs"), dict) else {}
        kwargs = {**task_kwargs, **cli}
        temperature = 0.0 if kwargs.get("do_sample") is False else float(kwargs.get("temperature") or 0.0)
        greedy = temperature == 0
        limit = kwargs.get("max_new_tokens", kwargs.get("max_gen_toks"))
        found[task.name] = {
            "max_new_tokens": int(limit) if isinstance(limit, int | float) else None, "temperature": temperature,
            "top_p": 1.0 if greedy or not kwargs.get("top_p") else float(kwargs["top_p"]),
            "top_k": 0 if greedy else int(kwargs.get("top_k") or 0), "n": n_attempts,
            "seed": seed if isinstance(seed, int) else 0, "ignore_eos": False}
    first = next(iter(found))
    for other, settings in found.items():
        differ = [f"{k} {found[first][k]} vs {v}" for k, v in settings.items() if v != found[first][k]]
        if differ:
            raise ConfigError(f"tasks {first} and {other} were generated with different settings "
                              f"({', '.join(differ)}); a run has one: import them one at a time with --task")
    return found[first]


def _provenance(log: LmmsEvalLog) -> dict[str, Any]:
    """The manifest's `imported`: where the run came from, as the log's files say it."""
    config, results = _config(log.results), log.results

    def of(key: str, task: str) -> Any:
        table = results.get(key)
        return table.get(task) if isinstance(table, dict) else None

    return {
        "tool": TOOL, "version": results.get("lmms_eval_version"), "git_hash": results.get("git_hash"),
        "date": results.get("date") or log.date,
        "model": config.get("model"), "model_args": config.get("model_args"), "gen_kwargs": config.get("gen_kwargs"),
        "limit": config.get("limit"),
        "results_file": log.results_path.name if log.results_path else None,
        "tasks": {task.name: {"suite": TASKS[task.name].suite, "split": TASKS[task.name].split,
                              "samples_file": task.path.name, "samples_sha256": _sha256(task.path),
                              "n_docs": len(task.docs), "filters": [f.name for f in task.docs[0].filters],
                              "version": of("versions", task.name), "results": of("results", task.name),
                              "generation_kwargs": task.config.get("generation_kwargs")}
                  for task in log.tasks},
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
