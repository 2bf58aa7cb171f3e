"""The fake Okta org's System Log: `GET /api/v1/logs` with Okta's two request kinds.

A *polling* request (no `until`, `sortOrder=ASCENDING`) filters and orders events by the time they were
persisted, not by `published`, and always answers a `Link: rel="next"` — even for `[]` — whose `after`
cursor is opaque. An event can be persisted some time after it was published (`delay`), so polling pages
can be out of order by `published` and a late event still lands after every cursor handed out before it.
A *bounded* request (`until` given) orders by `published` and ends. `since`/`after` are exclusive and
mutually exclusive; a bad filter field or a `since` more than 180 days back answers 400 E0000053.
Events carry the nulls real ones carry (`outcome.reason`, `detailEntry`, `client.id`, `client.zone: "null"`).
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from yarl import URL

from crawler.idp.fakes.directory import iso_ms, parse_instant

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
RETENTION = timedelta(days=90)  # older events are not returned (the query still succeeds)
MAX_SINCE_AGE = timedelta(days=180)
_LAST = 2**62  # a sequence number past every event: "after all events of this millisecond"

DISPLAY = {
    "user.lifecycle.deactivate": "Deactivate Okta user",
    "user.lifecycle.suspend": "Suspend Okta user",
    "user.lifecycle.unsuspend": "Unsuspend Okta user",
    "user.lifecycle.activate": "Activate Okta user",
    "user.lifecycle.reactivate": "Reactivate Okta user",
    "user.lifecycle.create": "Create Okta user",
    "user.lifecycle.delete.initiated": "Delete Okta user initiated",
    "user.lifecycle.delete.completed": "Delete Okta user completed",
}
# Fields a filter may name (a subset of Okta's); anything else is "field is not valid".
_FILTER_FIELDS = {
    "eventType",
    "uuid",
    "severity",
    "displayMessage",
    "legacyEventType",
    "outcome.result",
    "outcome.reason",
    "actor.id",
    "actor.type",
    "actor.alternateId",
    "actor.displayName",
    "target.id",
    "target.type",
    "target.alternateId",
    "target.displayName",
    "client.ipAddress",
    "transaction.id",
}
_TERM = re.compile(r'^\s*\(?\s*([A-Za-z_][A-Za-z0-9_.]*)\s+(eq|sw|co|ne)\s+"([^"]*)"\s*\)?\s*$')


def lifecycle_event(
    event_type: str,
    user: Mapping[str, Any],
    *,
    published: float,
    actor: Mapping[str, Any] | None = None,
    result: str = "SUCCESS",
) -> dict[str, Any]:
    """A LogEvent as Okta writes one for an admin's API call on `user`, nulls included."""
    profile = user.get("profile") or {}
    name = " ".join(p for p in (profile.get("firstName"), profile.get("lastName")) if p) or None
    admin = actor or {"id": "00uadmin0000000000001", "alternateId": "it-admin@acme.com", "name": "IT Admin"}
    nowhere = {"city": None, "state": None, "country": None, "postalCode": None, "geolocation": None}
    request_id = secrets.token_hex(16)
    return {
        "actor": {
            "id": admin["id"],
            "type": "User",
            "alternateId": admin["alternateId"],
            "displayName": admin["name"],
            "detailEntry": None,
        },
        "client": {
            "userAgent": {"rawUserAgent": "okta-sdk-python/2.9.0", "os": "Unknown", "browser": "UNKNOWN"},
            "zone": "null",  # the string, as real events send it
            "device": "Unknown",
            "id": None,
            "ipAddress": "192.0.2.10",
            "geographicalContext": nowhere,
        },
        "device": None,
        "authenticationContext": {
            "authenticationProvider": None,
            "credentialProvider": None,
            "credentialType": None,
            "issuer": None,
            "interface": None,
            "authenticationStep": 0,
            "rootSessionId": "unknown",
            "externalSessionId": "unknown",
        },
        "displayMessage": DISPLAY.get(event_type, event_type),
        "eventType": event_type,
        "outcome": {"result": result, "reason": None},
        "published": iso_ms(published),
        "securityContext": {"asNumber": None, "asOrg": None, "isp": None, "domain": None, "isProxy": None},
        "severity": "INFO",
        "debugContext": {
            "debugData": {
                "requestId": request_id,
                "requestUri": f"/api/v1/users/{user.get('id')}/lifecycle/{event_type.rsplit('.', 1)[-1]}",
            }
        },
        "legacyEventType": None,
        "transaction": {
            "type": "WEB",
            "id": request_id,
            "detail": {"requestApiTokenId": "00T1a2b3c4d5e6f7g8h9"},
        },
        "uuid": str(uuid.uuid4()),
        "version": "0",
        "request": {
            "ipChain": [{"ip": "192.0.2.10", "geographicalContext": nowhere, "version": "V4", "source": None}]
        },
        "target": [
            {
                "id": user.get("id"),
                "type": "User",
                "alternateId": profile.get("login"),
                "displayName": name,
                "detailEntry": None,
            }
        ],
    }


