"""The snapshot store: one SQLite file, one run per crawl, the single source of truth downstream.

Every record carries its run id and source. A page lands atomically with its collection's progress (and
"done" with the collection's last page); pages are group-committed — held in memory for at most
`FLUSH_SECONDS` or `FLUSH_ROWS` rows, and always before any read — because one transaction per page was
the crawler's largest cost at thousands of pages a second. An interrupted crawl loses at most those
uncommitted pages, whose collections are then not done, so a resumed crawl fetches them again.
Coverage rows say, per source, whether its crawl completed, and why not — downstream code must never read
"absent" out of an incomplete source.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from crawler.closing import ClosedOnExit
from crawler.coverage import CollectionCoverage, SourceCoverage
from crawler.private import FILE_MODE, make_private_dirs, restrict_file
from crawler.records import (
    Identity,
    LUCourse,
    LUEnrollment,
    LUGroup,
    LUMembership,
    LUUser,
    canonical_utc,
)
from crawler.redact import redact, redact_optional
from crawler.runs import QuarantineReason, QuarantineSummary, RunInfo, utcnow
from crawler.snapshot_reader import SnapshotReader, check_snapshot

# 2: coverage.collections, quarantine.addresses and quarantine.label. The finding-history tables joined
# this schema later without a new version: graph.history of schema 2 created the same tables itself. So did
# the review tables (decisions, imports) and review_settings.review_rules: an older idgraph ignores them.
# 3: runs.kind (`full` crawls and the watcher's `incremental` runs) and the watcher's tables (watch_*).
SCHEMA_VERSION = 3
FULL, INCREMENTAL = "full", "incremental"  # runs.kind
FLUSH_SECONDS = 0.25  # the longest a written page waits in memory, while writes keep coming
FLUSH_ROWS = 5_000
BUSY_TIMEOUT_SECONDS = 5.0  # how long a writer waits for another's commit before it fails
BUSY_POLL_SECONDS = 0.002  # the longest pause between two tries of the write lock
# Columns added since schema 1, each with the definition an older snapshot gets on opening (`_migrate`).
ADDED_COLUMNS = (
    ("coverage", "collections", "TEXT NOT NULL DEFAULT '[]'"),
    ("quarantine", "addresses", "TEXT NOT NULL DEFAULT '[]'"),
    ("quarantine", "label", "TEXT"),
    ("finding_history", "depends_on", "TEXT"),  # recorded by an idgraph that did not keep dependencies
    ("review_settings", "review_rules", "TEXT NOT NULL DEFAULT '{}'"),  # saved before exclusion rules
    ("runs", "kind", "TEXT NOT NULL DEFAULT 'full'"),  # every run before schema 3 was a crawl
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,               -- running | complete | incomplete
    config_fingerprint TEXT,
    kind TEXT NOT NULL DEFAULT 'full'   -- full (a crawl) | incremental (what one watch round read)
);
CREATE TABLE IF NOT EXISTS coverage (
    run_id INTEGER NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0, error TEXT,
    requests INTEGER NOT NULL DEFAULT 0, requests_by_purpose TEXT NOT NULL DEFAULT '{}',
    throttled INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0,
    drift_events INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0, started_at TEXT, finished_at TEXT,
    notes TEXT NOT NULL DEFAULT '[]', collections TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, source)
);
CREATE TABLE IF NOT EXISTS collections (
    run_id INTEGER NOT NULL, source TEXT NOT NULL, collection TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, pages INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, source, collection)
);
CREATE TABLE IF NOT EXISTS lu_users (
    run_id INTEGER NOT NULL, portal TEXT NOT NULL, id INTEGER NOT NULL,
    email TEXT, username TEXT, first_name TEXT, last_name TEXT, user_type TEXT, enabled INTEGER,
    last_sign_in_at TEXT, created_at TEXT, updated_at TEXT, sign_in_count INTEGER,
    number_of_enrollments INTEGER,
    PRIMARY KEY (run_id, portal, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lu_groups (
    run_id INTEGER NOT NULL, portal TEXT NOT NULL, id INTEGER NOT NULL,
    title TEXT, number_of_members INTEGER,
    PRIMARY KEY (run_id, portal, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lu_courses (
    run_id INTEGER NOT NULL, portal TEXT NOT NULL, id INTEGER NOT NULL, name TEXT, status TEXT,
    PRIMARY KEY (run_id, portal, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lu_enrollments (
    run_id INTEGER NOT NULL, portal TEXT NOT NULL, id INTEGER NOT NULL,
    course_id INTEGER NOT NULL, user_id INTEGER NOT NULL, course_name TEXT, status TEXT,
    percentage REAL, percentage_complete REAL, date_enrolled TEXT, date_completed TEXT,
    date_lastaccessed TEXT, unenrolled INTEGER,
    PRIMARY KEY (run_id, portal, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lu_memberships (
    run_id INTEGER NOT NULL, portal TEXT NOT NULL, group_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
    membership_id INTEGER,
    PRIMARY KEY (run_id, portal, group_id, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idp_identities (
    run_id INTEGER NOT NULL, source TEXT NOT NULL, idp_id TEXT NOT NULL,
    raw_status TEXT NOT NULL, status TEXT NOT NULL, status_changed_at TEXT, last_login TEXT,
    user_type TEXT, display_name TEXT,
    PRIMARY KEY (run_id, source, idp_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idp_addresses (
    run_id INTEGER NOT NULL, source TEXT NOT NULL, idp_id TEXT NOT NULL,
    address TEXT NOT NULL, is_primary INTEGER NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (run_id, source, idp_id, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    run_id INTEGER NOT NULL, source TEXT NOT NULL, collection TEXT NOT NULL,
    reason TEXT NOT NULL, record TEXT,
    addresses TEXT NOT NULL DEFAULT '[]',  -- JSON list of the casefolded addresses the record carries
    label TEXT                             -- a short identifier for reviewers: an id, an email, a row
);
CREATE TABLE IF NOT EXISTS rate_state (
    source TEXT PRIMARY KEY, rate_per_second REAL NOT NULL, updated_at TEXT NOT NULL
);
-- What the review side recorded about each run (graph.history writes them through `transaction`).
CREATE TABLE IF NOT EXISTS finding_history (
    finding_id TEXT PRIMARY KEY, code TEXT NOT NULL, severity TEXT, email TEXT, person TEXT, portal TEXT,
    learnupon_user_id INTEGER, user_type TEXT, idp TEXT, idp_status TEXT,
    first_seen_run INTEGER NOT NULL, last_seen_run INTEGER NOT NULL,
    first_seen_at TEXT, last_seen_at TEXT, depends_on TEXT
);
CREATE TABLE IF NOT EXISTS finding_occurrences (
    run_id INTEGER NOT NULL, finding_id TEXT NOT NULL, PRIMARY KEY (run_id, finding_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS finding_occurrences_by_id ON finding_occurrences(finding_id, run_id);
CREATE TABLE IF NOT EXISTS finding_runs (
    run_id INTEGER PRIMARY KEY, findings INTEGER NOT NULL, unavailable TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS review_settings (
    run_id INTEGER PRIMARY KEY, managed_domains TEXT NOT NULL, dormant_days INTEGER NOT NULL,
    review_rules TEXT NOT NULL DEFAULT '{}'  -- JSON: exclusion rules, max_exception_days
);
-- Access review decisions (graph.decisions), append-only: a correction is a new row naming the row it
-- supersedes, and the triggers refuse any UPDATE or DELETE. Each import keeps the reviewer's file as sent.
CREATE TABLE IF NOT EXISTS review_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, imported_at TEXT NOT NULL, reviewer TEXT NOT NULL,
    run_id INTEGER NOT NULL, file_name TEXT NOT NULL, file_sha256 TEXT NOT NULL, content BLOB NOT NULL,
    decisions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS review_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, import_id INTEGER NOT NULL REFERENCES review_imports(id),
    finding_id TEXT NOT NULL, code TEXT NOT NULL, severity TEXT NOT NULL, portal TEXT,
    learnupon_user_id INTEGER, person TEXT, email TEXT,
    decision TEXT NOT NULL,                -- revoke | keep | exception
    scope TEXT,                            -- exceptions: account | person
    reason TEXT NOT NULL, expires_at TEXT, reviewer TEXT NOT NULL, decided_at TEXT NOT NULL,
    run_id INTEGER NOT NULL,               -- the run whose facts the reviewer saw
    facts TEXT NOT NULL,                   -- JSON: those facts, compared with every later run
    supersedes INTEGER REFERENCES review_decisions(id)
);
CREATE INDEX IF NOT EXISTS review_decisions_by_finding ON review_decisions(finding_id, id);
CREATE TRIGGER IF NOT EXISTS review_decisions_append_only_u BEFORE UPDATE ON review_decisions
BEGIN SELECT RAISE(ABORT, 'review decisions are append-only: import a correction instead'); END;
CREATE TRIGGER IF NOT EXISTS review_decisions_append_only_d BEFORE DELETE ON review_decisions
BEGIN SELECT RAISE(ABORT, 'review decisions are append-only: import a correction instead'); END;
CREATE TRIGGER IF NOT EXISTS review_imports_append_only_u BEFORE UPDATE ON review_imports
BEGIN SELECT RAISE(ABORT, 'review imports are append-only'); END;
CREATE TRIGGER IF NOT EXISTS review_imports_append_only_d BEFORE DELETE ON review_imports
BEGIN SELECT RAISE(ABORT, 'review imports are append-only'); END;
-- The watcher's state (crawler.watch.tables writes and reads them): where each feed resumes, the last
-- status each identity was asserted in, lookups still owed, the findings it opened and closed, and the
-- alerts waiting for (or done with) each sink.
CREATE TABLE IF NOT EXISTS watch_cursors (
    feed TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_identities (
    source TEXT NOT NULL, idp_id TEXT NOT NULL, status TEXT NOT NULL, raw_status TEXT NOT NULL,
    observed_at TEXT, event_key TEXT, addresses TEXT NOT NULL DEFAULT '[]', run_id INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, idp_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watch_lookups (
    source TEXT NOT NULL, idp_id TEXT NOT NULL, portal TEXT NOT NULL, address TEXT NOT NULL,
    reason TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, updated_at TEXT NOT NULL,
    PRIMARY KEY (source, idp_id, portal, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watch_findings (
    finding_id TEXT PRIMARY KEY, code TEXT NOT NULL, state TEXT NOT NULL, episode INTEGER NOT NULL,
    person TEXT, email TEXT, portal TEXT, learnupon_user_id INTEGER, identities TEXT NOT NULL,
    opened_run INTEGER NOT NULL, opened_at TEXT NOT NULL, closed_run INTEGER, closed_at TEXT,
    close_reason TEXT
);
CREATE TABLE IF NOT EXISTS watch_outbox (
    alert_id TEXT PRIMARY KEY, finding_id TEXT, kind TEXT NOT NULL, payload TEXT NOT NULL,
    run_id INTEGER, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_deliveries (
    alert_id TEXT NOT NULL, sink TEXT NOT NULL, delivered_at TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT,
    PRIMARY KEY (alert_id, sink)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS watch_deliveries_pending ON watch_deliveries(sink, delivered_at);
"""


