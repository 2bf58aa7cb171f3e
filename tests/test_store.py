"""The snapshot store's group commit: pages wait in memory briefly, but no read and no commit misses one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crawler.records import LUUser
from crawler.store import FLUSH_ROWS, SnapshotStore


def _user(n: int) -> LUUser:
    return LUUser(id=n, email=f"u{n}@acme.com", enabled=True, user_type="learner")


def _committed(path: Path, sql: str) -> list[tuple]:
    """What another process would see: only committed data."""
    with sqlite3.connect(path) as other:
        return other.execute(sql).fetchall()


def test_pages_land_with_their_progress_and_every_read_sees_them(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SnapshotStore(path) as store:
        run = store.start_run([("emea", "learnupon")])
        store.write_page(run, "emea", "users", [_user(1), _user(2)])
        store.write_page(run, "emea", "users", [_user(2), _user(3)], done=True)
        assert _committed(path, "SELECT COUNT(*) FROM lu_users") == [(0,)]  # waiting in memory
        assert store.count("lu_users", run, "emea") == 3  # a read commits first
        assert _committed(path, "SELECT done, pages, records FROM collections") == [(1, 2, 4)]
        assert store.done_collections(run, "emea") == {"users"}


def test_a_failed_transaction_keeps_the_waiting_pages(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SnapshotStore(path) as store:
        run = store.start_run([("emea", "learnupon")])
        store.write_page(run, "emea", "users", [_user(1)], done=True)
        with pytest.raises(RuntimeError), store.transaction():
            raise RuntimeError("boom")
        assert _committed(path, "SELECT COUNT(*) FROM lu_users") == [(0,)]
        store.flush()
        assert _committed(path, "SELECT id FROM lu_users") == [(1,)]


def test_a_large_batch_commits_on_its_own_and_close_commits_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SnapshotStore(path) as store:
        run = store.start_run([("emea", "learnupon")])
        store.write_page(run, "emea", "users", [_user(n) for n in range(FLUSH_ROWS)])
        assert _committed(path, "SELECT COUNT(*) FROM lu_users") == [(FLUSH_ROWS,)]
        store.write_page(run, "emea", "users", [_user(FLUSH_ROWS)], done=True)
    assert _committed(path, "SELECT COUNT(*) FROM lu_users") == [(FLUSH_ROWS + 1,)]
