"""`find_accounts`: one person's accounts in one portal through `/users/search?email=`, against the
simulator (both answers for "no match", both dialects) and against servers that misbehave."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from feed_helpers import hostile_url, portal_cfg, portal_config, portal_http

from crawler.config import CrawlConfig
from crawler.errors import ClientRequestError, SourceError, TransientError
from crawler.http import BodyTooLarge, SourceHttp
from crawler.learnupon.lookup import find_accounts
from crawler.paging_guard import ListingNeverEnds
from crawler.simulator.faults import FaultConfig
from crawler.simulator.server import make_portals, run_simulator


@asynccontextmanager
async def simulated(**spec: Any) -> AsyncIterator[tuple[Any, SourceHttp, str]]:
    [portal] = make_portals(["emea"], 60, 11, **spec)
    async with run_simulator([portal]) as sim:
        cfg = portal_config(sim, portal)
        async with portal_http(cfg) as http:
            yield portal, http, cfg.base_url


def searches(portal: Any) -> list[tuple[str, dict[str, str]]]:
    return [(path, query) for _, path, query, _ in portal.stats.log]


@pytest.mark.parametrize("dialect", ["real", "seed"])
async def test_finds_every_account_of_an_address_whatever_its_case(dialect):
    async with simulated(dialect=dialect) as (portal, http, base):
        index = portal.data.index
        address = next(a for a, ids in index.users_by_email.items() if len(ids) > 1)  # a case variant
        found = await find_accounts(http, base, address.upper())

    assert sorted(u.id for u in found) == sorted(index.users_by_email[address])
    assert {u.email.casefold() for u in found if u.email} == {address}
    assert all(u.enabled == portal.data.users[u.id]["enabled"] for u in found)
    assert searches(portal) == [("/users/search", {"email": address.upper(), "page": "1"})]  # never /users


@pytest.mark.parametrize("no_match", ["not_found", "empty_list"])
async def test_an_address_nobody_has_is_absent_for_that_address(no_match):
    async with simulated(search_no_match=no_match) as (portal, http, base):
        found = await find_accounts(http, base, "nobody.here@acme.com")

    assert found == []
    assert [status for *_, status in portal.stats.log] == [404 if no_match == "not_found" else 200]


async def test_a_search_the_portal_ignored_proves_nothing():
    async with simulated() as (portal, http, base):
        portal.faults = FaultConfig(ignored_filters=frozenset({"email"}))  # the roster comes back
        address = next(iter(portal.data.index.users_by_email))
        with pytest.raises(SourceError, match="search was not applied"):
            await find_accounts(http, base, address)


async def test_a_refused_address_and_server_errors():
    async with simulated() as (portal, http, base):
        with pytest.raises(SourceError, match="spaces"):
            await find_accounts(http, base, "a b@acme.com")
        portal.faults = FaultConfig(fail_after=0)
        with pytest.raises(TransientError, match="answered 500"):
            await find_accounts(http, base, "ana@acme.com")


@asynccontextmanager
async def hostile(aiohttp_server: Any, handler: Any, crawl: CrawlConfig | None = None
                  ) -> AsyncIterator[tuple[SourceHttp, str]]:  # fmt: skip
    cfg = portal_cfg(await hostile_url(aiohttp_server, handler), "api-x", "key-x")
    async with portal_http(cfg, crawl) as http:
        yield http, cfg.base_url


async def test_misbehaving_servers(aiohttp_server):
    record = {"id": 7, "email": "ana@acme.com", "user_type": "learner", "enabled": True}

    async def no_enabled(request: web.Request) -> web.Response:
        return web.json_response({"user": [{"id": 7, "email": "ana@acme.com", "user_type": "learner"}]})

    async def endless(request: web.Request) -> web.Response:
        return web.json_response({"user": [record]}, headers={"LU-Has-Next-Page": "true"})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://evil.example/api/v1/users/search")

    async def huge(request: web.Request) -> web.Response:
        return web.json_response({"user": [record] * 5000})

    async def hostile_text(request: web.Request) -> web.Response:
        name = "[bold]\x1b[31mAna[/bold]"
        return web.json_response({"user": [{**record, "first_name": name, "email": "ANA@acme.com"}]})

    cases = [
        (no_enabled, None, SourceError, "cannot be read"),  # never read as enabled, nor as absent
        (endless, CrawlConfig(max_pages_without_new=3), ListingNeverEnds, "brought nothing new"),
        (redirect, None, ClientRequestError, "redirects are not followed"),
        (huge, CrawlConfig(max_body_bytes=64 * 1024), BodyTooLarge, "byte limit"),
    ]
    for handler, crawl, error, message in cases:
        async with hostile(aiohttp_server, handler, crawl) as (http, base):
            with pytest.raises(error, match=message):
                await find_accounts(http, base, "ana@acme.com")
    async with hostile(aiohttp_server, hostile_text) as (http, base):
        [user] = await find_accounts(http, base, "ana@acme.com")
    assert user.first_name == "[bold]\x1b[31mAna[/bold]"  # kept as data; terminal.py escapes it on output
