"""Graph users-delta feed against the fake tenant's `/v1.0/users/delta`: rounds, the deltaLink cursor
handed out only at a round's end, `@removed`, resyncs, and servers that misbehave."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from feed_helpers import Clock, drain, hostile_url, idp, items, last_cursor, opened

from crawler.config import CrawlConfig
from crawler.errors import AuthError, ClientRequestError, NotFoundError, SourceError, TransientError
from crawler.feeds import graph_delta
from crawler.feeds.events import Skipped
from crawler.http import BodyTooLarge
from crawler.idp.fakes import Faults
from crawler.idp.fakes.directory import DROP, FakePerson
from crawler.idp.fakes.entra import EntraFake, entra_user
from crawler.paging_guard import ListingNeverEnds
from crawler.vocabulary import IdentityStatus

SECRET = "entra-feed-secret-51c2"
PEOPLE = [
    FakePerson("ana", "ana.silva@acme.com", aliases=("ana.s@acme.com",)),
    FakePerson("ben", "ben.smith@acme.com"),
    FakePerson("chloe", "chloe.garcia@acme.com"),
    FakePerson("dev", "dev.patel@acme.com", status="disabled"),
    FakePerson("eva", "eva.kim@acme.com"),
]


def gid(key: str) -> str:
    return next(entra_user(p)["id"] for p in PEOPLE if p.id == key)


def entra_cfg(login_url: str, graph_url: str, secret: str = SECRET) -> Any:
    raw = {
        "name": "entra",
        "type": "entra",
        "tenant_id": "11111111-2222-3333-4444-555555555555",
        "client_id": "client-app-id",
        "client_secret_env": "S",
        "login_url": login_url,
        "graph_url": graph_url,
    }
    return idp(raw, {"S": secret})


async def served(aiohttp_server: Any, fake: EntraFake, secret: str = SECRET) -> Any:
    server = await aiohttp_server(fake.app())
    url = f"http://{server.host}:{server.port}"
    return entra_cfg(url, url, secret)


def deltas(fake: EntraFake) -> list[Any]:
    return [e for e in fake.exchanges if e.path == "/v1.0/users/delta"]


def fake_of(people: list[FakePerson] = PEOPLE, **knobs: Any) -> EntraFake:
    fake = EntraFake(people, client_secret=SECRET, **knobs)
    fake.delta.page_size = 2
    return fake


async def test_the_first_round_is_a_baseline_and_only_its_last_page_carries_the_delta_link(aiohttp_server):
    fake = fake_of()
    fake.delta.empty_pages = {2}  # Graph may send an empty page mid-round
    cfg = await served(aiohttp_server, fake)
    async with opened(graph_delta.open_feed, cfg) as feed:
        pages = await drain(feed, None)

    assert [(len(p.items), p.cursor == "", p.baseline, p.caught_up) for p in pages] == [
        (2, True, True, False),
        (0, True, True, False),
        (2, True, True, False),
        (1, False, True, True),
    ]
    assert "$deltatoken=" in pages[-1].cursor
    assert {c.idp_id: c.status for c in items(pages)} == {
        gid(p.id): IdentityStatus.DISABLED if p.disabled else IdentityStatus.ACTIVE for p in PEOPLE
    }
    ana = next(c for c in items(pages) if c.idp_id == gid("ana"))
    assert set(ana.addresses) == {"ana.silva@acme.com", "ana.s@acme.com"} and ana.observed_at is None
    assert ana.key == f"{gid('ana')}:accountEnabled=true" and ana.raw == "accountEnabled=true"
    first = dict(deltas(fake)[0].query)
    assert set(first["$select"].split(",")) >= {
        "accountEnabled",
        "mail",
        "userPrincipalName",
        "proxyAddresses",
    }
    assert all(e.header("Prefer") is None for e in deltas(fake))  # full entries: a missing field is news
    assert all(dict(e.query).keys() <= {"$skiptoken"} for e in deltas(fake)[1:])  # links followed as given


async def test_a_delta_round_reports_disables_removals_and_selected_changes_only(aiohttp_server):
    fake = fake_of()
    cfg = await served(aiohttp_server, fake)
    async with opened(graph_delta.open_feed, cfg) as feed:
        cursor = last_cursor(await drain(feed, None))
        fake.disable("ana.silva@acme.com")
        fake.remove("ben.smith@acme.com", reason="changed")
        fake.remove("chloe.garcia@acme.com", reason="deleted")
        fake.enable("dev.patel@acme.com")
        fake.update("eva.kim@acme.com", jobTitle="Engineer")  # not selected: not reported
        pages = await drain(feed, cursor)
        before = feed.http.stats.requests
        quiet = await drain(feed, last_cursor(pages))

    assert [p.baseline for p in pages] == [False, False]
    assert [p.cursor == cursor for p in pages] == [True, False]  # the new cursor only with the last page
    assert [(c.idp_id, c.status, c.raw, c.key) for c in items(pages)] == [
        (gid("ana"), IdentityStatus.DISABLED, "accountEnabled=false", f"{gid('ana')}:accountEnabled=false"),
        (gid("ben"), IdentityStatus.DELETED, "@removed: changed", f"{gid('ben')}:removed:changed"),
        (gid("chloe"), IdentityStatus.DELETED, "@removed: deleted", f"{gid('chloe')}:removed:deleted"),
        (gid("dev"), IdentityStatus.ACTIVE, "accountEnabled=true", f"{gid('dev')}:accountEnabled=true"),
    ]
    assert items(pages)[1].addresses == ()  # a removed entry carries only its id
    assert [(p.items, p.caught_up) for p in quiet] == [((), True)]
    assert feed.http.stats.requests - before == 1  # one request per poll when nothing happened
    assert last_cursor(quiet) != last_cursor(pages)  # always save the new token


async def test_a_crash_mid_round_replays_the_round_with_the_same_keys(aiohttp_server):
    fake = fake_of()
    cfg = await served(aiohttp_server, fake)
    async with opened(graph_delta.open_feed, cfg) as feed:
        cursor = last_cursor(await drain(feed, None))
        for person in PEOPLE[:3]:
            fake.disable(person.email)
        first = await drain(feed, cursor)
        replay = await drain(feed, cursor)  # the watcher died before the round's last page was saved
        after = await drain(feed, last_cursor(first))

    assert [c.key for c in items(replay)] == [c.key for c in items(first)]
    assert len(items(first)) == 3 and [p.items for p in after] == [()]


@pytest.mark.parametrize("how", ["expired", "reset"])
async def test_an_expired_token_or_a_reset_starts_a_fresh_baseline_round(aiohttp_server, how):
    clock = Clock()
    fake = fake_of()
    fake.delta.clock = clock
    cfg = await served(aiohttp_server, fake)
    async with opened(graph_delta.open_feed, cfg) as feed:
        cursor = last_cursor(await drain(feed, None))
        fake.disable("ana.silva@acme.com")
        if how == "expired":
            clock.advance(7 * 86400 + 1)
        else:
            fake.delta.reset_next = 1
        pages = await drain(feed, cursor)

    refused = deltas(fake)[-len(pages) - 1]
    if how == "expired":
        assert refused.status == 400 and b"syncStateNotFound" in refused.body
    else:
        assert refused.status == 410 and refused.response_header_values("Location")
    assert all(p.baseline for p in pages) and pages[-1].caught_up
    assert dict(deltas(fake)[-len(pages)].query) == {"$select": graph_delta.SELECT}  # our own, not Location
    assert {c.idp_id: c.status for c in items(pages)}[gid("ana")] == IdentityStatus.DISABLED  # diffed later


async def test_an_entry_without_account_enabled_is_skipped_never_read_as_active(aiohttp_server):
    odd = FakePerson("odd", "olu.ade@acme.com", overrides={"entra": {"accountEnabled": DROP}})
    hostile = FakePerson("bad", "x@acme.com", overrides={"entra": {"id": "id\x1b[31m"}})
    fake = fake_of([*PEOPLE[:2], odd, hostile])
    cfg = await served(aiohttp_server, fake)
    async with opened(graph_delta.open_feed, cfg) as feed:
        pages = await drain(feed, None)

    skipped = [s for p in pages for s in p.skipped]
    assert [(s.reason, s.addresses, s.label) for s in skipped] == [
        (
            "accountEnabled missing: the status is unknown (was $select dropped?)",
            ("olu.ade@acme.com",),
            f"id {entra_user(odd)['id']}",
        ),
        ("delta entry without a usable id", ("x@acme.com",), None),
    ]
    assert len(items(pages)) == 2
    assert graph_delta.parse_entry([], "e") == Skipped("delta entry is not a JSON object", [])
    removed = graph_delta.parse_entry({"id": "u1", "@removed": None}, "e")
    assert isinstance(removed, type(items(pages)[0])) and removed.raw == "@removed: no reason"


async def test_the_fake_serves_minimal_entries_and_sync_from_now(aiohttp_server):
    fake = fake_of()
    server = await aiohttp_server(fake.app())
    token = "eyJ0eXAiOiJKV1QifQ.test"
    fake.issued_tokens[token] = float("inf")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = server.make_url("/v1.0/users/delta")
        async with session.get(
            url, params={"$select": "id,accountEnabled,mail", "$deltatoken": "latest"}
        ) as r:
            latest = await r.json()
        assert latest["value"] == [] and "@odata.deltaLink" in latest and "@odata.nextLink" not in latest
        fake.disable("ana.silva@acme.com")
        fake.update("ben.smith@acme.com", mail="ben.new@acme.com")
        async with session.get(latest["@odata.deltaLink"], headers={"Prefer": "return=minimal"}) as r:
            minimal = await r.json()
            assert r.headers["Preference-Applied"] == "return=minimal"
        async with session.get(latest["@odata.deltaLink"]) as r:
            full = await r.json()
        async with session.get(url, params={"$deltatoken": "made-up"}) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "syncStateNotFound"

    assert minimal["value"] == [
        {"id": gid("ana"), "accountEnabled": False},
        {"id": gid("ben"), "mail": "ben.new@acme.com"},
    ]
    assert [sorted(v) for v in full["value"]] == [["accountEnabled", "id", "mail"]] * 2  # every selected one


async def test_throttling_server_errors_and_a_wrong_secret(aiohttp_server):
    fake = fake_of(faults=Faults(throttle_next=1, retry_after="0"))
    cfg = await served(aiohttp_server, fake)
    async with opened(graph_delta.open_feed, cfg) as feed:
        pages = await drain(feed, None)
        assert feed.http.stats.throttled == 1 and pages[-1].caught_up
        fake.faults.fail_from_page = 1
        with pytest.raises(TransientError, match="answered 500"):
            await drain(feed, last_cursor(pages))
    cfg = await served(aiohttp_server, fake_of(), secret="wrong-secret-0")
    async with opened(graph_delta.open_feed, cfg) as feed:
        with pytest.raises(AuthError) as failure:
            await drain(feed, None)
    assert "wrong-secret-0" not in str(failure.value)


async def test_misbehaving_graph_hosts(aiohttp_server):
    login = EntraFake(PEOPLE, client_secret=SECRET)
    login_server = await aiohttp_server(login.app())
    login_url = f"http://{login_server.host}:{login_server.port}"
    base: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://evil.example/v1.0/users/delta")

    async def foreign_next(request: web.Request) -> web.Response:
        return web.json_response(
            {"value": [], "@odata.nextLink": "https://evil.example/v1.0/users/delta?x=1"}
        )

    async def endless(request: web.Request) -> web.Response:
        n = int(request.query.get("n", "0")) + 1
        return web.json_response({"value": [], "@odata.nextLink": f"{base[-1]}/v1.0/users/delta?n={n}"})

    async def huge(request: web.Request) -> web.Response:
        return web.json_response({"value": [{"id": "u" * 90, "accountEnabled": True}] * 2000})

    async def no_value(request: web.Request) -> web.Response:
        return web.json_response({"error": "nope"})

    async def no_link(request: web.Request) -> web.Response:
        return web.json_response({"value": []})

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "Request_ResourceNotFound", "message": "x"}}, status=404)

    async def always_gone(request: web.Request) -> web.Response:
        body = {"error": {"code": "syncStateNotFound", "message": "The sync state generation is not found."}}
        return web.json_response(body, status=400)

    cases = [
        (redirect, None, ClientRequestError, "redirects are not followed"),
        (foreign_next, None, SourceError, "refusing to follow"),
        (endless, CrawlConfig(max_pages_without_new=3), ListingNeverEnds, "brought nothing new"),
        (huge, CrawlConfig(max_body_bytes=64 * 1024), BodyTooLarge, "byte limit"),
        (no_value, None, SourceError, "no `value` list"),
        (no_link, None, SourceError, "neither nextLink nor deltaLink"),
        (always_gone, None, ClientRequestError, "answered 410"),
        (missing, None, NotFoundError, "answered 404"),  # one fresh round per poll, not a loop
    ]
    for handler, crawl, error, message in cases:
        base.append(await hostile_url(aiohttp_server, handler))
        async with opened(graph_delta.open_feed, entra_cfg(login_url, base[-1]), crawl) as feed:
            with pytest.raises(error, match=message):
                await drain(feed, None)


async def test_a_stored_delta_link_to_another_host_is_never_followed(aiohttp_server):
    fake = fake_of()
    cfg = await served(aiohttp_server, fake)
    async with opened(graph_delta.open_feed, cfg) as feed:
        pages = await drain(feed, "https://evil.example/v1.0/users/delta?$deltatoken=x")

    assert all(p.baseline for p in pages)  # a fresh round on the tenant's own Graph host instead
    assert dict(deltas(fake)[0].query) == {"$select": graph_delta.SELECT}
