"""Writes docs/suites.md from the suite table, so the page cannot drift from the code.

    uv run python -m harness.docs_suites > docs/suites.md
"""

from __future__ import annotations

from suites import SUITES


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


if __name__ == "__main__":
    print(render(), end="")
