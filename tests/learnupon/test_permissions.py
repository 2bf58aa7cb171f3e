"""The snapshot and what idgraph creates beside it are owner-only: files 0600, directories 0700."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from lu_helpers import WINDOW, config_for, make_portal

from crawler.orchestrator import crawl
from crawler.simulator.population import generate_population
from crawler.simulator.server import run_simulator
from crawler.store import SnapshotStore
from graph.reports.safe_files import ensure_private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_an_existing_world_readable_snapshot_is_0600_after_a_crawl(tmp_path: Path) -> None:
    db = tmp_path / "snap.db"
    with SnapshotStore(db) as store:  # an earlier snapshot, left 0644 (an older idgraph, a copy)
        store.start_run([("old", "learnupon")])
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists():
            os.chmod(path, 0o644)
    population = generate_population(seed=3, size=60)
    portals = [make_portal("emea", population, seed=1, users=40, page_size=20, groups=2, courses=2)]
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        with SnapshotStore(db) as store:
            assert (await crawl(config_for(sim, portals), store)).complete
            for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                if path.exists():
                    assert mode(path) == 0o600, (path, oct(mode(path)))
    assert mode(db) == 0o600


def test_the_directories_a_snapshot_needs_are_created_0700(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "snap.db"
    with SnapshotStore(db):
        pass
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700
    assert mode(db) == 0o600


def test_report_directories_and_their_parents_are_created_0700(tmp_path: Path) -> None:
    ensure_private_dir(tmp_path / "x" / "y" / "report")
    for path in (tmp_path / "x", tmp_path / "x" / "y", tmp_path / "x" / "y" / "report"):
        assert mode(path) == 0o700, path


def test_a_wide_snapshot_that_cannot_be_narrowed_is_refused(tmp_path: Path, monkeypatch) -> None:
    from crawler.private import PermissionsError

    db = tmp_path / "snap.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)

    def refuse(path, mode, *args, **kwargs):
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(PermissionsError, match=r"readable by others \(mode 0644\).*chmod 600"):
        SnapshotStore(db)
