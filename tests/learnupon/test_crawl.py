"""Crawling simulated portals on loopback: the snapshot equals the ground truth, with the minimal plan."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from crawler.config import parse_config
from crawler.orchestrator import crawl
from crawler.simulator.app import SimulatedPortal
from crawler.simulator.dataset import PortalData, PortalSpec, generate_portal
from crawler.simulator.population import generate_population
from crawler.simulator.server import run_simulator
from crawler.store import SnapshotStore

WINDOW = 1.0  # the simulator's time-compressed rate window, in seconds


def make_portal(name: str, population: list, **spec: Any) -> SimulatedPortal:
    full = PortalSpec(name=name, username=f"api-{name}", password=f"key-{name}-9f8e7d", **spec)
    return SimulatedPortal(full, generate_portal(full, population), population=population)


def config_for(sim: Any, portals: list[SimulatedPortal], passwords: dict[str, str] | None = None) -> Any:
    env: dict[str, str] = {}
    entries = []
    for portal in portals:
        name = portal.spec.name
        env[f"{name}_U"], env[f"{name}_P"] = (
            portal.spec.username,
            (passwords or {}).get(name, portal.spec.password),
        )
        entries.append(
            {
                "name": name,
                "base_url": sim.base_url(name),
                "username_env": f"{name}_U",
                "password_env": f"{name}_P",
                "requests_per_minute": portal.spec.rate_limit_per_window,
                "rate_window_seconds": WINDOW,
            }
        )
    return parse_config({"portals": entries}, env=env)


def pages(count: int, page_size: int, has_next_header: bool) -> int:
    """Requests one listing needs: with LU-Has-Next-Page none is wasted; without, one empty page ends it."""
    if has_next_header:
        return max(1, math.ceil(count / page_size))
    return math.ceil(count / page_size) + 1


def minimal_plan(spec: PortalSpec, data: PortalData) -> dict[str, int]:
    """The fewest requests the API allows for this portal, by purpose."""
    headers = spec.dialect == "real"
    size = spec.page_size
    index = data.index
    courses = data.visible_course_ids()
    hidden_users = data.users_with_hidden_enrollments()
    stale_groups = [
        g for g, row in data.groups.items() if row["number_of_members"] != len(data.members_of(g))
    ]
    plan = {
        "users": pages(len(data.users), size, headers),
        "groups": pages(len(data.groups), size, headers),
        "group_members": sum(pages(len(data.members_of(g)), size, headers) for g in data.groups),
        "courses": pages(len(courses), size, headers),
        "course_enrollments": sum(
            pages(len(index.enrollments_by_course.get(c, [])), size, headers) for c in courses
        ),
        "user_enrollments": sum(pages(len(data.enrollments_of_user(u)), size, headers) for u in hidden_users),
        "group_members_recheck": sum(pages(len(data.members_of(g)), size, headers) for g in stale_groups),
    }
    return {purpose: n for purpose, n in plan.items() if n}


def assert_snapshot_equals_truth(store: SnapshotStore, run_id: int, portal: SimulatedPortal) -> None:
    name, data = portal.spec.name, portal.data
    users = {row["id"]: row for row in store.rows("lu_users", run_id, name)}
    assert set(users) == set(data.users)
    for uid, truth in data.users.items():
        row = users[uid]
        assert (row["email"] or None) == (truth.get("email") or None)
        assert bool(row["enabled"]) == truth["enabled"]
        assert row["user_type"] == truth["user_type"]
        assert row["number_of_enrollments"] == truth["number_of_enrollments"]
    assert {r["id"] for r in store.rows("lu_groups", run_id, name)} == set(data.groups)
    assert {r["id"] for r in store.rows("lu_courses", run_id, name)} == set(data.visible_course_ids())
    memberships = {(r["group_id"], r["user_id"]) for r in store.rows("lu_memberships", run_id, name)}
    assert memberships == set(data.memberships.values())
    enrollments = {
        r["id"]: (r["course_id"], r["user_id"]) for r in store.rows("lu_enrollments", run_id, name)
    }
    assert enrollments == {eid: (e["course_id"], e["user_id"]) for eid, e in data.enrollments.items()}


async def test_several_portals_both_dialects_snapshot_equals_ground_truth(tmp_path: Path) -> None:
    population = generate_population(seed=11, size=900)
    portals = [
        make_portal("emea", population, seed=1, users=420, page_size=37, groups=9, courses=10),
        make_portal("amer", population, seed=2, users=600, page_size=499, id_offset=50_000),
        make_portal("seedy", population, seed=3, users=130, dialect="seed", id_offset=90_000),
        make_portal(
            "wrapped", population, seed=4, users=75, dialect="seed_wrapped", page_size=20, id_offset=7_000
        ),
    ]
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        config = config_for(sim, portals)
        with SnapshotStore(tmp_path / "s.db") as store:
            result = await crawl(config, store)
            assert result.complete, [c.error for c in result.coverage]
            for portal in portals:
                assert_snapshot_equals_truth(store, result.run_id, portal)


async def test_request_count_is_the_minimal_plan(tmp_path: Path) -> None:
    population = generate_population(seed=5, size=700)
    portals = [
        make_portal(
            "real", population, seed=8, users=500, page_size=37, archived_courses=2, stale_group_counts=2
        ),
        make_portal(
            "seed", population, seed=9, users=160, dialect="seed", page_size=25, stale_group_counts=1
        ),
    ]
    for portal in portals:  # the dataset really has the deliberate mismatches this test is about
        assert portal.data.users_with_hidden_enrollments()
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        config = config_for(sim, portals)
        with SnapshotStore(tmp_path / "s.db") as store:
            result = await crawl(config, store)
            assert result.complete
            by_source = {c.source: c for c in result.coverage}
            for portal in portals:
                expected = minimal_plan(portal.spec, portal.data)
                coverage = by_source[portal.spec.name]
                throttled = portal.stats.status_counts.get(429, 0)
                assert coverage.requests_by_purpose == expected
                assert coverage.requests == sum(expected.values()) + throttled
                assert portal.stats.requests == coverage.requests
                assert_snapshot_equals_truth(store, result.run_id, portal)
