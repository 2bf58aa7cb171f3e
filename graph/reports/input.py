"""What every report writer reads: one run's coverage and findings, as plain data the CLI can fill.

Writers never re-query anything; they only format this. The helpers here (ordering, the finding record,
the summary) are shared so that CSV, JSON, HTML and Markdown agree on order and counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crawler.coverage import SourceCoverage
from crawler.runs import QuarantineSummary, RunInfo
from crawler.vocabulary import is_disabled
from graph.model import (
    CONTRACT_COLUMNS,
    SEVERITY_ORDER,
    Code,
    Finding,
    FindingSet,
    RecallGap,
    Severity,
    Unavailable,
)
from graph.person_view import PersonView
from graph.rules import parse_time

# Contract columns (design doc), then ours. Never reorder: spreadsheets and scripts read by position too.
EXTRA_COLUMNS = ("finding_id", "first_seen", "person", "evidence")
# Flat copies of what a reviewer filters on, so nobody has to parse the evidence JSON in a spreadsheet.
FLAT_COLUMNS = ("name", "last_sign_in_at", "idp_disabled_at", "days_since_disabled", "groups")
# Where the finding stands in the access review (open, accepted under an exception, excluded by a rule) and
# why: an expired exception, a decision, the rule (graph.decisions).
REVIEW_COLUMNS = ("review_state", "review_note")
CSV_COLUMNS = CONTRACT_COLUMNS + EXTRA_COLUMNS + FLAT_COLUMNS + REVIEW_COLUMNS

CODE_ORDER = {code: rank for rank, code in enumerate(Code)}

CODE_MEANING = {
    Code.IDP_DISABLED_ACTIVE: "Enabled LearnUpon account of a person disabled in every IdP that knows them",
    Code.NOT_IN_IDP: "Enabled account in a managed domain that no IdP knows",
    Code.PARTIALLY_OFFBOARDED: "Disabled in one portal, still enabled in another",
    Code.DORMANT: "Enabled account with no sign-in for the dormant period (or never)",
    Code.DUPLICATE_ACCOUNT: "One person, several accounts in one portal",
    Code.ACTIVE_AFTER_OFFBOARDING: "Signed in to LearnUpon after every IdP had disabled the person",
}

NO_PORTAL = "(none)"


@dataclass
class RunDiff:
    """What changed since the previous run. Items are finding ids, or dicts with at least `finding_id`
    (and optionally code, email, portal) when the caller has the previous run's details."""

    previous_run_id: int | None = None
    new: list[str | dict[str, Any]] = field(default_factory=list)
    resolved: list[str | dict[str, Any]] = field(default_factory=list)
    not_rechecked: list[str | dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunDiff:
        previous = data.get("previous_run_id", data.get("previous_run"))
        return cls(
            previous_run_id=int(previous) if previous is not None else None,
            new=list(data.get("new") or ()),
            resolved=list(data.get("resolved") or ()),
            not_rechecked=list(data.get("not_rechecked") or ()),
        )

    def new_ids(self) -> set[str]:
        return {item_id(item) for item in self.new}

    def as_dict(self) -> dict[str, Any]:
        return {
            "previous_run_id": self.previous_run_id,
            "new": list(self.new),
            "resolved": list(self.resolved),
            "not_rechecked": list(self.not_rechecked),
        }


def item_id(item: str | Mapping[str, Any]) -> str:
    if isinstance(item, Mapping):
        return str(item.get("finding_id") or item.get("id") or "")
    return str(item)


@dataclass(frozen=True)
class Reviewed:
    """A finding out of the headline — accepted under a live exception, or excluded by a rule — and why."""

    finding: Finding
    note: str
    rule: str | None = None


@dataclass
class ReportInput:
    run: RunInfo
    coverage: list[SourceCoverage]
    findings: FindingSet
    first_seen: dict[str, str] = field(default_factory=dict)  # finding id -> ISO timestamp
    diff: RunDiff | None = None
    collisions: int | None = None  # addresses claimed by more than one IdP identity
    unmatchable: int | None = None  # LearnUpon accounts with no usable email
    title: str = "idgraph access review"
    # source -> what it quarantined and why (`SnapshotStore.quarantine_summary`); sources absent here fall
    # back to their coverage count, with no reasons.
    quarantine: dict[str, QuarantineSummary] = field(default_factory=dict)
    # The access review (graph.campaign): `findings` holds the open ones, the headline; these are the rest,
    # never dropped. `review_notes`: why an open finding is open again (an exception expired…).
    accepted: list[Reviewed] = field(default_factory=list)
    excluded: list[Reviewed] = field(default_factory=list)
    review_notes: dict[str, str] = field(default_factory=dict)
    reopened: set[str] = field(default_factory=set)  # open again: their exception expired, or facts changed
    exclusion_rules: list[dict[str, Any]] = field(default_factory=list)
    people: list[PersonView] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.diff, Mapping):
            self.diff = RunDiff.from_mapping(self.diff)

    def quarantine_of(self, cov: SourceCoverage) -> QuarantineSummary:
        """One source's quarantine: the store's summary, else the coverage's bare count."""
        summary = self.quarantine.get(cov.source)
        if summary is not None:
            return summary
        return QuarantineSummary(count=cov.quarantined or 0)

    def quarantined_count(self) -> int:
        """Records quarantined across every source of the run."""
        return sum(q.count for _, q in self.quarantined_sources())

    def quarantined_sources(self) -> list[tuple[SourceCoverage, QuarantineSummary]]:
        """The sources that quarantined something, in coverage order."""
        out = []
        for cov in self.ordered_coverage():
            summary = self.quarantine_of(cov)
            if summary.count:
                out.append((cov, summary))
        return out

    # --- shared views ---------------------------------------------------------------------------
    def ordered(self) -> list[Finding]:
        """Deterministic order every format uses: severity, code, portal, email (then id as tie-break)."""
        return sorted(self.findings.findings, key=finding_sort_key)

    def ordered_coverage(self) -> list[SourceCoverage]:
        """LearnUpon portals first, then IdPs; by name within each."""
        return sorted(self.coverage, key=lambda c: (c.kind != "learnupon", c.kind, c.source))

    def incomplete(self) -> list[SourceCoverage]:
        return [c for c in self.ordered_coverage() if not c.complete]

    @property
    def unavailable(self) -> list[Unavailable]:
        return sorted(
            self.findings.unavailable, key=lambda u: (CODE_ORDER.get(u.code, 99), u.scope, u.reason)
        )

    @property
    def recall_gaps(self) -> list[RecallGap]:
        return sorted(
            self.findings.recall_gaps, key=lambda g: (CODE_ORDER.get(g.code, 99), g.portal, g.reason)
        )

    def withheld(self) -> dict[Code, str]:
        """Codes given for nobody, with why: shown as "n/a — withheld: why", never as 0."""
        return self.findings.withheld()

    def withheld_text(self, code: Code) -> str | None:
        reason = self.withheld().get(code)
        return None if reason is None else f"n/a — withheld: {reason}"

    @property
    def verdicts_withheld(self) -> bool:
        """Any verdict not given, for anyone: `idgraph report` then exits 3."""
        return bool(self.findings.unavailable)

    def record(self, finding: Finding) -> dict[str, Any]:
        """One finding as a flat dict: contract columns, then id, first_seen, person, evidence, then the
        flat copies of evidence (`FLAT_COLUMNS`; groups as a list)."""
        row = finding.as_row()
        record = {column: _plain(row.get(column)) for column in CONTRACT_COLUMNS}
        record["finding_id"] = finding.id
        record["first_seen"] = self.first_seen.get(finding.id)
        record["person"] = finding.person
        record["evidence"] = finding.evidence
        record.update(flat_fields(finding, parse_time(self.run.started_at)))
        record["review_state"] = "open"
        record["review_note"] = self.review_notes.get(finding.id)
        return record

    def reviewed_record(self, item: Reviewed, state: str) -> dict[str, Any]:
        """An accepted or excluded finding, in the same shape as an open one."""
        record = self.record(item.finding)
        record["review_state"], record["review_note"] = state, item.note
        return record

    def out_of_headline(self) -> list[tuple[str, Reviewed]]:
        """("accepted" | "excluded", item), each kind in the report's finding order."""
        return [
            (state, item)
            for state, items in (("accepted", self.accepted), ("excluded", self.excluded))
            for item in sorted(items, key=lambda r: finding_sort_key(r.finding))
        ]

    def reach(self) -> dict[str, tuple[int, int, int]]:
        """Per severity, and "total": (findings, people, accounts). Many findings are one account and many
        accounts one person; a reviewer acts per person. An account with no person counts as its own."""
        found: dict[str, tuple[Counter[str], set[Any], set[Any]]] = {}
        for f in self.findings.findings:
            account = (f.portal, f.learnupon_user_id, None if f.learnupon_user_id is not None else f.email)
            person = f.person or f"account:{account}"
            for key in (f.severity.value, "total"):
                n, people, accounts = found.setdefault(key, (Counter(), set(), set()))
                n["n"] += 1
                people.add(person)
                accounts.add(account)
        return {
            key: (found[key][0]["n"], len(found[key][1]), len(found[key][2])) if key in found else (0, 0, 0)
            for key in [*(s.value for s in Severity), "total"]
        }

    def coverage_clean(self) -> bool:
        """Every source complete, no verdict withheld, no listing short: coverage fits on one line."""
        return bool(self.coverage) and not (self.incomplete() or self.unavailable or self.recall_gaps)

    def summary(self) -> dict[str, Any]:
        findings = self.findings.findings
        by_code = Counter(f.code.value for f in findings)
        by_severity = Counter(f.severity.value for f in findings)
        by_portal = Counter(f.portal or NO_PORTAL for f in findings)
        withheld = self.withheld()
        summary: dict[str, Any] = {
            "total": len(findings),
            # Counts are lower bounds while a code is withheld: a withheld code is "n/a", never 0.
            "complete_counts": not withheld,
            "by_code": {
                code.value: self.withheld_text(code) if code in withheld else by_code.get(code.value, 0)
                for code in Code
            },
            "withheld": {code.value: reason for code, reason in withheld.items()},
            "by_severity": {sev.value: by_severity.get(sev.value, 0) for sev in Severity},
            "by_portal": {portal: by_portal[portal] for portal in sorted(by_portal)},
            "sources": len(self.coverage),
            "sources_incomplete": sorted(c.source for c in self.coverage if not c.complete),
            "collisions": self.collisions,
            "unmatchable": self.unmatchable,
            "quarantined": self.quarantined_count(),
            "accepted": len(self.accepted),
            "excluded": len(self.excluded),
        }
        if self.diff is not None:
            summary["changes"] = self.diff.as_dict()
        return summary

    def by_code_and_severity(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {c.value: {s.value: 0 for s in Severity} for c in Code}
        for f in self.findings.findings:
            counts.setdefault(f.code.value, {s.value: 0 for s in Severity})[f.severity.value] += 1
        return counts

    def by_portal_and_severity(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for f in self.findings.findings:
            row = counts.setdefault(f.portal or NO_PORTAL, {s.value: 0 for s in Severity})
            row[f.severity.value] += 1
        return dict(sorted(counts.items()))


# What a collection that was not read completely costs the verdicts (see graph.rules.FACTS).
AFFECTS = {
    "users": "verdicts were given for every account read; findings on this portal may be missing",
    "identities": "idp_disabled_active and not_in_idp are withheld for everyone",
}
EVIDENCE_ONLY = "affects no verdict (evidence only)"


def affects(collection: str) -> str:
    return AFFECTS.get(collection, EVIDENCE_ONLY)


def collections_line(cov: SourceCoverage) -> str:
    """One line per source: each collection's state, with the reason and the verdicts it affects."""
    parts = []
    for c in cov.collections:
        if c.complete:
            parts.append(f"{c.name} complete" + (f" (via {c.via})" if c.via else ""))
        else:
            parts.append(f"{c.name} {c.state}: {c.reason or 'not read'} — {affects(c.name)}")
    return "; ".join(parts)


def flat_fields(finding: Finding, run_time: datetime | None) -> dict[str, Any]:
    """name, last sign-in, when the IdPs disabled the person, days since then, groups: from the evidence.

    `idp_disabled_at` is given only when every identity is disabled and each says when its status
    changed (the latest change, when the last IdP let go); otherwise it is unknown and left empty.
    """
    ev = finding.evidence
    first_last = " ".join(str(p) for p in (ev.get("first_name"), ev.get("last_name")) if p)
    name = ev.get("name") or first_last or None
    identities = [i for i in ev.get("identities") or () if isinstance(i, Mapping)]
    changed = [parse_time(_iso(i.get("status_changed_at"))) for i in identities]
    disabled_at: datetime | None = None
    if identities and all(is_disabled(i.get("status")) for i in identities) and all(changed):
        disabled_at = max(c for c in changed if c is not None)
    days = ev.get("days_since_disabled")
    if days is None and disabled_at is not None and run_time is not None:
        days = max((run_time - disabled_at).days, 0)  # a disable dated after the run: 0 (graph.rules says so)
    groups = ev.get("groups")
    group_list = sorted(str(g) for g in groups) if isinstance(groups, list | tuple | set | frozenset) else []
    return {
        "name": name,
        "last_sign_in_at": _iso(ev.get("last_sign_in_at")),
        "idp_disabled_at": _iso_z(disabled_at),
        "days_since_disabled": days,
        "groups": group_list,
    }


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _iso_z(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def finding_sort_key(f: Finding) -> tuple[Any, ...]:
    return (
        SEVERITY_ORDER.get(f.severity, 99),
        CODE_ORDER.get(f.code, 99),
        f.portal is None,
        (f.portal or "").casefold(),
        f.email is None,
        (f.email or "").casefold(),
        f.learnupon_user_id if f.learnupon_user_id is not None else -1,
        f.id,
    )


def evidence_json(evidence: Mapping[str, Any]) -> str:
    """Compact, key-sorted JSON; anything JSON cannot hold (datetimes, sets) becomes its string form."""
    return json.dumps(evidence, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _plain(value: Any) -> Any:
    """StrEnum members as their plain value, so JSON and CSV never see an enum repr."""
    if isinstance(value, Code | Severity):
        return value.value
    return value
