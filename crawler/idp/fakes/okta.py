"""A fake Okta org: `GET /api/v1/users` and the System Log, as Okta's management API spec describes them.

Faithful where crawlers go wrong: the plain list omits DEPROVISIONED users (only `search`/`filter` return
them), pages are `Link: rel="next"` cursors (`after` = last id, `limit` max 200), every response carries
`X-Rate-Limit-*` for a window shared by all clients — `/api/v1/logs` has its own, lower bucket —,
over-limit answers 429 `E0000047`, and a bad token answers 401 `E0000011`. `deactivate`, `suspend`,
`unsuspend`, `activate` and `delete` change a user as the lifecycle API does and log the event
(`okta_logs.py`), persisted after a configurable delay. Responses are checked against the published
OpenAPI specs in the tests.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web
from yarl import URL

from crawler.idp.fakes import Exchange, Faults, Handler, recording_middleware
from crawler.idp.fakes.directory import FakePerson, PersonLike, directory_from_people, iso, iso_ms
from crawler.idp.fakes.okta_logs import LogQueryError, SystemLog, lifecycle_event

OKTA_STATUS_OF = {
    "active": "ACTIVE",
    "disabled": "DEPROVISIONED",  # Okta's "Deactivate" is how admins disable a leaver
    "deprovisioned": "DEPROVISIONED",
    "suspended": "SUSPENDED",
    "archived": "SUSPENDED",
    "locked_out": "LOCKED_OUT",
    "password_expired": "PASSWORD_EXPIRED",
    "recovery": "RECOVERY",
    "not_activated": "STAGED",
    "provisioned": "PROVISIONED",
}
_TERM = re.compile(r'^\s*([A-Za-z_.]+)\s+eq\s+"([^"]*)"\s*$', re.IGNORECASE)
_FIELDS = {"status", "id", "profile.login", "profile.email", "profile.firstName", "profile.lastName"}


def okta_user(person: FakePerson) -> dict[str, Any]:
    """An Okta user object (without `_links`, which the server adds for its own origin)."""
    status = OKTA_STATUS_OF[person.status]
    never_active = status in ("STAGED", "PROVISIONED")
    created = iso(person.status_changed_at - timedelta(days=365))
    record: dict[str, Any] = {
        "id": "00u" + person.stable_hex("okta", 17),
        "status": status,
        "created": created,
        "activated": None if never_active else created,
        "statusChanged": iso(person.status_changed_at),
        "lastLogin": iso(person.last_login),
        "lastUpdated": iso(person.status_changed_at),
        "passwordChanged": None if never_active else created,
        "type": {"id": "oty1162QAr8hJjTaq0g4"},
        "profile": {
            "firstName": person.given_name.title(),
            "lastName": person.family_name.title(),
            "mobilePhone": None,
            "secondEmail": person.second_email,
            "login": person.login or person.email,
            "email": person.email,
        },
        "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
    }
    return person.render("okta", record)


def okta_users_from_people(people: Iterable[PersonLike]) -> list[dict[str, Any]]:
    """The simulator's population as Okta users (people `absent` from the IdP are left out)."""
    return [okta_user(person) for person in directory_from_people(people)]


