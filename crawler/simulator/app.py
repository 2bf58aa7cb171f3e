"""The aiohttp application serving many simulated LearnUpon portals under one port, at `/{portal}/api/v1/...`.

It answers exactly as `learnupon-api.md` describes the real API (or, per portal, in the seed guide's dialect):
the traps a client must survive — ignored filters, 400 on a bodyless JSON GET, 429 without Retry-After, rate
headers on 2xx only — are behaviour here, not options. Failures beyond that come from `faults.FaultConfig`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import math
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from aiohttp import encode_basic_auth, web

from .dataset import PortalData, PortalSpec
from .endpoints import JSON_ERROR, ROUTES, Reply
from .faults import FaultConfig, FaultDecision, FaultInjector
from .limits import MINUTE_LIMIT_TEXT, make_limits
from .population import Person

_WRITES = frozenset({"PUT", "POST", "PATCH"})
# Wrapper key per kind of list: (real dialect, seed_wrapped dialect). The seed dialect sends bare arrays.
_WRAPPERS = {
    "user": ("user", "users"),
    "member": ("user", "users"),
    "group": ("group", "groups"),
    "groups": ("groups", "groups"),
    "courses": ("courses", "courses"),
    "enrollments": ("enrollments", "enrollments"),
    "audit_trails": ("audit_trails", "audit_trails"),  # the real key is undocumented (change-feeds.md 4b)
}
_SEED_NAMES = {"enabled": "is_active", "user_type": "role"}
PORTALS = web.AppKey("simulated_portals", dict)
LOG_LIMIT = 200_000  # a long benchmark must not grow the log without bound
LogEntry = tuple[str, str, dict[str, str], int]  # method, path under /api/v1, query, status (0 = reset)


@dataclass
class PortalStats:
    """Everything a test may assert about the traffic one portal received."""

    requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)  # "GET /users/{id}"
    status_counts: Counter[int] = field(default_factory=Counter)
    log: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))  # the latest requests
    deletes: int = 0
    writes: int = 0


class SimulatedPortal:
    """One portal: its spec, its mutable data, its fault knobs, its traffic stats."""

    def __init__(
        self,
        spec: PortalSpec,
        data: PortalData,
        faults: FaultConfig | None = None,
        population: list[Person] | None = None,
    ) -> None:
        self.spec, self.data, self.population = spec, data, population
        self.stats = PortalStats()
        self.faults = faults or FaultConfig()
        self.limits = make_limits(spec, 60.0)
        self._expected_auth = encode_basic_auth(spec.username, spec.password)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def credentials(self) -> tuple[str, str]:
        """(API username, API key) the portal accepts."""
        return self.spec.username, self.spec.password

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        """Replacing the knobs restarts their dice, so a test's faults do not depend on earlier traffic."""
        self._faults = config
        self._injector = FaultInjector(config)
        self._fault_base = self.stats.requests  # fail_after and mutate count from the swap

    def set_window(self, window_seconds: float) -> None:
        self.limits = make_limits(self.spec, window_seconds)

    def reset_stats(self) -> None:
        self.stats = PortalStats()
        self._fault_base = 0

    def param(self, query: Mapping[str, str], name: str) -> str | None:
        """A query filter as the portal sees it: None when absent or when this portal ignores it."""
        return None if name in self._faults.ignored_filters else query.get(name)

    def _authorised(self, header: str | None) -> bool:
        """HTTP Basic with this portal's own pair; the exact header is the fast path."""
        if header == self._expected_auth:
            return True
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except ValueError:
            return False
        spec = self.spec
        return hmac.compare_digest(login, spec.username) & hmac.compare_digest(password, spec.password)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method, tail = request.method, request.match_info["tail"].strip("/")
        segs = tail.split("/") if tail else []
        template = "/".join("{id}" if s.isdigit() else s for s in segs)
        stats = self.stats
        stats.requests += 1
        stats.by_endpoint[f"{method} /{template}"] += 1
        if method == "DELETE":
            stats.deletes += 1
        elif method in _WRITES:
            stats.writes += 1
        number = stats.requests - self._fault_base
        if self._faults.mutate is not None:
            self._faults.mutate(self.data, number)
        decision = self._injector.decide(number)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.action == "reset":
            self._record(stats, method, tail, request, 0)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # written to a closed transport: the client sees a disconnect
        body = await request.read() if request.body_exists else b""
        reply = self._answer(request, method, template, segs, body, decision)
        self._record(stats, method, tail, request, reply.status)
        return self._render(reply, decision)

    @staticmethod
    def _record(stats: PortalStats, method: str, tail: str, request: web.Request, status: int) -> None:
        stats.status_counts[status] += 1
        stats.log.append((method, "/" + tail, dict(request.query), status))

    def _answer(
        self,
        request: web.Request,
        method: str,
        template: str,
        segs: list[str],
        body: bytes,
        decision: FaultDecision,
    ) -> Reply:
        if not self._authorised(request.headers.get("Authorization")):
            return Reply(401, {"message": "Invalid API username or password"})
        over_limit = self.limits.admit()
        if over_limit:
            return Reply(429, text=over_limit)
        if method == "GET" and request.headers.get("Content-Type", "").startswith("application/json"):
            return Reply(400, JSON_ERROR)
        if decision.action in ("fail", "error"):
            if decision.status == 500:
                return Reply(500, {"message": "We're sorry, but something went wrong."})
            return Reply(decision.status, text=f"{decision.status} {HTTPStatus(decision.status).phrase}")
        if decision.action == "throttle":
            return Reply(429, text=MINUTE_LIMIT_TEXT)
        if template in self._faults.missing_endpoints:
            return Reply(404, {"message": "Not Found"})
        if any(
            template == path and request.query.get(key) == value
            for path, key, value in self._faults.broken_listings
        ):
            return Reply(500, {"message": "We're sorry, but something went wrong."})
        handler = ROUTES.get((method, template))
        if handler is None:
            return Reply(200, {}) if method == "DELETE" else Reply(404, {"message": "Not Found"})
        return handler(self, request.query, segs, body)

    def _render(self, reply: Reply, decision: FaultDecision) -> web.Response:
        headers: dict[str, str] = {}
        if reply.text is not None:
            payload, content_type = reply.text.encode(), "text/plain"
        else:
            payload, content_type = json.dumps(reply.body, separators=(",", ":")).encode(), "application/json"
        if 200 <= reply.status < 300:
            rate_headers = self._faults.rate_headers
            if rate_headers or (rate_headers is None and self.spec.dialect == "real"):
                headers["X-LU-Rate-Limit-Remaining-Minute"] = str(self.limits.remaining_minute)
                headers["X-LU-Rate-Limit-Remaining-Week"] = str(self.limits.remaining_week)
            if reply.paging is not None and self.spec.dialect == "real":
                page, per_page, has_next = reply.paging
                headers["LU-Current-Page"] = str(page)
                headers["LU-Records-Per-Page"] = str(per_page)
                headers["LU-Has-Next-Page"] = "true" if has_next else "false"
            if decision.truncate:
                payload = payload[: len(payload) // 2]
        elif reply.status == 429 and self._faults.retry_after is not None:
            wait = max(1, math.ceil(self.limits.seconds_to_reset()))
            headers["Retry-After"] = (
                str(wait)
                if self._faults.retry_after == "seconds"
                else formatdate(time.time() + wait, usegmt=True)
            )
        return web.Response(status=reply.status, body=payload, content_type=content_type, headers=headers)

    # -- shaping: stored records are in the real dialect; the seed dialects rename and unwrap them --

    def page(self, query: Mapping[str, str], items: list[Any]) -> tuple[list[Any], tuple[int, int, bool]]:
        """Slice one 1-based page out of a sorted list; pages past the end are empty."""
        try:
            number = max(1, int(self.param(query, "page") or "1"))
        except ValueError:
            number = 1
        size = self.spec.page_size
        start = (number - 1) * size
        return items[start : start + size], (number, size, start + size < len(items))

    def shape_user(self, user: dict[str, Any], with_updated: bool) -> dict[str, Any]:
        if self.spec.dialect == "real":
            return user if with_updated else {k: v for k, v in user.items() if k != "updated_at"}
        return {_SEED_NAMES.get(k, k): v for k, v in user.items() if with_updated or k != "updated_at"}

    def wrap(self, kind: str, records: list[dict[str, Any]]) -> Any:
        dialect = self.spec.dialect
        if dialect == "seed":
            return records
        if dialect == "seed_wrapped":
            return {_WRAPPERS[kind][1]: records}
        if kind == "user":  # the definitions come first, as measured on a live portal
            typo = self.spec.definitions_key_typo
            key = "customDataFieldDefintions" if typo else "customDataFieldDefinitions"
            return {key: self.data.custom_field_definitions, "user": records}
        return {_WRAPPERS[kind][0]: records}


def build_app(portals: list[SimulatedPortal], window_seconds: float = 60.0) -> web.Application:
    """One application for all portals; each portal's per-minute window lasts `window_seconds`."""
    by_name: dict[str, SimulatedPortal] = {}
    for portal in portals:
        if portal.name in by_name:
            raise ValueError(f"two simulated portals are named {portal.name!r}")
        portal.set_window(window_seconds)
        by_name[portal.name] = portal

    async def dispatch(request: web.Request) -> web.StreamResponse:
        portal = by_name.get(request.match_info["portal"])
        if portal is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return await portal.handle(request)

    app = web.Application()
    app.router.add_route("*", "/{portal}/api/v1/{tail:.*}", dispatch)
    app[PORTALS] = by_name
    return app
