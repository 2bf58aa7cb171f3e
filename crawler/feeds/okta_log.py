"""Okta System Log as a change feed: `GET /api/v1/logs` polling requests, resumed from the stored `next` link.

A polling request (`since`, `sortOrder=ASCENDING`, no `until`) is ordered by the time Okta persisted each
event, so following its `next` links never skips a late event; but its `next` link never ends, so a page
with fewer than `limit` events means "caught up" — never loop while `next` exists. The cursor keeps the
`next` link and the largest `published` processed: if Okta rejects the link, polling restarts at that time
minus an overlap and the events' `uuid`s absorb the repeats. Events become `StatusChange`s by their `User`
target (found by type, not position), only when `outcome.result` is SUCCESS. `/api/v1/logs` has its own
low, org-wide rate bucket, paced by the same `X-Rate-Limit-*` logic as the users crawl.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from crawler.config import CrawlConfig, OktaConfig
from crawler.errors import ClientRequestError, NotFoundError, SourceError
from crawler.feeds.events import FeedPage, Skipped, StatusChange
from crawler.http import SourceHttp
from crawler.idp.auth_hint import auth_hint
from crawler.idp.okta import OktaRateController, next_link, okta_http
from crawler.idp.status import format_time, is_email, parse_time, same_origin_link
from crawler.paging_guard import PageGuard, new_ids
from crawler.source import apply_limits
from crawler.vocabulary import IdentityStatus

log = logging.getLogger("idgraph.feeds.okta")

PURPOSE = "system_log"
PAGE_LIMIT = 1000  # Okta's maximum: one request per poll however busy the minute was
LIFECYCLE_FILTER = 'eventType sw "user.lifecycle"'
START_OVERLAP = timedelta(minutes=5)  # a first start reads this far back (a baseline)
RESTART_OVERLAP = timedelta(minutes=5)  # a rejected `next` link: restart this far before max published
RETENTION = timedelta(days=90)  # Okta returns no older events: a restart point past it is a gap
LOGS_REQUESTS_PER_MINUTE = 20  # hard ceiling: the smallest `/api/v1/logs` bucket Okta documents

# eventType -> the status it asserts. `reactivate` is not the undo of `deactivate` (it restarts an
# unfinished activation), lock-outs keep the account live, `create` grants nothing yet: all ignored.
STATUS_OF_EVENT: Mapping[str, IdentityStatus] = {
    "user.lifecycle.deactivate": IdentityStatus.DISABLED,
    "user.lifecycle.suspend": IdentityStatus.DISABLED,
    "user.lifecycle.delete.initiated": IdentityStatus.DELETED,
    "user.lifecycle.delete.completed": IdentityStatus.DELETED,
    "user.lifecycle.unsuspend": IdentityStatus.ACTIVE,
    "user.lifecycle.activate": IdentityStatus.ACTIVE,
}
_OKTA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class OktaCursor:
    """Where polling resumes: Okta's `next` link, and the time to restart from if the link is refused."""

    next: str | None
    published: datetime  # the largest `published` processed, or the start point

    def dump(self) -> str:
        return json.dumps({"next": self.next, "published": format_time(self.published)}, sort_keys=True)

    @classmethod
    def load(cls, text: str) -> OktaCursor:
        data = json.loads(text)
        published = parse_time(data.get("published")) if isinstance(data, dict) else None
        link = data.get("next")
        if published is None or not (link is None or isinstance(link, str)):
            raise ValueError("not an Okta System Log cursor")
        return cls(link, published)


def parse_event(raw: Any, source: str) -> StatusChange | Skipped | None:
    """One LogEvent: a status change, a record we cannot read (with why), or None (not a status change)."""
    if not isinstance(raw, Mapping):
        return Skipped("event is not a JSON object", raw)
    event_type = raw.get("eventType")
    status = STATUS_OF_EVENT.get(event_type) if isinstance(event_type, str) else None
    if event_type is None or status is None:
        return None
    uuid = raw.get("uuid")
    label = f"event {uuid[:60]}" if isinstance(uuid, str) else None
    targets = raw.get("target")
    users = [t for t in targets if isinstance(t, Mapping) and t.get("type") == "User"] if targets else []
    addresses = tuple(t["alternateId"].strip() for t in users if is_email(t.get("alternateId")))

    def skip(reason: str) -> Skipped:
        return Skipped(f"{event_type}: {reason}", raw, addresses, label)

    if not isinstance(uuid, str) or not uuid.strip():
        return skip("uuid missing, so it cannot be de-duplicated")
    outcome = raw.get("outcome")
    result = outcome.get("result") if isinstance(outcome, Mapping) else None
    if not isinstance(result, str):
        return skip("outcome missing: whether the change happened is unknown")
    if result != "SUCCESS":
        return None  # the change did not happen
    if not users:
        return skip("no target of type User: whose status changed is unknown")
    if len(users) > 1:
        return skip(f"{len(users)} targets of type User: whose status changed is ambiguous")
    idp_id = users[0].get("id")
    if not isinstance(idp_id, str) or not _OKTA_ID.match(idp_id):
        return skip("the User target has no usable id")
    return StatusChange(
        source=source,
        idp_id=idp_id,
        addresses=addresses,
        status=status,
        raw=event_type,
        observed_at=parse_time(raw.get("published")),
        key=uuid.strip(),
    )


