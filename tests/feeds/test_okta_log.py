"""Okta System Log feed against the fake org's `/api/v1/logs`: polling semantics, cursors, late events,
misbehaving servers — and every exchange validated against Okta's System Log OpenAPI spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from feed_helpers import Clock, drain, idp, items, last_cursor, one_handler_app, opened
from okta_spec import OKTA_LOGS_SPEC, SpecRequest, SpecResponse, okta_openapi, validate_okta_log_exchanges

from crawler.config import CrawlConfig
from crawler.errors import AuthError, ClientRequestError, NotFoundError, SourceError, TransientError
from crawler.feeds import okta_log
from crawler.feeds.events import Skipped
from crawler.feeds.okta_log import OktaCursor, OktaLogFeed
from crawler.http import BodyTooLarge
from crawler.idp.fakes import Exchange, Faults
from crawler.idp.fakes.directory import FakePerson
from crawler.idp.fakes.okta import OktaFake, okta_user
from crawler.idp.fakes.okta_logs import lifecycle_event
from crawler.idp.status import format_time
from crawler.paging_guard import ListingNeverEnds
from crawler.vocabulary import IdentityStatus

PEOPLE = [
    FakePerson("ana", "ana.silva@acme.com", "ana", "silva"),
    FakePerson("ben", "ben.smith@acme.com", "ben", "smith"),
    FakePerson("chloe", "chloe.garcia@acme.com", "chloe", "garcia"),
    FakePerson("dev", "dev.patel@acme.com", "dev", "patel", status="deprovisioned"),
]
TOKEN = "okta-feed-token-8d1f"
OKTA_RATE = {"X-Rate-Limit-Limit": "1000", "X-Rate-Limit-Remaining": "999", "X-Rate-Limit-Reset": "0"}


def okta_id(key: str) -> str:
    return next(okta_user(p)["id"] for p in PEOPLE if p.id == key)


async def served(aiohttp_server: Any, fake: OktaFake, token: str = TOKEN) -> Any:
    server = await aiohttp_server(fake.app())
    url = f"http://{server.host}:{server.port}"
    return idp({"name": "okta", "type": "okta", "base_url": url, "token_env": "T"}, {"T": token})


async def hostile_okta(aiohttp_server: Any, handler: Any) -> Any:
    """The config of an "org" whose every GET answers through `handler`."""
    server = await aiohttp_server(one_handler_app(handler))
    url = f"http://{server.host}:{server.port}"
    return idp({"name": "okta", "type": "okta", "base_url": url, "token_env": "T"}, {"T": TOKEN})


def logs(fake: OktaFake) -> list[Any]:
    return [e for e in fake.exchanges if e.path == "/api/v1/logs"]


async def test_first_poll_is_a_baseline_then_lifecycle_events_become_status_changes(aiohttp_server):
    clock = Clock()
    fake = OktaFake(PEOPLE, token=TOKEN, clock=clock)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg, clock=clock) as feed:
        first = await drain(feed, None)
        fake.deactivate("ana.silva@acme.com")
        fake.suspend(okta_id("ben"))
        clock.advance(1)
        second = await drain(feed, last_cursor(first))

    assert [(p.baseline, p.caught_up, p.items) for p in first] == [(True, True, ())]
    query = dict(logs(fake)[0].query)
    assert query == {
        "since": format_time(datetime.fromtimestamp(clock.now - 1, UTC) - timedelta(minutes=5)),
        "sortOrder": "ASCENDING",
        "limit": "1000",
        "filter": 'eventType sw "user.lifecycle"',
    }  # a polling request: no `until`
    assert [(p.baseline, p.caught_up) for p in second] == [(False, True)]
    changes = items(second)
    assert [(c.idp_id, c.addresses, c.status, c.raw) for c in changes] == [
        (okta_id("ana"), ("ana.silva@acme.com",), IdentityStatus.DISABLED, "user.lifecycle.deactivate"),
        (okta_id("ben"), ("ben.smith@acme.com",), IdentityStatus.DISABLED, "user.lifecycle.suspend"),
    ]
    assert [c.key for c in changes] == [e.event["uuid"] for e in fake.log.events]
    assert all(c.source == "okta" and c.observed_at is not None for c in changes)
    followed = dict(logs(fake)[1].query)
    assert followed.pop("after") and "since" not in followed  # the stored next link, followed as given
    assert followed == {k: v for k, v in query.items() if k != "since"}
    statuses = {u["id"]: u["status"] for u in fake.users}
    assert statuses[okta_id("ana")] == "DEPROVISIONED" and statuses[okta_id("ben")] == "SUSPENDED"
    assert validate_okta_log_exchanges(fake.exchanges) == 2


async def test_a_poll_when_nothing_happened_costs_one_request(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg) as feed:
        cursor = last_cursor(await drain(feed, None))
        before = feed.http.stats.requests
        for _ in range(3):
            pages = await drain(feed, cursor)
            cursor = last_cursor(pages)
            assert [(p.items, p.caught_up) for p in pages] == [((), True)]
        assert feed.http.stats.requests - before == 3  # one request per poll
        assert feed.http.stats.by_purpose == {"system_log": 4}


async def test_pages_follow_next_until_a_short_page_and_resume_yields_nothing_twice(aiohttp_server):
    people = [FakePerson(f"p{i}", f"p{i}@acme.com") for i in range(5)]
    fake = OktaFake(people, token=TOKEN)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg, limit=2) as feed:
        cursor = last_cursor(await drain(feed, None))
        for person in people:
            fake.deactivate(person.email)
        pages = await drain(feed, cursor)
        again = await drain(feed, last_cursor(pages))
        fake.activate("p0@acme.com")
        later = await drain(feed, last_cursor(again))

    assert [(len(p.items), p.caught_up) for p in pages] == [(2, False), (2, False), (1, True)]
    keys = [c.key for c in items(pages)]
    assert len(set(keys)) == 5
    assert [c.addresses for c in items(pages)] == [(p.email,) for p in people]
    assert [p.items for p in again] == [()]
    assert [(c.addresses, c.status, c.raw) for c in items(later)] == [
        (("p0@acme.com",), IdentityStatus.ACTIVE, "user.lifecycle.activate")
    ]
    assert not set(keys) & {c.key for c in items(later)}


async def test_a_crash_before_the_cursor_is_saved_replays_the_same_keys(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg) as feed:
        saved = last_cursor(await drain(feed, None))
        fake.deactivate("ana.silva@acme.com")
        fake.suspend("ben.smith@acme.com")
        first = await drain(feed, saved)
        replay = await drain(feed, saved)  # the watcher died before saving first's cursor

    assert [c.key for c in items(replay)] == [c.key for c in items(first)]
    assert len(items(first)) == 2


async def test_a_late_persisted_event_still_arrives_after_the_cursor(aiohttp_server):
    clock = Clock()
    fake = OktaFake(PEOPLE, token=TOKEN, clock=clock)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg, clock=clock) as feed:
        cursor = last_cursor(await drain(feed, None))
        late = fake.deactivate("ana.silva@acme.com", delay=30)  # published now, queryable in 30 s
        clock.advance(2)
        prompt = fake.suspend("ben.smith@acme.com")
        clock.advance(1)
        first = await drain(feed, cursor)
        clock.advance(30)
        second = await drain(feed, last_cursor(first))

    assert [c.key for c in items(first)] == [prompt["uuid"]]
    assert [c.key for c in items(second)] == [late["uuid"]]
    assert items(second)[0].observed_at < items(first)[0].observed_at  # out of order by `published`
    assert OktaCursor.load(last_cursor(second)).published == items(first)[0].observed_at  # the max


async def test_reversals_and_deletion_and_what_is_ignored(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg) as feed:
        cursor = last_cursor(await drain(feed, None))
        fake.suspend("ana.silva@acme.com")
        fake.unsuspend("ana.silva@acme.com")
        fake.activate("dev.patel@acme.com")  # DEPROVISIONED -> ACTIVE
        fake.delete("chloe.garcia@acme.com")  # first DELETE only deactivates
        fake.delete("chloe.garcia@acme.com")  # the second deletes: initiated + completed
        ben = fake.user("ben.smith@acme.com")
        for kind in ("user.lifecycle.reactivate", "user.lifecycle.create", "user.account.lock"):
            fake.log.append(lifecycle_event(kind, ben, published=fake.log.clock()))
        fake.log.append(
            lifecycle_event("user.lifecycle.deactivate", ben, published=fake.log.clock(), result="FAILURE")
        )
        pages = await drain(feed, cursor)

    assert [(c.addresses[0].split(".")[0], c.status.value, c.raw) for c in items(pages)] == [
        ("ana", "disabled", "user.lifecycle.suspend"),
        ("ana", "active", "user.lifecycle.unsuspend"),
        ("dev", "active", "user.lifecycle.activate"),
        ("chloe", "disabled", "user.lifecycle.deactivate"),
        ("chloe", "deleted", "user.lifecycle.delete.initiated"),
        ("chloe", "deleted", "user.lifecycle.delete.completed"),
    ]
    assert pages[-1].skipped == ()  # ignored events are not unreadable ones
    assert "chloe.garcia@acme.com" not in {u["profile"]["email"] for u in fake.users}


def _event(fake: OktaFake, **changes: Any) -> dict[str, Any]:
    event = lifecycle_event("user.lifecycle.deactivate", fake.user("ben.smith@acme.com"), published=0.0)
    event["published"] = "2026-12-01T10:00:00.000Z"
    event.update(changes)
    return event


async def test_events_it_cannot_read_are_skipped_with_a_reason_never_read_as_active(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN)
    cfg = await served(aiohttp_server, fake)
    ben = fake.user("ben.smith@acme.com")
    app_target = {"id": "0oa1", "type": "AppInstance", "alternateId": "LearnUpon", "displayName": "LU"}
    user_target = {"id": ben["id"], "type": "User", "alternateId": "ben.smith@acme.com", "displayName": "B"}
    hostile = {**user_target, "id": "00u\x1b[31m", "alternateId": "[link=https://evil]x[/link]\x07"}
    cases = {
        "target null": _event(fake, target=None),
        "no User target": _event(fake, target=[app_target]),
        "User second": _event(fake, target=[app_target, user_target]),
        "outcome null": _event(fake, outcome=None),
        "no outcome": {k: v for k, v in _event(fake).items() if k != "outcome"},
        "no uuid": _event(fake, uuid=None),
        "two users": _event(fake, target=[user_target, {**user_target, "id": "00u2"}]),
        "hostile id": _event(fake, target=[hostile]),
    }
    async with opened(okta_log.open_feed, cfg) as feed:
        cursor = last_cursor(await drain(feed, None))
        for event in cases.values():
            fake.log.append(event)
        pages = await drain(feed, cursor)

    [page] = pages
    assert [(c.idp_id, c.status) for c in page.items] == [(ben["id"], IdentityStatus.DISABLED)]  # by type
    reasons = [s.reason for s in page.skipped]
    assert reasons == [
        "user.lifecycle.deactivate: no target of type User: whose status changed is unknown",
        "user.lifecycle.deactivate: no target of type User: whose status changed is unknown",
        "user.lifecycle.deactivate: outcome missing: whether the change happened is unknown",
        "user.lifecycle.deactivate: outcome missing: whether the change happened is unknown",
        "user.lifecycle.deactivate: uuid missing, so it cannot be de-duplicated",
        "user.lifecycle.deactivate: 2 targets of type User: whose status changed is ambiguous",
        "user.lifecycle.deactivate: the User target has no usable id",
    ]
    assert okta_log.parse_event("not an event", "okta") == Skipped(
        "event is not a JSON object", "not an event"
    )
    assert page.skipped[2].addresses == ("ben.smith@acme.com",)  # who it may concern
    assert page.skipped[2].label == f"event {cases['outcome null']['uuid']}"
    assert page.skipped[6].addresses == ()  # hostile text is not an address


async def test_a_refused_next_link_restarts_by_time_with_an_overlap(aiohttp_server):
    clock = Clock()
    fake = OktaFake(PEOPLE, token=TOKEN, clock=clock)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg, clock=clock) as feed:
        cursor = last_cursor(await drain(feed, None))
        seen = fake.deactivate("ana.silva@acme.com")
        clock.advance(60)
        cursor = last_cursor(await drain(feed, cursor))
        clock.advance(60)
        new = fake.suspend("ben.smith@acme.com")
        fake.log.reject_after = True  # Okta no longer accepts the stored `after`
        pages = await drain(feed, cursor)

    refused, restart = logs(fake)[-2:]
    assert refused.status == 400 and "after" in dict(refused.query)
    published = datetime.fromisoformat(seen["published"].replace("Z", "+00:00"))
    assert dict(restart.query)["since"] == format_time(published - timedelta(minutes=5))
    assert [(p.baseline, [c.key for c in p.items]) for p in pages] == [(False, [seen["uuid"], new["uuid"]])]
    # `seen` comes again: the watcher's de-duplication by key absorbs it; `new` is not lost.
    validate_okta_log_exchanges(fake.exchanges)


async def test_a_cursor_past_okta_retention_starts_again_as_a_baseline(aiohttp_server):
    clock = Clock()
    fake = OktaFake(PEOPLE, token=TOKEN, clock=clock)
    cfg = await served(aiohttp_server, fake)
    stale = OktaCursor(None, datetime.fromtimestamp(clock.now, UTC) - timedelta(days=100)).dump()
    async with opened(okta_log.open_feed, cfg, clock=clock) as feed:
        pages = await drain(feed, stale)

    assert [p.baseline for p in pages] == [True]
    since = dict(logs(fake)[0].query)["since"]
    assert since == format_time(datetime.fromtimestamp(clock.now, UTC) - timedelta(minutes=5))


async def test_a_next_link_to_another_host_is_refused_and_a_stored_one_never_followed(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN)
    cfg = await served(aiohttp_server, fake)
    fake.log.foreign_next = "https://evil.example"
    async with opened(okta_log.open_feed, cfg) as feed:
        with pytest.raises(SourceError, match="refusing to follow"):
            await drain(feed, None)
        tampered = OktaCursor("https://evil.example/api/v1/logs?after=1_1", datetime.now(UTC)).dump()
        fake.log.foreign_next = None
        pages = await drain(feed, tampered)

    assert [p.baseline for p in pages] == [False]
    assert "since" in dict(logs(fake)[-1].query)  # resumed by time, on the org's own host


async def test_a_redirect_is_not_followed(aiohttp_server):
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://evil.example/api/v1/logs")

    cfg = await hostile_okta(aiohttp_server, redirect)
    async with opened(okta_log.open_feed, cfg) as feed:
        with pytest.raises(ClientRequestError, match="redirects are not followed"):
            await drain(feed, None)


async def test_endless_full_pages_of_the_same_events_are_stopped(aiohttp_server):
    event = _event(OktaFake(PEOPLE, token=TOKEN))
    base: list[str] = []

    async def endless(request: web.Request) -> web.Response:
        count = int(request.query.get("count", "0")) + 1
        response = web.json_response([event, {**event, "uuid": "other"}], headers=OKTA_RATE)
        response.headers.add("Link", f'<{base[0]}/api/v1/logs?after=x&count={count}>; rel="next"')
        return response

    cfg = await hostile_okta(aiohttp_server, endless)
    base.append(cfg.base_url)
    crawl = CrawlConfig(max_pages_without_new=3)
    async with opened(okta_log.open_feed, cfg, crawl, limit=2) as feed:
        pages: list[Any] = []
        with pytest.raises(ListingNeverEnds, match="brought nothing new"):
            async for page in feed.pages(None):
                pages.append(page)

    assert len(pages) == 4 and not any(p.caught_up for p in pages)
    assert feed.http.stats.requests == 4


async def test_a_huge_answer_is_refused_unread(aiohttp_server):
    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b'{"uuid":"x"},' * 20_000 + b"{}]", content_type="application/json")

    cfg = await hostile_okta(aiohttp_server, huge)
    async with opened(okta_log.open_feed, cfg, CrawlConfig(max_body_bytes=64 * 1024)) as feed:
        with pytest.raises(BodyTooLarge):
            await drain(feed, None)


async def test_a_page_that_is_not_a_list_fails_the_poll(aiohttp_server):
    async def wrapped(request: web.Request) -> web.Response:
        return web.json_response({"events": []})

    cfg = await hostile_okta(aiohttp_server, wrapped)
    async with opened(okta_log.open_feed, cfg) as feed:
        with pytest.raises(SourceError, match="not a list of events"):
            await drain(feed, None)


async def test_server_errors_404_500_and_429(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN, faults=Faults(throttle_next=1), rate_window=1.0)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg) as feed:
        pages = await drain(feed, None)  # the 429 waits for X-Rate-Limit-Reset, then goes on
        assert feed.http.stats.throttled == 1 and [p.caught_up for p in pages] == [True]
        fake.faults.fail_from_page = 1
        with pytest.raises(TransientError, match="answered 500"):
            await drain(feed, last_cursor(pages))
        assert feed.http.stats.retries == 4

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"errorCode": "E0000007", "errorSummary": "Not found"}, status=404)

    cfg = await hostile_okta(aiohttp_server, missing)
    async with opened(okta_log.open_feed, cfg) as feed:
        with pytest.raises(NotFoundError):  # our own query refused: not a stale cursor to restart from
            await drain(feed, None)
    validate_okta_log_exchanges(fake.exchanges)


async def test_a_wrong_token_fails_with_the_scope_and_without_the_token(aiohttp_server, secret, caplog):
    good, bad = secret("ssws"), secret("ssws")
    fake = OktaFake(PEOPLE, token=good)
    cfg = await served(aiohttp_server, fake, token=bad)
    async with opened(okta_log.open_feed, cfg) as feed:
        with pytest.raises(AuthError) as failure:
            await drain(feed, None)

    message = str(failure.value)
    assert "401" in message and "okta.logs.read" in message and "$T" in message
    assert bad not in message and good not in message and bad not in caplog.text
    validate_okta_log_exchanges(fake.exchanges)


async def test_logs_have_their_own_low_rate_bucket(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN, rate_limit=600, logs_rate_limit=4, rate_window=1.0)
    cfg = await served(aiohttp_server, fake)
    async with opened(okta_log.open_feed, cfg) as feed:
        cursor = last_cursor(await drain(feed, None))
        for _ in range(5):
            cursor = last_cursor(await drain(feed, cursor))

    assert {e.response_header_values("X-Rate-Limit-Limit")[0] for e in logs(fake)} == {"4"}
    assert feed.http.stats.throttled == 0 and feed.http.controller.pauses >= 1  # paced at the reserve, no 429


async def test_the_fake_refuses_what_okta_refuses(aiohttp_server):
    fake = OktaFake(PEOPLE, token=TOKEN)
    server = await aiohttp_server(fake.app())
    headers = {"Authorization": f"SSWS {TOKEN}"}
    old = (datetime.now(UTC) - timedelta(days=181)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    cases = {
        "since": ({"since": old}, 400, "E0000053"),
        "field": ({"filter": 'event_type eq "user.lifecycle.deactivate"'}, 400, "E0000053"),
        "both": ({"since": "2026-12-01T00:00:00Z", "after": "1_1"}, 400, "E0000001"),
        "limit": ({"limit": "lots"}, 400, "E0000001"),
    }
    url = server.make_url("/api/v1/logs")
    async with aiohttp.ClientSession(headers=headers) as session:
        for params, status, code in cases.values():
            async with session.get(url, params=params) as response:
                assert response.status == status
                assert (await response.json())["errorCode"] == code
        fake.deactivate("ana.silva@acme.com")
        async with session.get(url, params={"limit": "5"}) as response:
            assert len(await response.json()) == 1
            assert 'rel="next"' in ",".join(response.headers.getall("Link"))  # polling: always a next
        day = timedelta(days=1)
        bounded = {
            "since": format_time(datetime.now(UTC) - day),
            "until": format_time(datetime.now(UTC) + day),
        }
        async with session.get(url, params=bounded) as response:
            assert len(await response.json()) == 1
            assert 'rel="next"' not in ",".join(response.headers.getall("Link"))  # bounded: it ends
    valid = [e for e in fake.exchanges if dict(e.query).get("limit") != "lots"]  # the spec refuses it too
    assert validate_okta_log_exchanges(valid) == len(logs(fake)) - 1


def test_the_fakes_events_carry_the_nulls_real_events_carry():
    """Without stripping nulls the fake's events fail Okta's spec, as real ones do: proof the nulls are
    there; with them stripped they pass (`validate_okta_log_exchanges` above)."""
    fake = OktaFake(PEOPLE, token=TOKEN)
    fake.deactivate("ana.silva@acme.com")
    body = json.dumps([fake.log.events[0].event]).encode()
    exchange = Exchange("GET", "/api/v1/logs", (), (), b"", 200, "application/json", (), body)
    published, _ = okta_openapi(OKTA_LOGS_SPEC, "/api/v1/logs")
    with pytest.raises(Exception, match=r"(?i)invalid"):
        published.validate_response(SpecRequest(exchange), SpecResponse(exchange))
    published.validate_response(SpecRequest(exchange), SpecResponse(exchange, strip_nulls=True))
    event = fake.log.events[0].event
    assert event["outcome"]["reason"] is None and event["client"]["zone"] == "null"
    assert event["version"] == "0" and event["target"][0]["detailEntry"] is None


def test_cursor_round_trip_and_garbage():
    cursor = OktaCursor("https://acme.okta.com/api/v1/logs?after=1_2", datetime(2026, 12, 1, tzinfo=UTC))
    assert OktaCursor.load(cursor.dump()) == cursor
    feed = OktaLogFeed(
        idp({"name": "o", "type": "okta", "base_url": "https://a.okta.com", "token_env": "T"}, {"T": "x"}),
        None,
    )  # type: ignore[arg-type]
    for garbage in ("{", "[]", '{"next": 3, "published": "2026-01-01T00:00:00Z"}', '{"next": null}'):
        with pytest.raises(SourceError, match="cursor cannot be read"):
            feed._load(garbage)
    assert feed._load("") is None
