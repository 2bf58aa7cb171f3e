"""Okta: `GET /api/v1/users`, twice — because the plain list hides DEPROVISIONED users.

A deactivated person is missing from the plain listing, so a crawler that only lists would report them as
"not in the IdP" instead of "disabled". A second pass with `search=status eq "DEPROVISIONED"` finds them.
Paging follows the `Link: rel="next"` header verbatim; pacing follows `X-Rate-Limit-*`, whose budget and
reset are shared by every client of the org, so we stop at a reserve instead of running it dry.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict

from crawler.config import CrawlConfig, OktaConfig
from crawler.errors import AuthError, SourceError
from crawler.http import SourceHttp
from crawler.idp.auth_hint import auth_hint
from crawler.idp.status import (
    AddressBook,
    addresses_reader,
    okta_status,
    parse_time,
    same_origin_link,
    vendor_identity,
)
from crawler.paging_guard import PageGuard, new_ids
from crawler.ratelimit import RateController, Ticket, parse_int_header, parse_retry_after
from crawler.records import Identity
from crawler.source import SourceContext, source_session

log = logging.getLogger("idgraph.idp.okta")

USERS = "users"
DEPROVISIONED = "deprovisioned"
PAGE_LIMIT = 200  # Okta's maximum and default
DEPROVISIONED_SEARCH = 'status eq "DEPROVISIONED"'
MAX_RESET_WAIT = 120.0  # Okta windows are one minute; never trust a reset further out than this
RESET_MARGIN = 0.5

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive, whatever mapping the headers came in (a test's dict included)."""
    return CIMultiDict(headers).get(name)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    return parse_int_header(CIMultiDict(headers), name)


def next_link(headers: Mapping[str, str]) -> str | None:
    """The `rel="next"` target of a Link header (several links may share one comma-joined header)."""
    value = header(headers, "Link")
    if not value:
        return None
    for match in _LINK.finditer(value):
        params = match.group(2)
        rel = re.search(r'rel\s*=\s*"?([^";,]+)"?', params)
        if rel and "next" in rel.group(1).lower().split():
            return match.group(1).strip()
    return None