def okta_error(
    status: int, code: str, summary: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Okta's error body shape (the spec's `Error` schema)."""
    body = {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae" + secrets.token_urlsafe(16),
        "errorCauses": [],
    }
    return web.json_response(body, status=status, headers=headers, content_type="application/json")


class OktaFake:
    """State and knobs of one fake org. `app()` builds the aiohttp application."""

    def __init__(
        self,
        users: Iterable[Mapping[str, Any]] | Iterable[FakePerson],
        *,
        token: str = "okta-test-token",
        schemes: tuple[str, ...] = ("SSWS", "Bearer"),
        max_limit: int = 200,
        rate_limit: int = 600,
        rate_window: float = 60.0,
        faults: Faults | None = None,
        next_link_first: bool = False,
        logs_rate_limit: int = 60,  # a token's default half of a Workforce org's 120/min for /api/v1/logs
        persistence_delay: float = 0.0,  # seconds between an event's `published` and its being queryable
        clock: Callable[[], float] = time.time,  # the System Log's clock (tests move it by hand)
    ) -> None:
        self.users = sorted(
            (okta_user(u) if isinstance(u, FakePerson) else dict(u) for u in users), key=lambda u: u["id"]
        )
        self.token = token
        self.schemes = schemes
        self.max_limit = max_limit
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.faults = faults or Faults()
        self.next_link_first = next_link_first  # Okta sends rel="self" first; RFC 8288 allows any order
        self.exchanges: list[Exchange] = []
        self.logs_rate_limit = logs_rate_limit
        self.log = SystemLog(clock=clock, persistence_delay=persistence_delay)
        self._windows: dict[str, tuple[float, int]] = {}  # bucket -> (window start, requests used)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[recording_middleware(self.exchanges), self._rate_limit])
        app.router.add_get("/api/v1/users", self._list_users)
        app.router.add_get("/api/v1/logs", self._list_logs)
        return app

    # --- cross-cutting: rate limits and auth ----------------------------------------------------
    @web.middleware
    async def _rate_limit(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every response carries its bucket's `X-Rate-Limit-*`; over the limit → 429 E0000047.

        `/api/v1/logs` is rated in a bucket of its own, as Okta rates it, apart from `/api/v1/users`.
        """
        now = time.time()
        bucket = "logs" if request.path.startswith("/api/v1/logs") else "users"
        limit = self.logs_rate_limit if bucket == "logs" else self.rate_limit
        window_start = math.floor(now / self.rate_window) * self.rate_window
        started, used = self._windows.get(bucket, (0.0, 0))
        used = used + 1 if started == window_start else 1
        self._windows[bucket] = (window_start, used)
        reset = str(math.ceil(window_start + self.rate_window))
        if used > limit or self.faults.take_throttle():
            response: web.StreamResponse = okta_error(
                429, "E0000047", "API call exceeded rate limit due to too many requests."
            )
            remaining = 0
        else:
            response = await handler(request)
            remaining = max(0, limit - used)
        response.headers["X-Rate-Limit-Limit"] = str(limit)
        response.headers["X-Rate-Limit-Remaining"] = str(remaining)
        response.headers["X-Rate-Limit-Reset"] = reset
        return response

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme in self.schemes and secrets.compare_digest(token.encode(), self.token.encode())

    # --- the listing ---------------------------------------------------------------------------
    async def _list_users(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return okta_error(401, "E0000011", "Invalid token provided")
        query = request.query
        try:
            limit = int(query.get("limit", "200"))
        except ValueError:
            return okta_error(400, "E0000001", "Api validation failed: limit")
        limit = min(max(limit, 1), self.max_limit)
        if "search" in query:
            matches = self._select(query["search"], case_sensitive=False)
        elif "filter" in query:
            matches = self._select(query["filter"], case_sensitive=True)
        else:
            matches = [u for u in self.users if u.get("status") != "DEPROVISIONED"]
        if matches is None:
            kind = "search" if "search" in query else "filter"
            return okta_error(400, "E0000031", f"Invalid {kind} criteria.")
        start = 0
        if "after" in query:
            start = next((i for i, u in enumerate(matches) if u["id"] > query["after"]), len(matches))
        page_number = start // limit + 1
        if self.faults.page_fails(page_number):
            return okta_error(self.faults.fail_status, "E0000009", "Internal Server Error")
        page = matches[start : start + limit]
        origin = request.url.origin()
        body = [{**u, "_links": {"self": {"href": f"{origin}/api/v1/users/{u['id']}"}}} for u in page]
        links = [f'<{request.url}>; rel="self"']
        if start + limit < len(matches):
            params = {k: v for k, v in query.items() if k in ("search", "filter")}
            params.update({"after": page[-1]["id"], "limit": str(limit)})
            links.append(f'<{URL(f"{origin}/api/v1/users").with_query(params)}>; rel="next"')
        response = web.json_response(body, content_type="application/json")
        for link in reversed(links) if self.next_link_first else links:
            response.headers.add("Link", link)  # one header per link, as Okta sends them
        return response

    # --- the System Log ------------------------------------------------------------------------
    async def _list_logs(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return okta_error(401, "E0000011", "Invalid token provided")
        if self.faults.page_fails(1):
            return okta_error(self.faults.fail_status, "E0000009", "Internal Server Error")
        try:
            return await self.log.handle(request)
        except LogQueryError as exc:
            return okta_error(exc.status, exc.code, exc.summary)

    # --- the lifecycle operations, as an admin's API calls: the user changes, the event is logged ---
    def deactivate(self, who: str, *, delay: float | None = None) -> dict[str, Any]:
        return self._transition(who, "DEPROVISIONED", "user.lifecycle.deactivate", delay)

    def suspend(self, who: str, *, delay: float | None = None) -> dict[str, Any]:
        return self._transition(who, "SUSPENDED", "user.lifecycle.suspend", delay, only_from=("ACTIVE",))

    def unsuspend(self, who: str, *, delay: float | None = None) -> dict[str, Any]:
        return self._transition(who, "ACTIVE", "user.lifecycle.unsuspend", delay, only_from=("SUSPENDED",))

    def activate(self, who: str, *, delay: float | None = None) -> dict[str, Any]:
        """`activate` is what brings a DEPROVISIONED (or STAGED) user back; `reactivate` is not."""
        return self._transition(
            who, "ACTIVE", "user.lifecycle.activate", delay, only_from=("STAGED", "DEPROVISIONED")
        )

    def delete(self, who: str, *, delay: float | None = None) -> list[dict[str, Any]]:
        """`DELETE /api/v1/users/{id}`: a user not yet deactivated is only deactivated (a second call
        deletes); deletion logs `delete.initiated` then `delete.completed`."""
        user = self.user(who)
        if user["status"] != "DEPROVISIONED":
            return [self.deactivate(who, delay=delay)]
        self.users.remove(user)
        now = self.log.clock()
        return [
            self.log.append(lifecycle_event(kind, user, published=now), delay=delay)
            for kind in ("user.lifecycle.delete.initiated", "user.lifecycle.delete.completed")
        ]

    def user(self, who: str) -> dict[str, Any]:
        """A user by id, login or email (case-insensitive)."""
        for user in self.users:
            profile = user.get("profile") or {}
            keys = {
                str(user.get("id")),
                str(profile.get("login")).casefold(),
                str(profile.get("email")).casefold(),
            }
            if who in keys or who.casefold() in keys:
                return user
        raise KeyError(f"no Okta user {who!r}")

    def _transition(
        self, who: str, status: str, event_type: str, delay: float | None, only_from: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        user = self.user(who)
        if only_from and user["status"] not in only_from:
            raise ValueError(f"{event_type} applies to {', '.join(only_from)} users, not {user['status']}")
        now = self.log.clock()
        user.update(status=status, statusChanged=iso_ms(now), lastUpdated=iso_ms(now))
        return self.log.append(lifecycle_event(event_type, user, published=now), delay=delay)

    def _select(self, expression: str, *, case_sensitive: bool) -> list[dict[str, Any]] | None:
        """A small subset of Okta's expressions: `field eq "value"` joined by `or`; None if unsupported."""
        terms = []
        for part in re.split(r"\s+or\s+", expression.strip(), flags=re.IGNORECASE):
            match = _TERM.match(part)
            if not match or match.group(1) not in _FIELDS:
                return None
            terms.append((match.group(1), match.group(2)))

        def value_of(user: Mapping[str, Any], path: str) -> str:
            node: Any = user
            for part in path.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            return "" if node is None else str(node)

        def same(a: str, b: str) -> bool:
            return a == b if case_sensitive else a.casefold() == b.casefold()

        return [u for u in self.users if any(same(value_of(u, f), v) for f, v in terms)]


__all__ = ["OKTA_STATUS_OF", "OktaFake", "SystemLog", "okta_error", "okta_user", "okta_users_from_people"]
