"""Microsoft Entra ID: Graph `GET /v1.0/users` with an app-only (client-credentials) token.

`accountEnabled` is not in Graph's default projection, so the listing always sends `$select`; a page
that comes back without it means `$select` was lost on the way, and we refuse to read such a page as
"everyone enabled". Addresses come from `mail`, the `SMTP:`/`smtp:` entries of `proxyAddresses`, and the
UPN unless it is a guest's `#EXT#` UPN; `otherMails` is often personal and never matched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from crawler.config import CrawlConfig, EntraConfig
from crawler.errors import AuthError, ClientRequestError, NotFoundError, SourceError
from crawler.http import SourceHttp
from crawler.idp.listing import UsersListing
from crawler.idp.server_paced import ServerPacedController
from crawler.idp.status import (
    AddressBook,
    addresses_reader,
    entra_status,
    entra_user_type,
    parse_proxy_addresses,
    same_origin_link,
    text,
    vendor_identity,
)
from crawler.idp.tokens import TokenRefused, bearer_http, token_from_response
from crawler.paging_guard import PageGuard, new_ids
from crawler.records import Identity
from crawler.source import SourceContext, source_session

log = logging.getLogger("idgraph.idp.entra")

USERS = "users"
SELECT = "id,userPrincipalName,mail,otherMails,proxyAddresses,accountEnabled,userType"
PAGE_SIZE = 999
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _address_book(raw: Mapping[str, Any]) -> AddressBook:
    book = AddressBook()
    book.add(raw.get("mail"), kind="email", primary=True)
    for address, primary in parse_proxy_addresses(raw.get("proxyAddresses")):
        book.add(address, kind="proxy", primary=primary)
    upn = raw.get("userPrincipalName")
    if isinstance(upn, str) and "#ext#" not in upn.casefold():
        book.add(upn, kind="upn")
    return book


user_addresses = addresses_reader(_address_book)


def parse_user(raw: Mapping[str, Any]) -> Identity:
    """One Graph user; a record without `accountEnabled` is refused (quarantined), never read as enabled."""
    return vendor_identity(
        raw,
        entra_status(raw.get("accountEnabled")),
        _address_book(raw),
        "mail, proxyAddresses and a non-guest userPrincipalName are empty",
        user_type=entra_user_type(raw.get("userType")),
        display_name=text(raw.get("displayName")),
    )


GRAPH_AUTH_HINT = "Graph refused the token — the app needs the User.Read.All application permission"


class EntraCrawl(UsersListing[EntraConfig]):
    """The `/users` listing of one tenant into the snapshot."""

    def hint(self) -> str:
        return GRAPH_AUTH_HINT

    async def walk(self, ctx: SourceContext) -> None:
        url = f"{self.cfg.graph_url}/v1.0/users"
        query: dict[str, Any] | None = {"$select": SELECT, "$top": str(PAGE_SIZE)}
        guard = PageGuard(self.cfg.name, USERS, ctx.http.limits.pages)
        ids: set[object] = set()
        missing_status = page = 0
        while True:
            page += 1
            response = await ctx.http.get_json(url, query, purpose=USERS)
            body = response.body
            if not isinstance(body, Mapping) or not isinstance(body.get("value"), list):
                raise SourceError(
                    f"{self.cfg.name}: users page {page} has no `value` list; listing incomplete"
                )
            users = body["value"]
            with_status = [
                u for u in users if isinstance(u, Mapping) and isinstance(u.get("accountEnabled"), bool)
            ]
            if users and not with_status:
                raise SourceError(
                    f"{self.cfg.name}: users page {page} came back without accountEnabled — $select was "
                    "not honoured, so no status can be read; listing incomplete"
                )
            missing_status += len(users) - len(with_status)
            identities = ctx.normalise(USERS, users, parse_user, addresses=user_addresses)
            link = body.get("@odata.nextLink")
            target = same_origin_link(link, url, self.cfg.graph_url, self.cfg.name) if link else None
            ctx.commit_page(USERS, identities, done=target is None)
            log.debug("%s: users page %d, %d users", self.cfg.name, page, len(identities))
            if target is None:
                break
            guard.page(new_ids(ids, users), target)
            url, query = target, None  # nextLink is complete: follow it as given
        if missing_status:
            ctx.note(f"{missing_status} users came back without accountEnabled and were quarantined")


def graph_http(
    cfg: EntraConfig,
    connector: aiohttp.BaseConnector,
    crawl_config: CrawlConfig,
    middlewares: Sequence[Any] = (),
) -> SourceHttp:
    """One Graph auth context: a client-credentials token, cached and renewed, on its own session.

    The users crawl and the delta feed each open one; `middlewares` go on the session (the feed reads
    Graph's sync-reset errors with one).
    """
    session = source_session(connector, crawl_config, middlewares=middlewares)
    controller = ServerPacedController(cfg.name, ceiling=cfg.requests_per_minute, window_seconds=60)

    async def fetch_token(token_endpoint: SourceHttp) -> tuple[str, float]:
        if cfg.client_secret is None:
            raise TokenRefused(f"{cfg.name}: no client secret (set ${cfg.client_secret_env})")
        form = {
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret.get_secret_value(),
            "grant_type": "client_credentials",
            "scope": GRAPH_SCOPE,
        }
        url = f"{cfg.login_url}/{cfg.tenant_id}/oauth2/v2.0/token"
        try:
            response = await token_endpoint.request("POST", url, data=form, purpose="token")
        except (AuthError, ClientRequestError, NotFoundError) as exc:
            raise TokenRefused(
                f"{exc}; check tenant_id, client_id and the client secret in ${cfg.client_secret_env}"
            ) from None
        return token_from_response(response.body, cfg.name)

    return bearer_http(cfg.name, session, controller, crawl_config.max_concurrency_per_source, fetch_token)


def open_source(
    cfg: EntraConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]]:
    """Entra's auth context for the users crawl."""
    return graph_http(cfg, connector, crawl_config), EntraCrawl(cfg).run
