"""Each benchmark owns one section of BENCHMARKS.md, between markers, and rewrites only that section."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Measured numbers, each with the command that produced it. Machines here are shared and noisy, so "
    "every benchmark compares against a baseline measured in the same run (ratios, not absolute times).\n"
)


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md with `markdown`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


def publish(name: str, markdown: str, *, write: bool) -> None:
    """Print a benchmark's section, and (unless `write` is off) put it into BENCHMARKS.md."""
    if write:
        write_section(name, markdown)
    print(markdown)
