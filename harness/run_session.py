"""One session of a run: items -> prompts -> any backend -> scored records in the records file, as they arrive.

    timings = generate_session(todo, SessionContext(...), on_item_done=bar.advance)
    timings == {"prepare_s": 3.1, "generation_s": 41.8, "scoring_s": 0.9, "writing_s": 0.2, "streamed": True}

The backend is consumed through `iter_completions`: a streaming backend (vllm) gets every request at once
and its results come back in the order they finish; a batch backend (transformers) gets static batches,
longest prompts first. Either way an item's records are appended as soon as all its attempts are in:
each append is written and flushed at once (a killed process loses nothing already handed over), and
fsynced at most every FSYNC_EVERY_S seconds or FSYNC_EVERY_RECORDS records, and at the end, so a
resume finds every finished item and redoes only the rest.

What the timings mean, the same for both kinds of backend:
- generation_s: the time the backend had work. A streaming backend: from the first request handed over
  to the last completion received; its engine keeps generating while this process scores (and, for a
  stream, prepares the next prompts: decoding images overlaps generation). A batch backend: the sum of
  its generate calls; scoring waits between them, so it is not counted.
- prepare_s: decoding images, saving thumbnails and building prompts; scoring_s: extracting and judging
  answers; writing_s: appending records.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.formats import PromptFormat
from harness.backends import Backend, Completion, GenerationParams, Request, iter_completions
from harness.images import ImageDecodeError, decode, save_thumbnail, thumbnail_name
from harness.prompts import messages, prompt_sha256, prompt_text
from harness.runstore import RunDir
from suites.base import Item, Suite

FSYNC_EVERY_S = 1.0
FSYNC_EVERY_RECORDS = 256
PREPARE_THREADS = 4
PREPARE_AHEAD = 64  # prompts built ahead of a stream: enough to keep the engine fed, few decoded images held


@dataclass
class SessionContext:
    run: RunDir
    backend: Backend
    fmt: PromptFormat
    params: GenerationParams
    session_index: int
    image_size: tuple[int, int] | None
    batch_size: int
    max_concurrency: int | None
    base_record: Callable[[Item], dict[str, Any]]
    score_record: Callable[[dict[str, Any], Suite, PromptFormat], dict[str, Any]]


class _Appender:
    """Appends record groups, fsyncing at most every FSYNC_EVERY_S seconds or FSYNC_EVERY_RECORDS records."""

    def __init__(self, run: RunDir):
        self.run, self.unsynced, self.last_sync, self.seconds = run, 0, time.monotonic(), 0.0

    def append(self, records: list[dict[str, Any]]) -> None:
        started = time.perf_counter()
        self.unsynced += len(records)
        sync = self.unsynced >= FSYNC_EVERY_RECORDS or time.monotonic() - self.last_sync >= FSYNC_EVERY_S
        self.run.append_records(records, sync=sync)
        if sync:
            self.unsynced, self.last_sync = 0, time.monotonic()
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        if self.unsynced:
            started = time.perf_counter()
            self.run.sync_records()
            self.unsynced = 0
            self.seconds += time.perf_counter() - started


def generate_session(todo: list[tuple[Any, Item, list[int]]], ctx: SessionContext,
                     on_item_done: Callable[[str, int], None]) -> dict[str, Any]:
    """Generate and record every (plan, item, attempts) of `todo`; returns the session's timings.
    on_item_done(suite, n_records) is called as each item's records reach the file."""
    streamed = hasattr(ctx.backend, "stream")
    appender = _Appender(ctx.run)
    pending: dict[str, tuple[dict[str, Any], list[int], Suite]] = {}
    timing = {"prepare_s": 0.0, "scoring_s": 0.0}

    def requests() -> Iterator[Request]:
        """Prompts, built as the backend asks for them; items that cannot be prompted are recorded here."""
        for (plan, item, attempts), (request, rec, seconds) in zip(todo, _prepared(todo, ctx, streamed), strict=True):
            timing["prepare_s"] += seconds
            if request is None:
                _score_and_append([{**rec, "attempt": a} for a in attempts], plan.suite, ctx, appender, timing)
                on_item_done(item.suite, len(attempts))
                continue
            pending[request.request_id] = (rec, attempts, plan.suite)
            yield request

    # A stream pulls prompts while its engine works; a batch backend sorts them all first.
    prompts: Any = requests() if streamed else list(requests())
    arrived: dict[str, list[Completion]] = {}
    started, outside = time.perf_counter(), 0.0
    try:
        for completion in iter_completions(ctx.backend, prompts, ctx.params, ctx.batch_size, ctx.max_concurrency):
            handling = time.perf_counter()
            group = arrived.setdefault(completion.request_id, [])
            group.append(completion)
            if len(group) == ctx.params.n:
                del arrived[completion.request_id]
                rec, attempts, suite = pending.pop(completion.request_id)
                records = [_record(rec, c, ctx.session_index) for c in group if c.attempt in attempts]
                _score_and_append(records, suite, ctx, appender, timing)
                on_item_done(suite.name, len(records))
            outside += time.perf_counter() - handling
    finally:
        appender.close()
    loop_s = time.perf_counter() - started
    generation_s = loop_s if streamed else loop_s - outside
    return {"streamed": streamed, "generation_s": round(generation_s, 3), "prepare_s": round(timing["prepare_s"], 3),
            "scoring_s": round(timing["scoring_s"], 3), "writing_s": round(appender.seconds, 3)}


