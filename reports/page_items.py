"""Per-item data for the flips and item-explorer sections, embedded once as JSON and rendered by
report.js on demand (so a 4 x 1,000-item report opens quickly).

Lean on purpose: one entry per item with every run's first-attempt response (cut at
MAX_RESPONSE_CHARS, with the original length kept for a visible note), each image re-encoded as a
small JPEG and stored once, referenced by key, even when several runs or items share it.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image

from reports.i18n import text
from reports.page_html import ReportContext, esc, section, tr
from reports.page_payload import FlipList, PageItem, ReportPayload, RunEntry

THUMB_PX = 160
JPEG_QUALITY = 70
# Size budgets that keep a 4 x 1,000-item page well under 15 MB. Responses of flipped items keep up
# to MAX_RESPONSE_CHARS; the others share what is left of RESPONSE_BUDGET_CHARS evenly (never below
# MIN_RESPONSE_CHARS). A cut response says so on the page; the run's records have the full text.
MAX_RESPONSE_CHARS = 6000
MIN_RESPONSE_CHARS = 400
RESPONSE_BUDGET_CHARS = 8_000_000
IMAGE_BUDGET_BYTES = 4_500_000  # base64 text of all thumbnails; past it they are re-encoded smaller
MAX_TEXT_CHARS = 4000  # questions, choices and gold are usually short; cap pathological ones


def _cut(value: Any, limit: int = MAX_TEXT_CHARS) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + " …"
    return value


def _even_cap(lengths: list[int], budget: int) -> int:
    """The largest per-response cap c with sum(min(length, c)) <= budget (water filling)."""
    remaining = budget
    ordered = sorted(lengths)
    for k, length in enumerate(ordered):
        share = remaining // (len(ordered) - k)
        if length > share:
            return share
        remaining -= length
    return MAX_RESPONSE_CHARS


class ImageStore:
    """Thumbnails as data: URLs, stored once per distinct source file content."""

    def __init__(self) -> None:
        self._thumbs: list[Image.Image] = []
        self._by_digest: dict[str, str] = {}

    def add(self, images_dir: Path, name: Any) -> str | None:
        """Key of the thumbnail for images_dir/name, or None when there is no readable image. The name
        comes from the run's records: only a plain file name inside images/ is accepted."""
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            return None
        try:
            data = (images_dir / name).read_bytes()
        except OSError:
            return None  # a run copied without its images/: the item shows without a picture
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._by_digest:
            return self._by_digest[digest]
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at reduced size where it can
                thumb = im.convert("RGB")
                thumb.thumbnail((THUMB_PX, THUMB_PX))
        except (OSError, ValueError, Image.DecompressionBombError):
            return None  # not an image we can read: leave it out rather than fail the report
        key = str(len(self._thumbs))
        self._thumbs.append(thumb)
        self._by_digest[digest] = key
        return key

    @staticmethod
    def _encode(thumb: Image.Image, px: int, quality: int) -> str:
        if max(thumb.size) > px:
            thumb = thumb.copy()
            thumb.thumbnail((px, px))
        buf = io.BytesIO()
        thumb.save(buf, format="JPEG", quality=quality, optimize=True)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def urls(self) -> dict[str, str]:
        """key -> data URL; smaller and coarser for every image when the set would pass the budget."""
        urls = [self._encode(t, THUMB_PX, JPEG_QUALITY) for t in self._thumbs]
        total = sum(len(u) for u in urls)
        if total > IMAGE_BUDGET_BYTES:
            px = max(64, int(THUMB_PX * (IMAGE_BUDGET_BYTES / total) ** 0.5 * 0.9))  # bytes ~ pixels
            urls = [self._encode(t, px, 60) for t in self._thumbs]
        return {str(i): url for i, url in enumerate(urls)}


def _run_entry(records: list[dict[str, Any]], cap: int) -> RunEntry:
    """One run's view of one item: attempt 0's response, the item's mean correctness over attempts."""
    first = min(records, key=lambda r: r.get("attempt") or 0)
    entry: RunEntry = {"a": sum(1.0 for r in records if r.get("correct")) / len(records)}
    if len(records) > 1:
        entry["k"] = len(records)
    response = first.get("response")
    if isinstance(response, str):
        entry["t"] = response[:cap]
        if len(response) > cap:
            entry["tl"] = len(response)
    optional = {"x": first.get("extracted"), "f": first.get("format_ok"),
                "ff": first.get("format_failures") or None, "fin": first.get("finish_reason"),
                "e": first.get("error")}
    rewards = first.get("rewards") or {}
    if any(rewards.get(k) is not None for k in ("format", "correctness", "total")):
        optional["rw"] = [rewards.get("format"), rewards.get("correctness"), rewards.get("total")]
        optional["rwm"] = rewards.get("mode") or "recipe"  # records without a mode predate it: the recipe's rule
    entry.update({k: _cut(v, 500) for k, v in optional.items() if v is not None})
    return entry


