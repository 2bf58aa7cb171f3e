"""IdP directory sources. Each vendor module exposes `open_source(cfg, connector, crawl_config)` returning
its own `SourceHttp` (auth context) and the coroutine that crawls it into a `SourceContext`."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from crawler.config import IDP_TYPES, CrawlConfig
from crawler.http import SourceHttp
from crawler.source import SourceContext

OpenSource = Callable[
    [Any, aiohttp.BaseConnector, CrawlConfig],
    tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]],
]


def _lazy(module: str) -> OpenSource:
    """Import a vendor module on first use: no import cycle, and no JWT/crypto import for Okta-only runs."""

    def open_source(
        cfg: Any, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
    ) -> tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]]:
        return importlib.import_module(module).open_source(cfg, connector, crawl_config)

    open_source.__qualname__ = f"{module}.open_source"
    return open_source


# type name in config -> the vendor's open_source, from the one registry (crawler.config.IDP_TYPES).
IDP_SOURCES: dict[str, OpenSource] = {name: _lazy(kind.source) for name, kind in IDP_TYPES.items()}
