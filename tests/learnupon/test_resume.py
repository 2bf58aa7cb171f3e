"""A crawl killed with SIGKILL resumes with `idgraph crawl --resume` and refetches nothing committed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from lu_helpers import assert_snapshot_equals_truth

from crawler.simulator.faults import FaultConfig
from crawler.simulator.server import make_portals, run_simulator
from crawler.store import SnapshotStore

WINDOW = 1.0


def write_config(path: Path, sim, portals) -> dict[str, str]:
    env, blocks = {}, []
    for portal in portals:
        name = portal.spec.name
        env[f"LU_{name.upper()}_U"], env[f"LU_{name.upper()}_P"] = portal.spec.username, portal.spec.password
        blocks.append(
            f'[[portals]]\nname = "{name}"\nbase_url = "{sim.base_url(name)}"\n'
            f'username_env = "LU_{name.upper()}_U"\npassword_env = "LU_{name.upper()}_P"\n'
            f"rate_window_seconds = {WINDOW}\n"
        )
    path.write_text("\n".join(blocks))
    return env


def done_collections(db: Path) -> set[tuple[str, str]]:
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return {
                (s, c) for s, c in conn.execute("SELECT source, collection FROM collections WHERE done = 1")
            }
    except sqlite3.OperationalError:
        return set()


async def start_crawl(config: Path, db: Path, env: dict[str, str], *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.cli", "crawl", "--config", str(config), "--db", str(db), "--quiet",
        *extra,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_sigkill_then_resume_finishes_without_refetching(tmp_path: Path) -> None:
    portals = make_portals(["emea", "apac"], users=400, seed=5, page_size=20, groups=30, courses=30)
    for portal in portals:
        portal.faults = FaultConfig(latency=0.02)  # slow enough to be killed half-way
    db = tmp_path / "snap.db"
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        config = tmp_path / "idgraph.toml"
        env = write_config(config, sim, portals)
        first = await start_crawl(config, db, env)
        for _ in range(600):  # wait until some collections are committed, then kill without warning
            await asyncio.sleep(0.05)
            if len(done_collections(db)) >= 15:
                break
        first.send_signal(signal.SIGKILL)
        await first.wait()
        before_kill = done_collections(db)
        assert first.returncode == -signal.SIGKILL
        assert len(before_kill) >= 15
        for portal in portals:
            portal.reset_stats()

        second = await start_crawl(config, db, env, "--resume", "1")
        _, err = await asyncio.wait_for(second.communicate(), timeout=180)
        assert second.returncode == 0, err.decode()

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with SnapshotStore(db) as store:
        assert [run.id for run in store.runs()] == [1]
        coverage = {c.source: c for c in store.coverage(1)}
        for portal in portals:
            assert coverage[portal.spec.name].complete
            assert_snapshot_equals_truth(store, 1, portal)
    assert all(portal.stats.requests > 0 for portal in portals)  # the resumed run had work left
    refetched = []
    for portal in portals:
        name = portal.spec.name
        for _method, path, query, _status in portal.stats.log:
            collection = _collection_of(path, query)
            if collection is None or (name, collection) not in before_kill:
                continue
            if collection.startswith("members:") and _recheck_pending(portal, collection, before_kill):
                continue  # the cross-check re-lists a stale group with the same request: a new collection
            refetched.append((name, collection))
    assert not refetched, f"collections committed before the kill were fetched again: {refetched[:5]}"


def _recheck_pending(portal, collection: str, before_kill: set[tuple[str, str]]) -> bool:
    """A group whose member counter is stale is listed again by the cross-check (`members-recheck:G`)."""
    group_id = int(collection.split(":")[1])
    stale = portal.data.groups[group_id]["number_of_members"] != len(portal.data.members_of(group_id))
    return stale and (portal.spec.name, f"members-recheck:{group_id}") not in before_kill


def _collection_of(path: str, query: dict[str, str]) -> str | None:
    """The crawl's collection key for a simulator log entry (see crawler/learnupon/crawl.py)."""
    if path == "/users":
        return "users"
    if path == "/groups":
        return "groups"
    if path == "/courses":
        return "courses"
    if path == "/group_memberships" and "group_id" in query:
        return f"members:{query['group_id']}"
    if path == "/enrollments/search" and "course_id" in query:
        return f"enrollments:course_id:{query['course_id']}"
    if path == "/enrollments/search" and "user_id" in query:
        return f"enrollments:user_id:{query['user_id']}"
    return None
