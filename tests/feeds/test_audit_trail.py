"""LearnUpon audit-trail feed against the simulator's `/audit-trails`: actions recorded as users change,
windows with an overlap inside the 30 days, both dialects, and servers that misbehave."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from feed_helpers import Clock, drain, hostile_url, items, last_cursor, portal_cfg, portal_config, portal_http

from crawler.config import CrawlConfig
from crawler.errors import ClientRequestError, NotFoundError, SourceError, TransientError
from crawler.feeds.events import AuditAction, Skipped
from crawler.http import BodyTooLarge
from crawler.learnupon.audit_trail import AuditTrailFeed, iso, parse_record, record_key
from crawler.paging_guard import ListingNeverEnds
from crawler.remediation.portal import PortalClient
from crawler.simulator.faults import FaultConfig
from crawler.simulator.server import make_portals, run_simulator


@dataclass
class Sim:
    portal: Any
    http: Any
    feed: AuditTrailFeed
    client: PortalClient


@asynccontextmanager
async def simulated(window: float = 60.0, client_rate: int | None = None, **spec: Any) -> AsyncIterator[Sim]:
    """One simulated portal (rate window `window` s), its `SourceHttp` (`client_rate` requests per window
    when not the portal's own limit), a feed and a client over it."""
    [portal] = make_portals(["emea"], 30, 7, **spec)
    async with run_simulator([portal], window_seconds=window) as sim:
        rate = {"requests_per_minute": client_rate} if client_rate else {}
        cfg = portal_config(sim, portal, rate_window_seconds=window, **rate)
        async with portal_http(cfg) as http:
            feed = AuditTrailFeed("emea", http, cfg.base_url)
            yield Sim(portal, http, feed, PortalClient(http, cfg.base_url))


def audit_requests(portal: Any) -> list[dict[str, str]]:
    return [query for _, path, query, _ in portal.stats.log if path == "/audit-trails"]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window(query: dict[str, str]) -> tuple[datetime, datetime]:
    start, end = query["date_range"].split(",")
    return when(start), when(end)


async def test_disable_enable_delete_and_group_removal_become_audit_events():
    async with simulated() as sim:
        first = await drain(sim.feed, None)
        data = sim.portal.data
        enabled = sorted(u for u in data.users if data.users[u]["enabled"])
        bob = next(u for u in enabled if data.index.groups_of.get(u))
        alice, carol = [u for u in enabled if u != bob][:2]
        emails = {uid: data.users[uid]["email"] for uid in (alice, bob, carol)}
        group_id = data.index.groups_of[bob][0][1]
        await sim.client.set_enabled(alice, False)
        await sim.client.set_enabled(alice, True)
        await sim.client.remove_membership(group_id, bob)
        async with sim.http.session.delete(f"{sim.feed.url.rsplit('/', 1)[0]}/users/{carol}") as response:
            assert response.status == 200
        second = await drain(sim.feed, last_cursor(first))

    assert [(p.baseline, p.caught_up, p.items) for p in first] == [(True, True, ())]
    [page] = second
    assert not page.baseline and page.caught_up
    assert [(e.action, e.impacted_user_email) for e in page.items] == [
        (AuditAction.USER_DELETED, emails[carol]),
        (AuditAction.REMOVED_FROM_GROUP, emails[bob]),
        (AuditAction.LOGIN_ENABLED, emails[alice]),
        (AuditAction.LOGIN_DISABLED, emails[alice]),
    ]  # newest first, as LearnUpon lists them
    assert len({e.key for e in page.items}) == 4
    assert page.items[1].impacted_data == data.groups[group_id]["title"]
    assert all(e.portal == "emea" and e.initiated_by_email is None for e in page.items)
    start, end = window(audit_requests(sim.portal)[1])
    assert start == when(last_cursor(first)) - timedelta(hours=24)  # the overlap
    assert page.cursor == iso(end)


async def test_each_poll_rereads_the_overlap_and_the_keys_repeat_so_nothing_is_new_twice():
    async with simulated() as sim:
        cursor = last_cursor(await drain(sim.feed, None))
        user = next(u for u in sim.portal.data.users if sim.portal.data.users[u]["enabled"])
        await sim.client.set_enabled(user, False)
        first = await drain(sim.feed, cursor)
        again = await drain(sim.feed, last_cursor(first))
        replay = await drain(sim.feed, cursor)  # a crash before `first`'s cursor was saved
        await sim.client.set_enabled(user, True)
        later = await drain(sim.feed, last_cursor(again))
        before = sim.http.stats.requests
        await drain(sim.feed, last_cursor(later))

    keys = [e.key for e in items(first)]
    assert len(keys) == 1
    assert [e.key for e in items(again)] == keys  # re-read in the overlap: the watcher's keys absorb it
    assert [e.key for e in items(replay)] == keys
    assert [e.action for e in items(later) if e.key not in keys] == [AuditAction.LOGIN_ENABLED]
    assert sim.http.stats.requests - before == 1  # one request per poll


async def test_paging_with_the_header_and_without_it_seed_dialect():
    for dialect, requests in (("real", 3), ("seed", 4)):
        async with simulated(page_size=2, dialect=dialect) as sim:
            cursor = last_cursor(await drain(sim.feed, None))
            users = sorted(sim.portal.data.users)[:5]
            for uid in users:
                sim.portal.data.set_enabled(uid, not sim.portal.data.users[uid]["enabled"])
            before = sim.http.stats.requests
            pages = await drain(sim.feed, cursor)

        assert len(items(pages)) == 5, dialect
        assert [p.caught_up for p in pages] == [False] * (requests - 1) + [True]
        assert sim.http.stats.requests - before == requests  # the seed dialect ends at an empty page
        assert {e.impacted_user_email for e in items(pages)} == {
            sim.portal.data.users[u]["email"] for u in users
        }


async def test_the_window_never_reaches_past_30_days_and_a_longer_gap_is_a_baseline():
    async with simulated() as sim:
        user = sim.portal.data.users[min(sim.portal.data.users)]
        now = datetime.now(UTC)
        sim.portal.data.audit.record(4, user, iso(now - timedelta(days=31)))  # gone from the API
        sim.portal.data.audit.record(4, user, iso(now - timedelta(days=20)))
        stale = iso(now - timedelta(days=40))
        pages = await drain(sim.feed, stale)
        recent = await drain(sim.feed, iso(now - timedelta(days=2)))

    [page] = pages
    assert page.baseline  # the records between 40 and 30 days ago are gone: say so
    assert [e.at.date() for e in page.items] == [(now - timedelta(days=20)).date()]
    start, end = window(audit_requests(sim.portal)[0])
    assert end - start < timedelta(days=30)  # the simulator refuses more (400), and the test would fail
    assert [p.baseline for p in recent] == [False]


async def test_the_simulator_refuses_a_range_over_30_days():
    async with simulated() as sim:
        now = datetime.now(UTC)
        params = {"date_range": f"{iso(now - timedelta(days=31))},{iso(now)}"}
        with pytest.raises(ClientRequestError, match="cannot span more than 30 days"):
            await sim.http.get_json(sim.feed.url, params, purpose="test")


async def test_other_actions_are_filtered_here_and_unreadable_records_are_skipped():
    async with simulated() as sim:
        cursor = last_cursor(await drain(sim.feed, None))
        user = sim.portal.data.users[min(sim.portal.data.users)]
        at = iso(datetime.now(UTC))
        sim.portal.data.audit.record(6, user, at, impacted_data="Course X")  # course deleted: not ours
        sim.portal.data.audit.record(3, user, at)
        records = sim.portal.data.audit.records
        records.append({**records[-1], "action": None})
        records.append({**records[-2], "action": "4"})  # a numeric string is still the action
        records.append({**records[-3], "action": 5, "impacted_data": "x" * 10_000})
        pages = await drain(sim.feed, cursor)
        bad_date = {**records[-1], "date_and_time_utc": "yesterday"}

    [page] = pages
    assert [e.action for e in page.items] == [5, 4, 3]
    assert len(page.items[0].impacted_data or "") == 500  # hostile length is cut
    assert [(s.reason, s.addresses) for s in page.skipped] == [
        ("audit record without a numeric action", (user["email"],))
    ]
    assert parse_record(bad_date, "emea") == Skipped(
        "audit action 5 without a readable date_and_time_utc", bad_date, (user["email"],)
    )
    assert (
        parse_record({**bad_date, "action": None}, "emea").reason == "audit record without a numeric action"
    )
    assert parse_record("row", "emea") == Skipped("audit record is not a JSON object", "row")
    assert record_key({"a": 1, "b": 2}) == record_key({"b": 2, "a": 1})


async def hostile_feed(aiohttp_server: Any, handler: Any) -> Any:
    """The `[[portals]]` entry of a "portal" whose every GET answers through `handler`."""
    return portal_cfg(await hostile_url(aiohttp_server, handler), "api-p", "key", name="p")


def record(action: int, email: str) -> dict[str, Any]:
    return {
        "action": action,
        "initiated_by_user": "Automation",
        "initiated_by_user_email": None,
        "impacted_user": "B",
        "impacted_user_email": email,
        "impacted_data": "B",
        "date_and_time_utc": "2026-12-04T10:00:00Z",
    }


async def test_any_wrapper_key_or_a_bare_array(aiohttp_server):
    bodies = [{"data": [record(4, "a@acme.com")], "meta": {}}, [record(5, "b@acme.com")], {}]

    async def answer(request: web.Request) -> web.Response:
        body = bodies[0] if request.query.get("page") == "1" else []
        return web.json_response(body)

    for body in list(bodies):
        bodies[0] = body
        cfg = await hostile_feed(aiohttp_server, answer)
        async with portal_http(cfg) as http:
            pages = await drain(AuditTrailFeed("p", http, cfg.base_url), "2026-12-04T00:00:00.000Z")
        expected = [] if body == {} else [record(4, "a@acme.com")] if isinstance(body, dict) else body
        assert [(e.action, e.impacted_user_email) for e in items(pages)] == [
            (r["action"], r["impacted_user_email"]) for r in expected
        ]


async def test_misbehaving_servers(aiohttp_server):
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://evil.example/api/v1/audit-trails")

    async def endless(request: web.Request) -> web.Response:
        return web.json_response([record(4, "a@acme.com")], headers={"LU-Has-Next-Page": "true"})

    async def huge(request: web.Request) -> web.Response:
        return web.json_response([record(4, "a" * 100 + "@acme.com")] * 2000)

    async def garbled(request: web.Request) -> web.Response:
        return web.json_response("not a list")

    cases = [
        (redirect, None, ClientRequestError, "redirects are not followed"),
        (endless, CrawlConfig(max_pages_without_new=3), ListingNeverEnds, "brought nothing new"),
        (huge, CrawlConfig(max_body_bytes=64 * 1024), BodyTooLarge, "byte limit"),
        (garbled, None, TransientError, "unexpected response shape"),
    ]
    for handler, crawl, error, message in cases:
        cfg = await hostile_feed(aiohttp_server, handler)
        async with portal_http(cfg, crawl) as http:
            with pytest.raises(error, match=message):
                await drain(AuditTrailFeed("p", http, cfg.base_url), None)


async def test_missing_endpoint_5xx_429_and_a_garbled_cursor():
    async with simulated(0.5, client_rate=10, rate_limit_per_window=1) as sim:
        sim.portal.faults = FaultConfig(missing_endpoints=frozenset({"audit-trails"}))
        with pytest.raises(NotFoundError):
            await drain(sim.feed, None)
        sim.portal.faults = FaultConfig(fail_after=0)
        with pytest.raises(TransientError, match="answered 500"):
            await drain(sim.feed, None)
        sim.portal.faults = FaultConfig()
        first = await drain(sim.feed, None)
        pages = await drain(sim.feed, last_cursor(first))  # over the 1-per-window limit: 429, then goes on
        with pytest.raises(SourceError, match="cursor cannot be read"):
            await drain(sim.feed, "not a time")

    assert [p.caught_up for p in pages] == [True]
    assert sim.http.stats.throttled >= 1


def test_clock_is_the_window_end():
    clock = Clock(datetime(2026, 12, 5, 12, tzinfo=UTC).timestamp())
    feed = AuditTrailFeed("p", None, "https://acme.learnupon.com", clock=clock)  # type: ignore[arg-type]
    end = datetime.fromtimestamp(clock.now, UTC)
    assert feed._start(None, end) == (end - timedelta(hours=24), True)
    assert feed._start(iso(end + timedelta(days=1)), end) == (end - timedelta(hours=24), False)  # skew
