"""One auth context per source: its own session, credentials, rate controller, counters and failure.

`SourceHttp.request` (and `get_json` on it) is how sources, token exchanges and remediation writes reach the
network: sessions come from `make_session`, and nothing else sends. It counts every request by purpose,
sends throttled requests back through the rate controller, retries transient faults with full-jitter
back-off (tenacity), and turns everything else into a `SourceError` whose message is ours — no URL with
credentials, no request headers, no chained aiohttp exception that could print them, and any text taken
from a response body redacted (see `crawler.redact`).

Against a hostile server: no redirect is ever followed (a 3xx fails the source, since following it would
re-send our credentials elsewhere), and a body over `limits.max_body_bytes` — on the wire or decompressed
— is refused without being read into memory. Neither is retried.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, MultiMapping
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from yarl import URL

from crawler.errors import AuthError, ClientRequestError, NotFoundError, SourceError, TransientError
from crawler.paging_guard import PageLimits
from crawler.ratelimit import RateController
from crawler.redact import redact

HeaderProvider = Callable[[], Awaitable[Mapping[str, str]]]
Decoder = Callable[[bytes], Any]


@dataclass
class RequestStats:
    """Counters a source's coverage is built from."""

    requests: int = 0  # every request sent
    by_purpose: Counter[str] = field(default_factory=Counter)  # those not answered 429
    throttled: int = 0  # those answered 429: requests == sum(by_purpose) + throttled
    retries: int = 0


DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class SourceLimits:
    """What a hostile server cannot make us spend: body size (on the wire and decompressed), pages."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    pages: PageLimits = field(default_factory=PageLimits)


class BodyTooLarge(SourceError):
    """A response body over `max_body_bytes` (compressed or decompressed). Not retried."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any


def _describe(url: str | URL) -> str:
    """The path of a URL, for messages: never the query (cursors, filters) nor userinfo."""
    parts = urlsplit(str(url))
    return f"{parts.hostname or ''}{parts.path}"


def _error_text(body: bytes) -> str:
    """The API's own error message, shortened, with any secret it echoes redacted."""
    return redact(_api_message(body))


