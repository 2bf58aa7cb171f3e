"""IdP directory sources. Each vendor module exposes `open_source(cfg, connector, crawl_config)` returning
its own `SourceHttp` (auth context) and the coroutine that crawls it into a `SourceContext`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from crawler.config import CrawlConfig
from crawler.http import SourceHttp
from crawler.source import SourceContext

OpenSource = Callable[
    [Any, aiohttp.BaseConnector, CrawlConfig],
    tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]],
]

# type name in config -> the vendor's open_source; filled in as vendors are added.
IDP_SOURCES: dict[str, OpenSource] = {}
