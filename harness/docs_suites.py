"""Writes docs/suites.md from the suite table, so the page cannot drift from the code.

    uv run python -m harness.docs_suites --write   # regenerates the page, keeping its hand-written end

Everything from the HAND_WRITTEN marker line on is kept as it is (measured figures with the commands
that reproduce them); everything before it is generated.
"""

from __future__ import annotations

import sys
from pathlib import Path

from suites import SUITES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "suites.md"
HAND_WRITTEN = "<!-- Hand-written from here on: python -m harness.docs_suites keeps it. -->"


def render() -> str:
    intro = ("Generated from the suite table (`suites/__init__.py`) by `python -m harness.docs_suites`; "
             "`harness suites --json` prints the same facts.")
    out = ["# Suites", "", intro, ""]
    for s in SUITES.values():
        splits = ", ".join(f"{k} ({v:,})" for k, v in s.splits.items())
        out += [f"## `{s.name}` (version {s.version})", "", s.description, "",
                f"- source: `{s.source}`", f"- splits: {splits}; default `{s.default_split}`"]
        if s.breakdowns:
            out.append("- breakdowns: " + ", ".join(f"`{b}`" for b in s.breakdowns))
        if s.variants:
            out.append("- variants: " + ", ".join(f"`{v}`" for v in s.variants))
        if s.data_dir_help:
            out.append(f"- local data: {s.data_dir_help}")
        if s.notes:
            out.append(f"- scoring and deviations: {s.notes}")
        out.append("")
    return "\n".join(out)


def hand_written(page: str) -> str:
    """The page's hand-written end, from the marker line on ("" when it has none)."""
    at = page.find(HAND_WRITTEN)
    return page[at:] if at >= 0 else ""


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        tail = hand_written(PAGE.read_text(encoding="utf-8")) if PAGE.exists() else ""
        PAGE.write_text(render() + ("\n" + tail if tail else ""), encoding="utf-8")
    else:
        print(render(), end="")