def _prepared(todo: list[tuple[Any, Item, list[int]]], ctx: SessionContext,
              ahead: bool) -> Iterator[tuple[Request | None, dict[str, Any], float]]:
    """(request, record, seconds) of each item, in order. For a stream, PREPARE_AHEAD items are decoded
    and prompted by PREPARE_THREADS threads ahead of the engine: the engine's own input and output
    processing runs in this thread, and image decoding here would hold it up (PIL releases the GIL)."""
    def timed(plan: Any, item: Item) -> tuple[Request | None, dict[str, Any], float]:
        started = time.perf_counter()
        request, rec = _prepare(item, plan.suite, ctx)
        return request, rec, time.perf_counter() - started

    if not ahead:
        for plan, item, _ in todo:
            yield timed(plan, item)
        return
    with ThreadPoolExecutor(PREPARE_THREADS, thread_name_prefix="prepare") as pool:
        futures: deque[Future] = deque()
        source = iter(todo)
        try:
            for plan, item, _ in itertools.islice(source, PREPARE_AHEAD):
                futures.append(pool.submit(timed, plan, item))
            while futures:
                result = futures.popleft().result()  # an error (disk full) surfaces here, in order
                for plan, item, _ in itertools.islice(source, 1):
                    futures.append(pool.submit(timed, plan, item))
                yield result
        finally:
            for future in futures:
                future.cancel()


def _prepare(item: Item, suite: Suite, ctx: SessionContext) -> tuple[Request | None, dict[str, Any]]:
    rec = ctx.base_record(item)
    images = []
    if item.error is None and item.image_bytes is not None:
        try:
            image = decode(item.image_bytes, ctx.image_size)
        except ImageDecodeError as exc:  # a corrupt image fails this sample, not the run
            rec["error"] = f"image {item.image_source or '(inline)'} could not be decoded: {exc}"
        else:  # a thumbnail that cannot be written (disk full) stops the run: StorageError
            rec["image"] = save_thumbnail(image, ctx.run.images_dir, thumbnail_name(item.suite, item.sample_id))
            images = [image]
    text = prompt_text(item, suite, ctx.fmt)
    listed = suite.shown_choices(text, item.choices) if suite.shown_choices is not None else None
    if listed:  # the model answers by the letters of the listing it was shown
        rec["meta"] = {**rec["meta"], "listed_choices": listed}
    size = ctx.image_size
    rec["prompt_sha256"] = prompt_sha256(text + (f"\n[resize {size}]" if size else ""), item.image_bytes)
    if rec["error"] is not None:
        return None, rec
    return Request(f"{item.suite}/{item.sample_id}", messages(text, bool(images)), images), rec


def _record(rec: dict[str, Any], c: Completion, session_index: int) -> dict[str, Any]:
    batch = f"{session_index}-{c.batch_index}" if c.batch_index is not None else f"{session_index}-stream"
    if c.error is not None:  # the backend gave up on the request (a server refusing it): resume resends it
        return {**rec, "attempt": c.attempt, "error": c.error, "request_failed": True, "batch": batch,
                "latency_s": c.latency_s, "request_latency_s": c.request_latency_s}
    return {**rec, "attempt": c.attempt, "response": c.text, "n_prompt_tokens": c.n_prompt_tokens,
            "n_output_tokens": c.n_output_tokens, "finish_reason": c.finish_reason, "latency_s": c.latency_s,
            "ttft_s": c.ttft_s, "request_latency_s": c.request_latency_s, "batch": batch}


def _score_and_append(records: list[dict[str, Any]], suite: Suite, ctx: SessionContext, appender: _Appender,
                      timing: dict[str, float]) -> None:
    started = time.perf_counter()
    scored = [ctx.score_record(r, suite, ctx.fmt) for r in records]
    timing["scoring_s"] += time.perf_counter() - started
    appender.append(scored)


def put_in_suite_order(run: RunDir, plans: list[Any]) -> None:
    """Rewrite the records file in suite order (suite, item, attempt) when it is not: records are appended
    as they finish, which a stream or a batch sorted by prompt length does not do in order."""
    position = {(plan.suite.name, item.sample_id): (p, i) for p, plan in enumerate(plans)
                for i, item in enumerate(plan.items)}
    records = run.read_records()

    def key(record: dict[str, Any]) -> tuple[int, int, int]:
        p, i = position.get((record["suite"], record["sample_id"]), (len(plans), 0))
        return p, i, record["attempt"]

    ordered = sorted(records, key=key)  # stable: unknown records keep their order, at the end
    if ordered != records:
        run.rewrite_records(ordered)
