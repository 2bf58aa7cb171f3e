"""SCIM source against the fake service provider: index paging, short pages, throttling and faults."""

from __future__ import annotations

from typing import Any

from crawler.errors import AuthError, SourceError, TransientError
from crawler.idp import scim
from crawler.idp.fakes import Faults
from crawler.idp.fakes.directory import DROP, FakePerson
from crawler.idp.fakes.scim import ScimFake, scim_user
from crawler.orchestrator import crawl
from crawler.records import IdentityStatus

PEOPLE = [
    FakePerson("active", "ana.silva@acme.com", aliases=("ana.s@acme.com",), login="asilva@acme.com"),
    FakePerson("leaver", "ben.smith@acme.com", status="disabled"),
    FakePerson("suspended", "chloe.garcia@acme.com", status="suspended"),
    FakePerson("plain", "david.muller@acme.com"),
    FakePerson("locked", "elena.rossi@acme.com", status="locked_out"),
]


def scim_id(key: str) -> str:
    return next(scim_user(p)["id"] for p in PEOPLE if p.id == key)


async def start(aiohttp_server: Any, tools: Any, fake: ScimFake, token: str, page_size: int = 100) -> Any:
    server = await aiohttp_server(fake.app())
    raw = {
        "name": "hr",
        "type": "scim",
        "base_url": f"{tools.url_of(server)}/scim/v2",
        "token_env": "SCIM_TOKEN",
        "page_size": page_size,
    }
    return tools.idp(raw, {"SCIM_TOKEN": token})


async def test_pages_advance_by_what_was_received(aiohttp_server, tools, store, secret):
    token = secret("scim")
    fake = ScimFake(PEOPLE, token=token, max_count=2)  # the server serves 2 although we ask for 100
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(scim.open_source, cfg, store)

    assert outcome.error is None
    assert [dict(e.query) for e in fake.exchanges] == [
        {"startIndex": "1", "count": "100"},
        {"startIndex": "3", "count": "100"},
        {"startIndex": "5", "count": "100"},
    ]
    rows = outcome.by_id()
    assert {p.id: (rows[scim_id(p.id)]["raw_status"], rows[scim_id(p.id)]["status"]) for p in PEOPLE} == {
        "active": ("active", IdentityStatus.ACTIVE),
        "leaver": ("inactive", IdentityStatus.DISABLED),
        "suspended": ("inactive", IdentityStatus.DISABLED),
        "plain": ("active", IdentityStatus.ACTIVE),
        "locked": ("active", IdentityStatus.ACTIVE),
    }
    assert outcome.addresses(scim_id("active")) == {
        "ana.silva@acme.com": (True, "email"),
        "ana.s@acme.com": (False, "email"),
        "asilva@acme.com": (False, "login"),
    }
    users = outcome.collections()["users"]
    assert (users["done"], users["pages"], users["records"]) == (1, 3, 5)


async def test_an_empty_directory_is_complete(aiohttp_server, tools, store, secret):
    token = secret("scim")
    cfg = await start(aiohttp_server, tools, ScimFake([], token=token), token)

    outcome = await tools.crawl_one(scim.open_source, cfg, store)

    assert outcome.error is None and outcome.collections()["users"]["done"] == 1


async def test_429_then_success(aiohttp_server, tools, store, secret):
    token = secret("scim")
    fake = ScimFake(PEOPLE, token=token, faults=Faults(throttle_next=1, retry_after="1"))
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(scim.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    assert outcome.http.stats.throttled == 1 and [e.status for e in fake.exchanges] == [429, 200]


async def test_an_empty_page_before_total_results_is_an_incomplete_listing(
    aiohttp_server, tools, store, secret
):
    token = secret("scim")
    fake = ScimFake(PEOPLE, token=token, max_count=2, truncate_after=2)
    cfg = await start(aiohttp_server, tools, fake, token)

    outcome = await tools.crawl_one(scim.open_source, cfg, store)

    assert isinstance(outcome.error, SourceError)
    assert "empty page at startIndex=3 although totalResults=5" in str(outcome.error)
    users = outcome.collections()["users"]
    assert (users["done"], users["pages"], users["records"]) == (0, 1, 2)


async def test_failure_on_page_3_leaves_the_listing_incomplete(aiohttp_server, tools, store, secret):
    token = secret("scim")
    fake = ScimFake(PEOPLE, token=token, faults=Faults(fail_from_page=3))
    cfg = await start(aiohttp_server, tools, fake, token, page_size=2)

    outcome = await tools.crawl_one(scim.open_source, cfg, store)

    assert isinstance(outcome.error, TransientError) and "answered 500" in str(outcome.error)
    users = outcome.collections()["users"]
    assert (users["done"], users["pages"], users["records"]) == (0, 2, 4)


async def test_missing_active_is_quarantined_not_guessed(aiohttp_server, tools, store, secret):
    token = secret("scim")
    odd = FakePerson("odd", "zoe.walsh@acme.com", overrides={"scim": {"active": DROP}})
    cfg = await start(aiohttp_server, tools, ScimFake([*PEOPLE, odd], token=token), token)

    outcome = await tools.crawl_one(scim.open_source, cfg, store)

    assert outcome.error is None and len(outcome.rows()) == len(PEOPLE)
    [row] = store.quarantined(outcome.run_id)
    assert "active is missing" in row["reason"] and row["addresses"] == ["zoe.walsh@acme.com"]


async def test_wrong_token_fails_clearly_without_the_token(aiohttp_server, tools, store, secret, debug_logs):
    good, bad = secret("scim"), secret("scim")
    cfg = await start(aiohttp_server, tools, ScimFake(PEOPLE, token=good), bad)

    outcome = await tools.crawl_one(scim.open_source, cfg, store)

    assert isinstance(outcome.error, AuthError)
    assert "401" in str(outcome.error) and "$SCIM_TOKEN" in str(outcome.error)
    tools.assert_no_secrets([good, bad], store=store, caplog=debug_logs, errors=[outcome.error])


async def test_orchestrator_one_bad_endpoint_leaves_the_other_complete(
    aiohttp_server, tools, store, secret, debug_logs
):
    good = secret("scim")
    fake = ScimFake(PEOPLE, token=good, faults=Faults())
    server = await aiohttp_server(fake.app())
    broken = ScimFake(PEOPLE, token=good, max_count=2, faults=Faults(fail_from_page=2))
    broken_server = await aiohttp_server(broken.app())
    common = {"type": "scim", "token_env": "SCIM_TOKEN", "page_size": 2}
    config = tools.config(
        {
            "idps": [
                {**common, "name": "hr", "base_url": f"{tools.url_of(server)}/scim/v2"},
                {**common, "name": "hr-eu", "base_url": f"{tools.url_of(broken_server)}/scim/v2"},
            ]
        },
        {"SCIM_TOKEN": good},
    )

    result = await crawl(config, store)

    coverage = {c.source: c for c in result.coverage}
    assert coverage["hr"].complete and coverage["hr"].records == len(PEOPLE)
    assert not coverage["hr-eu"].complete and "answered 500" in (coverage["hr-eu"].error or "")
    assert coverage["hr-eu"].records == 2 and coverage["hr-eu"].retries == 4
    assert store.finish_run(result.run_id) == "incomplete"
    tools.assert_no_secrets([good], store=store, caplog=debug_logs, errors=[coverage["hr-eu"].error])
