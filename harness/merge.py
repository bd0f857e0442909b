"""`harness merge`: the run directories of `harness eval --shard K/N` put back together as one run.

    path = merge_shards(["runs/s1", "runs/s2", "runs/s3"], out="runs/all")

Every shard must be a finished run with the same settings (every config key but where it ran: `out`,
`shard`, `data_dir` and the engine's batching and memory knobs), the same model, prompt format and
suite versions, the same whole suites (their hashes as the shards recorded them) and the same N, and
together they must hold each of the N shares exactly once, each shard exactly its own share. Anything
else is one line of error naming the shards, the setting or the items (a missing shard's items are
named), and nothing is written.

The merged run is what one process would have written: its suites are the whole suites (n_items and
content_sha256 as a one-process run records them), its records the shards' in suite order, its
sessions every shard's (each tagged `shard: "K/N"`, record batches renumbered to match), and its
metrics recomputed from the records. The manifest's `shards` says where each share came from.
"""

from __future__ import annotations

import copy
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError, RunDirError, storage_error
from harness.config import field_defaults
from harness.run_lifecycle import claimed_run_dir, finalize
from harness.run_state import run_state
from harness.runner import new_run_id
from harness.runstore import RunDir, record_key
from harness.sharding import assignment, parse_shard

# Config keys that may differ between shards: where and how each ran, not what it evaluated.
RUNTIME_KEYS = frozenset({"out", "shard", "data_dir", "batch_size", "max_concurrency", "gpu_memory_utilization",
                          "max_model_len", "tensor_parallel_size", "data_parallel_size", "base_url", "api_key_env",
                          "request_timeout_s", "max_retries", "retry_backoff_s", "judge_base_url",
                          "judge_api_key_env", "judge_max_concurrency", "judge_cache", "ray", "ray_replicas",
                          "ray_cpus_per_replica", "ray_chunk_size", "ray_max_restarts"})
# What makes two LLM judge passes the same scoring (the manifest's llm_judge).
JUDGE_KEYS = ("model", "served_model", "prompt_version", "judge_all", "methods", "request_params")
MODEL_KEYS = ("id", "revision", "adapter", "dtype", "quantization")
# What a backend reports about the loaded model; compared where both shards have it (an empty shard
# loads no model).
DESCRIBED_KEYS = ("base_model", "n_parameters", "script_sha256", "lora", "vllm_version")
SUITE_KEYS = ("version", "split", "source", "variant", "image_size")


@dataclass
class Shard:
    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    index: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


def merge_shards(paths: list[str | Path], out: str | Path, echo: Callable[[str], None] | None = None) -> Path:
    """Merge the shard run directories at `paths` into a new run directory `out`; returns it."""
    if not paths:
        raise ConfigError("merge needs the shard run directories")
    out = Path(out)
    if RunDir(out).exists():
        raise RunDirError(f"{out} already holds a run; choose another -o")
    shards = [_read_shard(Path(p)) for p in paths]
    _check_alike(shards)
    _check_cover(shards)
    base = shards[0]
    commits = {str((s.manifest.get("harness") or {}).get("commit")) for s in shards}
    if len(commits) > 1 and echo:
        echo(f"note: the shards ran on different harness commits ({', '.join(sorted(commits))})")
    records, sessions = _merged_records(shards)
    manifest = copy.deepcopy(base.manifest)
    manifest.pop("repairs", None)
    manifest.update(
        run_id=new_run_id(str(base.manifest["model"].get("id") or "model")),
        created=min(str(s.manifest.get("created")) for s in shards), finished=None, status="running", error=None,
        config={**base.manifest["config"], "shard": None, "out": str(out)},
        suites=[_whole_entry(entry) for entry in base.manifest["suites"]],
        checkpoint=_merged_checkpoint(shards), measurements={"sessions": sessions},
        **({"llm_judge": _merged_judge(shards)} if base.manifest.get("llm_judge") else {}),
        shards=[{"index": s.index, "count": s.count, "path": str(s.path), "run_id": s.manifest.get("run_id"),
                 "created": s.manifest.get("created"), "finished": s.manifest.get("finished"),
                 "harness": s.manifest.get("harness"), "hardware": s.manifest.get("hardware")}
                for s in sorted(shards, key=lambda s: s.index)])
    with claimed_run_dir(out, resume=False, echo=echo) as run:
        run.write_manifest(manifest)
        _copy_images(shards, run)
        run.append_records(records)
        finalize(run, manifest)
    return out


