"""`idgraph review import`: a reviewer's decisions file, validated as a whole, then recorded in one
transaction — or refused with every problem listed, and nothing recorded.

What is refused, each with the line: a file that is not a decisions file (`graph.decisions_file`); a
finding id nobody ever found, or one the newest run no longer has open (decide on what is true now); a
row whose facts changed since the export (the fingerprint differs: the account became an admin, the IdP
status changed); the same finding twice; a decision other than revoke, keep or exception; a missing reason;
an exception without a scope or an expiry, or with an expiry in the past or beyond `max_exception_days`;
a scope or expiry on anything but an exception; and a reviewer deciding on their own account (their
address is the account's, or one of the addresses of the person it belongs to).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from crawler.review_tables import record_decisions
from crawler.store import SnapshotStore
from graph.campaign import RunReview
from graph.decisions import (
    DECISIONS,
    EXCEPTION,
    PERSON,
    SCOPES,
    account_key,
    facts_fingerprint,
    finding_facts,
    utc,
)
from graph.decisions_file import FileError, FileRow, parse_file
from graph.model import Finding
from graph.resolve import fold

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_ERRORS_SHOWN = 50


class ImportRefused(ValueError):
    """The file was refused; `problems` lists every reason (line by line). Nothing was recorded."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = list(problems)


@dataclass
class ImportResult:
    import_id: int
    run_id: int
    decisions: list[dict[str, Any]] = field(default_factory=list)
    undecided: int = 0

    def counts(self) -> dict[str, int]:
        out = {d: 0 for d in DECISIONS}
        for row in self.decisions:
            out[row["decision"]] += 1
        return out


def check_reviewer(reviewer: str) -> str:
    """The reviewer's address, trimmed; ValueError unless it looks like one."""
    value = reviewer.strip()
    if not _EMAIL.match(value):
        raise ValueError(f"--reviewer: {reviewer!r} is not an email address")
    return value


def parse_expiry(value: str) -> datetime | None:
    """A date (the exception holds through that day, UTC) or an ISO 8601 time; None if neither."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _own_addresses(review: RunReview, reviewer: str) -> tuple[set[str], str | None]:
    """The reviewer's addresses as the run knows them, and their person key (None if unknown)."""
    person = review.graph.person(reviewer)
    addresses = {fold(reviewer)}
    if person is None:
        return addresses, None
    addresses |= {a.key for i in person.identities for a in i.addresses}
    addresses |= {a.email_key for a in person.accounts if a.email_key}
    return addresses, person.key


