"""The feeds a watcher reads: each IdP's change feed on its own auth context, and each portal's audit
trail on the portal's lookup `SourceHttp` (one rate controller per portal, whatever is asked of it).

An IdP type without a feed (SCIM, a CSV export) is named with the reason: the daily crawl covers it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from crawler.config import Config
from crawler.feeds.events import AuditEvent, ChangeFeed, StatusChange
from crawler.http import SourceHttp
from crawler.learnupon.audit_trail import AuditTrailFeed
from crawler.watch.lookups import PortalLookups

# IdP type -> the module whose `open_feed(cfg, connector, crawl_config)` returns (SourceHttp, feed).
FEED_MODULES = {"okta": "crawler.feeds.okta_log", "entra": "crawler.feeds.graph_delta"}


@dataclass
class FeedSource:
    """One IdP's change feed, on its own auth context."""

    name: str
    kind: str  # the IdP type
    http: SourceHttp
    feed: ChangeFeed[StatusChange]


@dataclass
class AuditSource:
    """One portal's audit trail."""

    portal: str
    feed: ChangeFeed[AuditEvent]


def without_feed(config: Config) -> dict[str, str]:
    """IdPs the watcher cannot follow, each with why: the daily crawl covers them."""
    return {
        idp.name: f"no change feed for {idp.type} IdPs; the daily crawl covers {idp.name}"
        for idp in config.idps
        if idp.type not in FEED_MODULES
    }


def open_idp_feeds(config: Config, connector: aiohttp.BaseConnector) -> list[FeedSource]:
    """A feed per IdP that has one, each on its own auth context."""
    feeds: list[FeedSource] = []
    for idp in config.idps:
        if idp.type in FEED_MODULES:
            http, feed = importlib.import_module(FEED_MODULES[idp.type]).open_feed(
                idp, connector, config.crawl
            )
            feeds.append(FeedSource(idp.name, idp.type, http, feed))
    return feeds


def open_audit_trails(config: Config, lookups: PortalLookups) -> list[AuditSource]:
    """Each portal's audit trail, on the portal's lookup http (one budget per portal)."""
    return [
        AuditSource(p.name, AuditTrailFeed(p.name, lookups.https[p.name], p.base_url))
        for p in config.portals
        if p.name in lookups.https
    ]


async def close_feeds(feeds: Sequence[FeedSource]) -> None:
    for source in feeds:
        await source.http.close()
