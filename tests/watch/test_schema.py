"""Schema 3: `runs.kind` joins an older snapshot (every earlier run was a crawl), and the newest run, the
run list and diffs mean crawls unless asked otherwise."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crawler.store import FULL, INCREMENTAL, SCHEMA_VERSION, SnapshotStore

SCHEMA_2_RUNS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '2');
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT,
                   status TEXT NOT NULL, config_fingerprint TEXT);
INSERT INTO runs(started_at, finished_at, status)
    VALUES ('2026-06-01T00:00:00Z', '2026-06-01T00:10:00Z', 'complete');
"""


def schema_2_snapshot(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_2_RUNS)
    db.close()
    return path


def test_a_schema_2_snapshot_gains_run_kinds_and_keeps_its_runs(tmp_path: Path) -> None:
    path = schema_2_snapshot(tmp_path / "old.db")
    with SnapshotStore(path) as store:
        [old] = store.runs()
        assert store.schema_version() == SCHEMA_VERSION == 3
        assert (old.id, old.kind, old.status) == (1, FULL, "complete")
        watch_run = store.start_run([], kind=INCREMENTAL)
        store.finish_run(watch_run)
        assert store.run().id == 1  # the newest crawl, not the watch round
        assert store.run(watch_run).kind == INCREMENTAL
        assert [r.id for r in store.runs(INCREMENTAL)] == [watch_run]
        assert store.latest_finished_crawl() == old
    with SnapshotStore(path) as store:  # opened again: migrated once
        assert store.schema_version() == 3 and len(store.runs()) == 2


def test_a_crawl_still_running_is_not_what_the_watcher_stands_on(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s.db") as store:
        first = store.start_run([("emea", "learnupon")])
        store.finish_run(first)
        store.start_run([("emea", "learnupon")])  # another process is crawling
        assert store.latest_finished_crawl().id == first
