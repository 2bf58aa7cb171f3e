"""Report writers: findings.csv, findings.json, report.html and report.md from one run's `ReportInput`.

Outputs never re-query sources: everything comes from the snapshot via `ReportInput`. Every file is written
owner-only (0o600) and atomically; the output directory is created 0o700.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from graph.reports.csv_report import render_csv, write_csv
from graph.reports.html_report import render_html, write_html
from graph.reports.input import CSV_COLUMNS, ReportInput, RunDiff
from graph.reports.json_report import build_document, render_json, write_json
from graph.reports.markdown_report import render_markdown, write_markdown
from graph.reports.safe_files import ensure_private_dir, write_private

# format -> (file name, writer)
FORMATS: dict[str, tuple[str, Callable[[Path, ReportInput], Path]]] = {
    "csv": ("findings.csv", write_csv),
    "json": ("findings.json", write_json),
    "html": ("report.html", write_html),
    "md": ("report.md", write_markdown),
}
_ALIASES = {"markdown": "md", "htm": "html"}


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """`"csv,json"` or `["csv", "json"]` -> canonical names, in order, without repeats.

    Raises ValueError naming the unknown format and the accepted ones.
    """
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    result: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        name = _ALIASES.get(name, name)
        if name not in FORMATS:
            raise ValueError(f"unknown report format {raw.strip()!r}; choose from {', '.join(FORMATS)}")
        if name not in result:
            result.append(name)
    if not result:
        raise ValueError(f"no report format given; choose from {', '.join(FORMATS)}")
    return result


def write_reports(
    out_dir: Path | str,
    report: ReportInput,
    formats: str | Iterable[str] = ("csv", "json", "html", "md"),
) -> dict[str, Path]:
    """Write the requested reports into `out_dir`; returns {format: path} in the order asked."""
    chosen = parse_formats(formats)  # validate everything before writing anything
    directory = ensure_private_dir(out_dir)
    written: dict[str, Path] = {}
    for name in chosen:
        filename, writer = FORMATS[name]
        written[name] = writer(directory / filename, report)
    return written


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "ReportInput",
    "RunDiff",
    "build_document",
    "ensure_private_dir",
    "parse_formats",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "write_private",
    "write_reports",
]
