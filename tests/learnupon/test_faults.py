"""Fault injection against the simulator: every fault ends with a snapshot equal to ground truth for the
stable records, no duplicates, and coverage that tells the truth."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lu_helpers import WINDOW, assert_snapshot_equals_truth, config_for, make_portal

from crawler.orchestrator import crawl
from crawler.simulator.dataset import PortalData
from crawler.simulator.faults import FaultConfig
from crawler.simulator.population import generate_population
from crawler.simulator.server import run_simulator
from crawler.store import SnapshotStore

POPULATION = generate_population(seed=21, size=600)


def portal(name: str = "emea", **spec: Any):
    spec.setdefault("users", 300)
    spec.setdefault("page_size", 40)
    return make_portal(name, POPULATION, seed=4, **spec)


async def crawl_portals(tmp_path: Path, portals: list, **config: Any):
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        cfg = config_for(sim, portals, **config)
        store = SnapshotStore(tmp_path / "s.db")
        result = await crawl(cfg, store)
    return store, result


def assert_counts_add_up(coverage) -> None:
    assert coverage.requests == sum(coverage.requests_by_purpose.values()) + coverage.throttled


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(FaultConfig(throttle_rate=0.05, seed=1), id="429-burst-no-retry-after"),
        pytest.param(
            FaultConfig(throttle_rate=0.05, retry_after="seconds", seed=2), id="429-retry-after-secs"
        ),
        pytest.param(
            FaultConfig(throttle_rate=0.05, retry_after="http-date", seed=3), id="429-retry-after-date"
        ),
        pytest.param(FaultConfig(error_rate=0.12, seed=4), id="5xx"),
        pytest.param(FaultConfig(reset_rate=0.08, seed=5), id="connection-resets"),
        pytest.param(FaultConfig(truncate_rate=0.1, seed=6), id="truncated-bodies"),
        pytest.param(FaultConfig(latency=(0.0, 0.03), seed=7), id="slow-responses"),
        pytest.param(FaultConfig(rate_headers=False, throttle_rate=0.05, seed=8), id="no-rate-headers"),
    ],
)
async def test_faults_end_with_ground_truth(tmp_path: Path, faults: FaultConfig) -> None:
    target = portal()
    target.faults = faults
    store, result = await crawl_portals(tmp_path, [target])
    coverage = result.coverage[0]
    assert coverage.complete, coverage.error
    assert_snapshot_equals_truth(store, result.run_id, target)
    assert_counts_add_up(coverage)
    if faults.reset_rate:
        # aiohttp re-sends an idempotent request once, unseen, when a kept-alive connection drops
        # before any answer (RFC 9112 §9.3.1): the server may count a reset twice.
        resets = target.stats.status_counts[0]
        assert coverage.requests <= target.stats.requests <= coverage.requests + resets
    else:
        assert coverage.requests == target.stats.requests
    if faults.throttle_rate:
        assert coverage.throttled == target.stats.status_counts[429] > 0
    if faults.error_rate or faults.truncate_rate:
        assert coverage.retries > 0
    store.close()


async def test_a_real_rate_limit_without_headers_is_learned_not_hammered(tmp_path: Path) -> None:
    """The server allows 40 requests per window; the config believes 300: AIMD must find the real one."""
    target = portal(rate_limit_per_window=40)
    target.faults = FaultConfig(rate_headers=False)
    store, result = await crawl_portals(
        tmp_path, [target], portal_overrides={"emea": {"requests_per_minute": 300}}
    )
    coverage = result.coverage[0]
    assert coverage.complete
    assert_snapshot_equals_truth(store, result.run_id, target)
    assert coverage.throttled == target.stats.status_counts[429] > 0
    assert coverage.throttled / coverage.requests < 0.25
    learned = store.learned_rate("emea")
    assert learned is not None and learned < 40 / WINDOW
    store.close()


async def test_the_next_run_starts_from_the_rate_the_last_run_learned(tmp_path: Path) -> None:
    """Same hidden limit, two crawls into one snapshot: the second starts at the learned rate, not the
    config's 300, so it finds the limit with fewer 429s."""
    target = portal(rate_limit_per_window=40)
    target.faults = FaultConfig(rate_headers=False)
    overrides = {"emea": {"requests_per_minute": 300}}
    async with run_simulator([target], window_seconds=WINDOW) as sim:
        cfg = config_for(sim, [target], portal_overrides=overrides)
        store = SnapshotStore(tmp_path / "s.db")
        first = await crawl(cfg, store)
        learned = store.learned_rate("emea")
        await asyncio.sleep(WINDOW)  # let the server's window (and the 429s it counts) start afresh
        second = await crawl(cfg, store)
    assert learned is not None and learned < 40 / WINDOW
    assert first.run_id != second.run_id
    for result in (first, second):
        assert result.coverage[0].complete
        assert_snapshot_equals_truth(store, result.run_id, target)
    # Starting at the config's 300 costs the first crawl a handful of 429s (5-6 here); starting at the
    # learned rate, the second crawl sees none, or at most half as many on a noisy machine.
    assert first.coverage[0].throttled > 0
    assert second.coverage[0].throttled <= first.coverage[0].throttled // 2
    assert store.learned_rate("emea") is not None
    store.close()


