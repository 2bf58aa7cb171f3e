"""Interruptions and a failing snapshot: Ctrl-C stops cleanly and resumes; SQLite errors are one line."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from lu_helpers import WINDOW, assert_snapshot_equals_truth, config_for, make_portal
from test_resume import done_collections, start_crawl, write_config

from crawler.orchestrator import config_fingerprint, crawl
from crawler.records import LUEnrollment, LUMembership, LUUser
from crawler.simulator.faults import FaultConfig
from crawler.simulator.population import generate_population
from crawler.simulator.server import make_portals, run_simulator
from crawler.store import SnapshotStore


async def test_ctrl_c_mid_crawl_exits_130_with_a_resume_hint_and_the_run_resumes(tmp_path: Path) -> None:
    portals = make_portals(["emea", "apac"], users=300, seed=5, page_size=20, groups=20, courses=20)
    for portal in portals:
        portal.faults = FaultConfig(latency=0.02)
    db = tmp_path / "snap.db"
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        config = tmp_path / "idgraph.toml"
        env = write_config(config, sim, portals)
        # With the live progress display: the path whose store used to close under running sources.
        first = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "idgraph.cli", "crawl", "--config", str(config), "--db", str(db),
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for _ in range(600):
            await asyncio.sleep(0.05)
            if len(done_collections(db)) >= 8:
                break
        first.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(first.communicate(), timeout=60)
        stderr = err.decode()
        assert first.returncode == 130, stderr
        assert "Traceback" not in stderr, stderr
        assert "interrupted — resume with `idgraph crawl --resume 1`" in stderr, stderr
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            (status,) = conn.execute("SELECT status FROM runs WHERE id = 1").fetchone()
        assert status == "incomplete"  # never left "running"

        second = await start_crawl(config, db, env, "--resume", "1")
        _, err = await asyncio.wait_for(second.communicate(), timeout=180)
        assert second.returncode == 0, err.decode()
    with SnapshotStore(db) as store:
        assert [run.id for run in store.runs()] == [1]
        for portal in portals:
            assert_snapshot_equals_truth(store, 1, portal)


async def _crawl_cli(db: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    config = tmp_path / "idgraph.toml"
    config.write_text(
        '[[portals]]\nname = "emea"\nbase_url = "http://127.0.0.1:9/emea"\n'
        'username_env = "LU_U"\npassword_env = "LU_P"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.cli", "crawl", "--config", str(config), "--db", str(db), "--quiet",
        *args,
        env={**os.environ, "LU_U": "u", "LU_P": "p"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, err.decode()


async def test_a_locked_snapshot_is_one_line_and_exit_4(tmp_path: Path) -> None:
    db = tmp_path / "snap.db"
    with SnapshotStore(db):
        pass
    holder = sqlite3.connect(db, timeout=0, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, stderr = await _crawl_cli(db, tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 4, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("idgraph: snapshot error:"), stderr
    assert "database is locked" in stderr


async def test_a_file_that_is_not_sqlite_is_one_line_exit_2_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("these are my notes, not a database\n" * 200)
    db.chmod(0o644)
    before = (db.read_bytes(), db.stat().st_mode, db.stat().st_mtime_ns)
    code, stderr = await _crawl_cli(db, tmp_path)
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not an idgraph snapshot" in lines[0], stderr
    report = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.cli", "report", "--db", str(db), "--out", str(tmp_path / "out"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(report.communicate(), timeout=60)
    assert report.returncode == 2, err.decode()
    assert "Traceback" not in err.decode() and "not an idgraph snapshot" in err.decode()
    assert (db.read_bytes(), db.stat().st_mode, db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idgraph.toml", "notes.db"]  # no -wal, no out/


async def test_a_resumed_half_listed_collection_keeps_no_record_the_portal_deleted(tmp_path: Path) -> None:
    population = generate_population(seed=3, size=200)
    portal = make_portal("emea", population, seed=1, users=120, page_size=20, groups=4, courses=4)
    group_id = next(iter(portal.data.groups))
    course_id = next(iter(portal.data.visible_course_ids()))
    ghost = 9_999_999  # listed by the interrupted attempt, deleted from the portal before the resume
    async with run_simulator([portal], window_seconds=WINDOW) as sim:
        config = config_for(sim, [portal])
        with SnapshotStore(tmp_path / "s.db") as store:
            run_id = store.start_run([("emea", "learnupon")], config_fingerprint(config))
            # The first attempt committed one page of each of these listings, then was killed.
            store.write_page(run_id, "emea", "users", [LUUser(id=ghost, user_type="learner", enabled=True)])
            store.write_page(
                run_id, "emea", f"members:{group_id}", [LUMembership(group_id=group_id, user_id=ghost)]
            )
            store.write_page(
                run_id,
                "emea",
                f"enrollments:course_id:{course_id}",
                [LUEnrollment(id=ghost, course_id=course_id, user_id=ghost)],
            )
            store.flush()
            result = await crawl(config, store, resume_run=run_id)
            assert result.complete, [c.error for c in result.coverage]
            assert_snapshot_equals_truth(store, run_id, portal)
