"""Every IdP type names its feed in the one registry; SCIM and CSV have none, and say so."""

from __future__ import annotations

import aiohttp
from feed_helpers import idp

from crawler.config import CrawlConfig
from crawler.feeds.google_reports import GoogleReportsFeed
from crawler.feeds.graph_delta import GraphDeltaFeed
from crawler.feeds.okta_log import OktaLogFeed
from crawler.feeds.registry import no_feed, open_idp_feed

CONFIGS = {
    "okta": ({"base_url": "https://acme.okta.com", "token_env": "T"}, OktaLogFeed),
    "entra": ({"tenant_id": "t", "client_id": "c", "client_secret_env": "T"}, GraphDeltaFeed),
    "google": ({"key_file": "/nonexistent/key.json", "subject": "admin@acme.com"}, GoogleReportsFeed),
    "scim": ({"base_url": "https://scim.acme.com/scim/v2", "token_env": "T"}, None),
    "csv": ({"path": "/nonexistent/people.csv"}, None),
}


async def test_each_idp_type_opens_its_feed_or_none():
    connector = aiohttp.TCPConnector()
    try:
        for kind, (fields, feed_class) in CONFIGS.items():
            cfg = idp({"name": f"my-{kind}", "type": kind, **fields}, {"T": "secret-value"})
            opened = open_idp_feed(cfg, connector, CrawlConfig())
            if feed_class is None:
                assert opened is None
                assert no_feed(cfg) == f"no change feed for idp my-{kind}; the daily crawl covers it"
                continue
            assert opened is not None
            http, feed = opened
            assert isinstance(feed, feed_class) and feed.source == f"my-{kind}"
            assert http.limits.max_body_bytes == CrawlConfig().max_body_bytes
            await http.close()
    finally:
        await connector.close()
