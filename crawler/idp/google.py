"""Google Workspace: Admin SDK Directory `users.list` as a service account with domain-wide delegation.

The key file's private key signs a short-lived RS256 assertion (impersonating `subject`), exchanged at the
key's `token_uri` for a bearer token. Google reports quota exhaustion as 403 (`userRateLimitExceeded`,
`quotaExceeded`) as well as 429 (`rateLimitExceeded`); those back off and retry, while a real 403
(`forbidden`: no delegation, subject not an admin) fails at once with its reason. Key material and tokens
never appear in a message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from pydantic import SecretStr

from crawler.config import CrawlConfig, GoogleConfig, check_base_url
from crawler.errors import AuthError, ClientRequestError, NotFoundError, SourceError
from crawler.http import SourceHttp
from crawler.idp.listing import UsersListing
from crawler.idp.server_paced import ServerPacedController
from crawler.idp.status import (
    AddressBook,
    addresses_reader,
    google_status,
    parse_time,
    text,
    vendor_identity,
)
from crawler.idp.tokens import TokenRefused, bearer_http, token_from_response
from crawler.paging_guard import PageGuard, new_ids
from crawler.records import Identity
from crawler.redact import REDACTOR, redact
from crawler.source import SourceContext, source_session

log = logging.getLogger("idgraph.idp.google")

USERS = "users"
SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PAGE_SIZE = 500
QUOTA_REASONS = frozenset({"userRateLimitExceeded", "quotaExceeded", "rateLimitExceeded"})


@dataclass(frozen=True)
class ServiceAccountKey:
    client_email: str
    private_key: SecretStr
    token_uri: str
    private_key_id: str | None = None


def load_key(path: Path, source: str) -> ServiceAccountKey:
    """Read the key file; errors name the file and the field, never its content."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"{source}: cannot read the key file {path}: {exc.strerror}") from None
    except ValueError:
        raise SourceError(f"{source}: the key file {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise SourceError(f"{source}: the key file {path} is not a service-account key")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not isinstance(data.get(k), str)]
    if missing:
        raise SourceError(f"{source}: the key file {path} has no {', '.join(missing)}")
    try:
        check_base_url(data["token_uri"])
    except ValueError as exc:
        raise SourceError(f"{source}: token_uri in {path}: {exc}") from None
    key_id = data.get("private_key_id")
    REDACTOR.add(data["private_key"])
    return ServiceAccountKey(
        client_email=data["client_email"],
        private_key=SecretStr(data["private_key"]),
        token_uri=data["token_uri"],
        private_key_id=key_id if isinstance(key_id, str) else None,
    )


def make_assertion(
    key: ServiceAccountKey, subject: str, source: str, now: float | None = None, scope: str = SCOPE
) -> str:
    """The signed JWT Google exchanges for a token (RS256, one hour at most)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": key.client_email, "sub": subject, "scope": scope, "aud": key.token_uri}
    claims |= {"iat": issued, "exp": issued + 3600}
    headers = {"kid": key.private_key_id} if key.private_key_id else None
    try:
        return jwt.encode(claims, key.private_key.get_secret_value(), algorithm="RS256", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise TokenRefused(
            f"{source}: the key file's private_key cannot sign ({type(exc).__name__})"
        ) from None


@dataclass
class LastError:
    """The `error.errors[].reason` of the latest 403/429, for a failure message worth reading."""

    reason: str | None = None


def quota_as_throttle(last: LastError) -> Any:
    """Client middleware: a 403 whose reason is a quota reason is throttling, so it is answered as 429.

    `SourceHttp` then pauses the source through its rate controller and sends the request again.
    """

    async def middleware(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        response = await handler(request)
        if response.status in (403, 429):
            last.reason = _reason(await response.read())
            if response.status == 403 and last.reason in QUOTA_REASONS:
                response.status = 429
        return response

    return middleware


def _reason(body: bytes) -> str | None:
    try:
        errors = json.loads(body)["error"]["errors"]
        return next((e["reason"] for e in errors if isinstance(e.get("reason"), str)), None)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _address_book(raw: Mapping[str, Any]) -> AddressBook:
    book = AddressBook()
    book.add(raw.get("primaryEmail"), kind="email", primary=True)
    for field in ("aliases", "nonEditableAliases"):
        for alias in raw.get(field) or ():
            book.add(alias, kind="alias")
    return book


user_addresses = addresses_reader(_address_book)


def parse_user(raw: Mapping[str, Any]) -> Identity:
    """One Directory user: disabled when suspended or archived; every alias is an address."""
    name = raw.get("name")
    return vendor_identity(
        raw,
        google_status(raw.get("suspended"), raw.get("archived")),
        _address_book(raw),
        "primaryEmail and aliases are empty",
        last_login=parse_time(raw.get("lastLoginTime")),
        display_name=text(name.get("fullName")) if isinstance(name, Mapping) else None,
    )


def delegation_hint(cfg: GoogleConfig, last_error: LastError, scope: str = SCOPE) -> str:
    """What a refused Google request most likely means, with the API's own reason when it gave one."""
    reason = f"[reason: {redact(last_error.reason)}] " if last_error.reason else ""
    return (
        f"{reason}check the domain-wide delegation of {scope} for the service account "
        f"and that {cfg.subject} is an admin"
    )


class GoogleCrawl(UsersListing[GoogleConfig]):
    """The `users.list` listing of one customer into the snapshot."""

    def __init__(self, cfg: GoogleConfig, last_error: LastError) -> None:
        super().__init__(cfg)
        self.last_error = last_error

    def hint(self) -> str:
        return delegation_hint(self.cfg, self.last_error)

    async def walk(self, ctx: SourceContext) -> None:
        url = f"{self.cfg.base_url}/admin/directory/v1/users"
        page_token: str | None = None
        guard = PageGuard(self.cfg.name, USERS, ctx.http.limits.pages)
        ids: set[object] = set()
        page = 0
        while True:
            page += 1
            params = {"customer": self.cfg.customer, "maxResults": str(PAGE_SIZE)}
            if page_token:
                params["pageToken"] = page_token
            response = await ctx.http.get_json(url, params, purpose=USERS)
            body = response.body
            users = body.get("users", []) if isinstance(body, Mapping) else None
            if not isinstance(users, list):
                raise SourceError(
                    f"{self.cfg.name}: users page {page} is not a users list; listing incomplete"
                )
            identities = ctx.normalise(USERS, users, parse_user, addresses=user_addresses)
            next_token = body.get("nextPageToken") if isinstance(body, Mapping) else None
            ctx.commit_page(USERS, identities, done=not next_token)
            log.debug("%s: users page %d, %d users", self.cfg.name, page, len(identities))
            if not next_token:
                return
            guard.page(new_ids(ids, users), next_token)
            page_token = next_token


def google_http(
    cfg: GoogleConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig, scope: str = SCOPE
) -> tuple[SourceHttp, LastError]:
    """One Google auth context for `scope`: a delegated service-account token, its own session (quota 403s
    answered as throttling), limiter and key. The key file is read on first use: a bad one fails this
    source only. `LastError` keeps the reason of the latest refusal, for a message worth reading."""
    last_error = LastError()
    session = source_session(
        connector,
        crawl_config,
        middlewares=(quota_as_throttle(last_error),),
    )
    controller = ServerPacedController(cfg.name, ceiling=cfg.requests_per_minute, window_seconds=60)
    keys: list[ServiceAccountKey] = []

    async def fetch_token(token_endpoint: SourceHttp) -> tuple[str, float]:
        if not keys:
            keys.append(load_key(cfg.key_file, cfg.name))
        key = keys[0]
        form = {
            "grant_type": JWT_BEARER,
            "assertion": make_assertion(key, cfg.subject, cfg.name, scope=scope),
        }
        try:
            response = await token_endpoint.request("POST", key.token_uri, data=form, purpose="token")
        except (AuthError, ClientRequestError, NotFoundError) as exc:
            raise TokenRefused(
                f"{exc}; the token endpoint refused the service-account assertion — check the key file "
                f"and that {key.client_email} may impersonate {cfg.subject}"
            ) from None
        return token_from_response(response.body, cfg.name)

    http = bearer_http(cfg.name, session, controller, crawl_config.max_concurrency_per_source, fetch_token)
    return http, last_error


def open_source(
    cfg: GoogleConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]]:
    """Google's auth context for the Directory listing."""
    http, last_error = google_http(cfg, connector, crawl_config)
    return http, GoogleCrawl(cfg, last_error).run
