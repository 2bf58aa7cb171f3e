"""Helpers for the watcher tests: a feed of our own, a list of `FeedPage`s (the feed interface,
`crawler.feeds.events`), and `/users/search` answered from an in-memory directory (the lookup interface,
`crawler.watch.lookups`).
Neither is a mocked HTTP library; the end-to-end tests run the real feed clients against the fakes."""

from __future__ import annotations

import runpy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from crawler.config import Config, parse_config
from crawler.errors import SourceError, TransientError
from crawler.feeds.events import FeedPage, Skipped, StatusChange
from crawler.http import SourceHttp, make_session
from crawler.ratelimit import RateController
from crawler.records import LUUser
from crawler.store import SnapshotStore
from crawler.vocabulary import IdentityStatus
from crawler.watch.feeds import AuditSource, FeedSource
from crawler.watch.lookups import PortalLookups
from crawler.watch.outbox import Outbox
from crawler.watch.sinks import JsonLinesSink, Sink
from idgraph.watch_round import Watcher

# The graph tests' snapshot builder (tests/graph/conftest.py), written the way the crawler writes runs.
SnapshotBuilder = runpy.run_path(str(Path(__file__).resolve().parents[1] / "graph" / "conftest.py"))[
    "SnapshotBuilder"
]
CRAWL_START = "2026-06-01T00:00:00Z"
REMEDIATION_KEY = "remediation-key-for-watch-tests"
AFTER_CRAWL = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)


class ListFeed:
    """A feed whose pages are a list; the cursor is how many pages were handed out. New pages can be
    appended between rounds, as a vendor's log grows."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pages_list: list[tuple[tuple[Any, ...], bool, tuple[Skipped, ...]]] = []
        self.reads = 0

    def add(self, *changes: Any, baseline: bool = False, skipped: tuple[Skipped, ...] = ()) -> None:
        self.pages_list.append((changes, baseline, skipped))

    async def pages(self, cursor: str | None) -> AsyncIterator[FeedPage[Any]]:
        start = int(cursor) if cursor else 0
        self.reads += 1
        if start >= len(self.pages_list):
            yield FeedPage((), str(start), caught_up=True)
            return
        for n in range(start, len(self.pages_list)):
            items, baseline, skipped = self.pages_list[n]
            yield FeedPage(
                items, str(n + 1), baseline, caught_up=n + 1 == len(self.pages_list), skipped=skipped
            )


def change(
    source: str, idp_id: str, status: str, *addresses: str, at: datetime = AFTER_CRAWL, key: str | None = None
) -> StatusChange:
    raw = {"disabled": "user.lifecycle.deactivate", "active": "user.lifecycle.activate"}.get(status, status)
    return StatusChange(
        source, idp_id, tuple(addresses), IdentityStatus(status), raw, at, key or f"{idp_id}-{status}-{at}"
    )


class Directory:
    """`/users/search?email=` over a dict: portal -> accounts; `failing` portals raise, as a 500 would."""

    def __init__(self) -> None:
        self.accounts: dict[str, list[LUUser]] = {}
        self.failing: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def add(self, portal: str, user_id: int, email: str, *, enabled: bool = True, **fields: Any) -> None:
        fields.setdefault("user_type", "learner")
        self.accounts.setdefault(portal, []).append(
            LUUser(id=user_id, email=email, enabled=enabled, **fields)
        )

    async def search(self, http: SourceHttp, base_url: str, address: str) -> list[LUUser]:
        portal = base_url.rsplit("/", 1)[-1]
        self.calls.append((portal, address))
        http.stats.requests += 1  # the lookup's one request, as the real client spends it
        if portal in self.failing:
            raise TransientError(f"{portal}: GET /users/search answered 500", status=500)
        return [u for u in self.accounts.get(portal, []) if (u.email or "").casefold() == address.casefold()]


def watch_config(tmp_path: Path, portals: list[str], idps: list[str], **extra: Any) -> Config:
    env = {
        "LU_USER": "u",
        "LU_KEY": "k",
        "OKTA_TOKEN": "t",
        "ENTRA_SECRET": "s",
        "REMEDIATION_KEY": REMEDIATION_KEY,
    }
    raw: dict[str, Any] = {
        "review": {"managed_domains": ["acme.com"]},
        "portals": [
            {
                "name": p,
                "base_url": f"http://127.0.0.1:9/{p}",
                "username_env": "LU_USER",
                "password_env": "LU_KEY",
            }
            for p in portals
        ],
        "idps": [
            {"name": "okta", "type": "okta", "base_url": "http://127.0.0.1:9", "token_env": "OKTA_TOKEN"}
            if i == "okta"
            else {
                "name": i,
                "type": "entra",
                "tenant_id": "t",
                "client_id": "c",
                "client_secret_env": "ENTRA_SECRET",
                "login_url": "http://127.0.0.1:9",
                "graph_url": "http://127.0.0.1:9",
            }
            for i in idps
        ],
        "alerts": [{"name": "siem", "type": "jsonl", "path": str(tmp_path / "alerts.jsonl")}],
        **extra,
    }
    return parse_config(raw, env)


class Rig:
    """A watcher over a snapshot, with list feeds, a directory, and a JSON-lines sink (plus any others)."""

    def __init__(self, tmp_path: Path, store: SnapshotStore, config: Config, directory: Directory) -> None:
        self.tmp_path, self.store, self.config, self.directory = tmp_path, store, config, directory
        self.feeds = {i.name: ListFeed(i.name) for i in config.idps}
        self.connector: aiohttp.TCPConnector | None = None
        self.extra_sinks: list[Sink] = []
        self.audit_feeds: dict[str, ListFeed] = {}

    async def __aenter__(self) -> Rig:
        self.connector = aiohttp.TCPConnector()
        self.lookups = PortalLookups(
            self.config.portals, self.connector, self.config.crawl, self.store, self.directory.search
        )
        sinks: list[Sink] = [JsonLinesSink("siem", self.tmp_path / "alerts.jsonl"), *self.extra_sinks]
        self.outbox = Outbox(self.store, sinks)
        sources = [
            FeedSource(
                name, "okta", SourceHttp(name, make_session(self.connector), RateController(ceiling=60)), feed
            )
            for name, feed in self.feeds.items()
        ]
        audits = [AuditSource(portal, feed) for portal, feed in self.audit_feeds.items()]
        self.watcher = Watcher(
            self.config, self.store, self.outbox, self.lookups, sources, audits, fingerprint="test"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.lookups.close()
        await self.outbox.close()
        for source in self.watcher.feeds:
            await source.http.close()
        assert self.connector is not None
        await self.connector.close()

    def alerts(self) -> list[dict[str, Any]]:
        import json

        path = self.tmp_path / "alerts.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


__all__ = [
    "CRAWL_START",
    "REMEDIATION_KEY",
    "Directory",
    "ListFeed",
    "Rig",
    "SnapshotBuilder",
    "SourceError",
    "change",
    "watch_config",
]
