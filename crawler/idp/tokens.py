"""OAuth bearer tokens for IdP APIs: fetched once, shared by concurrent requests, renewed before expiry.

Entra (client credentials) and Google (a signed service-account assertion) differ only in how a token is
requested; caching, renewal and the token endpoint's own auth context are the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from crawler.errors import AuthError
from crawler.http import SourceHttp
from crawler.idp.server_paced import ServerPacedController
from crawler.redact import REDACTOR

REFRESH_MARGIN = 300.0  # renew a token five minutes before it expires


class TokenRefused(AuthError):
    """The token endpoint refused our credentials (as opposed to the API refusing the token)."""


class TokenCache:
    """A bearer token fetched on first use, shared by concurrent requests, renewed before expiry."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        *,
        margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetches = 0

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                token, lifetime = await self._fetch()
                self.fetches += 1
                self._token = token
                self._renew_at = self._clock() + max(0.0, lifetime - min(self._margin, lifetime / 2))
            return self._token

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}


def token_http(api: SourceHttp, source: str) -> SourceHttp:
    """The token endpoint's own `SourceHttp`: same session and counters, its own slot and limiter.

    A token fetch happens while an API request holds one of the API's concurrency slots (auth headers are
    built on the wire); sharing those slots could deadlock, and the token host has its own limits anyway.
    """
    controller = ServerPacedController(source, ceiling=60, window_seconds=60)
    http = SourceHttp(source, api.session, controller, max_concurrency=1)
    http.stats = api.stats  # token requests count in the source's coverage
    return http


def token_from_response(body: Any, source: str) -> tuple[str, float]:
    """`access_token` and `expires_in` of an OAuth token response, checked without echoing it."""
    if not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str):
        raise TokenRefused(f"{source}: the token endpoint answered without an access_token")
    try:
        lifetime = float(body.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    REDACTOR.add(body["access_token"])  # a server may echo it back in an error body
    return body["access_token"], lifetime


def bearer_http(
    name: str,
    session: Any,
    controller: ServerPacedController,
    max_concurrency: int,
    request_token: Callable[[SourceHttp], Awaitable[tuple[str, float]]],
) -> SourceHttp:
    """An API `SourceHttp` whose bearer token comes from `request_token(token_endpoint_http)`, cached."""
    token_endpoint: list[SourceHttp] = []

    async def fetch() -> tuple[str, float]:
        token_endpoint[0].limits = http.limits  # set by the orchestrator after construction
        token_endpoint[0].controller.max_retry_after = http.controller.max_retry_after
        return await request_token(token_endpoint[0])

    http = SourceHttp(
        name, session, controller, max_concurrency=max_concurrency, auth_headers=TokenCache(fetch).headers
    )
    token_endpoint.append(token_http(http, name))
    return http
