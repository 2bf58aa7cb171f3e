"""Microsoft Graph users delta as a change feed: rounds from a stored `@odata.deltaLink`.

A round follows `@odata.nextLink` (empty pages included) until an `@odata.deltaLink` arrives; that link is
the cursor, and it is handed out only with the round's last page: every earlier page carries the previous
cursor, so a crash mid-round replays the round. The first round lists every user (a `baseline`, which the
watcher diffs, never alerts on). Only `$select`ed properties are tracked and `accountEnabled` comes only
when selected, so the first call selects it with the addresses. `Prefer: return=minimal` is not sent: then
every entry carries `accountEnabled`, and one without it is an anomaly (reported as `Skipped`), never a
change to another property. `@removed` means deleted ("changed": soft, "deleted": for good). A `410 Gone`
or a `syncStateNotFound` (an expired token) starts a fresh full round — from our own `$select`, not the
`Location` Graph offers — as a baseline. Delta reports state, not events: the key is the id + the state.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from crawler.config import CrawlConfig, EntraConfig
from crawler.errors import ClientRequestError, SourceError
from crawler.feeds.events import FeedPage, Skipped, StatusChange
from crawler.http import SourceHttp
from crawler.idp.auth_hint import auth_hint
from crawler.idp.entra import GRAPH_AUTH_HINT, graph_http, user_addresses
from crawler.idp.status import same_origin_link
from crawler.paging_guard import PageGuard, new_ids
from crawler.source import apply_limits
from crawler.vocabulary import IdentityStatus

log = logging.getLogger("idgraph.feeds.graph")

PURPOSE = "users_delta"
SELECT = "id,accountEnabled,mail,userPrincipalName,proxyAddresses,displayName"
GONE = 410
MAX_ERROR_BODY = 64 * 1024  # a sync-reset error is a small JSON document; a bigger body is not one
REMOVED_REASONS = ("changed", "deleted")
_GRAPH_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def sync_reset_as_gone() -> Any:
    """Client middleware: a 4xx whose `error.code` is `syncStateNotFound` (an expired delta token) is
    answered as 410 Gone, Graph's other way of saying "synchronise again", so the feed handles one status."""

    async def middleware(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        response = await handler(request)
        length = response.content_length
        small = length is not None and length <= MAX_ERROR_BODY
        client_error = 400 <= response.status < 500 and response.status not in (401, 403, 410, 429)
        if client_error and small and _error_code(await response.read()):
            response.status = GONE
        return response

    return middleware


def _error_code(body: bytes) -> bool:
    try:
        return json.loads(body)["error"]["code"] == "syncStateNotFound"
    except (ValueError, KeyError, TypeError):
        return False


def parse_entry(raw: Any, source: str) -> StatusChange | Skipped:
    """One delta entry: the state it asserts, or why none can be read."""
    if not isinstance(raw, Mapping):
        return Skipped("delta entry is not a JSON object", raw)
    idp_id = raw.get("id")
    addresses = tuple(user_addresses(raw))
    if not isinstance(idp_id, str) or not _GRAPH_ID.match(idp_id):
        return Skipped("delta entry without a usable id", raw, addresses)
    label = f"id {idp_id}"
    if "@removed" in raw:
        removed = raw["@removed"]
        reason = removed.get("reason") if isinstance(removed, Mapping) else None
        word = reason if reason in REMOVED_REASONS else "no reason"
        deleted, key = IdentityStatus.DELETED, f"{idp_id}:removed:{word}"
        return StatusChange(source, idp_id, addresses, deleted, f"@removed: {word}", None, key)
    enabled = raw.get("accountEnabled")
    if not isinstance(enabled, bool):
        what = "missing" if enabled is None else "not true or false"
        return Skipped(
            f"accountEnabled {what}: the status is unknown (was $select dropped?)", raw, addresses, label
        )
    state = f"accountEnabled={'true' if enabled else 'false'}"
    status = IdentityStatus.ACTIVE if enabled else IdentityStatus.DISABLED
    return StatusChange(source, idp_id, addresses, status, state, None, f"{idp_id}:{state}")


class GraphDeltaFeed:
    """The users delta of one tenant as `ChangeFeed[StatusChange]`."""

    def __init__(self, cfg: EntraConfig, http: SourceHttp) -> None:
        self.source = cfg.name
        self.cfg = cfg
        self.http = http
        self.delta_url = f"{cfg.graph_url}/v1.0/users/delta"

    async def pages(self, cursor: str | None) -> AsyncIterator[FeedPage[StatusChange]]:
        with auth_hint(lambda: GRAPH_AUTH_HINT):
            async for page in self._pages(cursor):
                yield page

    async def _pages(self, cursor: str | None) -> AsyncIterator[FeedPage[StatusChange]]:
        previous, url, query = self._start(cursor)
        baseline, resets = not previous, 0
        guard = PageGuard(self.source, PURPOSE, self.http.limits.pages)
        seen: set[object] = set()
        while True:
            try:
                response = await self.http.get_json(url, query, purpose=PURPOSE)
            except ClientRequestError as exc:
                if exc.status != GONE or resets:
                    raise
                resets += 1
                log.warning(
                    "%s: Graph asked for a full resync (%s); starting a fresh round", self.source, exc
                )
                previous, url, query = self._start(None)
                baseline, guard, seen = True, PageGuard(self.source, PURPOSE, self.http.limits.pages), set()
                continue
            body = response.body
            value = body.get("value") if isinstance(body, Mapping) else None
            if not isinstance(value, list):
                raise SourceError(f"{self.source}: a users delta page has no `value` list; round incomplete")
            items: list[StatusChange] = []
            skipped: list[Skipped] = []
            for raw in value:
                parsed = parse_entry(raw, self.source)
                if isinstance(parsed, StatusChange):
                    items.append(parsed)
                else:
                    skipped.append(parsed)
            next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
            if isinstance(next_link, str) and next_link:
                target = same_origin_link(next_link, url, self.cfg.graph_url, self.source)
                yield FeedPage(tuple(items), previous, baseline, False, tuple(skipped))
                guard.page(new_ids(seen, value), target)
                url, query = target, None
                continue
            if not isinstance(delta_link, str) or not delta_link:
                raise SourceError(f"{self.source}: a users delta page has neither nextLink nor deltaLink")
            cursor = same_origin_link(delta_link, url, self.cfg.graph_url, self.source)
            yield FeedPage(tuple(items), cursor, baseline, True, tuple(skipped))
            return

    def _start(self, cursor: str | None) -> tuple[str, str, dict[str, str] | None]:
        """(cursor the round's pages carry, url, query): the stored deltaLink as given (same origin
        only), or a first round with our `$select` (carried by Graph into every link after it)."""
        if cursor:
            try:
                return cursor, same_origin_link(cursor, self.delta_url, self.cfg.graph_url, self.source), None
            except SourceError:
                log.warning("%s: the stored deltaLink leaves the tenant's Graph host; resyncing", self.source)
        return "", self.delta_url, {"$select": SELECT}


def open_feed(
    cfg: EntraConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, GraphDeltaFeed]:
    """The feed on its own Graph auth context (token, session, `Retry-After` pacing)."""
    http = graph_http(cfg, connector, crawl_config, middlewares=(sync_reset_as_gone(),))
    apply_limits(http, crawl_config)
    return http, GraphDeltaFeed(cfg, http)
