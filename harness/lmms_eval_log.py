"""lmms-eval's sample logs (`--log_samples`), read as lmms-eval 0.3 to 0.7 writes them.

lmms-eval writes, under `--output_path`, one folder per model holding, per evaluation:

    <date>_results.json            # results, configs and versions per task; config: model, model_args,
                                   # gen_kwargs, limit, random_seed; lmms_eval_version, git_hash, date
    <date>_samples_<task>.jsonl    # one line per document, and per filter for tasks with several

One line of mathvista_testmini_format as lmms-eval 0.7 writes it (0.3 also keeps `doc`, `arguments`
and the raw `resps`, nested one list per request; 0.5 and later drop `resps` where it equals
`filtered_resps`, and 0.7 flattens a single request's lists):

    {"doc_id": 0, "target": "145°", "filtered_resps": "... so the answer is (C).",
     "token_counts": [{"input_tokens": 512, "output_tokens": 87}], "doc_hash": "9c1e...",
     "llm_as_judge_eval": {"question_id": "1", "extraction": "C", "prediction": "145°",
                           "true_false": true, ...},
     "submission": {...}, "input": "Hint: Please answer the question ..."}

A task with several filters (GSM8K: strict-match, flexible-extract) logs every document once per
filter, without naming it: the k-th line of a document belongs to the k-th filter of the task's
`filter_list` in the results file.

    log = read_log(Path("logs/Qwen__Qwen2.5-VL-7B-Instruct"))
    for task in log.tasks:
        print(task.name, len(task.docs), task.docs[0].responses[0][:80])
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError, storage_error
from harness.jsonfile import json_object_line

SAMPLES_FILE = re.compile(r"(?P<date>.+?)_samples_(?P<task>.+)\.jsonl")
RESULTS_FILE = re.compile(r"(?P<date>.+?)_results\.json")
# The keys lmms-eval writes itself; every other key of a line is a metric from the task's process_results.
LOG_KEYS = frozenset({"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "doc_hash",
                      "prompt_hash", "target_hash", "input", "token_counts", "input_media"})


@dataclass
class FilterResult:
    """One filter's view of a document: its filtered response and the metrics computed on it."""

    name: str
    filtered: Any
    metrics: dict[str, Any]


@dataclass
class LoggedDoc:
    doc_id: int  # the document's index in the task's test split
    line: int  # the line number of its first line
    target: str | None
    responses: list[str]  # the model's raw responses, one per repeat
    doc: dict[str, Any] | None  # lmms-eval 0.3 keeps the document (images dropped)
    prompt: str | None
    token_counts: list[dict[str, Any] | None]
    filters: list[FilterResult] = field(default_factory=list)


@dataclass
class TaskLog:
    name: str
    path: Path
    docs: list[LoggedDoc]
    config: dict[str, Any]  # the task's entry in the results file's `configs` ({} without the file)


@dataclass
class LmmsEvalLog:
    results_path: Path | None
    results: dict[str, Any]  # the results file ({} when the log has none)
    tasks: list[TaskLog]
    date: str


def read_log(path: str | Path, tasks: list[str] | None = None) -> LmmsEvalLog:
    """The sample logs at `path`: a samples file, a results file, or a folder holding one evaluation's
    files (directly or one folder down). `tasks` keeps only those tasks (each must be in the log)."""
    path = Path(path)
    results_path, samples = _locate(path)
    results: dict[str, Any] = {}
    if results_path is not None:
        results = _read_json_object(results_path)
    if tasks:
        found = {SAMPLES_FILE.fullmatch(p.name)["task"]: p for p in samples}
        missing = [t for t in tasks if t not in found]
        if missing:
            raise ConfigError(f"{path} has no samples of task(s) {', '.join(missing)}; it has "
                              f"{', '.join(sorted(found))}")
        samples = [found[t] for t in dict.fromkeys(tasks)]
    configs = results.get("configs") if isinstance(results.get("configs"), dict) else {}
    logs = []
    for file in samples:
        name = SAMPLES_FILE.fullmatch(file.name)["task"]
        config = configs.get(name) if isinstance(configs.get(name), dict) else {}
        logs.append(TaskLog(name, file, _read_samples(file, _filter_names(config)), config))
    return LmmsEvalLog(results_path, results, logs, SAMPLES_FILE.fullmatch(samples[0].name)["date"])


