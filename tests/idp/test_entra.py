"""Entra source against the fake tenant: token, $select, nextLink paging, addresses, guests and faults."""

from __future__ import annotations

import asyncio
from typing import Any

from crawler.errors import AuthError, SourceError, TransientError
from crawler.idp import entra, tokens
from crawler.idp.fakes import Faults
from crawler.idp.fakes.directory import DROP, FakePerson
from crawler.idp.fakes.entra import EntraFake, entra_user
from crawler.orchestrator import crawl
from crawler.records import IdentityStatus

TENANT = "0a1b2c3d-0000-4000-8000-000000000001"
PEOPLE = [
    FakePerson("member", "ana.silva@acme.com", aliases=("ana.s@acme.com",), second_email="ana@gmail.example"),
    FakePerson("leaver", "ben.smith@acme.com", status="disabled"),
    FakePerson("guest", "carla@contoso.com", guest=True),
    FakePerson(
        "proxy-only",
        "pat.lee@acme.com",
        overrides={"entra": {"mail": None, "userPrincipalName": "plee@acme.onmicrosoft.com"}},
    ),
    FakePerson("locked", "dan.ito@acme.com", status="locked_out"),
    FakePerson("plain", "eva.kim@acme.com"),
]


def entra_id(key: str) -> str:
    return next(entra_user(p)["id"] for p in PEOPLE if p.id == key)


async def start(
    aiohttp_server: Any, tools: Any, fake: EntraFake, secret_value: str, name: str = "entra"
) -> Any:
    server = await aiohttp_server(fake.app())
    url = tools.url_of(server)
    raw = {
        "name": name,
        "type": "entra",
        "tenant_id": fake.tenant_id,
        "client_id": fake.client_id,
        "client_secret_env": "ENTRA_SECRET",
        "login_url": url,
        "graph_url": url,
    }
    return tools.idp(raw, {"ENTRA_SECRET": secret_value})


def listing(fake: EntraFake) -> list[Any]:
    return [e for e in fake.exchanges if e.path == "/v1.0/users"]


async def test_pages_statuses_guests_and_proxy_addresses(aiohttp_server, tools, store, secret):
    client_secret = secret("entra")
    fake = EntraFake(PEOPLE, tenant_id=TENANT, client_secret=client_secret, page_size_cap=2, empty_pages={2})
    cfg = await start(aiohttp_server, tools, fake, client_secret)

    outcome = await tools.crawl_one(entra.open_source, cfg, store)

    assert outcome.error is None
    rows = outcome.by_id()
    assert len(rows) == len(PEOPLE)
    assert rows[entra_id("leaver")]["status"] == IdentityStatus.DISABLED
    assert rows[entra_id("leaver")]["raw_status"] == "disabled"
    assert rows[entra_id("locked")]["status"] == IdentityStatus.ACTIVE
    assert rows[entra_id("guest")]["user_type"] == "guest"
    assert rows[entra_id("member")]["user_type"] == "member"
    assert outcome.addresses(entra_id("member")) == {
        "ana.silva@acme.com": (True, "email"),  # mail, the same as SMTP: (deduplicated)
        "ana.s@acme.com": (False, "proxy"),  # smtp: alias; SIP:/X500: ignored, otherMails never
    }
    assert outcome.addresses(entra_id("guest")) == {"carla@contoso.com": (True, "email")}  # no #EXT# UPN
    assert outcome.addresses(entra_id("proxy-only")) == {
        "pat.lee@acme.com": (True, "proxy"),
        "plee@acme.onmicrosoft.com": (False, "upn"),
    }
    calls = listing(fake)
    assert len(calls) == 4  # 2 + (empty) + 2 + 2
    assert dict(calls[0].query) == {"$select": entra.SELECT, "$top": "999"}
    assert all("$skiptoken" in dict(c.query) and dict(c.query)["$select"] == entra.SELECT for c in calls[1:])
    assert b'"value": []' in calls[1].body
    assert outcome.collections()["users"] == {**outcome.collections()["users"], "done": 1, "pages": 4}
    assert fake.token_requests == 1  # one token for every page
    assert outcome.http.stats.by_purpose == {"token": 1, "users": 4}