def _meta(record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    meta = record.get("meta") or {}
    out = {}
    for field in fields:
        value = meta.get(field)
        if isinstance(value, list):
            out[field] = [str(v) for v in value]
        elif value is not None:
            out[field] = str(value)
    return out


def _flipped(ctx: ReportContext) -> dict[tuple[int, str], tuple[list[str], list[str]]]:
    """(candidate index, suite) -> (fixed ids, broken ids), by majority over attempts as the paired
    test counts them."""
    out = {}
    for i in range(1, len(ctx.runs)):
        for suite in ctx.suites:
            base, cand = ctx.runs[0].item_correct(suite), ctx.runs[i].item_correct(suite)
            shared = [sid for sid in base if sid in cand]
            if shared:
                out[(i, suite)] = ([s for s in shared if cand[s] >= 0.5 > base[s]],
                                   [s for s in shared if base[s] >= 0.5 > cand[s]])
    return out


def _grouped(ctx: ReportContext, suite: str) -> list[dict[str, list[dict[str, Any]]]]:
    """Per run: sample_id -> that run's records of the item (its attempts)."""
    per_run = []
    for run in ctx.runs:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for r in run.records_of(suite):
            grouped.setdefault(str(r["sample_id"]), []).append(r)
        per_run.append(grouped)
    return per_run


def _response_cap(groups: dict[str, list], flipped_ids: set[tuple[str, str]]) -> int:
    """The cap for responses of items that did not flip, so that all of them fit the budget."""
    spent, others = 0, []
    for suite, per_run in groups.items():
        for grouped in per_run:
            for sid, records in grouped.items():
                response = min(records, key=lambda r: r.get("attempt") or 0).get("response")
                length = len(response) if isinstance(response, str) else 0
                if (suite, sid) in flipped_ids:
                    spent += min(length, MAX_RESPONSE_CHARS)
                else:
                    others.append(length)
    cap = _even_cap(others, max(0, RESPONSE_BUDGET_CHARS - spent))
    return max(MIN_RESPONSE_CHARS, min(MAX_RESPONSE_CHARS, cap))


def items_payload(ctx: ReportContext) -> ReportPayload:
    """The items, flips, runs and thumbnails report.js renders (keys: reports/page_payload.py)."""
    flips = _flipped(ctx)
    flipped_ids = {(suite, sid) for (_, suite), lists in flips.items() for ids in lists for sid in ids}
    groups = {suite: _grouped(ctx, suite) for suite in ctx.suites}
    other_cap = _response_cap(groups, flipped_ids)
    images = ImageStore()
    items: list[PageItem] = []
    index: dict[tuple[str, str], int] = {}
    for suite, per_run in groups.items():
        fields = list(dict.fromkeys(f for run in ctx.runs
                                    for f in (((run.metrics.get("suites") or {}).get(suite) or {}).get("by") or {})))
        for sid in dict.fromkeys(sid for grouped in per_run for sid in grouped):
            first = next(g[sid] for g in per_run if sid in g)[0]
            image = None
            for run, grouped in zip(ctx.runs, per_run, strict=True):
                if sid in grouped and grouped[sid][0].get("image"):
                    image = images.add(run.path / "images", grouped[sid][0]["image"])
                    if image is not None:
                        break
            cap = MAX_RESPONSE_CHARS if (suite, sid) in flipped_ids else other_cap
            item: PageItem = {"s": suite, "id": sid, "q": _cut(first.get("question")), "g": _cut(first.get("gold")),
                    "r": [_run_entry(g[sid], cap) if sid in g else None for g in per_run]}
            choices = first.get("choices")
            if isinstance(choices, list) and choices:
                item["c"] = [_cut(str(c), 1000) for c in choices[:26]]
            if image is not None:
                item["img"] = image
            meta = _meta(first, fields)
            if meta:
                item["m"] = meta
            index[(suite, sid)] = len(items)
            items.append(item)
    flip_lists: list[FlipList] = [{"run": i, "suite": suite, "fixed": [index[(suite, s)] for s in fixed],
                   "broken": [index[(suite, s)] for s in broken]} for (i, suite), (fixed, broken) in flips.items()]
    runs = [{"label": run.label, "color": ctx.color(i)} for i, run in enumerate(ctx.runs)]
    return {"images": images.urls(), "items": items, "flips": flip_lists, "runs": runs, "suites": ctx.suites}


def _select(element_id: str, label_key: str, lang: str) -> str:
    """An empty select that report.js fills; its label goes through the language switch."""
    return (f'<label class="control">{tr(label_key, lang)}'
            f'<select id="{esc(element_id)}"></select></label>')


def _search(element_id: str, lang: str) -> str:
    """A search box whose placeholder goes through the language switch."""
    placeholder = esc(text("filter.search", lang))
    return (f'<label class="control grow"><input type="search" id="{esc(element_id)}" '
            f'data-i18n-ph="filter.search" placeholder="{placeholder}" aria-label="{placeholder}"></label>')


def flips_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    controls = (f'<div class="controls" id="flip-controls">'
                f'{_select("flip-run", "filter.run", lang)}{_select("flip-suite", "filter.suite", lang)}'
                f'{_select("flip-category", "filter.category", lang)}'
                f'{_select("flip-direction", "filter.direction", lang)}'
                f'{_search("flip-search", lang)}</div>')
    body = (controls + '<p class="flip-count" id="flip-count" aria-live="polite"></p>'
            '<div id="flip-list" class="item-list"></div>'
            f'<button type="button" class="more" id="flip-more" hidden>{tr("flips.more", lang)}</button>')
    return section("flips", "flips.title", lang, body, "flips.intro")


def explorer_section(ctx: ReportContext) -> str:
    lang = ctx.lang
    controls = (f'<div class="controls">{_select("item-suite", "filter.suite", lang)}{_search("item-search", lang)}'
                f'</div><div class="picker" id="item-picker" role="listbox"></div>')
    body = controls + '<div id="item-view" class="item-list"></div>'
    return section("items", "items.title", lang, body, "items.intro")
