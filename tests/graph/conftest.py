"""Hand-built snapshots for the graph tests: a few accounts and identities, written the way the crawler does.

run = snapshot.run(portals=["emea", "apac"], idps=["okta"], started_at="2026-06-01T00:00:00Z")
run.user("emea", 1, "Ana@ACME.com", last_sign_in_at="2026-05-30T10:00:00Z")
run.identity("okta", "00u1", "ana@acme.com", status="disabled")
run_id = run.finish()
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.records import (
    Identity,
    IdentityAddress,
    IdentityStatus,
    LUCourse,
    LUEnrollment,
    LUGroup,
    LUMembership,
    LUUser,
)
from crawler.store import SnapshotStore, SourceCoverage

START = "2026-06-01T00:00:00Z"
RAW = {"active": "ACTIVE", "disabled": "SUSPENDED", "deleted": "DELETED", "not_activated": "STAGED"}


def days_before(days: float, start: str = START) -> datetime:
    return datetime.fromisoformat(start) - timedelta(days=days)


class RunBuilder:
    """Collects one run's records, then writes them page by page with the run's coverage."""

    def __init__(
        self,
        store: SnapshotStore,
        portals: list[str],
        idps: list[str],
        started_at: str,
        incomplete: dict[str, str],
    ) -> None:
        self.store, self.portals, self.idps = store, portals, idps
        self.started_at, self.incomplete = started_at, incomplete
        self.records: dict[str, list[Any]] = defaultdict(list)
        self._enrollment_ids: dict[str, int] = defaultdict(int)

    def ago(self, days: float) -> datetime:
        """A moment `days` before this run started."""
        return days_before(days, self.started_at)

    def user(self, portal: str, user_id: int, email: str | None, **fields: Any) -> RunBuilder:
        fields.setdefault("last_sign_in_at", days_before(1, self.started_at))
        fields.setdefault("created_at", days_before(400, self.started_at))
        fields.setdefault("enabled", True)
        fields.setdefault("user_type", "learner")
        self.records[portal].append(LUUser(id=user_id, email=email, **fields))
        return self

    def identity(
        self,
        idp: str,
        idp_id: str,
        *addresses: str | tuple[str, str],
        status: str = "active",
        primary: bool = True,
        **fields: Any,
    ) -> RunBuilder:
        """Addresses: "x@y" (the first is primary unless primary=False) or ("x@y", kind)."""
        items = []
        for n, spec in enumerate(addresses):
            address, kind = (spec, "email") if isinstance(spec, str) else spec
            items.append(IdentityAddress(address=address, primary=primary and n == 0, kind=kind))
        fields.setdefault("raw_status", RAW[status])
        self.records[idp].append(
            Identity(idp_id=idp_id, addresses=tuple(items), status=IdentityStatus(status), **fields)
        )
        return self

    def group(self, portal: str, group_id: int, title: str, members: list[int]) -> RunBuilder:
        self.records[portal].append(LUGroup(id=group_id, title=title, number_of_members=len(members)))
        self.records[portal] += [LUMembership(group_id=group_id, user_id=m) for m in members]
        return self

    def course(self, portal: str, course_id: int, name: str) -> RunBuilder:
        self.records[portal].append(LUCourse(id=course_id, name=name, status="published"))
        return self

    def enroll(
        self, portal: str, user_id: int, course_id: int, status: str = "in_progress", **fields: Any
    ) -> RunBuilder:
        self._enrollment_ids[portal] += 1
        self.records[portal].append(
            LUEnrollment(
                id=self._enrollment_ids[portal], course_id=course_id, user_id=user_id, status=status, **fields
            )
        )
        return self

    def finish(self) -> int:
        sources = [(p, "learnupon") for p in self.portals] + [(i, i) for i in self.idps]
        run_id = self.store.start_run(sources)
        with self.store.transaction() as db:
            db.execute("UPDATE runs SET started_at = ? WHERE id = ?", (self.started_at, run_id))
        for source, kind in sources:
            records = self.records.get(source, [])
            for start in range(0, max(len(records), 1), 3):  # small pages, like a real crawl
                self.store.write_page(run_id, source, "all", records[start : start + 3])
            error = self.incomplete.get(source)
            self.store.save_coverage(
                run_id,
                SourceCoverage(
                    source=source, kind=kind, complete=error is None, error=error, records=len(records)
                ),
            )
        self.store.finish_run(run_id)
        return run_id


class SnapshotBuilder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = SnapshotStore(path)

    def run(
        self,
        portals: list[str] | None = None,
        idps: list[str] | None = None,
        started_at: str = START,
        incomplete: dict[str, str] | None = None,
    ) -> RunBuilder:
        return RunBuilder(
            self.store,
            portals if portals is not None else ["emea"],
            idps if idps is not None else ["okta"],
            started_at,
            incomplete or {},
        )


@pytest.fixture
def snapshot(tmp_path: Path) -> Iterator[SnapshotBuilder]:
    builder = SnapshotBuilder(tmp_path / "snapshot.db")
    yield builder
    builder.store.close()
