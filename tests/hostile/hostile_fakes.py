"""Hostile fakes: small aiohttp apps on loopback that attack the crawler the way issue 14 describes.

Each test builds a `Hostile` server from one handler (every path answers the same way) and crawls it
through the real config parser and the real orchestrator. `Hostile.requests` records what reached it,
so a test can prove that a secret never left for another host.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from crawler.config import Config, parse_config
from crawler.orchestrator import CrawlResult, crawl
from crawler.store import SnapshotStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hostile:
    url: str
    requests: list[Seen] = field(default_factory=list)

    def received(self, text: str) -> bool:
        """Whether `text` reached this server anywhere: path, query, headers or body."""
        for seen in self.requests:
            blob = f"{seen.path}?{seen.query} {seen.headers} ".encode() + seen.body
            if text.encode() in blob:
                return True
        return False


@asynccontextmanager
async def hostile(handler: Handler) -> AsyncIterator[Hostile]:
    """Serve `handler` on every path and method of a loopback port."""
    server: Hostile | None = None

    async def recording(request: web.Request) -> web.StreamResponse:
        assert server is not None
        server.requests.append(
            Seen(
                request.method,
                request.path,
                request.query_string,
                dict(request.headers),
                await request.read(),
            )
        )
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = Hostile(f"http://127.0.0.1:{port}")
    try:
        yield server
    finally:
        await runner.cleanup()


def portal_entry(url: str, name: str = "emea") -> dict[str, Any]:
    return {
        "name": name,
        "base_url": url,
        "username_env": "LU_USER",
        "password_env": "LU_PASS",
        "rate_window_seconds": 1.0,
    }


PORTAL_ENV = {"LU_USER": "lu-api-username-7f3a", "LU_PASS": "lu-api-password-c0ffee-91b2"}


def make_config(
    *, portals: list[dict[str, Any]] = (), idps: list[dict[str, Any]] = (), crawl_cfg: dict | None = None,
    env: dict[str, str] | None = None,
) -> Config:  # fmt: skip
    raw: dict[str, Any] = {"portals": list(portals), "idps": list(idps)}
    if crawl_cfg:
        raw["crawl"] = crawl_cfg
    return parse_config(raw, env={**PORTAL_ENV, **(env or {})})


async def run_crawl(
    config: Config, tmp_path: Path, timeout: float = 60.0
) -> tuple[CrawlResult, SnapshotStore]:
    store = SnapshotStore(tmp_path / "s.db")
    result = await asyncio.wait_for(crawl(config, store), timeout=timeout)
    return result, store


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.cli", *args,
        env={**os.environ, **env, "COLUMNS": "250"}, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()
