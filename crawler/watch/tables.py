"""The watcher's SQL, beside the schema (`crawler.store.SCHEMA`, the `watch_*` tables) like `review_tables`.

Writes take the connection of a transaction the caller holds (`SnapshotStore.transaction`), so what one
change leads to — the identity's new status, the lookups still owed, the findings opened or closed, their
alerts in the outbox, the finding history of the incremental run — lands in one commit or not at all.
Reads open their own short transaction. Rows arrive and leave as plain values.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crawler.runs import utcnow
from crawler.store import SnapshotStore


# --- cursors --------------------------------------------------------------------------------------------
def load_cursor(store: SnapshotStore, feed: str) -> str | None:
    with store.transaction() as db:
        row = db.execute("SELECT cursor FROM watch_cursors WHERE feed = ?", (feed,)).fetchone()
    return None if row is None else str(row[0])


def save_cursor(store: SnapshotStore, feed: str, cursor: str) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO watch_cursors(feed, cursor, updated_at) VALUES (?, ?, ?)",
            (feed, cursor, utcnow()),
        )


# --- the last status each identity was asserted in ------------------------------------------------------
@dataclass(frozen=True)
class AssertedStatus:
    """What a feed last said of one identity, and in which incremental run it was recorded."""

    source: str
    idp_id: str
    status: str
    raw_status: str
    observed_at: str | None
    event_key: str | None
    addresses: tuple[str, ...]
    run_id: int | None  # the incremental run that recorded it (None: not recorded yet)

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.idp_id)


_STATUS_COLUMNS = "source, idp_id, status, raw_status, observed_at, event_key, addresses, run_id"


def _asserted(row: Sequence[Any]) -> AssertedStatus:
    source, idp_id, status, raw, observed, key, addresses, run_id = row
    return AssertedStatus(source, idp_id, status, raw, observed, key, tuple(json.loads(addresses)), run_id)


def asserted_status(store: SnapshotStore, source: str, idp_id: str) -> AssertedStatus | None:
    with store.transaction() as db:
        row = db.execute(
            f"SELECT {_STATUS_COLUMNS} FROM watch_identities WHERE source = ? AND idp_id = ?",
            (source, idp_id),
        ).fetchone()
    return None if row is None else _asserted(row)


def asserted_since(store: SnapshotStore, run_id: int) -> list[AssertedStatus]:
    """Every status recorded by an incremental run after `run_id` (the crawl the watcher stands on)."""
    with store.transaction() as db:
        rows = db.execute(
            f"SELECT {_STATUS_COLUMNS} FROM watch_identities WHERE run_id > ? ORDER BY source, idp_id",
            (run_id,),
        ).fetchall()
    return [_asserted(r) for r in rows]


def assert_status(db: sqlite3.Connection, status: AssertedStatus) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO watch_identities({_STATUS_COLUMNS}, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            status.source,
            status.idp_id,
            status.status,
            status.raw_status,
            status.observed_at,
            status.event_key,
            json.dumps(list(status.addresses)),
            status.run_id,
            utcnow(),
        ),
    )


# --- lookups still owed (a portal that failed: retried next round, never "no account") -----------------
@dataclass(frozen=True)
class OwedLookup:
    source: str
    idp_id: str
    portal: str
    address: str
    reason: str
    attempts: int


def owed_lookups(store: SnapshotStore) -> list[OwedLookup]:
    with store.transaction() as db:
        rows = db.execute(
            "SELECT source, idp_id, portal, address, reason, attempts FROM watch_lookups "
            "ORDER BY source, idp_id, portal, address"
        ).fetchall()
    return [OwedLookup(*r) for r in rows]


def owe_lookup(
    db: sqlite3.Connection, source: str, idp_id: str, portal: str, address: str, reason: str
) -> None:
    db.execute(
        """INSERT INTO watch_lookups(source, idp_id, portal, address, reason, attempts, updated_at)
           VALUES (?, ?, ?, ?, ?, 1, ?)
           ON CONFLICT(source, idp_id, portal, address) DO UPDATE SET
           reason = excluded.reason, attempts = attempts + 1, updated_at = excluded.updated_at""",
        (source, idp_id, portal, address, reason, utcnow()),
    )


def settle_lookups(db: sqlite3.Connection, source: str, idp_id: str, done: Iterable[tuple[str, str]]) -> None:
    """Forget owed lookups that have now been answered: (portal, address) pairs, or every one of the
    identity's when `done` names (`*`, `*`)."""
    for portal, address in done:
        if (portal, address) == ("*", "*"):
            db.execute("DELETE FROM watch_lookups WHERE source = ? AND idp_id = ?", (source, idp_id))
        else:
            db.execute(
                "DELETE FROM watch_lookups WHERE source = ? AND idp_id = ? AND portal = ? AND address = ?",
                (source, idp_id, portal, address),
            )


