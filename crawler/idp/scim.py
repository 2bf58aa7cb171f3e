"""SCIM 2.0 (RFC 7644): `GET {base}/Users` with 1-based index paging and a bearer token.

Servers may return fewer resources than asked for, so the next `startIndex` advances by what was received;
the listing is complete when `startIndex` passes `totalResults`. A page that comes back empty before that
is a listing that stopped short, and is reported as incomplete rather than read as "that is everyone".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from crawler.config import CrawlConfig, ScimConfig
from crawler.errors import AuthError, SourceError
from crawler.http import SourceHttp
from crawler.idp.listing import UsersListing
from crawler.idp.server_paced import ServerPacedController
from crawler.idp.status import (
    AddressBook,
    addresses_reader,
    is_email,
    scim_status,
    text,
    vendor_identity,
)
from crawler.paging_guard import PageGuard, new_ids
from crawler.records import Identity
from crawler.source import SourceContext, source_session

log = logging.getLogger("idgraph.idp.scim")

USERS = "users"


def _address_book(raw: Mapping[str, Any]) -> AddressBook:
    book = AddressBook()
    emails = [e for e in raw.get("emails") or () if isinstance(e, Mapping)]
    for entry in sorted(emails, key=lambda e: e.get("primary") is not True):
        book.add(entry.get("value"), kind="email", primary=entry.get("primary") is True)
    user_name = raw.get("userName")
    if is_email(user_name):
        book.add(user_name, kind="login")
    return book


user_addresses = addresses_reader(_address_book)


def parse_user(raw: Mapping[str, Any]) -> Identity:
    """One SCIM User: `active` false is disabled; `emails[]` (primary first) and an email-like userName."""
    name = raw.get("name")
    display = raw.get("displayName") or (name.get("formatted") if isinstance(name, Mapping) else None)
    user_type = raw.get("userType")
    return vendor_identity(
        raw,
        scim_status(raw.get("active")),
        _address_book(raw),
        "emails is empty and userName is not an email",
        user_type=user_type.strip().lower() if isinstance(user_type, str) and user_type.strip() else None,
        display_name=text(display),
    )


def _int_field(body: Mapping[str, Any], key: str, source: str, page: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SourceError(f"{source}: page {page} of /Users has no valid {key}; listing incomplete")
    return value


class ScimCrawl(UsersListing[ScimConfig]):
    """The `/Users` listing of one SCIM service provider into the snapshot."""

    def hint(self) -> str:
        return f"check the bearer token in ${self.cfg.token_env}"

    async def walk(self, ctx: SourceContext) -> None:
        url = f"{self.cfg.base_url}/Users"
        start, page = 1, 0
        guard = PageGuard(self.cfg.name, USERS, ctx.http.limits.pages)
        ids: set[object] = set()
        while True:
            page += 1
            params = {"startIndex": str(start), "count": str(self.cfg.page_size)}
            response = await ctx.http.get_json(url, params, purpose=USERS)
            body = response.body
            if not isinstance(body, Mapping):
                raise SourceError(f"{self.cfg.name}: page {page} of /Users is not a ListResponse")
            total = _int_field(body, "totalResults", self.cfg.name, page)
            resources = body.get("Resources", [])
            if not isinstance(resources, list):
                raise SourceError(f"{self.cfg.name}: page {page} of /Users has no Resources list")
            if not resources and start <= total:
                raise SourceError(
                    f"{self.cfg.name}: /Users returned an empty page at startIndex={start} although "
                    f"totalResults={total}; listing incomplete"
                )
            identities = ctx.normalise(USERS, resources, parse_user, addresses=user_addresses)
            start += len(resources)
            done = start > total
            ctx.commit_page(USERS, identities, done=done)
            log.debug(
                "%s: users page %d, %d users, next startIndex %d of %d",
                self.cfg.name,
                page,
                len(identities),
                start,
                total,
            )
            if done:
                return
            guard.page(new_ids(ids, resources), start)


def open_source(
    cfg: ScimConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]]:
    """A SCIM endpoint's auth context: a bearer token on its own session and limiter."""
    session = source_session(connector, crawl_config)
    controller = ServerPacedController(cfg.name, ceiling=cfg.requests_per_minute, window_seconds=60)

    async def auth_headers() -> dict[str, str]:
        if cfg.token is None:
            raise AuthError(f"{cfg.name}: no bearer token (set ${cfg.token_env})")
        return {"Authorization": f"Bearer {cfg.token.get_secret_value()}"}

    http = SourceHttp(
        cfg.name,
        session,
        controller,
        max_concurrency=crawl_config.max_concurrency_per_source,
        auth_headers=auth_headers,
    )
    return http, ScimCrawl(cfg).run
