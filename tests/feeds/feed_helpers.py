"""Helpers for the feed tests: a clock tests move by hand, a feed opened on its own connector, drains."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from crawler.config import CrawlConfig, parse_config
from crawler.feeds.events import FeedPage
from crawler.http import SourceHttp


class Clock:
    """A wall clock that only moves when told (shared by a fake and the feed under test)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def idp(raw: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    """One IdP config, through the real config parser (secrets resolved from `env`)."""
    return parse_config({"idps": [raw]}, env=env or {}).idps[0]


@asynccontextmanager
async def opened(
    open_feed: Callable[..., tuple[SourceHttp, Any]], cfg: Any, crawl: CrawlConfig | None = None, **attrs: Any
) -> AsyncIterator[Any]:
    """The feed of `open_feed(cfg, connector, crawl)` (its `http` closed after), with `attrs` set on it
    (a clock, a page limit)."""
    connector = aiohttp.TCPConnector()
    http, feed = open_feed(cfg, connector, crawl or CrawlConfig())
    for name, value in attrs.items():
        setattr(feed, name, value)
    try:
        yield feed
    finally:
        await http.close()
        await connector.close()


async def drain(feed: Any, cursor: str | None) -> list[FeedPage[Any]]:
    """Every page one poll yields."""
    return [page async for page in feed.pages(cursor)]


def items(pages: list[FeedPage[Any]]) -> list[Any]:
    return [item for page in pages for item in page.items]


def last_cursor(pages: list[FeedPage[Any]]) -> str:
    return pages[-1].cursor


def one_handler_app(handler: Callable[[web.Request], Any]) -> web.Application:
    """A hostile server: every GET answers through `handler`."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    return app


def portal_cfg(base_url: str, username: str, password: str, name: str = "emea", **overrides: Any) -> Any:
    """One `[[portals]]` entry, through the real config parser (credentials from the environment)."""
    entry = {"name": name, "base_url": base_url, "username_env": "LU_U", "password_env": "LU_P", **overrides}
    return parse_config({"portals": [entry]}, env={"LU_U": username, "LU_P": password}).portals[0]


def portal_config(sim: Any, portal: Any, **overrides: Any) -> Any:
    """The config of one simulated portal, at the portal's own rate limit unless overridden."""
    name = portal.spec.name
    limits = {"requests_per_minute": portal.spec.rate_limit_per_window, **overrides}
    return portal_cfg(sim.base_url(name), *portal.credentials, name=name, **limits)


async def hostile_url(aiohttp_server: Any, handler: Callable[[web.Request], Any]) -> str:
    """Serve `handler` for every GET on loopback; the server's base URL."""
    server = await aiohttp_server(one_handler_app(handler))
    return f"http://{server.host}:{server.port}"


@asynccontextmanager
async def portal_http(cfg: Any, crawl: CrawlConfig | None = None) -> AsyncIterator[SourceHttp]:
    """A portal's own `SourceHttp` (session, Basic auth, rate controller), as the crawl builds it."""
    from crawler.orchestrator import portal_source
    from crawler.source import apply_limits

    crawl = crawl or CrawlConfig()
    connector = aiohttp.TCPConnector()
    http, _ = portal_source(cfg, connector, crawl)
    apply_limits(http, crawl)
    try:
        yield http
    finally:
        await http.close()
        await connector.close()
