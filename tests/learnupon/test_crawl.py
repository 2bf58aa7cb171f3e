"""Crawling simulated portals on loopback: the snapshot equals the ground truth, with the minimal plan."""

from __future__ import annotations

from pathlib import Path

from lu_helpers import WINDOW, assert_snapshot_equals_truth, config_for, make_portal

from crawler.orchestrator import crawl
from crawler.simulator.plan import minimal_plan
from crawler.simulator.population import generate_population
from crawler.simulator.server import run_simulator
from crawler.store import SnapshotStore


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