@dataclass(frozen=True)
class _Table:
    """Where one LearnUpon record type is stored. Its fields hold storable values only (timestamps are
    canonical strings, see `records.UtcTimestamp`), so a row is the record's fields read in one C call."""

    name: str
    insert: str  # INSERT OR REPLACE with every column, run id and portal first
    fields: Callable[[Any], tuple[Any, ...]]

    @classmethod
    def of(cls, name: str, record_type: type[BaseModel]) -> _Table:
        columns = tuple(record_type.model_fields)
        placeholders = ",".join("?" * (len(columns) + 2))
        insert = f"INSERT OR REPLACE INTO {name}(run_id, portal, {','.join(columns)}) VALUES ({placeholders})"
        return cls(name, insert, attrgetter(*columns))


_TABLES: dict[type, _Table] = {
    LUUser: _Table.of("lu_users", LUUser),
    LUGroup: _Table.of("lu_groups", LUGroup),
    LUCourse: _Table.of("lu_courses", LUCourse),
    LUEnrollment: _Table.of("lu_enrollments", LUEnrollment),
    LUMembership: _Table.of("lu_memberships", LUMembership),
}


def _cell(value: datetime | None) -> str | None:
    return None if value is None else canonical_utc(value)


class SnapshotStore(ClosedOnExit):
    """Thin, explicit access to the snapshot file. One instance per process; writes are serialised."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            check_snapshot(self.path, may_be_new=True)  # never write into someone else's file
            make_private_dirs(self.path.parent)
            # The snapshot holds people's names and emails: owner-only, like the reports. SQLite gives
            # its -wal and -shm files the same permissions as the database file; an existing file that
            # is wider (an older idgraph, a copy) is narrowed first, or refused.
            for existing in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                restrict_file(existing)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, FILE_MODE))
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS
        )
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._pending = _PendingPages()
        self.lock_wait_seconds = 0.0  # time spent waiting for another process's commit (`_begin`)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
        except BaseException:  # not a database, locked, unreadable: no half-open store
            self._db.close()
            raise

    def _migrate(self) -> None:
        """Bring a snapshot written by an older idgraph up to this schema (columns are only ever added)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{self.path} was written by a newer idgraph (snapshot schema {version}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade idgraph"
            )
        with self._lock:
            self._begin()
            try:
                for table, column, definition in ADDED_COLUMNS:
                    columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                    if column not in columns:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value "
                    "WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                    (str(SCHEMA_VERSION),),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic commit: everything inside lands together or not at all.

        Pages still waiting in memory land first, in the same commit: writes stay in the order made.
        """
        with self._lock:
            self._begin()
            try:
                self._pending.write(self._db)
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._pending.clear()

    def _begin(self) -> None:
        """Take the write lock, retrying SQLITE_BUSY for up to `BUSY_TIMEOUT_SECONDS`.

        Several processes write one snapshot (`idgraph crawl --workers`). SQLite's own busy handler
        sleeps in steps of up to 100 ms, and a writer that commits often can take the lock again before
        a sleeping one wakes: a worker's event loop stood still for up to 0.35 s with two workers and
        for seconds with four (`benchmarks/snapshot_writers.py`). Here the lock is tried every
        `BUSY_POLL_SECONDS` at most, so a writer waits about as long as the other's commit takes. Every
        other statement keeps the busy handler. A lock held for the whole timeout is another program's:
        that error is raised (exit 4).
        """
        self._db.execute("PRAGMA busy_timeout = 0")
        started = time.monotonic()
        try:
            pause = BUSY_POLL_SECONDS / 8
            while True:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                    if not busy or time.monotonic() - started >= BUSY_TIMEOUT_SECONDS:
                        raise
                time.sleep(pause)
                pause = min(2 * pause, BUSY_POLL_SECONDS)
        finally:
            self.lock_wait_seconds += time.monotonic() - started
            self._db.execute(f"PRAGMA busy_timeout = {round(BUSY_TIMEOUT_SECONDS * 1000)}")

    def flush(self) -> None:
        """Commit the pages waiting in memory (a no-op when none are)."""
        if self._pending.rows or self._pending.progress:
            with self.transaction():
                pass

    def _read(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Every read sees every page written before it."""
        self.flush()
        return self._db.execute(sql, args)

    # --- runs -----------------------------------------------------------------------------------
    def start_run(
        self, sources: Sequence[tuple[str, str]], config_fingerprint: str | None = None, *, kind: str = FULL
    ) -> int:
        """Open a run and a pending coverage row for every source it will crawl (or, for an
        `incremental` run, look at)."""
        if kind not in (FULL, INCREMENTAL):
            raise ValueError(f"unknown run kind {kind!r}")
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs(started_at, status, config_fingerprint, kind) VALUES (?, 'running', ?, ?)",
                (utcnow(), config_fingerprint, kind),
            )
            run_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO coverage(run_id, source, kind, error) VALUES (?, ?, ?, 'not crawled yet')",
                [(run_id, name, kind) for name, kind in sources],
            )
        return run_id

    def finish_run(self, run_id: int, *, cut_short: bool = False) -> str:
        """Close a run; its status is `complete` only when every source completed (and, with `cut_short`,
        a run whose process died before it could say what it read, never)."""
        with self.transaction() as db:
            (incomplete,) = db.execute(
                "SELECT COUNT(*) FROM coverage WHERE run_id = ? AND complete = 0", (run_id,)
            ).fetchone()
            status = "complete" if incomplete == 0 and not cut_short else "incomplete"
            db.execute("UPDATE runs SET finished_at = ?, status = ? WHERE id = ?", (utcnow(), status, run_id))
        return status

    def runs(self, kind: str | None = None) -> list[RunInfo]:
        """Every run, oldest first; `kind` keeps only crawls (`full`) or watch rounds (`incremental`)."""
        where, args = ("", ()) if kind is None else (" WHERE kind = ?", (kind,))
        rows = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY id", args).fetchall()
        return [RunInfo(**dict(row)) for row in rows]

    def run(self, run_id: int | None = None) -> RunInfo:
        """The given run, or the newest crawl (an incremental run read a few people, not the estate);
        LookupError when there is none."""
        if run_id is None:
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE kind = ? ORDER BY id DESC LIMIT 1", (FULL,)
            ).fetchone()
        else:
            row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise LookupError(f"no run {run_id} in {self.path}" if run_id else f"no runs in {self.path}")
        return RunInfo(**dict(row))

    def latest_finished_crawl(self) -> RunInfo | None:
        """The newest full run that is not still running: what the watcher takes the estate to be."""
        row = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE kind = ? AND status != ? ORDER BY id DESC LIMIT 1",
            (FULL, "running"),
        ).fetchone()
        return None if row is None else RunInfo(**dict(row))

    def config_fingerprint(self, run_id: int) -> str | None:
        row = self._db.execute("SELECT config_fingerprint FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def reopen_run(self, run_id: int) -> None:
        """Mark a run as running again (resume)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?", (run_id,))

    # --- coverage -------------------------------------------------------------------------------
    def save_coverage(self, run_id: int, cov: SourceCoverage) -> None:
        with self.transaction() as db:
            db.execute(
                """INSERT OR REPLACE INTO coverage(run_id, source, kind, complete, error, requests,
                   requests_by_purpose, throttled, retries, drift_events, records, quarantined,
                   started_at, finished_at, notes, collections) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    run_id,
                    cov.source,
                    cov.kind,
                    int(cov.complete),
                    redact_optional(cov.error),
                    cov.requests,
                    json.dumps(cov.requests_by_purpose, sort_keys=True),
                    cov.throttled,
                    cov.retries,
                    cov.drift_events,
                    cov.records,
                    cov.quarantined,
                    cov.started_at,
                    cov.finished_at,
                    json.dumps([redact(note) for note in cov.notes]),
                    json.dumps(
                        [{**c.as_dict(), "reason": redact_optional(c.reason)} for c in cov.collections]
                    ),
                ),
            )

    def coverage(self, run_id: int) -> list[SourceCoverage]:
        rows = self._read("SELECT * FROM coverage WHERE run_id = ? ORDER BY kind, source", (run_id,))
        out = []
        for row in rows:
            data = dict(row)
            data.pop("run_id")
            data["complete"] = bool(data["complete"])
            data["requests_by_purpose"] = json.loads(data["requests_by_purpose"])
            data["notes"] = json.loads(data["notes"])
            data["collections"] = [CollectionCoverage.from_dict(c) for c in json.loads(data["collections"])]
            out.append(SourceCoverage(**data))
        return out

    # --- records --------------------------------------------------------------------------------
    def write_page(
        self, run_id: int, source: str, collection: str, records: Iterable[Any], *, done: bool = False
    ) -> int:
        """Write one page of records with the collection's progress; return the records written.

        The page lands atomically with its progress (see the module docstring for when). Rows are upserted
        on their natural key, so a record seen twice (offset drift, a re-fetch) is stored once.
        """
        statements, count = page_rows(run_id, source, records)
        self.write_rows(run_id, source, collection, statements, count, done=done)
        return count

    def write_rows(
        self, run_id: int, source: str, collection: str, statements: PageRows, count: int, *, done: bool
    ) -> None:
        """`write_page` for a page already turned into rows (`page_rows`)."""
        with self._lock:
            due = self._pending.add(statements, (run_id, source, collection, int(done), count))
        if due:
            self.flush()

    def mark_collection_done(self, run_id: int, source: str, collection: str) -> None:
        with self.transaction() as db:
            db.execute(
                """INSERT INTO collections(run_id, source, collection, done) VALUES (?, ?, ?, 1)
                   ON CONFLICT(run_id, source, collection) DO UPDATE SET done = 1""",
                (run_id, source, collection),
            )

    def drop_listing(
        self, run_id: int, portal: str, collection: str, table: str, where: dict[str, int] | None = None
    ) -> None:
        """Forget what an unfinished listing committed (its rows and progress) before it is listed again.

        A resumed listing starts from its first page, and a record the portal deleted meanwhile must not
        survive from the earlier attempt. `where` narrows the rows to that listing's (`course_id`, …).
        """
        if table not in {t.name for t in _TABLES.values()}:
            raise ValueError(f"unknown snapshot table {table!r}")
        columns = {"course_id", "user_id", "group_id"}
        filters = dict(where or {})
        if not set(filters) <= columns:
            raise ValueError(f"cannot narrow a listing by {sorted(set(filters) - columns)}")
        clause = "".join(f" AND {column} = ?" for column in filters)
        with self.transaction() as db:
            db.execute(
                f"DELETE FROM {table} WHERE run_id = ? AND portal = ?{clause}",
                (run_id, portal, *filters.values()),
            )
            db.execute(
                "DELETE FROM collections WHERE run_id = ? AND source = ? AND collection = ? AND done = 0",
                (run_id, portal, collection),
            )

    def done_collections(self, run_id: int, source: str) -> set[str]:
        rows = self._read(
            "SELECT collection FROM collections WHERE run_id = ? AND source = ? AND done = 1",
            (run_id, source),
        )
        return {row[0] for row in rows}

    def collection_progress(self, run_id: int, source: str) -> dict[str, tuple[bool, int, int]]:
        """Every listing of a source this run: name -> (done, pages, records)."""
        rows = self._read(
            "SELECT collection, done, pages, records FROM collections WHERE run_id = ? AND source = ?",
            (run_id, source),
        )
        return {row[0]: (bool(row[1]), int(row[2]), int(row[3])) for row in rows}

    def users_without_enrollment_counter(self, run_id: int, portal: str) -> int:
        """Users whose record carries no `number_of_enrollments`: the cross-check cannot vouch for them."""
        row = self._read(
            "SELECT COUNT(*) FROM lu_users WHERE run_id = ? AND portal = ? AND number_of_enrollments IS NULL",
            (run_id, portal),
        ).fetchone()
        return int(row[0])

    def quarantine(
        self,
        run_id: int,
        source: str,
        collection: str,
        reason: str,
        record: Any,
        *,
        addresses: Iterable[str] = (),
        label: str | None = None,
    ) -> None:
        """Keep a record we could not normalise, with the reason, instead of dropping it.

        `addresses` are the email addresses the record carries (stored trimmed and casefolded): a
        quarantined identity that names an address is still evidence that the person exists. `label` is a
        short identifier a reviewer can look up (an id, an email, a row number); never a secret.
        """
        keys = sorted({a.strip().casefold() for a in addresses if isinstance(a, str) and a.strip()})
        short_reason = _short(redact(reason), MAX_REASON)
        short_label = _short(redact(label), MAX_LABEL) if label else None
        with self.transaction() as db:
            db.execute(
                "INSERT INTO quarantine(run_id, source, collection, reason, record, addresses, label) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    run_id,
                    source,
                    collection,
                    short_reason,
                    redact(json.dumps(record, default=str))[:20_000],
                    json.dumps(keys),
                    short_label,
                ),
            )

    def quarantined(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM quarantine WHERE run_id = ? ORDER BY rowid", (run_id,))
        out = []
        for row in rows:
            item = dict(row)
            item["addresses"] = json.loads(item.get("addresses") or "[]")
            out.append(item)
        return out

    def quarantine_summary(self, run_id: int) -> dict[str, QuarantineSummary]:
        """Per source: how many records were quarantined and why, each distinct reason with its count
        and up to `MAX_EXAMPLES` short examples (a label, an address or an id; never the raw record).

        Counted in SQL, and only the first few records of each reason are read, however many there are.
        """
        counts = self._read(
            "SELECT source, reason, COUNT(*) AS n FROM quarantine WHERE run_id = ? GROUP BY source, reason",
            (run_id,),
        ).fetchall()
        firsts = self._read(
            """SELECT rid AS rowid, source, reason, record, addresses, label FROM (
                   SELECT rowid AS rid, source, reason, record, addresses, label,
                          ROW_NUMBER() OVER (PARTITION BY source, reason ORDER BY rowid) AS n
                   FROM quarantine WHERE run_id = ?)
               WHERE n <= ? ORDER BY source, rid""",
            (run_id, MAX_EXAMPLES),
        ).fetchall()
        examples: dict[tuple[str, str], list[str]] = {}
        for row in firsts:
            items = examples.setdefault((row["source"], row["reason"]), [])
            example = _example(row)
            if example not in items:
                items.append(example)
        per_source: dict[str, list[QuarantineReason]] = {}
        for row in counts:
            reason = QuarantineReason(
                row["reason"], int(row["n"]), examples.get((row["source"], row["reason"]), [])
            )
            per_source.setdefault(row["source"], []).append(reason)
        return {
            source: QuarantineSummary(
                count=sum(r.count for r in reasons),
                reasons=sorted(reasons, key=lambda r: (-r.count, r.reason)),
            )
            for source, reasons in sorted(per_source.items())
        }

    def quarantined_addresses(self, run_id: int) -> dict[str, list[tuple[str, str]]]:
        """Casefolded address -> [(source, reason)] for every quarantined record that carries addresses:
        a person an IdP knows, though we could not read their record."""
        rows = self._read(
            "SELECT source, reason, addresses FROM quarantine WHERE run_id = ? AND addresses != '[]' "
            "ORDER BY source, rowid",
            (run_id,),
        )
        out: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            for address in json.loads(row["addresses"]):
                entry = (row["source"], row["reason"])
                if entry not in out.setdefault(address, []):
                    out[address].append(entry)
        return out

    # --- reading --------------------------------------------------------------------------------
    def rows(self, table: str, run_id: int, source: str | None = None) -> list[sqlite3.Row]:
        """All rows of one snapshot table for a run (optionally one source)."""
        where, args = self._where(table, run_id, source)
        return self._read(f"SELECT * FROM {table} WHERE {where}", args).fetchall()

    @staticmethod
    def _where(table: str, run_id: int, source: str | None) -> tuple[str, tuple[Any, ...]]:
        known = {t.name for t in _TABLES.values()} | {"idp_identities", "idp_addresses", "collections"}
        if table not in known:
            raise ValueError(f"unknown snapshot table {table!r}")
        if source is None:
            return "run_id = ?", (run_id,)
        source_col = "portal" if table.startswith("lu_") else "source"
        return f"run_id = ? AND {source_col} = ?", (run_id, source)

    def count(self, table: str, run_id: int, source: str | None = None) -> int:
        where, args = self._where(table, run_id, source)
        return int(self._read(f"SELECT COUNT(*) FROM {table} WHERE {where}", args).fetchone()[0])

    def enrollment_count_mismatches(self, run_id: int, portal: str) -> list[int]:
        """Users whose `number_of_enrollments` differs from the enrollments crawled for them."""
        return self._count_mismatches(
            run_id, portal, "lu_users", "number_of_enrollments", "lu_enrollments", "user_id"
        )

    def member_count_mismatches(self, run_id: int, portal: str) -> list[int]:
        """Groups whose `number_of_members` differs from the members crawled for them."""
        return self._count_mismatches(
            run_id, portal, "lu_groups", "number_of_members", "lu_memberships", "group_id"
        )

    def _count_mismatches(
        self, run_id: int, portal: str, parent: str, counter: str, child: str, key: str
    ) -> list[int]:
        """Ids of `parent` rows whose LearnUpon `counter` differs from the `child` rows crawled for them
        (joined on `child.key`); rows without a counter are not judged. Names are ours, never input."""
        rows = self._read(
            f"""SELECT p.id FROM {parent} p
                LEFT JOIN (SELECT {key}, COUNT(*) AS n FROM {child}
                           WHERE run_id = ? AND portal = ? GROUP BY {key}) c ON c.{key} = p.id
                WHERE p.run_id = ? AND p.portal = ? AND p.{counter} IS NOT NULL
                  AND p.{counter} != COALESCE(c.n, 0)
                ORDER BY p.id""",
            (run_id, portal, run_id, portal),
        )
        return [row[0] for row in rows]

    def reader(self) -> SnapshotReader:
        """The read queries (`crawler.snapshot_reader`) over this store's connection, pages flushed first.

        For a file, `SnapshotReader.open(store.path)` gives a private read-only connection instead.
        """
        self.flush()
        return SnapshotReader(self._db)

    def previous_requests(self, before_run: int) -> dict[str, int]:
        """Per source, the requests its last complete crawl before `before_run` sent: what it will cost."""
        rows = self._read(
            """SELECT source, requests FROM (
                   SELECT source, requests, ROW_NUMBER() OVER (PARTITION BY source ORDER BY run_id DESC) AS n
                   FROM coverage WHERE complete = 1 AND run_id < ?)
               WHERE n = 1""",
            (before_run,),
        )
        return {row[0]: int(row[1]) for row in rows}

    # --- learned rates (kept between runs) --------------------------------------------------------
    def learned_rate(self, source: str) -> float | None:
        row = self._db.execute(
            "SELECT rate_per_second FROM rate_state WHERE source = ?", (source,)
        ).fetchone()
        return float(row[0]) if row else None

    def save_learned_rate(self, source: str, rate_per_second: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO rate_state(source, rate_per_second, updated_at) VALUES (?,?,?)",
                (source, rate_per_second, utcnow()),
            )


_RUN_COLUMNS = "id, started_at, finished_at, status, kind"
MAX_REASON = 200
MAX_LABEL = 80
MAX_EXAMPLES = 3


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _example(row: sqlite3.Row) -> str:
    """A short identifier of one quarantined record: its label and first address, else its id."""
    addresses = json.loads(row["addresses"] or "[]")
    if row["label"]:
        label = str(row["label"])
        if addresses and addresses[0] not in label.casefold():
            return _short(f"{label} ({addresses[0]})", MAX_LABEL)
        return label
    if addresses:
        return str(addresses[0])
    try:
        record = json.loads(row["record"] or "null")
    except ValueError:
        record = None
    if isinstance(record, dict):
        for key in ("id", "user_id", "idp_id"):
            value = record.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                return _short(f"{key} {value}", MAX_LABEL)
    return f"record #{row['rowid']}"


_PROGRESS = """INSERT INTO collections(run_id, source, collection, done, pages, records)
   VALUES (?, ?, ?, ?, 1, ?)
   ON CONFLICT(run_id, source, collection) DO UPDATE SET
   done = MAX(done, excluded.done), pages = pages + 1, records = records + excluded.records"""


class _PendingPages:
    """Pages written but not committed yet: rows per INSERT statement, in order, and progress rows."""

    def __init__(self) -> None:
        self.statements: dict[str, list[tuple[Any, ...]]] = {}
        self.progress: list[tuple[Any, ...]] = []
        self.rows = 0
        self.since = 0.0

    def add(self, statements: list[tuple[str, list[tuple[Any, ...]]]], progress: tuple[Any, ...]) -> bool:
        """Queue a page; True when the queue is due for a commit."""
        if not self.progress:
            self.since = time.monotonic()
        for sql, rows in statements:
            self.statements.setdefault(sql, []).extend(rows)
            self.rows += len(rows)
        self.progress.append(progress)
        return self.rows >= FLUSH_ROWS or time.monotonic() - self.since >= FLUSH_SECONDS

    def write(self, db: sqlite3.Connection) -> None:
        # Upserts of one table keep their order, so a record read twice keeps its later version.
        for sql, rows in self.statements.items():
            db.executemany(sql, rows)
        db.executemany(_PROGRESS, self.progress)

    def clear(self) -> None:
        self.statements, self.progress, self.rows = {}, [], 0


PageRows = list[tuple[str, list[tuple[Any, ...]]]]  # (INSERT statement, its rows), in order


def page_rows(run_id: int, source: str, records: Iterable[Any]) -> tuple[PageRows, int]:
    """One page of records as the INSERT statements and rows that store it, and the record count."""
    key = (run_id, source)
    count = 0
    statements: PageRows = []
    by_table: dict[type, list[Any]] = {}
    for record in records:
        by_table.setdefault(type(record), []).append(record)
    for record_type, items in by_table.items():
        if record_type is Identity:
            statements += _identity_rows(key, items)
        else:
            table = _TABLES[record_type]
            statements.append((table.insert, [key + table.fields(r) for r in items]))
        count += len(items)
    return statements, count


def _identity_rows(key: tuple[int, str], items: list[Identity]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    identities = [
        (
            *key,
            i.idp_id,
            i.raw_status,
            i.status.value,
            _cell(i.status_changed_at),
            _cell(i.last_login),
            i.user_type,
            i.display_name,
        )
        for i in items
    ]
    addresses = [(*key, i.idp_id, a.address, int(a.primary), a.kind) for i in items for a in i.addresses]
    return [
        (
            """INSERT OR REPLACE INTO idp_identities(run_id, source, idp_id, raw_status, status,
               status_changed_at, last_login, user_type, display_name) VALUES (?,?,?,?,?,?,?,?,?)""",
            identities,
        ),
        (
            "INSERT OR REPLACE INTO idp_addresses(run_id, source, idp_id, address, is_primary, kind) "
            "VALUES (?,?,?,?,?,?)",
            addresses,
        ),
    ]