def _read_shard(path: Path) -> Shard:
    run = RunDir(path)
    if not run.exists():
        raise RunDirError(f"{path} is not a run directory (no manifest)")
    manifest = run.read_manifest()
    records = run.read_records()
    shard = (manifest.get("config") or {}).get("shard")
    if not shard:
        raise RunDirError(f"{path} is not a shard: it was not run with --shard K/N")
    state = run_state(run.path, manifest, records)
    items_failed = state.kind == "error" and (manifest.get("error") or {}).get("type") == "ItemsFailedError"
    if not (state.finished or (items_failed and state.completeness["complete"])):
        raise RunDirError(f"shard {path} is not finished ({state.line})")
    index, count = parse_shard(shard)
    return Shard(run.path, manifest, records, index, count)


def _check_alike(shards: list[Shard]) -> None:
    """One line for the first difference that makes the shards' records not one run's."""
    base = shards[0]
    defaults = field_defaults()
    for shard in shards[1:]:
        pair = f"{base.path} ({base.name}) and {shard.path} ({shard.name})"
        if shard.count != base.count:
            raise ConfigError(f"shards {pair} split the suites into different numbers of shares")
        a, b = base.manifest["config"], shard.manifest["config"]
        for key in sorted((set(a) | set(b)) - RUNTIME_KEYS):
            if a.get(key, defaults.get(key)) != b.get(key, defaults.get(key)):
                raise ConfigError(f"shards {pair} differ in {key}: {a.get(key)!r} vs {b.get(key)!r}")
        ma, mb = base.manifest["model"], shard.manifest["model"]
        for key in MODEL_KEYS + tuple(k for k in DESCRIBED_KEYS if k in ma and k in mb):
            if ma.get(key) != mb.get(key):
                raise ConfigError(f"shards {pair} evaluated different models: model.{key} {ma.get(key)!r} vs "
                                  f"{mb.get(key)!r}")
        if base.manifest.get("prompt_format") != shard.manifest.get("prompt_format"):
            raise ConfigError(f"shards {pair} differ in prompt format")
        ja, jb = base.manifest.get("llm_judge"), shard.manifest.get("llm_judge")
        if (ja is None) != (jb is None):
            raise ConfigError(f"shards {pair} differ in scoring: one has an LLM judge pass, the other not")
        for key in JUDGE_KEYS if ja and jb else ():
            if ja.get(key) != jb.get(key):
                raise ConfigError(f"shards {pair} differ in scoring: llm_judge.{key} {ja.get(key)!r} vs "
                                  f"{jb.get(key)!r}")
        names_a = [e["name"] for e in base.manifest["suites"]]
        names_b = [e["name"] for e in shard.manifest["suites"]]
        if names_a != names_b:
            raise ConfigError(f"shards {pair} evaluated different suites: {names_a} vs {names_b}")
        for ea, eb in zip(base.manifest["suites"], shard.manifest["suites"], strict=True):
            for key in SUITE_KEYS:
                if ea.get(key) != eb.get(key):
                    raise ConfigError(f"shards {pair} differ in suite {ea['name']} {key}: {ea.get(key)!r} vs "
                                      f"{eb.get(key)!r}")
            whole_a, whole_b = ea.get("shard") or {}, eb.get("shard") or {}
            if whole_a.get("content_sha256") != whole_b.get("content_sha256"):
                raise ConfigError(f"shards {pair} evaluated different items of suite {ea['name']} (whole-suite "
                                  f"content_sha256 {str(whole_a.get('content_sha256'))[:12]} vs "
                                  f"{str(whole_b.get('content_sha256'))[:12]})")


def _expected(shards: list[Shard]) -> dict[int, set[tuple[str, str]]]:
    """shard index -> the (suite, sample id) pairs of its share, from the whole suites the shards recorded."""
    out: dict[int, set[tuple[str, str]]] = {k: set() for k in range(1, shards[0].count + 1)}
    for entry in shards[0].manifest["suites"]:
        whole = entry.get("shard") or {}
        for sample_id, k in assignment(entry["name"], list(whole.get("item_ids") or []), shards[0].count).items():
            out[k].add((entry["name"], sample_id))
    return out


def _named(pairs: set[tuple[str, str]] | list[tuple[str, str]], most: int = 3) -> str:
    shown = sorted(pairs)[:most]
    return ", ".join(f"{suite} {sid}" for suite, sid in shown) + (", ..." if len(pairs) > most else "")