class OktaRateController(RateController):
    """RateController plus Okta's headers: pause at the reserve until `X-Rate-Limit-Reset`.

    The reset is server epoch seconds; the server's `Date` header corrects for clock skew. Once Okta's
    headers are seen they replace the base class's blind adaptive pacing.
    """

    def __init__(self, *args: Any, wall_clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, wall_clock=wall_clock, **kwargs)
        self._now = wall_clock

    def _resume_at_reset(self, headers: Mapping[str, str]) -> float | None:
        reset = _header_int(headers, "X-Rate-Limit-Reset")
        if reset is None:
            return None
        now = self._now()
        server_now = now
        date = header(headers, "Date")
        if date:
            try:
                server_now = parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError, IndexError):
                server_now = now
        wait = min(max(reset - server_now, 0.0), MAX_RESET_WAIT)
        return now + wait + RESET_MARGIN

    def on_success(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> None:
        super().on_success(headers, ticket)
        remaining = _header_int(headers, "X-Rate-Limit-Remaining")
        limit = _header_int(headers, "X-Rate-Limit-Limit")
        if remaining is None or limit is None or limit <= 0:
            return
        self.headers_seen = True
        reserve = max(1, math.ceil(limit * (1.0 - self.budget_share)))
        if remaining <= reserve:
            resume_at = self._resume_at_reset(headers)
            if resume_at is not None:
                log.debug("okta pacing: %s of %s left, waiting for the reset", remaining, limit)
                self.pause_until(resume_at)

    def on_throttled(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> float:
        """Okta's 429 carries no Retry-After; its `X-Rate-Limit-Reset` says when the window reopens."""
        resume_at = self._resume_at_reset(headers)
        retry_after = header(headers, "Retry-After")
        if resume_at is None or parse_retry_after(retry_after) is not None:
            plain = {"Retry-After": retry_after} if retry_after is not None else {}
            return super().on_throttled(plain, ticket)
        self._answered(ticket)
        self.headers_seen = True
        self.throttled += 1
        self.pause_until(resume_at)
        return max(0.0, resume_at - self._now())


def _address_book(raw: Mapping[str, Any]) -> AddressBook:
    profile = raw.get("profile") or {}
    book = AddressBook()
    book.add(profile.get("email"), kind="email", primary=True)
    book.add(profile.get("login"), kind="login")
    return book


user_addresses = addresses_reader(_address_book)


def parse_user(raw: Mapping[str, Any]) -> Identity:
    """One Okta user. `profile.secondEmail` is a recovery address, often personal: never an address."""
    raw_status = raw.get("status")
    profile = raw.get("profile") or {}
    first, last = profile.get("firstName"), profile.get("lastName")
    display = profile.get("displayName") or " ".join(p for p in (first, last) if isinstance(p, str)) or None
    return vendor_identity(
        raw,
        (str(raw_status), okta_status(raw_status)),
        _address_book(raw),
        "profile.email and profile.login are empty or not emails",
        status_changed_at=parse_time(raw.get("statusChanged")),
        last_login=parse_time(raw.get("lastLogin")),
        display_name=display,
    )


class OktaCrawl:
    """The two listings of one Okta org into the snapshot."""

    def __init__(self, cfg: OktaConfig) -> None:
        self.cfg = cfg
        self.users_url = f"{cfg.base_url}/api/v1/users"

    async def run(self, ctx: SourceContext) -> None:
        # The search pass goes first: it is eventually consistent, and the plain list (consistent) then
        # overwrites any stale row of a user reactivated in between.
        with auth_hint(
            lambda: f"check the API token in ${self.cfg.token_env} (sent as {self.cfg.auth_scheme})"
        ):
            await self._walk(ctx, DEPROVISIONED, {"search": DEPROVISIONED_SEARCH, "limit": PAGE_LIMIT})
            await self._walk(ctx, USERS, {"limit": PAGE_LIMIT})

    async def _walk(self, ctx: SourceContext, collection: str, params: dict[str, Any]) -> None:
        if collection in ctx.done:
            return
        url: str = self.users_url
        query: dict[str, Any] | None = params
        guard = PageGuard(self.cfg.name, collection, ctx.http.limits.pages)
        ids: set[object] = set()
        page = 0
        while True:
            page += 1
            response = await ctx.http.get_json(url, query, purpose=collection)
            if not isinstance(response.body, list):
                raise SourceError(
                    f"{self.cfg.name}: page {page} of {collection} is not a list of users; listing incomplete"
                )
            identities = ctx.normalise(collection, response.body, parse_user, addresses=user_addresses)
            link = next_link(response.headers)
            target = same_origin_link(link, url, self.cfg.base_url, self.cfg.name) if link else None
            ctx.commit_page(collection, identities, done=target is None)
            log.debug("%s: %s page %d, %d users", self.cfg.name, collection, page, len(identities))
            if target is None:
                return
            guard.page(new_ids(ids, response.body), target)
            url, query = target, None  # the next link is complete: follow it as given


def okta_http(
    cfg: OktaConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig, controller: RateController
) -> SourceHttp:
    """One Okta auth context: SSWS or Bearer token, its own session, the given limiter, the concurrency cap.

    The users crawl and the System Log feed each bring their own controller: Okta rates `/api/v1/logs`
    in a bucket of its own, much lower than `/api/v1/users`.
    """
    session = source_session(connector, crawl_config)

    async def auth_headers() -> dict[str, str]:
        if cfg.token is None:
            raise AuthError(f"{cfg.name}: no API token (set ${cfg.token_env})")
        return {"Authorization": f"{cfg.auth_scheme} {cfg.token.get_secret_value()}"}

    return SourceHttp(
        cfg.name, session, controller, max_concurrency=cfg.max_concurrency, auth_headers=auth_headers
    )


def open_source(
    cfg: OktaConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]]:
    """Okta's auth context for the users crawl, paced by the org's `/users` rate headers."""
    controller = OktaRateController(ceiling=cfg.requests_per_minute, window_seconds=60)
    return okta_http(cfg, connector, crawl_config, controller), OktaCrawl(cfg).run
