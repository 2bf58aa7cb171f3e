"""The shapes a change feed hands the watcher, whatever the vendor.

Every feed yields pages of `StatusChange`s (IdPs) or `AuditEvent`s (LearnUpon's audit trail), each page
with the cursor that resumes *after* it. The watcher processes a page completely, records it, and only then
saves the page's cursor: a crash in between replays the page, which the items' `key`s de-duplicate. The
reverse order would lose events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Generic, Protocol, TypeVar

from crawler.vocabulary import IdentityStatus

Item = TypeVar("Item", covariant=True)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One identity's status as an IdP's feed reports it: an assertion of state, never a toggle.

    `addresses` are the ones the feed itself names (Okta's `target.alternateId`, Graph's `mail`,
    `userPrincipalName` and `proxyAddresses`, Google's `USER_EMAIL`); they may be empty (a Graph `@removed`
    entry carries only the id), and the watcher then takes the identity's addresses from the snapshot.
    `observed_at` is the vendor's own time of the change (Okta `published`, Google `id.time`), None where
    the feed has none (Graph delta reports state, not events).
    """

    source: str  # the IdP's name in the config
    idp_id: str  # the vendor's immutable id (Okta `target.id`, Graph `id`, Google's profile id or email)
    addresses: tuple[str, ...]
    status: IdentityStatus
    raw: str  # the vendor's word: an event type, "accountEnabled=false", "@removed: deleted"
    observed_at: datetime | None
    key: str  # de-duplication key (Okta `uuid`; Google's `id` fields + event index; Graph: id + state)


class AuditAction(IntEnum):
    """LearnUpon audit-trail action ids (learnupon-api.md, "Audit trail and webhooks")."""

    USER_DELETED = 3
    LOGIN_DISABLED = 4
    LOGIN_ENABLED = 5
    GROUP_DELETED = 11
    REMOVED_FROM_GROUP = 12


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One LearnUpon audit-trail record. It has no id of its own: `key` hashes all its attributes."""

    portal: str
    action: int  # an `AuditAction` value, or another id LearnUpon records (kept, not interpreted)
    impacted_user_email: str | None
    impacted_data: str | None
    initiated_by_email: str | None
    at: datetime
    key: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record a feed could not read as a change (no `target`, no `outcome`, no `accountEnabled`…).

    Never read as the harmless state: the watcher quarantines it with `reason`, and `addresses` (what the
    record names, possibly nothing) say which person it may concern. `record` is the vendor's raw record.
    """

    reason: str
    record: Any
    addresses: tuple[str, ...] = ()
    label: str | None = None  # a short identifier for the report (an event uuid, a user id)


@dataclass(frozen=True, slots=True)
class FeedPage(Generic[Item]):
    """What one request (or one round) of a feed brought, and the cursor that resumes after it.

    `baseline` marks a page that describes the directory's state rather than changes — a Graph delta's
    first round or a resync after an expired token, an Okta start point — so it seeds state and raises no
    alert by itself. `caught_up` is True when the feed has nothing more to give until the next poll.
    `skipped` are the records of the page the feed could not read (see `Skipped`).
    """

    items: tuple[Item, ...]
    cursor: str
    baseline: bool = False
    caught_up: bool = False
    skipped: tuple[Skipped, ...] = ()


class ChangeFeed(Protocol[Item]):
    """One source's feed. `pages(None)` starts from "now" (or the feed's baseline); `pages(cursor)` resumes.

    A feed that cannot resume from the cursor it was given (an expired Graph token; an Okta `next` link
    rejected when its fallback time is past the log's retention) says so by yielding a `baseline` page from
    a fresh start, never by silently skipping the gap. A gap a feed can bridge (an Okta restart from its
    last `published` minus an overlap) is not a baseline: its events are changes, de-duplicated by key.
    An empty cursor is the cursor of a first round that has not finished yet: it means "start again".
    """

    source: str

    def pages(self, cursor: str | None) -> AsyncIterator[FeedPage[Item]]: ...
