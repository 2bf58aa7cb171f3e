"""The fake Workspace's Admin SDK Reports API: `activities.list`, i.e.
`GET /admin/reports/v1/activity/users/{userKey}/applications/{applicationName}`.

As the Reports discovery document and change-feeds.md §3a describe it: activities carry
`id.{time, uniqueQualifier, applicationName, customerId}` and a list of events whose parameters are
`{name, value}`; `startTime`/`endTime` are RFC 3339, `startTime` must not be in Google's future, at most
180 days are kept; pages follow `nextPageToken`; a page with nothing omits `items`. Every answer carries a
`Date` from the fake's clock. Events surface `lag` seconds after they happened ("near real time"), so a
poller that does not re-read an overlap misses them. Admin events: SUSPEND_USER, UNSUSPEND_USER,
DELETE_USER, UNDELETE_USER (`USER_EMAIL`); Google's own suspensions are `login` events
`account_disabled_*` (`affected_email_address`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formatdate
from typing import Any

from crawler.idp.fakes.directory import iso_ms, parse_instant

APPLICATIONS = frozenset({"admin", "login", "drive", "token", "groups", "saml", "user_accounts"})
RETENTION = timedelta(days=180)
CUSTOMER_ID = "C03az79cb"
MAX_RESULTS = 1000


def admin_activity(name: str, email: str, at: float, admin: str = "admin@acme.com") -> dict[str, Any]:
    """An `admin` application activity: an admin changed a user's account."""
    actor = {"callerType": "USER", "email": admin, "profileId": "103498712645"}
    parameters = [{"name": "USER_EMAIL", "value": email}]
    return _activity("admin", at, actor, {"type": "USER_SETTINGS", "name": name, "parameters": parameters})


def login_activity(name: str, email: str, at: float) -> dict[str, Any]:
    """A `login` application activity: Google itself disabled an account (`account_disabled_*`)."""
    parameters = [{"name": "affected_email_address", "value": email}]
    event = {"type": "account_warning", "name": name, "parameters": parameters}
    return _activity("login", at, {"email": email, "profileId": "108765432101"}, event)


def _activity(app: str, at: float, actor: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "admin#reports#activity",
        "id": {
            "time": iso_ms(at),
            "uniqueQualifier": str(secrets.randbits(62) - 2**61),  # an int64, as a string
            "applicationName": app,
            "customerId": CUSTOMER_ID,
        },
        "etag": f'"{secrets.token_urlsafe(20)}"',
        "actor": actor,
        "ipAddress": "192.0.2.10",
        "events": [event],
    }


class ReportsError(Exception):
    """What the Reports API answers a request it refuses (status, reason, message)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass
class ActivityLog:
    clock: Callable[[], float] = time.time
    lag: float = 0.0  # seconds between an event and its being reported
    page_size: int = MAX_RESULTS  # served per page at most, whatever maxResults asks
    activities: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (visible at, activity)
    _pages: dict[str, tuple[list[dict[str, Any]], int]] = field(default_factory=dict)

    def append(self, activity: dict[str, Any], *, lag: float | None = None) -> dict[str, Any]:
        self.activities.append((self.clock() + (self.lag if lag is None else lag), activity))
        return activity

    def date_header(self) -> dict[str, str]:
        return {"Date": formatdate(self.clock(), usegmt=True)}

    def query(self, app: str, user_key: str, params: Any) -> dict[str, Any]:
        """One page of `activities.list`; `ReportsError` for what Google refuses."""
        if app not in APPLICATIONS:
            raise ReportsError(400, "invalid", f"Invalid value '{app}'. Values must match the pattern")
        now = self.clock()
        if params.get("pageToken"):
            if params["pageToken"] not in self._pages:
                raise ReportsError(400, "invalid", "Invalid pageToken")
            matches, offset = self._pages[params["pageToken"]]
        else:
            matches, offset = self._select(app, user_key, params, now), 0
        try:
            size = int(params.get("maxResults", MAX_RESULTS))
        except ValueError:
            raise ReportsError(400, "invalid", "Invalid value for maxResults") from None
        if not 1 <= size <= MAX_RESULTS:
            raise ReportsError(400, "invalid", f"Invalid value '{size}'. Values must be within [1, 1000]")
        size = min(size, self.page_size)
        page = matches[offset : offset + size]
        body: dict[str, Any] = {"kind": "admin#reports#activities", "etag": '"fake-etag"'}
        if page:
            body["items"] = page
        if offset + size < len(matches):
            token = secrets.token_urlsafe(24)
            self._pages[token] = (matches, offset + size)
            body["nextPageToken"] = token
        return body

    def _select(self, app: str, user_key: str, params: Any, now: float) -> list[dict[str, Any]]:
        start, end = parse_instant(params.get("startTime")), parse_instant(params.get("endTime"))
        for name, value in (("startTime", start), ("endTime", end)):
            if params.get(name) is not None and value is None:
                raise ReportsError(400, "invalid", f"Invalid value for {name}")
        if start is not None and start > now:
            raise ReportsError(400, "invalid", "Start time must be less than the current time")
        if start is not None and end is not None and start >= end:
            raise ReportsError(400, "invalid", "Start time must be less than end time")
        oldest = max(start or 0.0, now - RETENTION.total_seconds())
        latest = min(end if end is not None else now, now)
        event_name = params.get("eventName")
        found = []
        for visible_at, activity in self.activities:
            at = parse_instant(activity["id"]["time"]) or 0.0
            events = activity.get("events") or []
            if (
                activity["id"]["applicationName"] == app
                and visible_at <= now
                and oldest <= at <= latest
                and (user_key == "all" or user_key.casefold() in str(activity).casefold())
                and (event_name is None or any(e.get("name") == event_name for e in events))
            ):
                found.append(activity)
        return sorted(found, key=lambda a: a["id"]["time"], reverse=True)  # newest first
