"""Google Workspace Admin SDK Reports as a change feed: `activities.list` of the `admin` and `login` apps.

There is no standing cursor: each poll is a fresh query from `startTime = last end − 30 min` (Google
reports admin events "near real time" and late ones do occur), de-duplicated by each event's key — the
activity's `id` fields plus the event's index and name. No `endTime` is sent; the window's end is the
`Date` of Google's first answer, never our clock (Google refuses a `startTime` in its own future, and the
next poll starts from this end). The end is handed out only with the poll's last page, so a crash replays
the whole poll. Admin events SUSPEND_USER, DELETE_USER and UNSUSPEND_USER name the user in `USER_EMAIL`;
Google's own suspensions are `login` events `account_disabled_*` (`affected_email_address`). An
UNDELETE_USER is not read as "active": Google restores an account suspended when it was suspended at
deletion, so it is reported as a record whose status cannot be read. Quota: 403 quota reasons and 429
back off through the shared Google session; 503 is retried with back-off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from crawler.config import CrawlConfig, GoogleConfig
from crawler.errors import SourceError
from crawler.feeds.events import FeedPage, Skipped, StatusChange
from crawler.http import SourceHttp
from crawler.idp.auth_hint import auth_hint
from crawler.idp.google import LastError, delegation_hint, google_http
from crawler.idp.status import address_key, format_time, is_email, parse_time
from crawler.paging_guard import PageGuard
from crawler.source import apply_limits
from crawler.vocabulary import IdentityStatus

log = logging.getLogger("idgraph.feeds.google")

PURPOSE = "reports_activities"
REPORTS_SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
APPLICATIONS = ("admin", "login")
OVERLAP = timedelta(minutes=30)  # each poll re-reads this much before the last end
FIRST_WINDOW = timedelta(minutes=30)  # a first poll reads this far back, as a baseline
RETENTION = timedelta(days=180)  # Google keeps no older activity: a cursor past it is a gap
MAX_RESULTS = 1000
ADMIN_EVENTS: Mapping[str, IdentityStatus] = {
    "SUSPEND_USER": IdentityStatus.DISABLED,
    "DELETE_USER": IdentityStatus.DELETED,
    "UNSUSPEND_USER": IdentityStatus.ACTIVE,
}
UNDELETE = "UNDELETE_USER"
GOOGLE_DISABLED = "account_disabled_"  # `login` events: Google suspended the account itself
PARAMETER = {"admin": "USER_EMAIL", "login": "affected_email_address"}


def _parameter(event: Mapping[str, Any], name: str) -> str | None:
    for parameter in event.get("parameters") or ():
        if isinstance(parameter, Mapping) and parameter.get("name") == name:
            value = parameter.get("value")
            return value.strip() if isinstance(value, str) else None
    return None


def parse_activity(raw: Any, source: str, app: str) -> tuple[list[StatusChange], list[Skipped]]:
    """The status changes one activity of application `app` asserts (an activity may hold several
    events), and what cannot be read of it. Events of no interest (sign-ins, password changes) are
    neither."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("events"), list):
        return [], [Skipped(f"{app} activity is not an object with an events list", raw)]
    fields = activity_id(raw)
    changes: list[StatusChange] = []
    skipped: list[Skipped] = []
    for index, event in enumerate(raw["events"]):
        name = event.get("name") if isinstance(event, Mapping) else None
        if not isinstance(name, str) or not _of_interest(app, name):
            continue
        email = _parameter(event, PARAMETER[app])
        addresses = (email,) if email is not None and is_email(email) else ()
        if fields is None:
            skipped.append(
                Skipped(f"{name}: activity id incomplete, so it cannot be de-duplicated", raw, addresses)
            )
            continue
        if email is None or not addresses:
            skipped.append(Skipped(f"{name} without {PARAMETER[app]}: whose account is unknown", raw))
            continue
        label = f"{app} event at {fields[2]}"
        if name == UNDELETE:
            reason = f"{UNDELETE}: a restored account may come back suspended; its status is unknown"
            skipped.append(Skipped(reason, raw, addresses, label))
            continue
        status = ADMIN_EVENTS.get(name, IdentityStatus.DISABLED)  # login: account_disabled_*
        key = "|".join([*fields, str(index), name])
        changes.append(
            StatusChange(source, address_key(email), addresses, status, name, parse_time(fields[2]), key)
        )
    return changes, skipped