def _locate(path: Path) -> tuple[Path | None, list[Path]]:
    """(results file or None, samples files) of the one evaluation at `path`."""
    if path.is_file():
        samples_name, results_name = SAMPLES_FILE.fullmatch(path.name), RESULTS_FILE.fullmatch(path.name)
        if samples_name:
            results = path.with_name(f"{samples_name['date']}_results.json")
            return (results if results.is_file() else None), [path]
        if results_name:
            samples = sorted(path.parent.glob(f"{results_name['date']}_samples_*.jsonl"))
            if not samples:
                raise DataError(f"{path} has no samples files beside it ({results_name['date']}_samples_<task>"
                                ".jsonl); run lmms-eval with --log_samples")
            return path, samples
        raise DataError(f"{path} is neither an lmms-eval samples file (<date>_samples_<task>.jsonl) nor a "
                        "results file (<date>_results.json)")
    if not path.is_dir():
        raise DataError(f"{path} not found")
    found = sorted(p for p in [*path.glob("*.jsonl"), *path.glob("*/*.jsonl")] if SAMPLES_FILE.fullmatch(p.name))
    evaluations: dict[tuple[Path, str], list[Path]] = {}
    for p in found:
        evaluations.setdefault((p.parent, SAMPLES_FILE.fullmatch(p.name)["date"]), []).append(p)
    if not evaluations:
        raise DataError(f"no lmms-eval samples files (<date>_samples_<task>.jsonl) in {path}; run lmms-eval "
                        "with --log_samples --output_path")
    if len(evaluations) > 1:
        names = ", ".join(f"{folder.name}/{date}" for folder, date in list(evaluations)[:4])
        raise ConfigError(f"{path} holds {len(evaluations)} lmms-eval evaluations ({names}); pass one of "
                          "their results or samples files")
    (folder, date), samples = next(iter(evaluations.items()))
    results = folder / f"{date}_results.json"
    return (results if results.is_file() else None), samples


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise storage_error(exc, "read", path) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} is not an lmms-eval results file (a JSON object)")
    return data


def _filter_names(config: dict[str, Any]) -> list[str] | None:
    """The task's filter names in order, from its results-file config; None when it does not say."""
    filters = config.get("filter_list")
    if not isinstance(filters, list) or not filters:
        return None
    names = [f.get("name") if isinstance(f, dict) else None for f in filters]
    return names if all(isinstance(n, str) for n in names) else None


def _read_samples(path: Path, filter_names: list[str] | None) -> list[LoggedDoc]:
    docs: dict[int, LoggedDoc] = {}
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 -- closed by the with below; only open() is guarded
    except OSError as exc:
        raise storage_error(exc, "read", path) from exc
    with f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            line = json_object_line(raw, where, "an lmms-eval sample", DataError)
            doc_id = line.get("doc_id")
            if not isinstance(doc_id, int) or isinstance(doc_id, bool):
                raise DataError(f"{where} has no doc_id (an lmms-eval sample line has one)")
            doc = docs.get(doc_id)
            if doc is None:
                doc = docs[doc_id] = _first_line(line, doc_id, lineno, where)
            metrics = {k: v for k, v in line.items() if k not in LOG_KEYS}
            doc.filters.append(FilterResult("", line.get("filtered_resps"), metrics))
    if not docs:
        raise DataError(f"{path} holds no samples")
    counts = {len(d.filters) for d in docs.values()}
    if len(counts) > 1:
        odd = next(d for d in docs.values() if len(d.filters) != max(counts))
        raise DataError(f"{path}: doc {odd.doc_id} has {len(odd.filters)} line(s), others {max(counts)}: "
                        "the file is cut short or mixes two evaluations")
    n_filters = counts.pop()
    names = filter_names if filter_names and len(filter_names) == n_filters else (
        ["none"] if n_filters == 1 else [f"filter{k}" for k in range(n_filters)])
    for doc in docs.values():
        for result, name in zip(doc.filters, names, strict=True):
            result.name = name
    return [docs[k] for k in sorted(docs)]


def _first_line(line: dict[str, Any], doc_id: int, lineno: int, where: str) -> LoggedDoc:
    """A document from its first line: the raw responses are `resps` where kept, else `filtered_resps`."""
    if "resps" not in line and "filtered_resps" not in line:
        raise DataError(f"{where} has neither resps nor filtered_resps (the model's responses)")
    responses = _strings(line["resps"] if "resps" in line else line["filtered_resps"])
    if not responses:
        raise DataError(f"{where}: resps holds no response text")
    counts = line.get("token_counts")
    counts = [c if isinstance(c, dict) else None for c in counts] if isinstance(counts, list) else []
    prompt = line.get("input")
    doc = line.get("doc")
    return LoggedDoc(doc_id=doc_id, line=lineno, target=None if line.get("target") is None else str(line["target"]),
                     responses=responses, doc=doc if isinstance(doc, dict) else None,
                     prompt=prompt if isinstance(prompt, str) else None, token_counts=counts)


def _strings(value: Any) -> list[str] | None:
    """The strings of a possibly nested list ([[r1, r2]] -> [r1, r2]); None when anything else is inside."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return None
    out: list[str] = []
    for element in value:
        inner = _strings(element)
        if inner is None:
            return None
        out += inner
    return out