# --- the findings the watcher opened and closed -------------------------------------------------------
@dataclass(frozen=True)
class WatchFinding:
    finding_id: str
    code: str
    state: str  # open | closed
    episode: int  # how many times it was opened: a finding closed and opened again alerts again
    person: str | None
    email: str | None
    portal: str | None
    learnupon_user_id: int | None
    identities: tuple[str, ...]  # "source:idp_id" of the identities the verdict rested on
    opened_run: int
    opened_at: str
    closed_run: int | None
    closed_at: str | None
    close_reason: str | None


_FINDING_COLUMNS = (
    "finding_id, code, state, episode, person, email, portal, learnupon_user_id, identities, opened_run, "
    "opened_at, closed_run, closed_at, close_reason"
)


def _watch_finding(row: Sequence[Any]) -> WatchFinding:
    values = list(row)
    values[8] = tuple(json.loads(values[8]))
    return WatchFinding(*values)


def watch_findings(store: SnapshotStore, state: str | None = None) -> list[WatchFinding]:
    where, args = ("", ()) if state is None else (" WHERE state = ?", (state,))
    with store.transaction() as db:
        rows = db.execute(f"SELECT {_FINDING_COLUMNS} FROM watch_findings{where} ORDER BY rowid", args)
        return [_watch_finding(r) for r in rows.fetchall()]


def finding_state(db: sqlite3.Connection, finding_id: str) -> WatchFinding | None:
    row = db.execute(
        f"SELECT {_FINDING_COLUMNS} FROM watch_findings WHERE finding_id = ?", (finding_id,)
    ).fetchone()
    return None if row is None else _watch_finding(row)


def open_findings_of(db: sqlite3.Connection, identity: str) -> list[WatchFinding]:
    """The open findings whose verdict rested on `identity` ("source:idp_id")."""
    rows = db.execute(
        f"""SELECT {_FINDING_COLUMNS} FROM watch_findings, json_each(watch_findings.identities) AS i
            WHERE state = 'open' AND i.value = ? ORDER BY watch_findings.rowid""",
        (identity,),
    ).fetchall()
    return [_watch_finding(r) for r in rows]


def open_finding(db: sqlite3.Connection, finding: WatchFinding) -> None:
    db.execute(
        f"""INSERT INTO watch_findings({_FINDING_COLUMNS}) VALUES ({",".join("?" * 14)})
            ON CONFLICT(finding_id) DO UPDATE SET state = 'open', episode = excluded.episode,
            person = excluded.person, email = excluded.email, identities = excluded.identities,
            opened_run = excluded.opened_run, opened_at = excluded.opened_at,
            closed_run = NULL, closed_at = NULL, close_reason = NULL""",
        (
            finding.finding_id,
            finding.code,
            "open",
            finding.episode,
            finding.person,
            finding.email,
            finding.portal,
            finding.learnupon_user_id,
            json.dumps(list(finding.identities)),
            finding.opened_run,
            finding.opened_at,
            None,
            None,
            None,
        ),
    )


