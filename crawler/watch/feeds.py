"""The feeds a watcher reads: each IdP's change feed on its own auth context, and each portal's audit
trail on the portal's lookup `SourceHttp` (one rate controller per portal, whatever is asked of it).

An IdP type without a feed (SCIM, a CSV export) is named with the reason: the daily crawl covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from crawler.config import IDP_TYPES, Config
from crawler.feeds.events import AuditEvent, ChangeFeed, StatusChange
from crawler.feeds.registry import no_feed, open_idp_feed
from crawler.http import SourceHttp
from crawler.learnupon.audit_trail import AuditTrailFeed
from crawler.watch.lookups import PortalLookups


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
    return {idp.name: no_feed(idp) for idp in config.idps if IDP_TYPES[idp.type].feed is None}


def open_idp_feeds(config: Config, connector: aiohttp.BaseConnector) -> list[FeedSource]:
    """A feed per IdP that has one, each on its own auth context (the one registry: `IDP_TYPES`)."""
    feeds: list[FeedSource] = []
    for idp in config.idps:
        opened = open_idp_feed(idp, connector, config.crawl)
        if opened is not None:
            feeds.append(FeedSource(idp.name, idp.type, *opened))
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