async def test_429_with_retry_after_then_success(aiohttp_server, tools, store, secret):
    client_secret = secret("entra")
    fake = EntraFake(PEOPLE, client_secret=client_secret, faults=Faults(throttle_next=1, retry_after="1"))
    cfg = await start(aiohttp_server, tools, fake, client_secret)

    outcome = await tools.crawl_one(entra.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    assert outcome.http.stats.throttled == 1
    assert [e.status for e in listing(fake)] == [429, 200]


async def test_a_record_without_account_enabled_is_quarantined_never_enabled(
    aiohttp_server, tools, store, secret
):
    client_secret = secret("entra")
    odd = FakePerson("odd", "zoe.walsh@acme.com", overrides={"entra": {"accountEnabled": DROP}})
    fake = EntraFake([*PEOPLE, odd], client_secret=client_secret)
    cfg = await start(aiohttp_server, tools, fake, client_secret)

    outcome = await tools.crawl_one(entra.open_source, cfg, store)

    assert outcome.error is None
    [row] = store.quarantined(outcome.run_id)
    assert "accountEnabled is missing" in row["reason"] and "zoe.walsh@acme.com" in row["record"]
    assert "zoe.walsh@acme.com" in row["addresses"]
    assert len(outcome.rows()) == len(PEOPLE)
    assert outcome.ctx.progress.notes == ["1 users came back without accountEnabled and were quarantined"]


async def test_lost_select_makes_the_listing_incomplete(aiohttp_server, tools, store, secret):
    client_secret = secret("entra")
    fake = EntraFake(PEOPLE, client_secret=client_secret, ignore_select=True)
    cfg = await start(aiohttp_server, tools, fake, client_secret)

    outcome = await tools.crawl_one(entra.open_source, cfg, store)

    assert isinstance(outcome.error, SourceError)
    assert "$select was not honoured" in str(outcome.error)
    assert outcome.rows() == [] and outcome.collections() == {}


async def test_failure_on_page_3_leaves_the_listing_incomplete(aiohttp_server, tools, store, secret):
    client_secret = secret("entra")
    fake = EntraFake(PEOPLE, client_secret=client_secret, page_size_cap=2, faults=Faults(fail_from_page=3))
    cfg = await start(aiohttp_server, tools, fake, client_secret)

    outcome = await tools.crawl_one(entra.open_source, cfg, store)

    assert isinstance(outcome.error, TransientError) and "answered 500" in str(outcome.error)
    users = outcome.collections()["users"]
    assert (users["done"], users["pages"], users["records"]) == (0, 2, 4)


async def test_wrong_secret_fails_clearly_without_the_secret(
    aiohttp_server, tools, store, secret, debug_logs
):
    good, bad = secret("entra"), secret("entra")
    fake = EntraFake(PEOPLE, client_secret=good)
    cfg = await start(aiohttp_server, tools, fake, bad)

    outcome = await tools.crawl_one(entra.open_source, cfg, store)

    assert isinstance(outcome.error, AuthError)
    message = str(outcome.error)
    assert "401" in message and "invalid_client" in message and "$ENTRA_SECRET" in message
    assert listing(fake) == []  # never reached Graph
    tools.assert_no_secrets([good, bad], store=store, caplog=debug_logs, errors=[outcome.error])


async def test_orchestrator_one_bad_tenant_leaves_the_other_complete(
    aiohttp_server, tools, store, secret, debug_logs
):
    good = secret("entra")
    fake = EntraFake(PEOPLE, tenant_id=TENANT, client_secret=good, page_size_cap=4)
    server = await aiohttp_server(fake.app())
    url = tools.url_of(server)
    common = {"type": "entra", "client_id": fake.client_id, "client_secret_env": "ENTRA_SECRET"}
    config = tools.config(
        {
            "crawl": {"max_concurrency_per_source": 1},  # the token fetch must not need a second slot
            "idps": [
                {**common, "name": "entra", "tenant_id": TENANT, "login_url": url, "graph_url": url},
                {
                    **common,
                    "name": "entra-lab",
                    "tenant_id": "no-such-tenant",
                    "login_url": url,
                    "graph_url": url,
                },
            ],
        },
        {"ENTRA_SECRET": good},
    )

    result = await asyncio.wait_for(crawl(config, store), timeout=30)

    coverage = {c.source: c for c in result.coverage}
    assert coverage["entra"].complete and coverage["entra"].records == len(PEOPLE)
    assert coverage["entra"].requests_by_purpose == {"token": 1, "users": 2}
    assert not coverage["entra-lab"].complete
    assert "invalid_request" in (coverage["entra-lab"].error or "")
    assert "check tenant_id" in (coverage["entra-lab"].error or "")
    issued = list(fake.issued_tokens)
    assert issued
    tools.assert_no_secrets(
        [good, *issued], store=store, caplog=debug_logs, errors=[coverage["entra-lab"].error]
    )


async def test_short_lived_tokens_are_renewed_before_graph_rejects_them(aiohttp_server, tools, store, secret):
    client_secret = secret("entra")
    fake = EntraFake(PEOPLE, client_secret=client_secret, token_lifetime=1, page_size_cap=1)
    cfg = await start(aiohttp_server, tools, fake, client_secret)

    outcome = await tools.crawl_one(entra.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    assert fake.token_requests >= 2
    assert {e.status for e in listing(fake)} == {200}


async def test_token_cache_fetches_once_and_renews_before_expiry():
    now = [1000.0]
    fetched: list[int] = []

    async def fetch() -> tuple[str, float]:
        fetched.append(1)
        await asyncio.sleep(0.01)
        return f"token-{len(fetched)}", 3600.0

    cache = tokens.TokenCache(fetch, clock=lambda: now[0])
    headers = await asyncio.gather(*(cache.headers() for _ in range(5)))
    assert headers == [{"Authorization": "Bearer token-1"}] * 5 and len(fetched) == 1
    now[0] += 3600 - 301  # more than five minutes left: keep it
    assert await cache.token() == "token-1"
    now[0] += 2  # within five minutes of expiry: renew
    assert await cache.token() == "token-2"
