"""Which IdP has a change feed, and opening it: the `feed` of each type in `crawler.config.IDP_TYPES`.

SCIM servers and CSV exports publish no changes; for them `open_idp_feed` returns None and `no_feed`
says what the watcher tells the user.
"""

from __future__ import annotations

import importlib
from typing import Any

import aiohttp

from crawler.config import IDP_TYPES, CrawlConfig
from crawler.feeds.events import ChangeFeed, StatusChange
from crawler.http import SourceHttp


def no_feed(cfg: Any) -> str:
    return f"no change feed for idp {cfg.name}; the daily crawl covers it"


def open_idp_feed(
    cfg: Any, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, ChangeFeed[StatusChange]] | None:
    """The IdP's own auth context and its feed (import on first use), or None when it has no feed.

    The caller closes the `SourceHttp` when done.
    """
    module = IDP_TYPES[cfg.type].feed
    if module is None:
        return None
    opened: tuple[SourceHttp, ChangeFeed[StatusChange]] = importlib.import_module(module).open_feed(
        cfg, connector, crawl_config
    )
    return opened