class OktaLogFeed:
    """The System Log of one org as `ChangeFeed[StatusChange]`."""

    def __init__(
        self,
        cfg: OktaConfig,
        http: SourceHttp,
        *,
        limit: int = PAGE_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = cfg.name
        self.cfg = cfg
        self.http = http
        self.limit = limit
        self.clock = clock
        self.logs_url = f"{cfg.base_url}/api/v1/logs"

    async def pages(self, cursor: str | None) -> AsyncIterator[FeedPage[StatusChange]]:
        with auth_hint(
            lambda: (
                f"the token in ${self.cfg.token_env} must be allowed to read the System Log "
                "(OAuth scope okta.logs.read, or an SSWS token of an admin who may)"
            )
        ):
            async for page in self._pages(cursor):
                yield page

    async def _pages(self, cursor: str | None) -> AsyncIterator[FeedPage[StatusChange]]:
        state, url, query, baseline = self._start(self._load(cursor))
        refused = False
        guard = PageGuard(self.source, PURPOSE, self.http.limits.pages)
        seen: set[object] = set()
        while True:
            try:
                response = await self.http.get_json(url, query, purpose=PURPOSE)
            except (ClientRequestError, NotFoundError) as exc:
                if query is not None or refused:  # a query of our own making was refused: not a cursor
                    raise
                refused = True
                log.warning("%s: Okta refused the stored next link (%s); resuming by time", self.source, exc)
                state, url, query, baseline = self._start(OktaCursor(None, state.published))
                continue
            body = response.body
            if not isinstance(body, list):
                raise SourceError(f"{self.source}: a System Log page is not a list of events")
            items, skipped, latest = self._read(body)
            link = next_link(response.headers)
            target = same_origin_link(link, url, self.cfg.base_url, self.source) if link else None
            if target is None:
                log.warning("%s: a System Log page came without a next link; resuming by time", self.source)
            state = OktaCursor(target, max(state.published, latest or state.published))
            caught_up = target is None or len(body) < self.limit
            yield FeedPage(tuple(items), state.dump(), baseline, caught_up, tuple(skipped))
            if caught_up:
                return
            assert target is not None
            guard.page(new_ids(seen, body, "uuid"), target)
            url, query = target, None

    def _load(self, cursor: str | None) -> OktaCursor | None:
        if not cursor:
            return None
        try:
            return OktaCursor.load(cursor)
        except (ValueError, TypeError, AttributeError):
            raise SourceError(f"{self.source}: the stored System Log cursor cannot be read") from None

    def _start(self, state: OktaCursor | None) -> tuple[OktaCursor, str, dict[str, Any] | None, bool]:
        """(cursor, url, query, baseline) of the first request: the stored `next` link as given (same
        origin only); else a polling query from the last `published` minus an overlap; else — no cursor,
        or a restart point past Okta's retention, where the events between are gone — from a little
        before now, as a baseline."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        if state is not None and state.next is not None:
            try:
                link = same_origin_link(state.next, self.logs_url, self.cfg.base_url, self.source)
                return state, link, None, False
            except SourceError:
                log.warning("%s: the stored next link leaves the org; resuming by time", self.source)
        if state is None or state.published - RESTART_OVERLAP < now - RETENTION:
            if state is not None:
                log.warning("%s: the System Log cursor is older than Okta keeps events", self.source)
            since = now - START_OVERLAP
            state, baseline = OktaCursor(None, since), True
        else:
            since = state.published - RESTART_OVERLAP
            state, baseline = OktaCursor(None, state.published), False
        query = {
            "since": format_time(since),
            "sortOrder": "ASCENDING",
            "limit": str(self.limit),
            "filter": LIFECYCLE_FILTER,
        }
        return state, self.logs_url, query, baseline

    def _read(self, body: list[Any]) -> tuple[list[StatusChange], list[Skipped], datetime | None]:
        items: list[StatusChange] = []
        skipped: list[Skipped] = []
        latest: datetime | None = None
        for raw in body:
            published = parse_time(raw.get("published")) if isinstance(raw, Mapping) else None
            if published is not None and (latest is None or published > latest):
                latest = published
            parsed = parse_event(raw, self.source)
            if isinstance(parsed, StatusChange):
                items.append(parsed)
            elif parsed is not None:
                skipped.append(parsed)
        return items, skipped, latest


def open_feed(
    cfg: OktaConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, OktaLogFeed]:
    """The feed on its own auth context: Okta's token and session code, the logs bucket's own limiter."""
    controller = OktaRateController(ceiling=LOGS_REQUESTS_PER_MINUTE, window_seconds=60)
    http = okta_http(cfg, connector, crawl_config, controller)
    apply_limits(http, crawl_config)
    return http, OktaLogFeed(cfg, http)
