"""Reviewers' decisions on findings, and what they mean for a run: which findings are accepted under an
exception, which are back (the exception expired, or the facts behind it changed), which are decided.

A decision is made on one finding (its stable id) as a reviewer saw it: `revoke`, `keep`, or `exception`
(with an expiry, and a scope: this account, or this person in every portal, for the same finding code).
Decisions are append-only rows in the snapshot (`crawler.review_tables`); on each finding the latest one
counts, and a correction is simply a later row. The facts the reviewer saw are kept with the decision
(`finding_facts`); a later run whose finding differs in any of them (the account became an admin, the
person's IdP status changed, the address now belongs to someone else) no longer carries the decision:
an exception brings its finding back with the reason, and a revoke or keep is undecided again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crawler.vocabulary import SEVERITY_ORDER, Severity
from graph.exclusions import Exclusions
from graph.model import Finding
from graph.rules import parse_time

REVOKE, KEEP, EXCEPTION = "revoke", "keep", "exception"
DECISIONS = (REVOKE, KEEP, EXCEPTION)
ACCOUNT, PERSON = "account", "person"
SCOPES = (ACCOUNT, PERSON)
OPEN, ACCEPTED, EXCLUDED = "open", "accepted", "excluded"
# The facts a decision rests on; a person-wide exception compares only the person's part on other accounts.
FACT_KEYS = ("code", "severity", "email", "user_type", "idp_status")
PERSON_FACT_KEYS = ("code", "idp_status")


def finding_facts(finding: Finding) -> dict[str, Any]:
    """What a reviewer sees and decides on: a later run that differs in any of these is another situation."""
    return {
        "code": finding.code.value,
        "severity": finding.severity.value,
        "email": (finding.email or "").strip().casefold() or None,
        "user_type": (finding.user_type or "unknown").casefold(),
        "idp_status": finding.idp_status,
    }


def facts_fingerprint(facts: Mapping[str, Any]) -> str:
    """Short and stable: what the export writes beside each finding and the import compares."""
    canonical = json.dumps({k: facts.get(k) for k in FACT_KEYS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def facts_changes(decided: Mapping[str, Any], now: Mapping[str, Any], *, same_account: bool) -> list[str]:
    """How the facts differ, e.g. `user_type learner → admin`; [] when the decision still holds.

    On another account of the person (a person-wide exception) the account's own facts were never seen,
    so only the person's part counts, and a severity above the one decided on (an admin account).
    """
    keys = FACT_KEYS if same_account else PERSON_FACT_KEYS
    changes = [f"{k} {decided.get(k)} → {now.get(k)}" for k in keys if decided.get(k) != now.get(k)]
    if not same_account:
        before, after = _severity(decided.get("severity")), _severity(now.get("severity"))
        if before is not None and after is not None and SEVERITY_ORDER[after] < SEVERITY_ORDER[before]:
            changes.append(f"severity {after.value} on this account is above the {before.value} excepted")
    return changes


def _severity(value: Any) -> Severity | None:
    try:
        return Severity(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Decision:
    """One imported decision (a row of `review_decisions`)."""

    id: int
    finding_id: str
    code: str
    severity: str
    portal: str | None
    learnupon_user_id: int | None
    person: str | None
    email: str | None
    decision: str
    scope: str | None
    reason: str
    expires_at: str | None
    reviewer: str
    decided_at: str
    run_id: int
    facts: dict[str, Any]
    supersedes: int | None
    import_id: int
    file_name: str = ""
    file_sha256: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Decision:
        return cls(**{name: row.get(name) for name in cls.__dataclass_fields__})  # type: ignore[arg-type]  # every column is a field

    def expired(self, as_of: datetime) -> bool:
        """An exception past its expiry; an unreadable expiry counts as expired (fail closed)."""
        if self.decision != EXCEPTION:
            return False
        until = parse_time(self.expires_at)
        return until is None or as_of >= until

    def as_row(self) -> dict[str, Any]:
        """Flat, for CSV and JSON (facts as their fingerprint)."""
        return {
            "decision_id": self.id,
            "decided_at": self.decided_at,
            "reviewer": self.reviewer,
            "decision": self.decision,
            "scope": self.scope,
            "expires_at": self.expires_at,
            "reason": self.reason,
            "finding_id": self.finding_id,
            "finding": self.code,
            "severity": self.severity,
            "portal": self.portal,
            "learnupon_user_id": self.learnupon_user_id,
            "email": self.email,
            "person": self.person,
            "run_id": self.run_id,
            "facts": facts_fingerprint(self.facts),
            "supersedes": self.supersedes,
            "import_id": self.import_id,
            "file_sha256": self.file_sha256,
        }


@dataclass(frozen=True)
class FindingReview:
    """Where one finding stands in the review: open, accepted (a live exception) or excluded (a rule).

    `decision` is the decision that holds for it (facts unchanged, not expired), if any; `note` says
    why it stands where it does, for the reports: the exception and its expiry, the rule, or why a
    decision no longer holds.
    """

    state: str
    note: str | None = None
    decision: Decision | None = None
    rule: str | None = None
    lapsed: Decision | None = None  # a decision that no longer holds (expired, or on other facts)


def latest_decisions(decisions: Iterable[Decision]) -> dict[str, Decision]:
    """Finding id -> the decision that counts on it: the latest (corrections are later rows)."""
    latest: dict[str, Decision] = {}
    for d in sorted(decisions, key=lambda d: d.id):
        latest[d.finding_id] = d
    return latest


def standing_revokes(decisions: Iterable[Decision]) -> list[Decision]:
    """The `revoke` decisions that are the latest on their finding, by account (portal, user id), then id."""
    revokes = [d for d in latest_decisions(decisions).values() if d.decision == REVOKE]
    return sorted(revokes, key=lambda d: (d.portal or "", d.learnupon_user_id or 0, d.id))


def _describe(d: Decision) -> str:
    return f"{d.decision} by {d.reviewer} on {d.decided_at[:10]}"


def review_states(
    findings: Sequence[Finding], decisions: Sequence[Decision], exclusions: Exclusions, as_of: datetime
) -> dict[str, FindingReview]:
    """Finding id -> where it stands, as of `as_of` (a run's start, so a report of a run never changes)."""
    latest = latest_decisions(decisions)
    person_wide: dict[tuple[str, str], list[Decision]] = {}
    for d in latest.values():
        if d.decision == EXCEPTION and d.scope == PERSON and d.person:
            person_wide.setdefault((d.code, d.person), []).append(d)
    out: dict[str, FindingReview] = {}
    for f in findings:
        rule = exclusions.rule_of(f.portal, f.learnupon_user_id)
        if rule is not None:
            out[f.id] = FindingReview(EXCLUDED, f"excluded by rule {rule}", rule=rule)
            continue
        candidates = [d for d in (latest.get(f.id),) if d is not None]
        if f.person:
            candidates += person_wide.get((f.code.value, f.person), [])
        if not candidates:
            out[f.id] = FindingReview(OPEN)
            continue
        governing = max(candidates, key=lambda d: d.id)
        out[f.id] = _standing(f, governing, as_of)
    return out


def account_key(portal: str | None, user_id: int | None) -> str:
    return f"{portal}:{user_id}"


def _changes(f: Finding, d: Decision) -> list[str]:
    """How this finding's facts differ from those the decision was made on.

    A person-wide exception keeps the facts of every account it covered when it was made (`accounts`):
    an account among them is compared in full, and one the reviewer never saw is a change in itself.
    """
    now = finding_facts(f)
    if (d.portal, d.learnupon_user_id) == (f.portal, f.learnupon_user_id):
        return facts_changes(d.facts, now, same_account=True)
    seen = d.facts.get("accounts")
    if not isinstance(seen, Mapping):
        return facts_changes(d.facts, now, same_account=False)
    before = seen.get(account_key(f.portal, f.learnupon_user_id))
    if before is None:
        return [f"the account {f.portal}/{f.learnupon_user_id} was not among those the reviewer saw"]
    return facts_changes(before, now, same_account=True)


def _standing(f: Finding, d: Decision, as_of: datetime) -> FindingReview:
    changes = _changes(f, d)
    if d.decision == EXCEPTION and d.expired(as_of):
        return FindingReview(OPEN, f"{_describe(d)} expired at {d.expires_at}: {d.reason}", lapsed=d)
    if changes:
        return FindingReview(
            OPEN, f"{_describe(d)} no longer holds: the facts changed ({'; '.join(changes)})", lapsed=d
        )
    if d.decision == EXCEPTION:
        scope = "this person in every portal" if d.scope == PERSON else "this account"
        note = f"{_describe(d)} ({scope}) until {d.expires_at}: {d.reason}"
        return FindingReview(ACCEPTED, note, decision=d)
    return FindingReview(OPEN, f"{_describe(d)}: {d.reason}", decision=d)


def exceptions_in_force(
    decisions: Sequence[Decision], as_of: datetime, states: Mapping[str, FindingReview] | None = None
) -> list[Decision]:
    """Exceptions that are the latest word on their finding and not expired at `as_of` (facts aside:
    `states` narrows them to those that still hold on a run's findings, when given)."""
    live = [
        d for d in latest_decisions(decisions).values() if d.decision == EXCEPTION and not d.expired(as_of)
    ]
    if states is not None:
        holding = {s.decision.id for s in states.values() if s.state == ACCEPTED and s.decision is not None}
        live = [d for d in live if d.id in holding]
    return sorted(live, key=lambda d: (d.expires_at or "", d.id))


def utc(moment: datetime) -> str:
    """The ISO form decisions are stored in: UTC, seconds, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
