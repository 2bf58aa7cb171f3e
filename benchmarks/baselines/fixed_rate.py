"""Baseline: idgraph's own crawl plan and HTTP client, at a fixed rate with no adaptation.

The same `PortalCrawl`, `SourceHttp`, session and snapshot store as `idgraph crawl`; only the rate
controller differs: an aiolimiter at the configured ceiling (`requests_per_minute` per rate window), which
reads no header, never pauses and never slows down. A 429 goes back through the limiter like any request
(that is `SourceHttp`'s requeue), so when the server's real limit is below the ceiling it keeps hitting it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import aiohttp
from aiolimiter import AsyncLimiter

from crawler.config import CrawlConfig, PortalConfig
from crawler.http import RequestStats
from crawler.orchestrator import portal_source
from crawler.ratelimit import RateController, Ticket
from crawler.source import SourceContext
from crawler.store import SnapshotStore


class FixedRateController(RateController):
    """`ceiling` requests per `window_seconds`, evenly (aiolimiter's leaky bucket); deaf to the server."""

    def __init__(self, ceiling: int, window_seconds: float) -> None:
        super().__init__(ceiling, window_seconds)
        self._fixed = AsyncLimiter(ceiling, window_seconds)

    async def acquire(self) -> Ticket:
        await self._fixed.acquire()
        return Ticket(time.time())

    def on_success(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> None:
        return None

    def on_throttled(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> float:
        self.throttled += 1
        return 0.0

    def on_other_outcome(self, ticket: Ticket) -> None:
        return None

    def learned_rate(self) -> float | None:
        return None


async def crawl_fixed_rate(
    portal: PortalConfig, crawl: CrawlConfig, store: SnapshotStore
) -> tuple[int, RequestStats]:
    """Crawl one portal with idgraph's plan at a fixed rate into a new run of `store`: (run id, counts)."""
    controller = FixedRateController(portal.requests_per_minute, portal.rate_window_seconds)
    return await crawl_with_controller(portal, crawl, store, controller)


async def crawl_with_controller(
    portal: PortalConfig, crawl: CrawlConfig, store: SnapshotStore, controller: RateController
) -> tuple[int, RequestStats]:
    """Crawl one portal with idgraph's plan and HTTP client, but `controller` as its rate gate, into a new
    run of `store`: (run id, counts)."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    try:
        http, run = portal_source(portal, connector, crawl)
        http.controller = controller
        run_id = store.start_run([(portal.name, "learnupon")])
        ctx = SourceContext(name=portal.name, kind="learnupon", run_id=run_id, store=store, http=http)
        try:
            await run(ctx)
        finally:
            await http.close()
        return run_id, http.stats
    finally:
        await connector.close()