def activity_id(raw: Mapping[str, Any]) -> tuple[str, ...] | None:
    """`id.{applicationName, customerId, time, uniqueQualifier}`: what tells activities apart."""
    ident = raw.get("id")
    if not isinstance(ident, Mapping):
        return None
    fields = [ident.get(k) for k in ("applicationName", "customerId", "time", "uniqueQualifier")]
    return tuple(str(f) for f in fields) if all(isinstance(f, str) and f for f in fields) else None


def _of_interest(app: str, name: str) -> bool:
    if app == "admin":
        return name in ADMIN_EVENTS or name == UNDELETE
    return app == "login" and name.startswith(GOOGLE_DISABLED)


class GoogleReportsFeed:
    """The admin and login activity of one Workspace customer as `ChangeFeed[StatusChange]`."""

    def __init__(
        self,
        cfg: GoogleConfig,
        http: SourceHttp,
        last_error: LastError | None = None,
        *,
        applications: tuple[str, ...] = APPLICATIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = cfg.name
        self.cfg = cfg
        self.http = http
        self.last_error = last_error or LastError()
        self.applications = applications
        self.clock = clock
        self.base = f"{cfg.base_url}/admin/reports/v1/activity/users/all/applications"

    async def pages(self, cursor: str | None) -> AsyncIterator[FeedPage[StatusChange]]:
        with auth_hint(lambda: delegation_hint(self.cfg, self.last_error, REPORTS_SCOPE)):
            async for page in self._pages(cursor):
                yield page

    async def _pages(self, cursor: str | None) -> AsyncIterator[FeedPage[StatusChange]]:
        previous = parse_time(cursor) if cursor else None
        if cursor and previous is None:
            raise SourceError(f"{self.source}: the stored Reports cursor cannot be read")
        local_now = datetime.fromtimestamp(self.clock(), UTC)
        if previous is None or previous < local_now - RETENTION:
            # The first start point is the one time our clock is used; 30 minutes absorb its skew.
            start, baseline = local_now - FIRST_WINDOW, True
        else:
            start, baseline = previous - OVERLAP, False
        end: datetime | None = None  # Google's `Date` of the poll's first answer
        latest = previous  # without a `Date`: the newest event seen, or the last end
        for position, app in enumerate(self.applications):
            guard = PageGuard(self.source, f"{PURPOSE}/{app}", self.http.limits.pages)
            seen: set[tuple[str, ...]] = set()
            token: str | None = None
            while True:
                params = {"startTime": format_time(start), "maxResults": str(MAX_RESULTS)}
                if token:
                    params["pageToken"] = token
                response = await self.http.get_json(f"{self.base}/{app}", params, purpose=PURPOSE)
                end = end or _server_time(response.headers)
                body = response.body
                activities = body.get("items", []) if isinstance(body, Mapping) else None
                if not isinstance(activities, list):
                    raise SourceError(f"{self.source}: a {app} activities page has no `items` list")
                items: list[StatusChange] = []
                skipped: list[Skipped] = []
                new = 0
                for raw in activities:
                    changes, unreadable = parse_activity(raw, self.source, app)
                    items += changes
                    skipped += unreadable
                    ident = activity_id(raw) if isinstance(raw, Mapping) else None
                    new += ident is None or ident not in seen
                    seen.add(ident or ())
                    times = [c.observed_at for c in changes if c.observed_at is not None]
                    latest = max([t for t in (latest, *times) if t is not None], default=None)
                next_token = body.get("nextPageToken")
                last = not next_token and position == len(self.applications) - 1
                # The first poll of a server that sends no `Date` and no event ends at our clock.
                resume = format_time(end or latest or local_now) if last else (cursor or "")
                yield FeedPage(tuple(items), resume, baseline, last, tuple(skipped))
                if not next_token:
                    break
                guard.page(new, next_token)
                token = str(next_token)


def _server_time(headers: Mapping[str, str]) -> datetime | None:
    value = next((v for k, v in headers.items() if k.lower() == "date"), None)
    try:
        return parsedate_to_datetime(value).astimezone(UTC) if value else None
    except (TypeError, ValueError, IndexError):
        return None


def open_feed(
    cfg: GoogleConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, GoogleReportsFeed]:
    """The feed on its own Google auth context, with a token for the Reports scope only."""
    http, last_error = google_http(cfg, connector, crawl_config, scope=REPORTS_SCOPE)
    apply_limits(http, crawl_config)
    return http, GoogleReportsFeed(cfg, http, last_error)