def _check_cover(shards: list[Shard]) -> None:
    """Each share exactly once, each shard holding exactly its share."""
    seen: dict[int, Shard] = {}
    for shard in shards:
        if shard.index in seen:
            raise ConfigError(f"shard {shard.name} is given twice: {seen[shard.index].path} and {shard.path}")
        seen[shard.index] = shard
    expected = _expected(shards)
    missing = [k for k in expected if k not in seen]
    if missing:
        items = set().union(*(expected[k] for k in missing))
        raise ConfigError(f"shard(s) {', '.join(f'{k}/{shards[0].count}' for k in missing)} missing: "
                          f"{len(items)} item(s) in none of the given runs ({_named(items)})")
    for shard in shards:
        held = {(r["suite"], r["sample_id"]) for r in shard.records}
        if held != expected[shard.index]:
            stray, lacking = held - expected[shard.index], expected[shard.index] - held
            raise ConfigError(f"shard {shard.path} ({shard.name}) does not hold its share: "
                              + "; ".join(part for part in (
                                  f"{len(stray)} item(s) of other shards ({_named(stray)})" if stray else "",
                                  f"{len(lacking)} of its items missing ({_named(lacking)})" if lacking else "")
                                  if part))


def _merged_records(shards: list[Shard]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every shard's records in suite order (batches renumbered to the merged sessions), and the sessions."""
    position = {(entry["name"], sid): (s, i) for s, entry in enumerate(shards[0].manifest["suites"])
                for i, sid in enumerate((entry.get("shard") or {}).get("item_ids") or [])}
    records, sessions = [], []
    for shard in sorted(shards, key=lambda s: s.index):
        offset = len(sessions)
        sessions += [{**session, "shard": shard.name} for session in shard.manifest["measurements"]["sessions"]]
        for record in shard.records:
            batch = record.get("batch")
            if isinstance(batch, str) and batch.split("-", 1)[0].isdigit():
                first, rest = batch.split("-", 1)
                record = {**record, "batch": f"{offset + int(first)}-{rest}"}
            records.append(record)
    repeated = [key for key, n in Counter(record_key(r) for r in records).items() if n > 1]
    if repeated:
        raise ConfigError(f"{len(repeated)} record(s) are in more than one shard ({_named([k[:2] for k in repeated])})")
    records.sort(key=lambda r: (position[(r["suite"], r["sample_id"])], r["attempt"]))
    return records, sessions


def _whole_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A shard's suite entry as a one-process run of the whole suite writes it."""
    whole = entry["shard"]
    merged = {k: v for k, v in entry.items() if k != "shard"}
    return {**merged, "n_items": whole["n_items"], "content_sha256": whole["content_sha256"]}


def _merged_checkpoint(shards: list[Shard]) -> dict[str, Any] | None:
    """The checkpoint entry, its train/eval overlap being the union of the shards' (each saw its own items)."""
    first = shards[0].manifest.get("checkpoint")
    if not first:
        return None
    order = {(e["name"], sid): i for e in shards[0].manifest["suites"]
             for i, sid in enumerate((e.get("shard") or {}).get("item_ids") or [])}
    found: dict[str, list[str]] = {}
    for shard in shards:
        for suite, ids in (((shard.manifest.get("checkpoint") or {}).get("overlap") or {}).get("suites") or {}).items():
            found.setdefault(suite, []).extend(ids)
    suites = {suite: sorted(ids, key=lambda sid, s=suite: order.get((s, sid), 0)) for suite, ids in found.items()}
    overlap = {"n": sum(len(ids) for ids in suites.values()), "suites": suites} if suites else None
    return {**first, "overlap": overlap}


def _merged_judge(shards: list[Shard]) -> dict[str, Any]:
    """The shards' judge passes as one: the first's settings, the request counters and time summed."""
    passes = [s.manifest["llm_judge"] for s in shards]
    merged = copy.deepcopy(passes[0])
    merged["requests"] = {key: sum(p["requests"].get(key) or 0 for p in passes)
                          if isinstance(value, int | float) and not isinstance(value, bool) else value
                          for key, value in (passes[0].get("requests") or {}).items()}
    merged["calls_from_cache"] = sum(p.get("calls_from_cache") or 0 for p in passes)
    merged["wall_s"] = sum(p.get("wall_s") or 0 for p in passes)
    merged["time"] = max(str(p.get("time")) for p in passes)
    return merged


def _copy_images(shards: list[Shard], run: RunDir) -> None:
    for shard in shards:
        source = RunDir(shard.path).images_dir
        for name in sorted({r["image"] for r in shard.records if r.get("image")}):
            try:
                run.images_dir.mkdir(exist_ok=True)
                shutil.copy2(source / name, run.images_dir / name)
            except OSError as exc:
                raise storage_error(exc, "copy the thumbnail", source / name) from exc
