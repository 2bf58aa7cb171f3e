"""report.md: coverage first, counts, findings grouped by code, cells safe inside a ticket's tables."""

from __future__ import annotations

import re
from dataclasses import replace

from crawler.store import SourceCoverage
from graph.model import Code, FindingSet
from graph.reports import ReportInput, render_markdown
from graph.reports.markdown_report import md_cell


def _table_rows(text: str, heading: str) -> list[str]:
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    return [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| severity")
    ]


def _cells(row: str) -> list[str]:
    """Split a table row on unescaped pipes, as a GFM renderer does."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_md_cell_escapes_pipes_newlines_and_markup() -> None:
    assert md_cell("a | b") == r"a \| b"
    assert md_cell("line one\nline two\r\nthree") == "line one line two three"
    assert md_cell("<script>alert(1)</script>") == r"\<script\>alert(1)\</script\>"
    assert md_cell("*bold* _it_ `code` [link](x)") == r"\*bold\* \_it\_ \`code\` \[link\](x)"
    assert md_cell(None) == "—" and md_cell("") == "—"
    assert md_cell(0) == "0"


def test_sections_in_order_coverage_first(realistic_report: ReportInput) -> None:
    text = render_markdown(realistic_report)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## What to act on",
        "## Coverage",
        "## Totals",
        "## Changes since run 41",
        "## Findings",
    ]
    assert text.startswith("# Acme LearnUpon access review — run 42\n")


def test_incomplete_idp_says_which_verdict_is_unavailable_and_why(realistic_report: ReportInput) -> None:
    text = render_markdown(realistic_report)
    coverage = text.split("## What to act on", 1)[1].split("## Totals", 1)[0]
    assert "**Coverage incomplete:** 1 of 5 sources did not complete" in coverage
    assert (
        "> - entra (entra): HTTP 503 Service Unavailable on GET /v1.0/users (page 14) after 5 retries"
        in coverage
    )
    assert "**Verdicts not given**" in coverage
    assert re.search(r"> - `not_in_idp` \(all portals\): IdP 'entra' did not complete", coverage)
    assert re.search(r"> - `idp_disabled_active` \(entra\): people known only to 'entra'", coverage)
    entra_row = next(line for line in coverage.splitlines() if line.startswith("| entra "))
    assert _cells(entra_row)[2] == "✗"


def test_complete_run_says_so(realistic_report: ReportInput) -> None:
    coverage = [replace(c, complete=True, error=None) for c in realistic_report.coverage]
    findings = FindingSet(42, realistic_report.findings.findings, [])
    text = render_markdown(replace(realistic_report, coverage=coverage, findings=findings))
    assert "All 5 sources completed; every verdict was evaluated." in text
    assert "Verdicts not given" not in text and "✗" not in text


def test_findings_grouped_by_code_with_counts(realistic_report: ReportInput) -> None:
    text = render_markdown(realistic_report)
    groups = re.findall(r"^### `(\w+)` \((\d+)\)$", text, flags=re.M)
    assert groups == [("idp_disabled_active", "13"), ("partially_offboarded", "5"), ("dormant", "8"),
                      ("duplicate_account", "4")]  # fmt: skip
    rows = _table_rows(text, "### `dormant` (8)")
    assert len(rows) == 8
    assert all(len(_cells(r)) == 9 for r in rows)


def test_rows_are_capped_per_code_with_a_note(realistic_report: ReportInput) -> None:
    text = render_markdown(realistic_report, max_rows=3)
    rows = _table_rows(text, "### `idp_disabled_active` (13)")
    assert len(rows) == 3
    assert "_Showing 3 of 13; the rest are in findings.csv / findings.json._" in text


def test_hostile_cells_stay_inside_their_table_cell(hostile_report: ReportInput) -> None:
    text = render_markdown(hostile_report)
    rows = _table_rows(text, "### `idp_disabled_active` (7)")
    assert len(rows) == 7
    for row in rows:
        assert len(_cells(row)) == 9, row  # a `|` or newline in a value never adds a column or a row
    assert r"pipe\|and newline@acme.com" in text
    assert "<script>" not in text and "<b>" not in text
    assert r"\<script\>window.\_\_pwned = 5\</script\> review" in text.splitlines()[0]


def test_no_findings_and_no_coverage(realistic_report: ReportInput) -> None:
    empty = replace(realistic_report, coverage=[], findings=FindingSet(42, []), diff=None)
    text = render_markdown(empty)
    assert "No coverage recorded for this run" in text
    assert "No findings." in text
    for code in Code:
        assert f"| `{code.value}` | 0 |" in text


def test_only_some_sources_listed_in_coverage_table(realistic_report: ReportInput) -> None:
    cov = [SourceCoverage(source="a|b", kind="csv", complete=True, notes=["x\ny"])]
    text = render_markdown(replace(realistic_report, coverage=cov, findings=FindingSet(42, [])))
    coverage_row, crawl_row = (line for line in text.splitlines() if line.startswith("| a"))
    assert _cells(coverage_row) == [r"a\|b", "csv", "✓", "—", "0", "0"]
    assert _cells(crawl_row) == [r"a\|b", "0", "0", "0", "x y"]  # requests, 429s, retries, notes


def test_first_section_is_counts_by_severity_and_person(realistic_report: ReportInput) -> None:
    text = render_markdown(realistic_report)
    first = text.split("## What to act on", 1)[1].split("## Coverage", 1)[0]
    findings = realistic_report.findings.findings
    people = len({f.person for f in findings})
    assert first.lstrip().startswith(f"**≥ {people} people, ≥ ")  # lower bounds: not_in_idp is withheld
    rows = [_cells(line) for line in first.splitlines() if line.startswith("| ") and "severity" not in line]
    assert [r[0] for r in rows] == ["critical", "high", "medium", "low"]
    critical = [f for f in findings if f.severity.value == "critical"]
    assert rows[0][1:3] == [str(len(critical)), str(len({f.person for f in critical}))]
    assert first.index("| severity |") < first.index("**Coverage incomplete:**")


def test_complete_coverage_is_one_line_in_the_first_section(realistic_report: ReportInput) -> None:
    coverage = [replace(c, complete=True, error=None) for c in realistic_report.coverage]
    findings = FindingSet(42, realistic_report.findings.findings, [])
    text = render_markdown(replace(realistic_report, coverage=coverage, findings=findings))
    first = text.split("## What to act on", 1)[1].split("## Coverage", 1)[0]
    lines = [line for line in first.splitlines() if "sources completed" in line]
    assert lines == [
        "All 5 sources completed; every verdict was evaluated. 6 records could not be understood "
        "(see Quarantined records)."
    ]
    assert ">" not in first
    notes = [n for c in realistic_report.coverage for n in c.notes or []]
    assert notes and not any(n in first for n in notes)  # LearnUpon's counters are in "Crawl detail"
