"""Google Reports feed against the fake Workspace's activities: admin and login events, windows ending at
Google's `Date` with a 30-minute overlap, late events, quota errors, and servers that misbehave."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from feed_helpers import Clock, drain, hostile_url, idp, items, last_cursor, opened

from crawler.config import CrawlConfig
from crawler.errors import AuthError, ClientRequestError, NotFoundError, SourceError, TransientError
from crawler.feeds import google_reports
from crawler.feeds.google_reports import parse_activity
from crawler.http import BodyTooLarge
from crawler.idp import google
from crawler.idp.fakes.directory import FakePerson
from crawler.idp.fakes.google import REPORTS_SCOPE, GoogleFake
from crawler.idp.fakes.google_reports import admin_activity, login_activity
from crawler.idp.status import format_time
from crawler.paging_guard import ListingNeverEnds
from crawler.vocabulary import IdentityStatus

CLIENT_EMAIL = "idgraph@acme-project.iam.gserviceaccount.com"
PEOPLE = [FakePerson(k, f"{k}@acme.com") for k in ("ana", "ben", "chloe", "dev")]


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def setup(aiohttp_server: Any, private_key: rsa.RSAPrivateKey, tmp_path: Path) -> Any:
    """`await setup(fake=None, base_url=None)` -> (fake, cfg): a Workspace (or another host for the API)."""

    async def make(fake: GoogleFake | None = None, base_url: str | None = None) -> tuple[GoogleFake, Any]:
        fake = fake or GoogleFake(PEOPLE, public_key=private_key.public_key())
        server = await aiohttp_server(fake.app())
        url = f"http://{server.host}:{server.port}"
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        key = {"private_key": pem, "client_email": CLIENT_EMAIL, "token_uri": f"{url}/token"}
        path = tmp_path / f"key-{server.port}.json"
        path.write_text(json.dumps(key), encoding="utf-8")
        raw = {"name": "gws", "type": "google", "key_file": str(path), "subject": "admin@acme.com"}
        return fake, idp({**raw, "base_url": base_url or url})

    return make


def activity_requests(fake: GoogleFake) -> list[Any]:
    return [e for e in fake.exchanges if "/reports/" in e.path]


async def test_admin_and_google_suspensions_become_status_changes(setup, private_key):
    clock = Clock()
    fake, cfg = await setup(GoogleFake(PEOPLE, public_key=private_key.public_key(), clock=clock))
    async with opened(google_reports.open_feed, cfg, clock=clock) as feed:
        first = await drain(feed, None)
        clock.advance(60)
        fake.suspend("ana@acme.com")
        fake.delete("ben@acme.com")
        fake.google_disables("chloe@acme.com")
        clock.advance(5)
        fake.unsuspend("ana@acme.com")
        fake.undelete("ben@acme.com")
        clock.advance(60)
        second = await drain(feed, last_cursor(first))

    assert [(p.baseline, p.caught_up, p.items) for p in first] == [(True, False, ()), (True, True, ())]
    assert [(p.baseline, p.caught_up) for p in second] == [(False, False), (False, True)]
    assert [p.cursor == last_cursor(first) for p in second] == [True, False]  # the end only at the last page
    got = sorted((c.idp_id, c.status, c.raw) for c in items(second))
    assert got == [
        ("ana@acme.com", IdentityStatus.ACTIVE, "UNSUSPEND_USER"),
        ("ana@acme.com", IdentityStatus.DISABLED, "SUSPEND_USER"),
        ("ben@acme.com", IdentityStatus.DELETED, "DELETE_USER"),
        ("chloe@acme.com", IdentityStatus.DISABLED, "account_disabled_hijacked"),
    ]
    [undelete] = [s for p in second for s in p.skipped]
    assert undelete.reason.startswith("UNDELETE_USER: a restored account may come back suspended")
    assert undelete.addresses == ("ben@acme.com",)
    assert all(c.observed_at is not None and c.addresses == (c.idp_id,) for c in items(second))
    assert len({c.key for c in items(second)}) == 4
    # Windows: the first from (our) now − 30 min, the next from Google's Date − 30 min, no endTime.
    queries = [dict(e.query) for e in activity_requests(fake)]
    assert all("endTime" not in q for q in queries)
    date = datetime.fromtimestamp(clock.now - 125, UTC).replace(microsecond=0)
    assert queries[2]["startTime"] == format_time(date - timedelta(minutes=30))
    assert last_cursor(second) == format_time(datetime.fromtimestamp(int(clock.now), UTC))
    assert [e.path.rsplit("/", 1)[-1] for e in activity_requests(fake)] == ["admin", "login"] * 2


async def test_a_late_event_is_caught_by_the_overlap_and_repeats_keep_their_keys(setup, private_key):
    clock = Clock()
    fake, cfg = await setup(GoogleFake(PEOPLE, public_key=private_key.public_key(), clock=clock))
    async with opened(google_reports.open_feed, cfg, clock=clock) as feed:
        cursor = last_cursor(await drain(feed, None))
        clock.advance(60)
        fake.suspend("ana@acme.com", lag=300)  # reported five minutes after it happened
        clock.advance(60)
        early = await drain(feed, cursor)
        clock.advance(600)
        late = await drain(feed, last_cursor(early))
        again = await drain(feed, last_cursor(late))
        replay = await drain(feed, last_cursor(early))  # a crash before `late`'s cursor was saved
        before = feed.http.stats.requests
        await drain(feed, last_cursor(again))

    assert items(early) == []
    assert [c.raw for c in items(late)] == ["SUSPEND_USER"]  # within the 30-minute overlap
    assert [c.key for c in items(again)] == [c.key for c in items(late)]  # re-read: the key absorbs it
    assert [c.key for c in items(replay)] == [c.key for c in items(late)]
    assert feed.http.stats.requests - before == 2  # one per application (admin, login) per quiet poll


async def test_paging_by_next_page_token(setup, private_key):
    clock = Clock()
    fake, cfg = await setup(GoogleFake(PEOPLE, public_key=private_key.public_key(), clock=clock))
    fake.reports.page_size = 2
    async with opened(google_reports.open_feed, cfg, clock=clock) as feed:
        cursor = last_cursor(await drain(feed, None))
        for person in PEOPLE:
            fake.suspend(person.email)
        clock.advance(1)
        pages = await drain(feed, cursor)

    assert [len(p.items) for p in pages] == [2, 2, 0]  # admin (2 pages), then login
    assert {c.idp_id for c in items(pages)} == {p.email for p in PEOPLE}


async def test_unreadable_activities_are_skipped_with_a_reason():
    at = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    good = admin_activity("SUSPEND_USER", "ana@acme.com", at)
    no_email = admin_activity("SUSPEND_USER", "ana@acme.com", at)
    no_email["events"][0]["parameters"] = []
    no_id = {**admin_activity("DELETE_USER", "ben@acme.com", at), "id": None}
    hostile = admin_activity("SUSPEND_USER", "[bold]\x1b[31m", at)
    several = admin_activity("SUSPEND_USER", "ana@acme.com", at)
    several["events"] = [{"name": "CHANGE_PASSWORD"}, *several["events"], "junk"]

    assert [c.raw for c in parse_activity(good, "g", "admin")[0]] == ["SUSPEND_USER"]
    assert [s.reason for s in parse_activity(no_email, "g", "admin")[1]] == [
        "SUSPEND_USER without USER_EMAIL: whose account is unknown"
    ]
    [skip] = parse_activity(no_id, "g", "admin")[1]
    assert skip.reason == "DELETE_USER: activity id incomplete, so it cannot be de-duplicated"
    assert skip.addresses == ("ben@acme.com",)
    assert parse_activity(hostile, "g", "admin") == ([], [parse_activity(hostile, "g", "admin")[1][0]])
    assert parse_activity(hostile, "g", "admin")[1][0].addresses == ()
    [change] = parse_activity(several, "g", "admin")[0]
    assert change.key.endswith("|1|SUSPEND_USER")  # the event's index is part of the key
    assert (
        parse_activity("x", "g", "login")[1][0].reason
        == "login activity is not an object with an events list"
    )
    login = login_activity("account_disabled_password_leak", "dev@acme.com", at)
    assert [(c.status, c.raw) for c in parse_activity(login, "g", "login")[0]] == [
        (IdentityStatus.DISABLED, "account_disabled_password_leak")
    ]
    assert parse_activity(login, "g", "admin") == ([], [])  # the parameter names differ by application


async def test_quota_errors_back_off_and_a_503_is_retried(setup, private_key):
    quota = ["userRateLimitExceeded", "rateLimitExceeded"]  # a 403 and a 429, as Google sends them
    fake = GoogleFake(PEOPLE, public_key=private_key.public_key(), quota_errors=quota)
    fake, cfg = await setup(fake)
    async with opened(google_reports.open_feed, cfg) as feed:
        feed.http.controller.backoff_base = 0.01
        pages = await drain(feed, None)
        assert feed.http.stats.throttled == 2 and pages[-1].caught_up
        fake.faults.fail_from_page, fake.faults.fail_status = 1, 503
        with pytest.raises(TransientError, match="answered 503"):
            await drain(feed, last_cursor(pages))
        assert feed.http.stats.retries == 4


async def test_each_api_wants_its_own_scope_and_a_real_403_is_not_retried(setup, private_key):
    fake, cfg = await setup(GoogleFake(PEOPLE, public_key=private_key.public_key()))
    connector = aiohttp.TCPConnector()
    directory, _ = google.open_source(cfg, connector, CrawlConfig())  # a token for the Directory scope
    try:
        with pytest.raises(AuthError, match="insufficient authentication scopes"):
            url = f"{cfg.base_url}/admin/reports/v1/activity/users/all/applications/admin"
            await directory.get_json(url, purpose="test")
    finally:
        await directory.close()
        await connector.close()
    fake.forbidden = True
    async with opened(google_reports.open_feed, cfg) as feed:
        with pytest.raises(AuthError) as failure:
            await drain(feed, None)
    assert REPORTS_SCOPE in str(failure.value) and "forbidden" in str(failure.value)
    assert feed.http.stats.retries == 0


async def test_google_refuses_a_start_time_in_its_future(setup, private_key):
    clock = Clock()
    _, cfg = await setup(GoogleFake(PEOPLE, public_key=private_key.public_key(), clock=clock))
    future = format_time(datetime.fromtimestamp(clock.now, UTC) + timedelta(hours=2))
    async with opened(google_reports.open_feed, cfg, clock=clock) as feed:
        with pytest.raises(ClientRequestError, match="Start time must be less than the current time"):
            await drain(feed, future)  # a cursor from a clock running 2.5 h ahead of Google's


async def test_misbehaving_report_hosts(setup, private_key, aiohttp_server):
    fake, _ = await setup(GoogleFake(PEOPLE, public_key=private_key.public_key()))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://evil.example/admin/reports/v1/activity/users/all/applications/admin")

    async def endless(request: web.Request) -> web.Response:
        page = admin_activity("SUSPEND_USER", "ana@acme.com", 1.8e9)
        page["id"]["uniqueQualifier"] = "1"
        return web.json_response({"items": [page], "nextPageToken": request.query.get("pageToken", "") + "x"})

    async def huge(request: web.Request) -> web.Response:
        return web.json_response({"items": [admin_activity("SUSPEND_USER", "a@acme.com", 1.8e9)] * 500})

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": 404, "message": "Not Found", "errors": []}}, status=404)

    async def garbled(request: web.Request) -> web.Response:
        return web.json_response({"items": "none"}, headers={"Date": formatdate(usegmt=True)})

    cases = [
        (redirect, None, ClientRequestError, "redirects are not followed"),
        (endless, CrawlConfig(max_pages_without_new=3), ListingNeverEnds, "brought nothing new"),
        (huge, CrawlConfig(max_body_bytes=64 * 1024), BodyTooLarge, "byte limit"),
        (garbled, None, SourceError, "no `items` list"),
        (missing, None, NotFoundError, "answered 404"),
    ]
    for handler, crawl, error, message in cases:
        url = await hostile_url(aiohttp_server, handler)
        _, cfg = await setup(fake, base_url=url)
        async with opened(google_reports.open_feed, cfg, crawl) as feed:
            with pytest.raises(error, match=message):
                await drain(feed, None)
