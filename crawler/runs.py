"""What a run is, as every layer reads it: its identity and times, and what it quarantined.

Plain values, apart from the SQLite store that writes them, so reports, remediation and the audit log can
name a run without importing the snapshot writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class QuarantineReason:
    """One distinct reason records of a source were quarantined, with a few short examples."""

    reason: str
    count: int
    examples: list[str] = field(default_factory=list)  # short identifiers, never raw records

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "count": self.count, "examples": list(self.examples)}


@dataclass(frozen=True)
class QuarantineSummary:
    """What one source quarantined in one run: the count and the distinct reasons, most frequent first."""

    count: int = 0
    reasons: list[QuarantineReason] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "reasons": [r.as_dict() for r in self.reasons]}


@dataclass(frozen=True)
class RunInfo:
    id: int
    started_at: str
    finished_at: str | None
    status: str
    kind: str = "full"  # full: a crawl of every source; incremental: what one `idgraph watch` round read
