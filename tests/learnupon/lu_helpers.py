"""Shared by the LearnUpon crawl tests: simulated portals, their config, ground truth."""

from __future__ import annotations

from typing import Any

from crawler.config import Config, parse_config
from crawler.simulator.app import SimulatedPortal
from crawler.simulator.dataset import PortalSpec, generate_portal
from crawler.store import SnapshotStore

WINDOW = 1.0  # the simulator's time-compressed rate window, in seconds


def make_portal(name: str, population: list, **spec: Any) -> SimulatedPortal:
    full = PortalSpec(name=name, username=f"api-{name}", password=f"key-{name}-9f8e7d", **spec)
    return SimulatedPortal(full, generate_portal(full, population), population=population)


def config_for(
    sim: Any,
    portals: list[SimulatedPortal],
    *,
    portal_overrides: dict[str, dict[str, Any]] | None = None,
    crawl: dict[str, Any] | None = None,
) -> Config:
    """A config for the simulated portals; `portal_overrides[name]` replaces fields of one entry."""
    env: dict[str, str] = {}
    entries = []
    for portal in portals:
        name = portal.spec.name
        env[f"{name}_U"], env[f"{name}_P"] = portal.spec.username, portal.spec.password
        entry = {
            "name": name,
            "base_url": sim.base_url(name),
            "username_env": f"{name}_U",
            "password_env": f"{name}_P",
            "requests_per_minute": portal.spec.rate_limit_per_window,
            "rate_window_seconds": WINDOW,
        }
        entry.update((portal_overrides or {}).get(name, {}))
        entries.append(entry)
    return parse_config({"portals": entries, "crawl": crawl or {}}, env=env)


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