@dataclass
class _Check:
    review: RunReview
    reviewer: str
    now: datetime
    max_days: int
    known: Mapping[str, Any]  # every finding id the history ever recorded -> its entry
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.current = {f.id: f for f in self.review.findings.findings}
        self.own, self.own_person = _own_addresses(self.review, self.reviewer)

    def fail(self, row: FileRow, message: str) -> None:
        self.problems.append(f"line {row.line}: {message}")

    def finding(self, row: FileRow, fid: str) -> Finding | None:
        finding = self.current.get(fid)
        if finding is not None:
            return finding
        entry = self.known.get(fid)
        if entry is None:
            self.fail(row, f"unknown finding id {fid!r}: no run of this snapshot found it")
        else:
            self.fail(
                row,
                f"finding {fid} ({entry.code.value}, {entry.email}) is not a finding of run "
                f"{self.review.run_id} (last seen in run {entry.last_seen_run}): decide on what is true "
                "now — export again",
            )
        return None

    def row(self, row: FileRow) -> dict[str, Any] | None:
        fid = row.get("finding_id").casefold()
        decision = row.get("decision").casefold()
        scope, expires, reason = row.get("scope").casefold(), row.get("expires_at"), row.get("reason")
        if not fid:
            self.fail(row, "no finding_id")
            return None
        finding = self.finding(row, fid)
        if decision not in DECISIONS:
            what = f"decision {row.get('decision')!r}" if decision else "no decision, but scope/expiry/reason"
            self.fail(row, f"{what}: write revoke, keep or exception")
            return None
        if not reason:
            self.fail(row, f"a {decision} needs a reason")
        until = None
        if decision == EXCEPTION:
            if scope not in SCOPES:
                self.fail(row, "an exception needs a scope: account (this account) or person (every portal)")
            elif scope == PERSON and finding is not None and not finding.person:
                self.fail(row, "scope person: this account matches no person; use scope account")
            until = self._expiry(row, expires)
        elif scope or expires:
            self.fail(row, f"scope and expires_at are for exceptions only, not for {decision}")
        if finding is None:
            return None
        facts = finding_facts(finding)
        if row.get("facts").casefold() != facts_fingerprint(facts):
            changed = self._what(row, facts)
            self.fail(row, f"the facts behind finding {fid} changed since it was exported{changed}; export "
                           "again and decide on what is true now")  # fmt: skip
            return None
        if self._own(finding):
            self.fail(row, f"{self.reviewer} cannot decide on their own account ({finding.email} in "
                           f"{finding.portal}): another reviewer must")  # fmt: skip
            return None
        if decision == EXCEPTION and scope == PERSON:
            facts["accounts"] = {
                account_key(g.portal, g.learnupon_user_id): finding_facts(g)
                for g in self.current.values()
                if g.code is finding.code and g.person == finding.person
            }
        return {
            "finding_id": fid,
            "code": finding.code.value,
            "severity": finding.severity.value,
            "portal": finding.portal,
            "learnupon_user_id": finding.learnupon_user_id,
            "person": finding.person,
            "email": finding.email,
            "decision": decision,
            "scope": scope if decision == EXCEPTION else None,
            "reason": reason,
            "expires_at": utc(until) if until is not None else None,
            "reviewer": self.reviewer,
            "decided_at": utc(self.now),
            "run_id": self.review.run_id,
            "facts": facts,
        }

    def _expiry(self, row: FileRow, value: str) -> datetime | None:
        if not value:
            self.fail(row, "an exception needs expires_at (a date, e.g. 2026-12-31, or an ISO 8601 time)")
            return None
        until = parse_expiry(value)
        if until is None:
            self.fail(row, f"expires_at {value!r} is not a date (2026-12-31) or an ISO 8601 time")
        elif until <= self.now:
            self.fail(row, f"expires_at {value} is not in the future")
        elif until > self.now + timedelta(days=self.max_days):
            self.fail(row, f"expires_at {value} is more than {self.max_days} days away (max_exception_days)")
        else:
            return until
        return None

    def _own(self, finding: Finding) -> bool:
        email = fold(finding.email) if finding.email else None
        return (email is not None and email in self.own) or (
            self.own_person is not None and finding.person == self.own_person
        )

    @staticmethod
    def _what(row: FileRow, facts: Mapping[str, Any]) -> str:
        """The readable columns that differ from now (they are only as good as the file: a hint)."""
        shown = {"severity": "severity", "user_type": "user_type", "idp_status": "idp_status"}
        diffs = [
            f"{column} {row.get(column) or '(empty)'} → {facts.get(key) or '(empty)'}"
            for column, key in shown.items()
            if column in row.cells and (row.get(column).casefold() or None) != (facts.get(key) or None)
        ]
        return f" ({'; '.join(diffs)})" if diffs else ""


def import_decisions(
    store: SnapshotStore,
    review: RunReview,
    data: bytes,
    *,
    reviewer: str,
    file_name: str,
    now: datetime | None = None,
) -> ImportResult:
    """Validate the whole file against the run under review, then record it; ImportRefused otherwise."""
    reviewer = check_reviewer(reviewer)
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    try:
        rows = parse_file(data)
    except FileError as exc:
        raise ImportRefused([str(exc)]) from None
    from graph.history import entries

    check = _Check(review, reviewer, now, review.graph.settings.max_exception_days, entries(store))
    seen: dict[str, int] = {}
    decided: list[dict[str, Any]] = []
    undecided = 0
    for row in rows:
        fid = row.get("finding_id").casefold()
        if fid and fid in seen:
            check.fail(row, f"finding {fid} is also on line {seen[fid]}: one decision per finding")
            continue
        seen[fid] = row.line
        if not row.has_decision:
            undecided += 1
            continue
        if (checked := check.row(row)) is not None:
            decided.append(checked)
    if not decided and not check.problems:
        check.problems.append("no row has a decision: fill the decision and reason columns first")
    if check.problems:
        raise ImportRefused(check.problems)
    received = {
        "imported_at": utc(now),
        "reviewer": reviewer,
        "run_id": review.run_id,
        "file_name": file_name,
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "content": data,
    }
    import_id = record_decisions(store, received, decided)
    return ImportResult(import_id, review.run_id, decided, undecided)