def _api_message(body: bytes) -> str:
    """The API's own error message, shortened; LearnUpon uses `message` or `error`."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        for key in ("message", "error", "error_description", "errorSummary"):
            value = data.get(key)
            if isinstance(value, str):
                return value[:200]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"][:200]
    return str(data)[:200]


class SourceHttp:
    """HTTP for one source. Create one per source; close it when the source is done."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        controller: RateController,
        *,
        max_concurrency: int = 8,
        max_attempts: int = 5,
        backoff_cap_seconds: float = 30.0,
        auth_headers: HeaderProvider | None = None,
    ) -> None:
        self.name = name
        self.session = session
        self.controller = controller
        self.stats = RequestStats()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_attempts = max_attempts
        self._backoff_cap = backoff_cap_seconds
        self._auth_headers = auth_headers
        self.limits = SourceLimits()

    async def close(self) -> None:
        await self.session.close()

    async def get_json(
        self,
        url: str | URL,
        params: Mapping[str, Any] | None = None,
        *,
        purpose: str,
        decode: Decoder | None = None,
    ) -> Response:
        """GET a JSON document; retries transient faults, requeues 429s, raises SourceError otherwise.

        `decode` turns the body's bytes into `Response.body` (default: `json.loads`); it runs inside the
        retry scope, so a decoder that raises TransientError on a garbled body gets the page fetched again.
        """
        return await self.request("GET", url, params=params, purpose=purpose, decode=decode)

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | bytes | None = None,
        purpose: str,
        decode: Decoder | None = None,
        headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> Response:
        """Send one request (see `get_json`). `data` may be the exact bytes to send; `headers`, when
        given, is called before every attempt (a signature over a fresh timestamp must not be replayed)."""
        call = _Call(method, url, params, json_body, data, purpose, decode, headers)
        # The first attempt runs outside tenacity: nearly every request succeeds at once, and tenacity's
        # per-attempt bookkeeping costs more than the rest of our own request handling. A failure is
        # replayed into tenacity as its attempt 1, so waits and the bound are exactly tenacity's.
        try:
            return await self._until_not_throttled(call)
        except TransientError as exc:
            first_failure: TransientError | None = exc
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_random_exponential(multiplier=0.5, max=self._backoff_cap),
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first_failure is not None:
                    failure, first_failure = first_failure, None
                    raise failure
                self.stats.retries += 1
                return await self._until_not_throttled(call)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _until_not_throttled(self, call: _Call) -> Response:
        while True:
            # Take the concurrency slot before the rate gate: a pause must hold back every request
            # not yet on the wire, not only those that had not queued for a slot.
            async with self._slots:
                ticket = await self.controller.acquire()
                try:
                    response = await self._send_once(call)
                except BaseException:
                    self.controller.on_other_outcome(ticket)
                    raise
            if response.status == 429:
                self.stats.throttled += 1
                self.controller.on_throttled(response.headers, ticket)
                continue
            self.controller.on_success(response.headers, ticket)
            return _decode(self.name, call, response)

    async def _send_once(self, call: _Call) -> Response:
        """One request on the wire: a 2xx or 429 comes back raw; every other outcome raises."""
        headers = None if self._auth_headers is None else await self._auth_headers()
        if call.headers is not None:
            headers = {**(headers or {}), **call.headers()}
        self.stats.requests += 1
        method, url = call.method, call.url
        try:
            # Never follow a redirect: it would re-send our credentials (a Basic header, a client secret
            # in a POSTed form, a signed assertion) to wherever the server points.
            async with self.session.request(
                method,
                url,
                params=call.params,
                json=call.json_body,
                data=call.data,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                resp_headers = _joined_headers(resp.headers)
                if 300 <= status < 400:
                    raw = b""
                else:
                    raw = await _read_capped(resp, self.limits.max_body_bytes, self.name, method, url)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.stats.by_purpose[call.purpose] += 1
            raise TransientError(_transport_failure(self.name, method, _describe(url), exc)) from None
        if status == 429:
            return Response(status, resp_headers, raw)
        self.stats.by_purpose[call.purpose] += 1
        where = _describe(url)
        if 300 <= status < 400:
            target = urlsplit(resp_headers.get("Location", "")).hostname
            to = f" to {target}" if target else ""
            raise ClientRequestError(
                f"{self.name}: {method} {where} answered {status} redirect{to}; redirects are not followed"
            )
        if status < 400:
            return Response(status, resp_headers, raw)
        if status >= 500 and status != 501:  # 501 Not Implemented will not change on a retry
            raise TransientError(f"{self.name}: {method} {where} answered {status}", status=status)
        text = f"{self.name}: {method} {where} answered {status} ({_error_text(raw)})"
        if status in (401, 403):
            raise AuthError(text, status=status)
        if status == 404:
            raise NotFoundError(text, status=status)
        raise ClientRequestError(text, status=status)


@dataclass(frozen=True)
class _Call:
    """One logical request, as many attempts send it."""

    method: str
    url: str | URL
    params: Mapping[str, Any] | None
    json_body: Any
    data: Mapping[str, str] | bytes | None
    purpose: str
    decode: Decoder | None
    headers: Callable[[], Mapping[str, str]] | None = None


def decode_json(raw: bytes) -> Any:
    """The default decoder: JSON, or None for an empty body; TransientError for a garbled one."""
    return json.loads(raw) if raw.strip() else None


def _decode(source: str, call: _Call, response: Response) -> Response:
    """Decode a 2xx body; a body cut short or garbled is a transient fault (retried), never an empty page."""
    try:
        body = (call.decode or decode_json)(response.body)
    except ValueError:
        raise TransientError(
            f"{source}: {call.method} {_describe(call.url)} returned a truncated or malformed body"
        ) from None
    return Response(response.status, response.headers, body)


async def _read_capped(
    resp: aiohttp.ClientResponse, limit: int, source: str, method: str, url: str | URL
) -> bytes:
    """The body, read in chunks and refused once it passes `limit` bytes.

    `Content-Length` is the size on the wire (compressed, when `Content-Encoding` is set): over the limit,
    nothing is read. The stream aiohttp hands us is decompressed, so counting it caps the decompressed
    size too — a gzip bomb stops at the limit instead of filling memory.
    """

    def too_large(what: str) -> BodyTooLarge:
        return BodyTooLarge(
            f"{source}: {method} {_describe(url)} sent a body over the {limit:,}-byte limit ({what}); "
            "not read"
        )

    length = resp.content_length
    if length is not None and length > limit:
        raise too_large(f"Content-Length {length:,}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.read(READ_CHUNK)
        if not chunk:
            # A client middleware may have read the body already (Google's 403 check): it is cached.
            return b"".join(chunks) if size else await resp.read()
        size += len(chunk)
        if size > limit:
            encoding = resp.headers.get("Content-Encoding")
            raise too_large(f"{encoding}-decompressed" if encoding else "streamed")
        chunks.append(chunk)


def _joined_headers(headers: MultiMapping[str]) -> CIMultiDict[str]:
    """Case-insensitive headers with repeated fields joined by ", " (RFC 9110 §5.3).

    Keeping only one of repeated fields can lose Okta's `Link: …; rel="next"` when it is not last.
    """
    joined: CIMultiDict[str] = CIMultiDict()
    for key in headers:
        if key not in joined:
            joined[key] = ", ".join(headers.getall(key))
    return joined


def _transport_failure(source: str, method: str, where: str, exc: BaseException) -> str:
    """Describe a network failure from its type only: aiohttp's own text can include request details."""
    if isinstance(exc, TimeoutError):
        return f"{source}: {method} {where} timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{source}: cannot connect to {where}: {exc.os_error.strerror or type(exc.os_error).__name__}"
    return f"{source}: {method} {where} failed: {type(exc).__name__}"


def make_session(
    connector: aiohttp.BaseConnector,
    *,
    headers: Mapping[str, str] | None = None,
    total_timeout: float = 60.0,
    connect_timeout: float = 15.0,
    middlewares: Sequence[Any] = (),
) -> aiohttp.ClientSession:
    """A session of its own for one source, over the process-wide connector.

    Static credentials (a Basic `Authorization` header) go in `headers`: they stay in this session's
    memory and are sent on every request.
    """
    return aiohttp.ClientSession(
        connector=connector,
        connector_owner=False,
        headers={"Accept": "application/json", **(headers or {})},
        timeout=aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout),
        raise_for_status=False,
        middlewares=tuple(middlewares),
    )


__all__ = [
    "BodyTooLarge",
    "Decoder",
    "HeaderProvider",
    "Response",
    "SourceError",
    "SourceHttp",
    "SourceLimits",
    "make_session",
]