def close_finding(db: sqlite3.Connection, finding_id: str, run_id: int | None, reason: str) -> None:
    db.execute(
        "UPDATE watch_findings SET state = 'closed', closed_run = ?, closed_at = ?, close_reason = ? "
        "WHERE finding_id = ?",
        (run_id, utcnow(), reason, finding_id),
    )


# --- the outbox -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutboxAlert:
    alert_id: str
    finding_id: str | None
    kind: str
    payload: str  # the JSON every sink receives, fixed when the alert was written
    attempts: int = 0


def enqueue(
    db: sqlite3.Connection,
    alert_id: str,
    finding_id: str | None,
    kind: str,
    payload: str,
    run_id: int | None,
    sinks: Iterable[str],
) -> bool:
    """Add an alert and one pending delivery per sink; False (nothing added) when it is there already."""
    added = db.execute(
        "INSERT OR IGNORE INTO watch_outbox(alert_id, finding_id, kind, payload, run_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (alert_id, finding_id, kind, payload, run_id, utcnow()),
    ).rowcount
    if added:
        db.executemany(
            "INSERT OR IGNORE INTO watch_deliveries(alert_id, sink) VALUES (?, ?)",
            [(alert_id, sink) for sink in sinks],
        )
    return bool(added)


def due_deliveries(store: SnapshotStore, sink: str, now: float, limit: int = 100) -> list[OutboxAlert]:
    """The sink's undelivered alerts in the order they were written, up to the first one still backing
    off: a sink gets its alerts in order, so a later one never overtakes one that failed."""
    with store.transaction() as db:
        rows = db.execute(
            """SELECT o.alert_id, o.finding_id, o.kind, o.payload, d.attempts, d.next_attempt_at
               FROM watch_deliveries d JOIN watch_outbox o ON o.alert_id = d.alert_id
               WHERE d.sink = ? AND d.delivered_at IS NULL ORDER BY o.rowid LIMIT ?""",
            (sink, limit),
        ).fetchall()
    due = []
    for *alert, retry_at in rows:
        if retry_at > now:
            break
        due.append(OutboxAlert(*alert))
    return due


def undelivered(store: SnapshotStore, sinks: Sequence[str]) -> dict[str, int]:
    """Per sink, how many alerts wait for it (due or backing off)."""
    out = dict.fromkeys(sinks, 0)
    with store.transaction() as db:
        for sink, count in db.execute(
            "SELECT sink, COUNT(*) FROM watch_deliveries WHERE delivered_at IS NULL GROUP BY sink"
        ):
            if sink in out:
                out[sink] = int(count)
    return out


def mark_delivered(store: SnapshotStore, alert_id: str, sink: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE watch_deliveries SET delivered_at = ?, attempts = attempts + 1, last_error = NULL "
            "WHERE alert_id = ? AND sink = ?",
            (utcnow(), alert_id, sink),
        )


def mark_failed(store: SnapshotStore, alert_id: str, sink: str, error: str, retry_at: float) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE watch_deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE alert_id = ? AND sink = ?",
            (error[:300], retry_at, alert_id, sink),
        )


def outbox(store: SnapshotStore) -> list[dict[str, Any]]:
    """Every alert with its deliveries (for tests, benchmarks and `watch --once` summaries)."""
    with store.transaction() as db:
        rows = db.execute(
            """SELECT o.alert_id, o.finding_id, o.kind, o.run_id, o.created_at, d.sink, d.delivered_at,
                      d.attempts, d.last_error
               FROM watch_outbox o LEFT JOIN watch_deliveries d ON d.alert_id = o.alert_id
               ORDER BY o.rowid, d.sink"""
        ).fetchall()
    keys = (
        "alert_id",
        "finding_id",
        "kind",
        "run_id",
        "created_at",
        "sink",
        "delivered_at",
        "attempts",
        "error",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]
