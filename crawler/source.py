"""What a source's crawl is handed: its HTTP, its slice of the snapshot, and its coverage.

Sources (LearnUpon portals, IdPs) only fetch and normalise. Through `SourceContext` they commit pages,
quarantine records they cannot read and leave notes; the orchestrator turns that into coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from crawler.coverage import CollectionCoverage
from crawler.http import SourceHttp
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

    def quarantine(self, collection: str, reason: str, record: Any) -> None:
        self.store.quarantine(self.run_id, self.name, collection, reason, record)
        self.progress.quarantined += 1

    def note(self, message: str) -> None:
        """Something a reviewer should know about this source's data (kept in coverage)."""
        self.progress.notes.append(message)

    def normalise(
        self, collection: str, raw_records: Iterable[Any], parse: Callable[[Any], RecordT]
    ) -> list[RecordT]:
        """Parse each raw record; quarantine (with the reason) the ones that do not parse."""
        out: list[RecordT] = []
        for raw in raw_records:
            try:
                out.append(parse(raw))
            except (ValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
                self.quarantine(collection, quarantine_reason(exc), raw)
        return out


def quarantine_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        return f"{where}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}"[:300]
