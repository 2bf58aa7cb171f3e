"""Every query the graph side runs against the snapshot, in one place beside the schema they read.

The store (`crawler.store`) writes runs and answers the crawl's own questions (what is done, what to
resume); everything that *reads a run back* — resolution, the networkx graph, report evidence, finding
history, remediation planning — asks this reader, so a schema change is made and checked here, next to
`store.SCHEMA`, not in five modules. The reader never writes the snapshot: the one exception is a
connection-local TEMP table for batched key lookups, which no other connection sees.

Cursors yield plain tuples: `sqlite3.Row` costs time and memory at a million rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from crawler.closing import ClosedOnExit

_ACCOUNTS = """SELECT portal, id, email, username, user_type, enabled, last_sign_in_at, created_at
               FROM lu_users WHERE run_id = ? ORDER BY portal, id"""
_IDENTITIES = """SELECT source, idp_id, raw_status, status, status_changed_at, last_login, user_type,
                 display_name FROM idp_identities WHERE run_id = ? ORDER BY source, idp_id"""
_ADDRESSES = """SELECT source, idp_id, address, is_primary, kind FROM idp_addresses
                WHERE run_id = ? ORDER BY source, idp_id, address"""
_IDENTITY_OF = """SELECT source, idp_id, raw_status, status, status_changed_at, last_login, user_type,
                   display_name FROM idp_identities WHERE run_id = ? AND source = ? AND idp_id = ?"""
_ADDRESSES_OF = """SELECT source, idp_id, address, is_primary, kind FROM idp_addresses
                   WHERE run_id = ? AND source = ? AND idp_id = ? ORDER BY address"""
_GROUPS = "SELECT portal, id, title FROM lu_groups WHERE run_id = ? {where} ORDER BY portal, id"
_COURSES = "SELECT portal, id, name, status FROM lu_courses WHERE run_id = ? {where} ORDER BY portal, id"
_MEMBERSHIPS = "SELECT portal, group_id, user_id FROM lu_memberships WHERE run_id = ? {where}"
_ENROLLMENTS = """SELECT portal, user_id, course_id, id, status, percentage, percentage_complete,
                  date_enrolled, date_completed, date_lastaccessed, unenrolled
                  FROM lu_enrollments WHERE run_id = ? {where} ORDER BY portal, id"""
_KEYS_TABLE = "temp.idgraph_finding_accounts"
HISTORY_COLUMNS = (
    "code",
    "severity",
    "email",
    "person",
    "portal",
    "learnupon_user_id",
    "user_type",
    "idp",
    "idp_status",
)
_HISTORY = f"""SELECT finding_id, {", ".join(HISTORY_COLUMNS)}, first_seen_run, last_seen_run, first_seen_at,
               last_seen_at, depends_on FROM finding_history"""


IDGRAPH_TABLES = frozenset({"meta", "runs"})  # every idgraph snapshot since schema 1 has both


class NotASnapshot(ValueError):
    """`--db` names a file that is not an idgraph snapshot: a usage error, and the file is left untouched."""


def check_snapshot(path: Path | str, *, may_be_new: bool) -> None:
    """Raise NotASnapshot unless `path` is an idgraph snapshot, reading it without writing a byte.

    A writer (`may_be_new`) may also start a new snapshot in a missing or empty file (or a SQLite file
    with no table); a reader needs one that exists. A text file, or someone else's SQLite database, is
    refused before anything opens it for writing: the store would otherwise add idgraph's tables to it,
    switch it to WAL and narrow its permissions.
    """
    path = Path(path)
    if not path.exists():
        if may_be_new:
            return
        raise NotASnapshot(f"--db: no snapshot at {path}")
    if not path.is_file():
        raise NotASnapshot(f"--db: {path} is not a file")
    if path.stat().st_size == 0:
        if may_be_new:
            return
        raise NotASnapshot(f"--db: {path} is empty, not an idgraph snapshot")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        marked = tables >= IDGRAPH_TABLES and bool(
            db.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone()
        )
    except sqlite3.DatabaseError as exc:
        if "not a database" not in str(exc):  # locked, I/O: a snapshot error, not a wrong file
            raise
        raise NotASnapshot(
            f"--db: {path} is not an idgraph snapshot (not a SQLite database); it was left untouched"
        ) from None
    finally:
        db.close()
    if marked or (may_be_new and not tables):
        return
    raise NotASnapshot(
        f"--db: {path} is a SQLite database without idgraph's tables, not an idgraph snapshot; "
        "it was left untouched"
    )


class LiveRevoke(NamedTuple):
    """An account under a reviewer's revoke decision that still stands (`SnapshotReader.live_revokes`)."""

    portal: str
    learnupon_user_id: int
    email: str | None
    finding_id: str
    code: str
    reviewer: str
    decided_at: str
    decision_id: int


