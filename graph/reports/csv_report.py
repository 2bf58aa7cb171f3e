"""findings.csv: the contract columns first, one row per finding, safe to open in a spreadsheet.

Open findings first (the headline), then those accepted under an exception and those a rule excluded,
each row saying which in `review_state`.

Every cell, the flat copies of evidence included, goes through `neutralise`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from graph.reports.input import CSV_COLUMNS, ReportInput, evidence_json
from graph.reports.safe_files import write_private

# OWASP "CSV injection": a cell starting with one of these is run as a formula by spreadsheet software.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Prefix a formula-looking string cell with `'` so it is shown as text; other values pass through."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def render_csv(report: ReportInput) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_COLUMNS)
    records = [(f, report.record(f)) for f in report.ordered()]
    records += [
        (item.finding, report.reviewed_record(item, state)) for state, item in report.out_of_headline()
    ]
    for finding, record in records:
        record["evidence"] = evidence_json(finding.evidence)
        record["groups"] = "; ".join(record["groups"])
        writer.writerow(safe_cell(record[column]) for column in CSV_COLUMNS)
    return buffer.getvalue()


def write_csv(path: Path | str, report: ReportInput) -> Path:
    return write_private(path, render_csv(report))


def safe_cell(value: Any) -> Any:
    """One CSV cell: None empty, booleans as true/false, and neutralised (every CSV idgraph writes)."""
    return neutralise(_cell(value))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
