"""Faithful fake IdP servers: aiohttp apps served on loopback, for tests and for `idgraph demo`.

Each fake reproduces its vendor's documented traps (Okta hiding DEPROVISIONED users, Graph dropping
`accountEnabled` without `$select`, Google's quota 403s, SCIM's 1-based paging), and every fake shares the
fault knobs below, so a test can break page 3 or throttle the next request the same way on any vendor.
Every exchange is recorded, so tests can check what the client sent and what it was answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    """Faults to inject. Pages are 1-based and derived from the cursor, so a retried page fails again."""

    fail_from_page: int | None = None  # every listing request for this page or later answers fail_status
    fail_status: int = 500
    throttle_next: int = 0  # the next N requests answer 429
    retry_after: str | None = "1"  # Retry-After on 429s, for vendors that send one

    def page_fails(self, page: int) -> bool:
        return self.fail_from_page is not None and page >= self.fail_from_page

    def take_throttle(self) -> bool:
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return True
        return False


@dataclass(frozen=True)
class Exchange:
    """One request a fake received and the response it gave, kept for assertions and spec validation."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int
    content_type: str
    response_headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.request_headers if k.lower() == name.lower()), None)

    def response_header_values(self, name: str) -> list[str]:
        return [v for k, v in self.response_headers if k.lower() == name.lower()]


def recording_middleware(exchanges: list[Exchange], *, keep: int = 10_000) -> Middleware:
    """Record every (request, response) pair, newest last; only the last `keep` are kept."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_body = await request.read() if request.can_read_body else b""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _append(exchanges, keep, request, request_body, exc.status, exc.content_type, exc.headers, b"")
            raise
        body = (
            response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
        )
        _append(
            exchanges,
            keep,
            request,
            request_body,
            response.status,
            response.content_type,
            response.headers,
            body,
        )
        return response

    return record


def _append(
    exchanges: list[Exchange],
    keep: int,
    request: web.Request,
    request_body: bytes,
    status: int,
    content_type: str,
    headers: Mapping[str, str],
    body: bytes,
) -> None:
    exchanges.append(
        Exchange(
            method=request.method,
            path=request.path,
            query=tuple(request.query.items()),
            request_headers=tuple(request.headers.items()),
            request_body=request_body,
            status=status,
            content_type=content_type,
            response_headers=tuple(headers.items()),
            body=body,
        )
    )
    del exchanges[:-keep]


@dataclass
class ServedFake:
    """A fake running on loopback; `url` has no trailing slash."""

    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> ServedFake:
    """Serve an app on loopback (port 0 = any free port), for the demo and ad-hoc runs."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return ServedFake(runner, f"http://{bound_host}:{bound_port}")


__all__ = ["Exchange", "Faults", "ServedFake", "recording_middleware", "serve"]
