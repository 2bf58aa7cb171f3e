"""What one crawl read of each source, collection by collection: the facts a verdict may rest on.

A source reads several collections (a portal: users, groups, the members of each group, courses, the
enrollments; an IdP: its identities). Each ends in one of three states, for a reviewer:

* `complete` — every record of the collection was read (and, where LearnUpon keeps counters, they agree);
* `incomplete` — reading started but did not finish: the records read are facts, the ones not read are
  unknown, so nothing may be concluded from a record's *absence*;
* `unavailable` — the source offers no way to read it (the endpoint is absent): nothing was read.

The source's own row (`complete`, `error`) summarises its collections: complete only when all are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

COMPLETE, INCOMPLETE, UNAVAILABLE = "complete", "incomplete", "unavailable"
STATES = (COMPLETE, INCOMPLETE, UNAVAILABLE)

# The collections whose state a verdict can depend on.
USERS = "users"
IDENTITIES = "identities"


@dataclass
class CollectionCoverage:
    """One collection of one source in one run."""

    name: str
    state: str = INCOMPLETE
    reason: str | None = None  # why it is not complete (or how it was read when it took a fallback)
    requests: int = 0
    pages: int = 0
    records: int = 0
    via: str | None = None  # the way it was read, when not the usual one (an endpoint fallback)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectionCoverage:
        return cls(
            name=str(data["name"]),
            state=data["state"],
            reason=data.get("reason"),
            via=data.get("via"),
            requests=int(data.get("requests") or 0),
            pages=int(data.get("pages") or 0),
            records=int(data.get("records") or 0),
        )

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE


def summarise(collections: Iterable[CollectionCoverage]) -> str | None:
    """The source's error line: every collection that is not complete, with its reason; None if none."""
    parts = [f"{c.name} {c.state}: {c.reason or 'not read'}" for c in collections if not c.complete]
    return "; ".join(parts) or None


@dataclass
class SourceCoverage:
    """What one source's crawl achieved in one run."""

    source: str
    kind: str
    complete: bool = False
    error: str | None = None
    requests: int = 0
    requests_by_purpose: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    retries: int = 0
    drift_events: int = 0
    records: int = 0
    quarantined: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    notes: list[str] = field(default_factory=list)
    collections: list[CollectionCoverage] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["collections"] = [c.as_dict() for c in self.collections]
        return data

    def collection(self, name: str) -> CollectionCoverage | None:
        return next((c for c in self.collections if c.name == name), None)

    def collection_complete(self, name: str) -> bool:
        """Whether one collection was read completely; a row without collections (a snapshot written before
        they were recorded) answers for the source as a whole."""
        if not self.collections:
            return self.complete
        found = self.collection(name)
        return found is not None and found.complete

    def collection_gap(self, name: str) -> str | None:
        """Why one collection is not complete ("users incomplete: …"), or None when it is."""
        if self.collection_complete(name):
            return None
        found = self.collection(name)
        if found is None:
            return self.error or "crawl did not complete"
        return f"{found.name} {found.state}: {found.reason or 'not read'}"