class LogQueryError(Exception):
    """What Okta answers a query it refuses: status, `errorCode`, `errorSummary`."""

    def __init__(self, status: int, code: str, summary: str) -> None:
        super().__init__(summary)
        self.status, self.code, self.summary = status, code, summary


@dataclass(frozen=True)
class _Stored:
    persisted_ms: int  # when the log committed it: polling order
    seq: int
    published_ms: int  # the event's own `published`: bounded order
    event: dict[str, Any]

    @property
    def position(self) -> tuple[int, int]:
        return (self.persisted_ms, self.seq)


class SystemLog:
    """The org's log: events with their persistence time, and the `/api/v1/logs` handler over them."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        persistence_delay: float = 0.0,
        max_limit: int = MAX_LIMIT,
    ) -> None:
        self.clock = clock
        self.persistence_delay = persistence_delay
        self.max_limit = max_limit
        self.events: list[_Stored] = []
        self.reject_after = False  # every `after` cursor answers 400, as an expired one might
        self.foreign_next: str | None = None  # an origin the next link points to instead of ours
        self._seq = 0

    def append(self, event: dict[str, Any], *, delay: float | None = None) -> dict[str, Any]:
        """Log an event; it becomes visible to queries `delay` seconds from now (default: the log's)."""
        now = self.clock()
        wait = self.persistence_delay if delay is None else delay
        self._seq += 1
        published = parse_instant(event.get("published")) if isinstance(event.get("published"), str) else None
        self.events.append(
            _Stored(int((now + wait) * 1000), self._seq, int((published or now) * 1000), event)
        )
        return event

    async def handle(self, request: web.Request) -> web.Response:
        """The events of one query; a `LogQueryError` for what Okta refuses (the caller renders it)."""
        query = request.query
        now = self.clock()
        try:
            limit = int(query.get("limit", str(DEFAULT_LIMIT)))
        except ValueError:
            raise LogQueryError(400, "E0000001", "Api validation failed: limit") from None
        limit = min(max(limit, 0), self.max_limit)
        order = query.get("sortOrder", "ASCENDING")
        if order not in ("ASCENDING", "DESCENDING"):
            raise LogQueryError(400, "E0000001", "Api validation failed: sortOrder")
        if "since" in query and "after" in query:
            raise LogQueryError(
                400, "E0000001", "Api validation failed: since and after cannot both be given"
            )
        since, until = parse_instant(query.get("since")), parse_instant(query.get("until"))
        for name, value in (("since", since), ("until", until)):
            if name in query and value is None:
                raise LogQueryError(400, "E0000001", f"Api validation failed: {name}")
        if since is not None and since < now - MAX_SINCE_AGE.total_seconds():
            raise LogQueryError(
                400, "E0000053", "The since parameter is over 180 days prior to the current day"
            )
        matches = _compile(query.get("filter"))
        if matches is None:
            raise LogQueryError(400, "E0000053", "Invalid filter: field is not valid")
        visible = [
            e
            for e in self.events
            if e.persisted_ms <= now * 1000
            and e.published_ms >= (now - RETENTION.total_seconds()) * 1000
            and matches(e.event)
            and _has_keywords(e.event, query.get("q"))
        ]
        if "until" not in query and order == "ASCENDING":
            return self._polling(request, visible, since, limit)
        return self._bounded(request, visible, since, until if until is not None else now, limit, order)

    def _polling(
        self, request: web.Request, visible: list[_Stored], since: float | None, limit: int
    ) -> web.Response:
        query = request.query
        if "after" in query:
            start = _position(query["after"])
            if start is None or self.reject_after:
                raise LogQueryError(400, "E0000001", "Api validation failed: after")
        else:
            first = since if since is not None else self.clock() - 7 * 86400
            start = (int(first * 1000), _LAST)
        ordered = sorted((e for e in visible if e.position > start), key=lambda e: e.position)
        page = ordered[:limit]
        end = page[-1].position if page else start
        params = {k: v for k, v in query.items() if k not in ("since", "after")}
        params["after"] = f"{end[0]}_{end[1]}"
        return self._answer(request, [e.event for e in page], params)

    def _bounded(
        self,
        request: web.Request,
        visible: list[_Stored],
        since: float | None,
        until: float,
        limit: int,
        order: str,
    ) -> web.Response:
        first = since if since is not None else until - 7 * 86400
        window = [e for e in visible if first * 1000 <= e.published_ms < until * 1000]
        window.sort(key=lambda e: (e.published_ms, e.seq), reverse=order == "DESCENDING")
        offset = _offset(request.query.get("after"))
        page = window[offset : offset + limit]
        params = None
        if offset + limit < len(window):
            params = {k: v for k, v in request.query.items() if k != "after"}
            params["after"] = f"b{offset + limit}"
        return self._answer(request, [e.event for e in page], params)

    def _answer(self, request: web.Request, events: list[dict[str, Any]], next_params: Any) -> web.Response:
        response = web.json_response(events, content_type="application/json")
        response.headers.add("Link", f'<{request.url}>; rel="self"')
        if next_params is not None:
            origin = self.foreign_next or str(request.url.origin())
            response.headers.add(
                "Link", f'<{URL(f"{origin}/api/v1/logs").with_query(next_params)}>; rel="next"'
            )
        return response


def _position(token: str) -> tuple[int, int] | None:
    ms, _, seq = token.partition("_")
    if not (ms.isdigit() and seq.isdigit()):
        return None
    return int(ms), int(seq)


def _offset(token: str | None) -> int:
    return int(token[1:]) if token and token.startswith("b") and token[1:].isdigit() else 0


def _value(event: Mapping[str, Any], path: str) -> list[str]:
    """The values at a dotted path; `target` is a list, so `target.id` has one per target."""
    nodes: list[Any] = [event]
    for part in path.split("."):
        step: list[Any] = []
        for node in nodes:
            child = node.get(part) if isinstance(node, Mapping) else None
            step.extend(child if isinstance(child, list) else [child])
        nodes = step
    return [str(n) for n in nodes if n is not None]


def _compile(expression: str | None) -> Callable[[Mapping[str, Any]], bool] | None:
    """A subset of Okta's filter language: `field op "value"` terms joined by `and`/`or` (and binds
    tighter). None when a field is not valid or the syntax is not understood."""
    if expression is None or not expression.strip():
        return lambda _: True
    alternatives = []
    for branch in re.split(r"\s+or\s+", expression.strip()):
        terms = []
        for part in re.split(r"\s+and\s+", branch):
            match = _TERM.match(part)
            if not match or match.group(1) not in _FILTER_FIELDS:
                return None
            terms.append((match.group(1), match.group(2), match.group(3)))
        alternatives.append(terms)

    def test(op: str, values: list[str], wanted: str) -> bool:
        if op == "eq":
            return wanted in values
        if op == "ne":
            return wanted not in values
        if op == "sw":
            return any(v.startswith(wanted) for v in values)
        return any(wanted.casefold() in v.casefold() for v in values)

    return lambda event: any(
        all(test(op, _value(event, field), wanted) for field, op, wanted in terms) for terms in alternatives
    )


def _has_keywords(event: Mapping[str, Any], q: str | None) -> bool:
    if not q:
        return True
    text = " ".join(
        _value(event, "displayMessage")
        + _value(event, "eventType")
        + _value(event, "actor.alternateId")
        + _value(event, "target.alternateId")
        + _value(event, "target.displayName")
    ).casefold()
    return all(word.casefold() in text for word in q.split())


__all__ = ["DISPLAY", "LogQueryError", "SystemLog", "lifecycle_event"]
