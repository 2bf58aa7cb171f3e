"""Writes to the snapshot's review tables: finding history per run, the settings a run was judged with, and
reviewers' decisions (append-only: the schema's triggers refuse UPDATE and DELETE on them).

The graph side decides what a finding is (graph.history); the SQL that keeps it sits here, beside the
schema (`crawler.store.SCHEMA`) and the reader (`crawler.snapshot_reader`), and runs inside
`SnapshotStore.transaction`, under the store's lock. Rows arrive as plain values: this module knows
nothing of `Finding`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from crawler.snapshot_reader import HISTORY_COLUMNS
from crawler.store import SnapshotStore

_AS_LAST_SEEN = ("severity", "email", "user_type", "idp", "idp_status", "last_seen_at", "depends_on")
_UPSERT_SQL = (
    f"INSERT INTO finding_history(finding_id, {', '.join(HISTORY_COLUMNS)}, first_seen_run, last_seen_run, "
    f"first_seen_at, last_seen_at, depends_on) VALUES ({', '.join('?' * 15)}) "
    "ON CONFLICT(finding_id) DO UPDATE SET "
    "first_seen_at = CASE WHEN excluded.first_seen_run < first_seen_run THEN excluded.first_seen_at "
    "ELSE first_seen_at END, first_seen_run = MIN(first_seen_run, excluded.first_seen_run), "
    + "".join(
        f"{c} = CASE WHEN excluded.last_seen_run >= last_seen_run THEN excluded.{c} ELSE {c} END, "
        for c in _AS_LAST_SEEN
    )
    + "last_seen_run = MAX(last_seen_run, excluded.last_seen_run)"
)  # SET expressions read the old row, so their order does not matter


def write_review_settings(
    store: SnapshotStore,
    run_id: int,
    managed_domains: list[str],
    dormant_days: int,
    review_rules: dict[str, Any] | None = None,
) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO review_settings(run_id, managed_domains, dormant_days, review_rules) "
            "VALUES (?,?,?,?)",
            (
                run_id,
                json.dumps(managed_domains),
                dormant_days,
                json.dumps(review_rules or {}, sort_keys=True),
            ),
        )


DECISION_COLUMNS = (
    "finding_id",
    "code",
    "severity",
    "portal",
    "learnupon_user_id",
    "person",
    "email",
    "decision",
    "scope",
    "reason",
    "expires_at",
    "reviewer",
    "decided_at",
    "run_id",
    "facts",
)


def record_decisions(
    store: SnapshotStore, received: dict[str, Any], decisions: Sequence[dict[str, Any]]
) -> int:
    """One reviewer's file and every decision in it, in one transaction; returns the import's id.

    `received`: imported_at, reviewer, run_id, file_name, file_sha256, content (bytes). Each decision
    holds `DECISION_COLUMNS` (`facts` a dict); each supersedes the latest earlier decision on its finding.
    """
    with store.transaction() as db:
        cursor = db.execute(
            "INSERT INTO review_imports(imported_at, reviewer, run_id, file_name, file_sha256, content, "
            "decisions) VALUES (?,?,?,?,?,?,?)",
            (
                received["imported_at"],
                received["reviewer"],
                received["run_id"],
                received["file_name"],
                received["file_sha256"],
                received["content"],
                len(decisions),
            ),
        )
        import_id = int(cursor.lastrowid or 0)
        for d in decisions:
            (previous,) = db.execute(
                "SELECT MAX(id) FROM review_decisions WHERE finding_id = ?", (d["finding_id"],)
            ).fetchone()
            values = [json.dumps(d[c], sort_keys=True) if c == "facts" else d[c] for c in DECISION_COLUMNS]
            db.execute(
                f"INSERT INTO review_decisions(import_id, {', '.join(DECISION_COLUMNS)}, supersedes) "
                f"VALUES ({', '.join('?' * (len(DECISION_COLUMNS) + 2))})",
                (import_id, *values, previous),
            )
    return import_id


def record_findings(
    store: SnapshotStore,
    run_id: int,
    seen_at: str | None,
    rows: Sequence[tuple[Any, ...]],
    unavailable: list[dict[str, Any]],
) -> None:
    """Replace what run `run_id` said: `rows` are (finding_id, *HISTORY_COLUMNS, depends_on list).

    Idempotent. A finding this run said before and no longer says gets its first/last-seen span recomputed
    from the runs that still say it (and is forgotten when none does).
    """
    seen = (run_id, run_id, seen_at, seen_at)  # first/last seen run, first/last seen at
    with store.transaction() as db:
        before = {
            r[0] for r in db.execute("SELECT finding_id FROM finding_occurrences WHERE run_id = ?", (run_id,))
        }
        db.execute("DELETE FROM finding_occurrences WHERE run_id = ?", (run_id,))
        db.executemany(
            "INSERT INTO finding_occurrences(run_id, finding_id) VALUES (?, ?)",
            [(run_id, r[0]) for r in rows],
        )
        db.executemany(_UPSERT_SQL, [(*r[:-1], *seen, json.dumps(r[-1])) for r in rows])
        for fid in before - {r[0] for r in rows}:
            _recompute(db, fid)
        db.execute(
            "INSERT OR REPLACE INTO finding_runs(run_id, findings, unavailable) VALUES (?, ?, ?)",
            (run_id, len(rows), json.dumps(unavailable)),
        )


def add_findings(
    db: sqlite3.Connection,
    run_id: int,
    seen_at: str | None,
    rows: Sequence[tuple[Any, ...]],
    unavailable: list[dict[str, Any]],
) -> None:
    """Add to what run `run_id` said, inside the caller's transaction: a watch round records findings as
    it raises them, in the same commit as their alerts. Rows as for `record_findings`; kept once each."""
    seen = (run_id, run_id, seen_at, seen_at)
    db.executemany(
        "INSERT OR IGNORE INTO finding_occurrences(run_id, finding_id) VALUES (?, ?)",
        [(run_id, r[0]) for r in rows],
    )
    db.executemany(_UPSERT_SQL, [(*r[:-1], *seen, json.dumps(r[-1])) for r in rows])
    row = db.execute("SELECT unavailable FROM finding_runs WHERE run_id = ?", (run_id,)).fetchone()
    withheld = [] if row is None else list(json.loads(row[0]))
    withheld += [u for u in unavailable if u not in withheld]
    (count,) = db.execute("SELECT COUNT(*) FROM finding_occurrences WHERE run_id = ?", (run_id,)).fetchone()
    db.execute(
        "INSERT OR REPLACE INTO finding_runs(run_id, findings, unavailable) VALUES (?, ?, ?)",
        (run_id, int(count), json.dumps(withheld)),
    )


def _recompute(db: sqlite3.Connection, finding_id: str) -> None:
    runs = [
        r[0]
        for r in db.execute(
            "SELECT run_id FROM finding_occurrences WHERE finding_id = ? ORDER BY run_id", (finding_id,)
        )
    ]
    if not runs:
        db.execute("DELETE FROM finding_history WHERE finding_id = ?", (finding_id,))
        return
    first, last = runs[0], runs[-1]
    db.execute(
        """UPDATE finding_history SET first_seen_run = ?, last_seen_run = ?,
           first_seen_at = (SELECT started_at FROM runs WHERE id = ?),
           last_seen_at = (SELECT started_at FROM runs WHERE id = ?) WHERE finding_id = ?""",
        (first, last, first, last, finding_id),
    )
