"""LearnUpon's audit trail as a change feed: `GET /audit-trails?date_range=ISO,ISO`, re-read with an overlap.

It is not an IdP feed: it says who deleted (3), disabled (4) or re-enabled (5) an account, or removed it
from a group (12) — so the watcher can alert when an account it disabled is enabled again. Much of the
endpoint is undocumented, so the client is defensive: any wrapper key or a bare array, `action` filtered
here whatever the server did with it, `LU-Has-Next-Page` when sent and an empty page otherwise. Records
have no id: each is keyed by a hash of all its attributes. The API serves 30 days, so a window never
reaches further back; each poll re-reads the last 24 hours (late records, skewed clocks) and the keys
absorb the repeats. The cursor is the end of the window read.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from crawler.errors import SourceError
from crawler.feeds.events import AuditAction, AuditEvent, FeedPage, Skipped
from crawler.http import SourceHttp
from crawler.idp.status import is_email, parse_time
from crawler.learnupon.dialect import PageReader
from crawler.learnupon.paging import iterate_pages

PURPOSE = "audit_trail"
WINDOW_LIMIT = timedelta(days=30)  # what the API serves
SAFETY = timedelta(hours=1)  # stay this far inside the 30 days: the portal's clock is not ours
OVERLAP = timedelta(hours=24)  # each poll re-reads this much before the last window's end
FIRST_WINDOW = timedelta(hours=24)  # a first poll reads this far back, as a baseline
AUDIT_KEYS = ("audit_trails", "audit_trail", "audit-trails", "auditTrails", "audits")
AUDIT = PageReader(AUDIT_KEYS, any_list=True)
MAX_TEXT = 500  # a field longer than this is hostile or broken: cut, never stored whole


def record_key(raw: Mapping[str, Any]) -> str:
    """A hash of every attribute: records have no id, and two records differ in at least one of them."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _key_of(raw: Any) -> str | None:
    return record_key(raw) if isinstance(raw, Mapping) else None


def _text(value: Any) -> str | None:
    return value.strip()[:MAX_TEXT] if isinstance(value, str) and value.strip() else None


def parse_record(raw: Any, portal: str) -> AuditEvent | Skipped:
    """One audit record, or why it cannot be read (an unreadable record is never a harmless one)."""
    if not isinstance(raw, Mapping):
        return Skipped("audit record is not a JSON object", raw)
    email = _text(raw.get("impacted_user_email"))
    addresses = (email,) if email is not None and is_email(email) else ()
    action = raw.get("action")
    if isinstance(action, str) and action.strip().isdigit():
        action = int(action)
    if not isinstance(action, int) or isinstance(action, bool):
        return Skipped("audit record without a numeric action", raw, addresses)
    at = parse_time(raw.get("date_and_time_utc"))
    if at is None:
        return Skipped(f"audit action {action} without a readable date_and_time_utc", raw, addresses)
    return AuditEvent(
        portal=portal,
        action=action,
        impacted_user_email=email,
        impacted_data=_text(raw.get("impacted_data")),
        initiated_by_email=_text(raw.get("initiated_by_user_email")),
        at=at,
        key=record_key(raw),
    )


def iso(moment: datetime) -> str:
    """The API's date_range format: `2024-04-10T23:00:00.000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class AuditTrailFeed:
    """One portal's audit trail as `ChangeFeed[AuditEvent]`, over the portal's own `SourceHttp`."""

    def __init__(
        self,
        portal: str,
        http: SourceHttp,
        base_url: str,
        *,
        actions: Iterable[int] = tuple(AuditAction),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = portal
        self.http = http
        self.url = f"{base_url.rstrip('/')}/api/v1/audit-trails"
        self.actions = frozenset(actions)
        self.clock = clock

    async def pages(self, cursor: str | None) -> AsyncIterator[FeedPage[AuditEvent]]:
        """One window, `[last end − 24 h, now]` (never more than 30 days back), page by page.

        Every page carries the window's end as its cursor: the window is re-read from its start if a
        crash comes before the last page is processed, and the keys absorb that.
        """
        end = datetime.fromtimestamp(self.clock(), UTC)
        start, baseline = self._start(cursor, end)
        params = {"date_range": f"{iso(start)},{iso(end)}"}
        async for page in iterate_pages(self.http, self.url, params, AUDIT, purpose=PURPOSE, key=_key_of):
            events: list[AuditEvent] = []
            skipped: list[Skipped] = []
            for raw in page.records:
                parsed = parse_record(raw, self.source)
                if isinstance(parsed, Skipped):
                    skipped.append(parsed)
                elif parsed.action in self.actions:
                    events.append(parsed)
            yield FeedPage(tuple(events), iso(end), baseline, page.last, tuple(skipped))

    def _start(self, cursor: str | None, end: datetime) -> tuple[datetime, bool]:
        """The window's start, and whether it is a baseline: a first poll, or a gap past the 30 days."""
        oldest = end - WINDOW_LIMIT + SAFETY
        if not cursor:
            return end - FIRST_WINDOW, True
        last_end = parse_time(cursor)
        if last_end is None:
            raise SourceError(f"{self.source}: the stored audit-trail cursor cannot be read")
        start = min(last_end, end) - OVERLAP
        if start < oldest:
            return oldest, True  # records between the last window and 30 days ago are gone
        return start, False