class SnapshotReader(ClosedOnExit):
    """Read queries over one snapshot connection (the store's own, or a private read-only one)."""

    def __init__(self, db: sqlite3.Connection, *, owns: bool = False) -> None:
        self._db = db
        self._owns = owns

    @classmethod
    def open(cls, path: Path | str) -> SnapshotReader:
        """A private read-only connection: its temp tables never meet a writer's, and it cannot write."""
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        return cls(db, owns=True)

    def close(self) -> None:
        if self._owns:
            self._db.close()

    def _rows(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        cursor = self._db.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, params)

    def _dicts(self, sql: str, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Each row as a dict keyed by column name."""
        cursor = self._rows(sql, params)
        columns = [c[0] for c in cursor.description]
        for row in cursor:
            yield dict(zip(columns, row, strict=True))

    @staticmethod
    def _portal_filter(run_id: int, portal: str | None) -> tuple[str, tuple[Any, ...]]:
        return ("", (run_id,)) if portal is None else ("AND portal = ?", (run_id, portal))

    # --- resolution: (portal, id, email, username, user_type, enabled, last_sign_in_at, created_at) … -----
    def accounts(self, run_id: int) -> sqlite3.Cursor:
        return self._rows(_ACCOUNTS, (run_id,))

    def identities(self, run_id: int) -> sqlite3.Cursor:
        return self._rows(_IDENTITIES, (run_id,))

    def addresses(self, run_id: int) -> sqlite3.Cursor:
        return self._rows(_ADDRESSES, (run_id,))

    # --- what accounts hold, for the whole run or one portal ------------------------------------------------
    def groups(self, run_id: int, portal: str | None = None) -> sqlite3.Cursor:
        """(portal, id, title)"""
        where, params = self._portal_filter(run_id, portal)
        return self._rows(_GROUPS.format(where=where), params)

    def courses(self, run_id: int, portal: str | None = None) -> sqlite3.Cursor:
        """(portal, id, name, status)"""
        where, params = self._portal_filter(run_id, portal)
        return self._rows(_COURSES.format(where=where), params)

    def memberships(self, run_id: int, portal: str | None = None) -> sqlite3.Cursor:
        """(portal, group_id, user_id)"""
        where, params = self._portal_filter(run_id, portal)
        return self._rows(_MEMBERSHIPS.format(where=where), params)

    def enrollments(self, run_id: int, portal: str | None = None) -> sqlite3.Cursor:
        """(portal, user_id, course_id, id, status, percentage, percentage_complete, date_enrolled,
        date_completed, date_lastaccessed, unenrolled)"""
        where, params = self._portal_filter(run_id, portal)
        return self._rows(_ENROLLMENTS.format(where=where), params)

    def account_details(
        self, run_id: int, keys: Collection[tuple[str, int]]
    ) -> tuple[dict[tuple[str, int], list[str]], dict[tuple[str, int], dict[str, int]]]:
        """Group titles, and enrollment counts by status, for just these accounts (one pass per table)."""
        groups: dict[tuple[str, int], list[str]] = defaultdict(list)
        enrollments: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
        if not keys:
            return groups, enrollments
        db = self._db
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {_KEYS_TABLE}(portal TEXT, user_id INTEGER, "
            "PRIMARY KEY (portal, user_id)) WITHOUT ROWID"
        )
        db.execute("BEGIN")
        try:
            db.execute(f"DELETE FROM {_KEYS_TABLE}")
            db.executemany(f"INSERT OR IGNORE INTO {_KEYS_TABLE} VALUES (?, ?)", sorted(keys))  # 4x faster
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for portal, user_id, group_id, title in self._rows(
            f"""SELECT m.portal, m.user_id, m.group_id, g.title FROM lu_memberships m
                JOIN {_KEYS_TABLE} k ON k.portal = m.portal AND k.user_id = m.user_id
                LEFT JOIN lu_groups g ON g.run_id = m.run_id AND g.portal = m.portal AND g.id = m.group_id
                WHERE m.run_id = ?""",
            (run_id,),
        ):
            groups[(portal, user_id)].append(title if title is not None else f"group {group_id}")
        for portal, user_id, status, count in self._rows(
            f"""SELECT e.portal, e.user_id, COALESCE(e.status, 'unknown'), COUNT(*) FROM lu_enrollments e
                JOIN {_KEYS_TABLE} k ON k.portal = e.portal AND k.user_id = e.user_id
                WHERE e.run_id = ? GROUP BY e.portal, e.user_id, e.status""",
            (run_id,),
        ):
            enrollments[(portal, user_id)][status] = count
        db.execute(f"DELETE FROM {_KEYS_TABLE}")
        return groups, enrollments

    def user_records(
        self, run_id: int, keys: Iterable[tuple[str | None, int | None]]
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """The whole `lu_users` rows of just these accounts (a run can hold a million; a plan needs a few)."""
        by_portal: dict[str, list[int]] = {}
        for portal, user_id in keys:
            if portal is not None and user_id is not None:
                by_portal.setdefault(portal, []).append(user_id)
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for portal, ids in by_portal.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for record in self._dicts(
                    f"SELECT * FROM lu_users WHERE run_id = ? AND portal = ? AND id IN ({marks})",
                    (run_id, portal, *chunk),
                ):
                    out[(portal, record["id"])] = record
        return out

    def identities_of(
        self, run_id: int, keys: Iterable[tuple[str, str]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The `identities` and `addresses` rows (same columns) of just these (source, idp_id) identities:
        the few people a watch round judges, out of an estate's worth."""
        identities: list[tuple[Any, ...]] = []
        addresses: list[tuple[Any, ...]] = []
        for source, idp_id in sorted(set(keys)):
            key = (run_id, source, idp_id)
            identities += self._rows(_IDENTITY_OF, key).fetchall()
            addresses += self._rows(_ADDRESSES_OF, key).fetchall()
        return identities, addresses

    def account_enabled(self, run_id: int, portal: str, user_id: int) -> bool | None:
        """Whether the run read this account enabled; None when the run has no record of it."""
        row = self._rows(
            "SELECT enabled FROM lu_users WHERE run_id = ? AND portal = ? AND id = ?",
            (run_id, portal, user_id),
        ).fetchone()
        return None if row is None else bool(row[0])

    def known_account(self, run_id: int, portal: str) -> tuple[int, str] | None:
        """One account of the portal the run read with an email, (id, email): a search for it must find it."""
        row = self._rows(
            "SELECT id, email FROM lu_users WHERE run_id = ? AND portal = ? AND email LIKE '%_@_%' "
            "ORDER BY id LIMIT 1",
            (run_id, portal),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    # --- runs and finding history ------------------------------------------------------------------------
    def run_started_at(self, run_id: int) -> str | None:
        row = self._rows("SELECT started_at FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def review_settings(self, run_id: int) -> tuple[list[str], int] | None:
        """(managed_domains, dormant_days) saved for the run, or None."""
        row = self._rows(
            "SELECT managed_domains, dormant_days FROM review_settings WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else (list(json.loads(row[0])), int(row[1]))

    def review_rules(self, run_id: int) -> dict[str, Any] | None:
        """The exclusion rules and exception cap saved for the run (JSON as written), or None."""
        row = self._rows("SELECT review_rules FROM review_settings WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0] or "{}"))

    # --- access review decisions (append-only) -------------------------------------------------------------
    def decisions(self) -> list[dict[str, Any]]:
        """Every decision ever imported, oldest first (`facts` parsed)."""
        out = []
        for record in self._dicts(
            "SELECT d.*, i.file_name, i.file_sha256 FROM review_decisions d "
            "JOIN review_imports i ON i.id = d.import_id ORDER BY d.id",
            (),
        ):
            record["facts"] = json.loads(record["facts"])
            out.append(record)
        return out

    def review_imports(self) -> list[dict[str, Any]]:
        """Every reviewer file imported, oldest first, with its bytes as received."""
        return list(self._dicts("SELECT * FROM review_imports ORDER BY id", ()))

    def live_revokes(self) -> list[LiveRevoke]:
        """Accounts under a live `revoke` decision: the latest decision on one of its findings is revoke.

        For watchers: such an account must stay disabled, and re-enabling it is worth an alert. A revoke
        stays live after the account is disabled (and its finding resolved) until a reviewer decides
        otherwise on that finding (`idgraph review import` of a keep or an exception). One row per
        account: its latest live revoke.
        """
        rows = self._rows(
            """SELECT d.portal, d.learnupon_user_id, d.email, d.finding_id, d.code, d.reviewer, d.decided_at,
                      d.id
               FROM review_decisions d
               WHERE d.decision = 'revoke' AND d.portal IS NOT NULL AND d.learnupon_user_id IS NOT NULL
                 AND d.id = (SELECT MAX(x.id) FROM review_decisions x WHERE x.finding_id = d.finding_id)
               ORDER BY d.portal, d.learnupon_user_id, d.id""",
            (),
        )
        latest = {(r[0], r[1]): LiveRevoke(*r) for r in rows}
        return list(latest.values())

    def history(self) -> list[tuple[Any, ...]]:
        """finding_history rows: (finding_id, *HISTORY_COLUMNS, first/last seen run, first/last seen at,
        depends_on as JSON)."""
        return self._rows(_HISTORY, ()).fetchall()

    def recorded_findings(self, run_id: int) -> set[str] | None:
        """The finding ids a recorded run produced; None if its findings were never recorded."""
        if self._rows("SELECT 1 FROM finding_runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            return None
        return {
            r[0] for r in self._rows("SELECT finding_id FROM finding_occurrences WHERE run_id = ?", (run_id,))
        }

    def withheld(self, run_id: int) -> list[dict[str, str]]:
        """The verdicts a recorded run withheld (`Unavailable` as dicts)."""
        row = self._rows("SELECT unavailable FROM finding_runs WHERE run_id = ?", (run_id,)).fetchone()
        return [] if row is None else list(json.loads(row[0]))

    def previous_recorded_run(self, run_id: int) -> int | None:
        """The newest recorded crawl before `run_id`: a watch round's incremental run read a few people,
        so what it did not find says nothing about the rest (it is never the run a diff compares with)."""
        row = self._rows(
            """SELECT MAX(f.run_id) FROM finding_runs f JOIN runs r ON r.id = f.run_id
               WHERE f.run_id < ? AND r.kind = 'full'""",
            (run_id,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def run_kind(self, run_id: int) -> str | None:
        """`full` (a crawl) or `incremental` (a watch round); None for a run that does not exist."""
        row = self._rows("SELECT kind FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])
