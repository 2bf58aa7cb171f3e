"""A simulated portal's audit trail: what `GET /audit-trails` answers (learnupon-api.md, change-feeds.md 4b).

LearnUpon records "high-priority actions" and serves the last 30 days of them, by `action` or by
`date_range=ISO,ISO`, newest first. Records have no id. `PortalData` records actions 3 (user deleted),
4 (login disabled), 5 (login enabled) and 12 (removed from a group) as its users change, whether through
the API (`PUT /users/{id}`, `DELETE …`) or a test editing the data; API changes show "Automation" as the
initiator, as the LearnUpon UI does. What the real API does with a range over 30 days is undocumented: the
simulator refuses it (400), so a client that asks for more is caught.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

USER_DELETED, LOGIN_DISABLED, LOGIN_ENABLED, REMOVED_FROM_GROUP = 3, 4, 5, 12
WINDOW = timedelta(days=30)


class AuditQueryError(ValueError):
    """A query the portal refuses (400), with LearnUpon's message."""


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class AuditTrail:
    records: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    def record(self, action: int, user: dict[str, Any], at: str, impacted_data: str | None = None) -> None:
        """Log one action on `user` (a stored user record) at `at` (ISO-8601 UTC)."""
        name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p) or None
        self.records.append(
            {
                "action": action,
                "initiated_by_user": "Automation",
                "initiated_by_user_email": None,
                "impacted_user": name,
                "impacted_user_email": user.get("email"),
                "impacted_data": impacted_data if impacted_data is not None else name,
                "date_and_time_utc": at,
            }
        )

    def select(self, now: datetime, date_range: str | None, action: str | None) -> list[dict[str, Any]]:
        """The records a query returns, newest first; `AuditQueryError` for a range the portal refuses."""
        start, end = now - WINDOW, now
        if date_range is not None:
            parts = date_range.split(",")
            try:
                if len(parts) != 2:
                    raise ValueError(date_range)
                start, end = _when(parts[0]), _when(parts[1])
            except ValueError:
                raise AuditQueryError("Invalid date_range: expected two ISO-8601 times") from None
            if end - start > WINDOW:
                raise AuditQueryError("date_range cannot span more than 30 days")
            start = max(start, now - WINDOW)  # older records are gone, whatever was asked
        wanted = int(action) if action is not None and action.isdigit() else None
        return [
            r
            for r in reversed(self.records)
            if start <= _when(r["date_and_time_utc"]) <= end and (action is None or r["action"] == wanted)
        ]