async def test_slow_responses_past_the_timeout_are_retried(tmp_path: Path) -> None:
    target = portal(users=120)
    # A third of the requests outlived the timeout with (0.0, 0.6): five timeouts in a row then hit some
    # listing often enough (concurrency varies the order the seeded faults meet requests) to flake.
    # With (0.0, 0.45) one in nine times out: retries still happen, a listing lost to them is ~1e-5.
    target.faults = FaultConfig(latency=(0.0, 0.45), seed=11)
    store, result = await crawl_portals(tmp_path, [target], crawl={"request_timeout_seconds": 0.4})
    coverage = result.coverage[0]
    assert coverage.complete, coverage.error
    assert coverage.retries > 0
    assert_snapshot_equals_truth(store, result.run_id, target)
    store.close()


def remove_users_mid_crawl(victims: list[int], at_requests: list[int]):
    def mutate(data: PortalData, request_number: int) -> None:
        for victim, at in zip(victims, at_requests, strict=True):
            if request_number == at and victim in data.users:
                data.remove_user(victim)

    return mutate


async def test_users_removed_and_added_mid_crawl_lose_no_stable_record(tmp_path: Path) -> None:
    target = portal(users=400, page_size=25, groups=0, courses=0, archived_courses=0, draft_courses=0)
    ordered = sorted(target.data.users)
    truth_before = dict(target.data.users)
    # remove an early user right after pages 2, 5 and 9 were read: each removal pulls the first record of
    # the next page back across the boundary, which a plain offset scan would miss
    victims = [ordered[3], ordered[30], ordered[60]]
    added: list[int] = []

    def mutate(data: PortalData, request_number: int) -> None:
        remove_users_mid_crawl(victims, [3, 9, 17])(data, request_number)
        if request_number == 6:
            added.append(data.add_user("late.joiner@acme.com"))

    target.faults = FaultConfig(mutate=mutate)
    store, result = await crawl_portals(tmp_path, [target])
    coverage = result.coverage[0]
    assert coverage.complete
    stored = {row["id"] for row in store.rows("lu_users", result.run_id, "emea")}
    stable = set(truth_before) - set(victims)
    assert stable <= stored, f"missed stable users: {sorted(stable - stored)}"
    assert stored <= set(truth_before) | set(added)
    assert coverage.drift_events > 0
    assert any("drift" in note for note in coverage.notes)
    store.close()


async def test_a_dead_host_fails_only_its_portal(tmp_path: Path) -> None:
    alive, dead = portal("alive"), portal("dead", id_offset=500_000)
    store, result = await crawl_portals(
        tmp_path, [alive, dead], portal_overrides={"dead": {"base_url": "http://127.0.0.1:9/dead"}}
    )
    by_source = {c.source: c for c in result.coverage}
    assert by_source["alive"].complete and not by_source["dead"].complete
    assert "cannot connect" in (by_source["dead"].error or "")
    assert by_source["dead"].retries > 0
    assert_snapshot_equals_truth(store, result.run_id, alive)
    assert not result.complete
    store.close()


async def test_a_listing_that_fails_part_way_is_incomplete_and_not_marked_done(tmp_path: Path) -> None:
    target = portal(users=300, page_size=20)
    target.faults = FaultConfig(fail_after=6)
    store, result = await crawl_portals(tmp_path, [target])
    coverage = result.coverage[0]
    assert not coverage.complete
    assert "500" in (coverage.error or "")
    assert "users" not in store.done_collections(result.run_id, "emea")
    assert 0 < store.count("lu_users", result.run_id, "emea") < len(target.data.users)
    store.close()


async def test_an_ignored_filter_is_detected_and_nothing_unasked_for_is_kept(tmp_path: Path) -> None:
    """LearnUpon answers an unknown filter with the unfiltered list: every record is checked, not trusted."""
    target = portal(users=150, courses=4, draft_courses=0, archived_courses=0)
    target.faults = FaultConfig(ignored_filters=frozenset({"course_id"}))
    store, result = await crawl_portals(tmp_path, [target])
    coverage = result.coverage[0]
    assert coverage.complete
    assert_snapshot_equals_truth(store, result.run_id, target)  # no enrollment stored twice or misfiled
    assert any("ignored the filter" in note for note in coverage.notes)
    store.close()
