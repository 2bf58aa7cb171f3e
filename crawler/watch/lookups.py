"""Targeted lookups: a person's accounts, portal by portal, one `/users/search?email=` per address.

Each portal gets one `SourceHttp` for the watcher's whole life, built as the crawl builds it
(`orchestrator.portal_source`: its credentials, its rate controller, the rate it learned last time), so the
lookups share the portal's budget with the rest of the watch and never a full listing. An answer is
either the accounts the portal returned for the address (none is a fact: no account has it) or an error:
a lookup that failed says nothing about the accounts, and the round owes it for the next round.

"None" is believed only from a search that is known to work on that portal: a 404 is LearnUpon's answer
for "no such user" and also for "no such endpoint", and an empty list can come from a search that ignores
its parameter. So the first time a portal answers "none", the watcher searches once for an account the
last crawl read there (`SnapshotReader.known_account`); until that search finds it, the portal's "none"s
are failed lookups, owed to the next round. One request per portal per watcher process, and only when a
"none" needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import aiohttp

from crawler.config import CrawlConfig, PortalConfig
from crawler.errors import SourceError
from crawler.http import SourceHttp
from crawler.orchestrator import portal_source
from crawler.records import LUUser
from crawler.source import apply_limits
from crawler.store import SnapshotStore

# (the portal's http, its base URL, one address) -> the accounts holding that address; SourceError when
# the portal could not say.
Search = Callable[[SourceHttp, str, str], Awaitable[list[LUUser]]]


@dataclass(frozen=True)
class Answer:
    portal: str
    address: str  # casefolded
    accounts: tuple[LUUser, ...] = ()
    error: str | None = None  # None: the portal answered (with or without accounts)


class PortalLookups:
    """One auth context per portal, kept open across rounds."""

    def __init__(
        self,
        portals: Sequence[PortalConfig],
        connector: aiohttp.BaseConnector,
        crawl: CrawlConfig,
        store: SnapshotStore,
        search: Search,
    ) -> None:
        self.portals = {p.name: p for p in portals}
        self.https: dict[str, SourceHttp] = {}
        for portal in portals:
            http, _ = portal_source(portal, connector, crawl, store.learned_rate(portal.name))
            apply_limits(http, crawl)  # body size, pages, Retry-After: as the crawl bounds the portal
            self.https[portal.name] = http
        self._search = search
        self._store = store
        self._search_works: dict[str, bool] = {}  # portal -> a search found an account known to exist

    @property
    def names(self) -> list[str]:
        return list(self.portals)

    async def find(self, targets: Iterable[tuple[str, str]]) -> list[Answer]:
        """Every (portal, address) at once; each portal's controller paces its own. A portal's "none" is
        an answer only once its search is known to find accounts."""
        answers = await asyncio.gather(*(self._one(portal, address) for portal, address in targets))
        for answer in answers:
            if answer.accounts:
                self._search_works[answer.portal] = True
        unproven = {a.portal for a in answers if a.error is None and not a.accounts}
        checks = await asyncio.gather(*(self._check_search(portal) for portal in unproven))
        failed = {portal: why for portal, why in zip(unproven, checks, strict=True) if why is not None}
        return [
            Answer(a.portal, a.address, error=failed[a.portal])
            if a.portal in failed and a.error is None and not a.accounts
            else a
            for a in answers
        ]

    async def _check_search(self, portal: str) -> str | None:
        """None when the portal's search is known to work; else why its "none" proves nothing."""
        if self._search_works.get(portal):
            return None
        crawl = self._store.latest_finished_crawl()
        known = self._store.reader().known_account(crawl.id, portal) if crawl is not None else None
        if known is None:
            return (
                f"{portal}: no account of the last crawl to check /users/search against, so its "
                '"no account" cannot be believed'
            )
        user_id, email = known
        answer = await self._one(portal, email)
        if answer.error is not None:
            return answer.error
        if not any(account.id == user_id for account in answer.accounts):
            return (
                f"{portal}: /users/search did not find account {user_id}, which the last crawl read, by "
                "its own address: this portal's search cannot prove an absence"
            )
        self._search_works[portal] = True
        return None

    async def _one(self, portal: str, address: str) -> Answer:
        http = self.https.get(portal)
        if http is None:
            return Answer(portal, address, error=f"portal {portal} is no longer in the config")
        try:
            accounts = await self._search(http, self.portals[portal].base_url, address)
        except SourceError as exc:
            return Answer(portal, address, error=str(exc))
        return Answer(portal, address, tuple(accounts))

    def requests(self, portal: str) -> int:
        http = self.https.get(portal)
        return 0 if http is None else http.stats.requests

    async def close(self) -> None:
        for name, http in self.https.items():
            await http.close()
            learned = http.controller.learned_rate()
            if learned is not None:
                self._store.save_learned_rate(name, learned)
