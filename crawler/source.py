"""What a source's crawl is handed: its HTTP, its slice of the snapshot, and its coverage.

Sources (LearnUpon portals, IdPs) only fetch and normalise. Through `SourceContext` they commit pages,
quarantine records they cannot read and leave notes; the orchestrator turns that into coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from crawler.config import CrawlConfig
from crawler.coverage import CollectionCoverage
from crawler.http import SourceHttp, SourceLimits, make_session
from crawler.paging_guard import PageLimits
from crawler.store import SnapshotStore

RecordT = TypeVar("RecordT", bound=BaseModel)


@dataclass
class SourceProgress:
    """Live counters the CLI's progress display reads."""

    pages: int = 0
    records: int = 0
    quarantined: int = 0
    drift_events: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class SourceContext:
    name: str
    kind: str
    run_id: int
    store: SnapshotStore
    http: SourceHttp
    done: set[str] = field(default_factory=set)  # collections already committed (resume)
    progress: SourceProgress = field(default_factory=SourceProgress)
    done_at_start: frozenset[str] = frozenset()
    # Per collection, what the crawl read; a source that leaves it None has one collection, complete
    # exactly when its crawl returned (the orchestrator fills that in).
    collections: list[CollectionCoverage] | None = None

    def __post_init__(self) -> None:
        self.done_at_start = frozenset(self.done)

    def commit_page(self, collection: str, records: Iterable[Any], *, done: bool = False) -> int:
        """Store one page atomically; `done=True` marks the collection complete in the same commit."""
        written = self.store.write_page(self.run_id, self.name, collection, records, done=done)
        self.progress.pages += 1
        self.progress.records += written
        if done:
            self.done.add(collection)
        return written

    def mark_done(self, collection: str) -> None:
        self.store.mark_collection_done(self.run_id, self.name, collection)
        self.done.add(collection)

    def quarantine(self, collection: str, reason: str, record: Any, **details: Any) -> None:
        """Keep a record we could not read, with the reason; `details` are `SnapshotStore.quarantine`'s
        `addresses` (the email addresses it carries: evidence the person exists) and `label` (a short
        identifier for the report)."""
        self.store.quarantine(self.run_id, self.name, collection, reason, record, **details)
        self.progress.quarantined += 1

    def note(self, message: str) -> None:
        """Something a reviewer should know about this source's data (kept in coverage)."""
        self.progress.notes.append(message)

    def normalise(
        self,
        collection: str,
        raw_records: Iterable[Any],
        parse: Callable[[Any], RecordT],
        *,
        addresses: Callable[[Any], Iterable[str]] | None = None,
    ) -> list[RecordT]:
        """Parse each raw record; quarantine (with the reason) the ones that do not parse.

        `addresses`, when given, reads the email addresses out of a raw record, so a quarantined identity
        still says which person it is (see `SnapshotStore.quarantined_addresses`).
        """
        out: list[RecordT] = []
        for raw in raw_records:
            try:
                out.append(parse(raw))
            except PARSE_ERRORS as exc:
                self.quarantine(
                    collection,
                    quarantine_reason(exc),
                    raw,
                    addresses=safe_addresses(addresses, raw),
                    label=record_label(raw),
                )
        return out


def apply_limits(http: SourceHttp, crawl: CrawlConfig) -> None:
    """What a hostile server cannot make this source spend (body size, pages, Retry-After), from `[crawl]`."""
    http.limits = SourceLimits(
        max_body_bytes=crawl.max_body_bytes,
        pages=PageLimits(crawl.max_pages_per_listing, crawl.max_pages_without_new),
    )
    http.controller.max_retry_after = crawl.max_retry_after_seconds


def source_session(
    connector: aiohttp.BaseConnector, crawl: CrawlConfig, **options: Any
) -> aiohttp.ClientSession:
    """A source's own session over the shared connector, with `[crawl]`'s request and connect timeouts
    (`options`: `make_session`'s headers or middlewares)."""
    return make_session(
        connector,
        total_timeout=crawl.request_timeout_seconds,
        connect_timeout=crawl.connect_timeout_seconds,
        **options,
    )


# What a parse function raises for a record it cannot read.
PARSE_ERRORS = (ValidationError, ValueError, TypeError, KeyError, AttributeError)


def safe_addresses(read: Callable[[Any], Iterable[str]] | None, raw: Any) -> list[str]:
    """The addresses `read` finds in a malformed record; none when it cannot find any (never raises)."""
    if read is None:
        return []
    try:
        return [a for a in read(raw) if isinstance(a, str)]
    except PARSE_ERRORS:
        return []


def record_label(raw: Any) -> str | None:
    """A short identifier of a raw record (its `id`), for the report's quarantine examples."""
    if isinstance(raw, dict):
        value = raw.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return f"id {str(value).strip()[:60]}"
    return None


def quarantine_reason(exc: Exception) -> str:
    """A reason a reviewer can read: a plain ValueError is its message; other errors name their type."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        return f"{where}: {first['msg']}"
    if isinstance(exc, ValueError):
        return str(exc)[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
