"""Issue 14 item 5: a hostile source cannot exhaust memory or keep the crawl running forever.

Every attack ends the source incomplete with a reason that says which limit stopped it.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
from pathlib import Path

import pytest
from aiohttp import web
from hostile_fakes import hostile, make_config, portal_entry, run_crawl

from crawler.ratelimit import parse_retry_after

MAX_RETRY_AFTER = 300.0  # the documented default clamp

MiB = 1024 * 1024


def okta(url: str) -> dict:
    return {"name": "okta", "type": "okta", "base_url": url, "token_env": "OKTA_TOKEN"}


def scim(url: str) -> dict:
    return {"name": "scim", "type": "scim", "base_url": url, "token_env": "SCIM_TOKEN"}


IDP_ENV = {"OKTA_TOKEN": "okta-token-5e6f7a8b9c", "SCIM_TOKEN": "scim-token-1a2b3c4d5e"}


def user(n: int) -> dict:
    return {
        "id": f"u{n}",
        "status": "ACTIVE",
        "profile": {"email": f"u{n}@acme.com", "login": f"u{n}@acme.com"},
    }


async def test_a_gzip_bomb_stops_at_the_decompressed_limit(tmp_path: Path) -> None:
    bomb = gzip.compress(b"[" + b" " * (200 * MiB) + b"]", compresslevel=9)  # ~200 KB on the wire
    assert len(bomb) < MiB

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with hostile(handler) as server:
        cfg = make_config(idps=[okta(server.url)], crawl_cfg={"max_body_bytes": 4 * MiB}, env=IDP_ENV)
        result, store = await run_crawl(cfg, tmp_path)
    cov = result.coverage[0]
    assert not cov.complete
    assert "4,194,304-byte limit" in (cov.error or "") and "gzip-decompressed" in cov.error
    assert len(server.requests) == 1  # a body over the limit is not retried
    store.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_huge_body_is_refused_at_the_limit(tmp_path: Path, chunked: bool) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=b"[" + b" " * (32 * MiB) + b"]", content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"[")
        for _ in range(10_000):  # 10 GB if nobody stops reading
            await response.write(b" " * MiB)
        return response

    async with hostile(handler) as server:
        cfg = make_config(idps=[okta(server.url)], crawl_cfg={"max_body_bytes": 2 * MiB}, env=IDP_ENV)
        result, store = await run_crawl(cfg, tmp_path, timeout=30)
    cov = result.coverage[0]
    assert not cov.complete
    assert "2,097,152-byte limit" in (cov.error or "")
    assert ("Content-Length" in cov.error) is (not chunked)
    store.close()


def test_retry_after_inf_nan_and_huge_values_are_clamped() -> None:
    assert parse_retry_after("inf") == MAX_RETRY_AFTER
    assert parse_retry_after("1e300") == MAX_RETRY_AFTER
    assert parse_retry_after("nan") is None
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=0.0) == MAX_RETRY_AFTER
    assert parse_retry_after("inf", cap=2.0) == 2.0


@pytest.mark.parametrize("kind", ["scim", "learnupon"])
async def test_retry_after_inf_does_not_idle_forever(tmp_path: Path, kind: str) -> None:
    calls = itertools.count()

    async def handler(request: web.Request) -> web.Response:
        if next(calls) == 0:
            return web.Response(status=429, headers={"Retry-After": "inf"})
        if kind == "scim":
            return web.json_response(
                {"totalResults": 1, "Resources": [{"id": "1", "userName": "a@acme.com"}]}
            )
        return web.json_response({"user": [], "groups": [], "courses": []})

    async with hostile(handler) as server:
        source = scim(server.url) if kind == "scim" else portal_entry(server.url)
        cfg = make_config(
            portals=[source] if kind == "learnupon" else [],
            idps=[source] if kind == "scim" else [],
            crawl_cfg={"max_retry_after_seconds": 0.5},
            env=IDP_ENV,
        )
        started = time.monotonic()
        result, store = await run_crawl(cfg, tmp_path, timeout=20)
    assert result.coverage[0].complete, result.coverage[0].error
    assert result.coverage[0].throttled == 1
    assert time.monotonic() - started < 10
    store.close()


async def test_an_okta_link_that_always_has_a_next_page_stops_when_nothing_is_new(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0")) + 1
        link = f'<{server.url}/api/v1/users?after={after}>; rel="next"'
        return web.json_response([user(1), user(2)], headers={"Link": link})

    async with hostile(handler) as server:
        result, store = await run_crawl(make_config(idps=[okta(server.url)], env=IDP_ENV), tmp_path)
    cov = result.coverage[0]
    assert not cov.complete
    assert "pages in a row brought nothing new" in (cov.error or "")
    assert len(server.requests) <= 25  # the default: 20 pages without anything new
    store.close()


async def test_an_okta_link_with_new_users_forever_stops_at_the_page_cap(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0")) + 1
        link = f'<{server.url}/api/v1/users?after={after}>; rel="next"'
        return web.json_response([user(after)], headers={"Link": link})

    async with hostile(handler) as server:
        cfg = make_config(idps=[okta(server.url)], crawl_cfg={"max_pages_per_listing": 30}, env=IDP_ENV)
        result, store = await run_crawl(cfg, tmp_path)
    cov = result.coverage[0]
    assert not cov.complete
    assert "did not end after 30 pages" in (cov.error or "")
    assert len(server.requests) == 30
    store.close()


async def test_a_scim_listing_that_repeats_one_page_forever_stops(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        resources = [{"id": "1", "userName": "a@acme.com"}, {"id": "2", "userName": "b@acme.com"}]
        return web.json_response({"totalResults": 10**9, "Resources": resources})

    async with hostile(handler) as server:
        cfg = make_config(idps=[scim(server.url)], crawl_cfg={"max_pages_without_new": 5}, env=IDP_ENV)
        result, store = await run_crawl(cfg, tmp_path)
    cov = result.coverage[0]
    assert not cov.complete and "5 pages in a row brought nothing new" in (cov.error or "")
    assert len(server.requests) == 6
    store.close()


async def test_the_same_learnupon_page_with_has_next_forever_stops(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {"user": [{"id": 7}], "groups": [{"id": 7}], "courses": [{"id": 7}]}
        return web.json_response(body, headers={"LU-Has-Next-Page": "true"})

    async with hostile(handler) as server:
        cfg = make_config(portals=[portal_entry(server.url)], crawl_cfg={"max_pages_without_new": 5})
        result, store = await run_crawl(cfg, tmp_path)
    cov = result.coverage[0]
    assert not cov.complete
    assert "pages in a row brought nothing new; stopped, listing incomplete" in (cov.error or "")
    assert len(server.requests) < 60  # three listings, each stopped after a handful of pages
    store.close()


async def test_the_crawl_deadline_ends_unfinished_sources_incomplete(tmp_path: Path) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response([])

    async with hostile(slow) as server:
        cfg = make_config(idps=[okta(server.url)], crawl_cfg={"crawl_deadline_seconds": 1}, env=IDP_ENV)
        started = time.monotonic()
        result, store = await run_crawl(cfg, tmp_path, timeout=20)
        elapsed = time.monotonic() - started
    assert elapsed < 5
    cov = result.coverage[0]
    assert not cov.complete and "crawl deadline of 1 s reached" in (cov.error or "")
    assert store.run().status != "running"
    store.close()


async def test_an_entra_next_link_that_never_ends_stops_when_nothing_is_new(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.method == "POST":
            return web.json_response({"access_token": "entra-access-token-77", "expires_in": 3600})
        after = int(request.query.get("skip", "0")) + 1
        users = [{"id": "u1", "mail": "u1@acme.com", "accountEnabled": True}]
        return web.json_response({"value": users, "@odata.nextLink": f"{server.url}/v1.0/users?skip={after}"})

    async with hostile(handler) as server:
        entra = {
            "name": "entra", "type": "entra", "tenant_id": "t", "client_id": "c",
            "client_secret_env": "ENTRA_SECRET", "login_url": server.url, "graph_url": server.url,
        }  # fmt: skip
        cfg = make_config(
            idps=[entra], crawl_cfg={"max_pages_without_new": 3}, env={"ENTRA_SECRET": "entra-secret-99"}
        )
        result, store = await run_crawl(cfg, tmp_path)
    cov = result.coverage[0]
    assert not cov.complete and "3 pages in a row brought nothing new" in (cov.error or "")
    assert len([r for r in server.requests if r.method == "GET"]) == 4
    store.close()
