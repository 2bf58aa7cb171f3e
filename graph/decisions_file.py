"""The decisions spreadsheet: what `idgraph review export` writes and `idgraph review import` reads back.

One row per open finding: who and what, the evidence a reviewer decides on (flat, readable), and four empty
columns to fill — `decision` (revoke, keep or exception), `scope` (exceptions: account or person),
`expires_at` (exceptions: a date or an ISO 8601 time) and `reason`. `finding_id` and `facts` (a
fingerprint of the facts shown) tie each row back to what the reviewer saw. The file is UTF-8 with a byte
order mark and CRLF line ends, so spreadsheet software opens names and accents as they are; every cell is
neutralised against formula injection. Parsing here is about the file's shape only; whether its decisions
are acceptable is `graph.decision_import`'s question.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from graph.campaign import RunReview
from graph.decisions import facts_fingerprint, finding_facts
from graph.reports.csv_report import FORMULA_TRIGGERS, safe_cell
from graph.reports.input import ReportInput

INFO_COLUMNS = (
    "finding_id",
    "facts",
    "run",
    "severity",
    "finding",
    "portal",
    "learnupon_user_id",
    "email",
    "name",
    "user_type",
    "idp",
    "idp_status",
    "last_sign_in_at",
    "idp_disabled_at",
    "days_since_disabled",
    "first_seen",
    "groups",
    "review_note",
)
DECISION_FIELDS = ("decision", "scope", "expires_at", "reason")
EXPORT_COLUMNS = INFO_COLUMNS + DECISION_FIELDS
REQUIRED_COLUMNS = ("finding_id", "facts", *DECISION_FIELDS)
MAX_FILE_BYTES = (
    32 * 1024 * 1024
)  # a review file is a few MB at a million findings; anything bigger is not one
BOM = "\ufeff"


def render_export(review: RunReview, report: ReportInput) -> str:
    """The spreadsheet of the run's open findings, most severe first (the report's order)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(EXPORT_COLUMNS)
    open_ids = {f.id for f in review.open}
    for finding in report.ordered():
        if finding.id not in open_ids:
            continue
        record = report.record(finding)
        row: dict[str, Any] = {
            **record,
            "facts": facts_fingerprint(finding_facts(finding)),
            "run": review.run_id,
            "groups": "; ".join(record["groups"]),
            "review_note": review.state(finding).note,
        }
        writer.writerow(safe_cell(row.get(c)) for c in EXPORT_COLUMNS)
    return BOM + buffer.getvalue()


@dataclass(frozen=True)
class FileRow:
    """One data row of a decisions file: its line number and the cells that matter."""

    line: int
    cells: dict[str, str]

    def get(self, column: str) -> str:
        return self.cells.get(column, "")

    @property
    def has_decision(self) -> bool:
        return any(self.get(c) for c in DECISION_FIELDS)


class FileError(ValueError):
    """The file is not a decisions file at all (encoding, CSV syntax, header); one line says why."""


def _unneutralise(value: str) -> str:
    """Undo `neutralise` (our own leading `'` before a formula character), then trim."""
    value = value.strip()
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_TRIGGERS:
        value = value[1:]
    return value.strip()


def parse_file(data: bytes) -> list[FileRow]:
    """The rows of a decisions file, or FileError naming what is wrong and where."""
    if len(data) > MAX_FILE_BYTES:
        raise FileError(f"the file is {len(data):,} bytes; a decisions file is at most {MAX_FILE_BYTES:,}")
    if b"\x00" in data:
        raise FileError("the file holds NUL bytes: it is not a CSV text file (saved as .xlsx?)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileError(f"line {line}: not UTF-8 text (save the spreadsheet as CSV UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise FileError("the file is empty: export one with `idgraph review export`")
        names = [h.strip().casefold() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise FileError(
                f"line 1: the header lacks the column(s) {', '.join(missing)}: export a file with "
                "`idgraph review export` and fill it in"
            )
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise FileError(f"line 1: the header names {', '.join(twice)} twice")
        rows = []
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                raise FileError(f"line {line}: {len(cells)} cells where the header has {len(names)}")
            rows.append(FileRow(line, {n: _unneutralise(c) for n, c in zip(names, cells, strict=True)}))
    except csv.Error as exc:
        raise FileError(f"line {reader.line_num}: not valid CSV ({exc})") from None
    return rows
