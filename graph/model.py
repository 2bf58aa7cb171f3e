"""The findings vocabulary shared by rules, reports, history, Neo4j export and notebooks.

Codes are a public contract (docs/architecture.md, "Public contracts"); so are the CSV columns built from
these fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

# The codes, severities and their order are defined with the rest of the shared words (crawler.vocabulary).
from crawler.vocabulary import SEVERITY_ORDER, Code, Severity

__all__ = [
    "CONTRACT_COLUMNS",
    "SEVERITY_ORDER",
    "Code",
    "Finding",
    "FindingSet",
    "RecallGap",
    "Severity",
    "Unavailable",
    "finding_id",
]


# findings.csv starts with these columns, in this order (a public contract); DataFrames follow it too.
CONTRACT_COLUMNS = (
    "finding",
    "severity",
    "email",
    "portal",
    "learnupon_user_id",
    "user_type",
    "idp",
    "idp_status",
)


def finding_id(code: str, portal: str | None, learnupon_user_id: int | None, person: str | None) -> str:
    """Stable across runs: the same account with the same problem keeps its id."""
    key = f"{code}|{portal or ''}|{learnupon_user_id if learnupon_user_id is not None else ''}|{person or ''}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Finding:
    """One account (or person) that should not be alive, with the evidence a reviewer needs."""

    code: Code
    severity: Severity
    email: str | None  # the address as LearnUpon has it (display form)
    person: str | None  # the casefolded person key, None for unmatchable accounts
    portal: str | None
    learnupon_user_id: int | None
    user_type: str | None
    idp: str | None  # IdP source name(s), ";"-joined
    idp_status: str | None  # normalised status(es), ";"-joined
    evidence: dict[str, Any] = field(default_factory=dict)
    # The facts the verdict rests on (`account:{portal}:{id}`, `idps`): a later run resolves it only
    # after reading every one of them again (graph.history).
    depends_on: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return finding_id(self.code, self.portal, self.learnupon_user_id, self.person)

    def as_row(self) -> dict[str, Any]:
        """Flat form for CSV/DataFrames: the contract columns first."""
        return {
            "finding": self.code.value,
            "severity": self.severity.value,
            "email": self.email,
            "portal": self.portal,
            "learnupon_user_id": self.learnupon_user_id,
            "user_type": self.user_type,
            "idp": self.idp,
            "idp_status": self.idp_status,
            "finding_id": self.id,
            "person": self.person,
        }


@dataclass(frozen=True)
class Unavailable:
    """A verdict withheld: a fact it needs was not read. Scope "all" withholds the code for everyone;
    `account:{portal}:{id}` for one account."""

    code: Code
    scope: str
    reason: str


@dataclass(frozen=True)
class RecallGap:
    """Verdicts were given for every record read, but a listing did not finish: findings on `portal`
    may be missing (never a withheld verdict: nobody knows which accounts were not read)."""

    code: Code
    portal: str
    reason: str


@dataclass
class FindingSet:
    run_id: int
    findings: list[Finding]
    unavailable: list[Unavailable] = field(default_factory=list)
    recall_gaps: list[RecallGap] = field(default_factory=list)

    def withheld(self) -> dict[Code, str]:
        """Codes given for nobody this run, with the reason: a count of them is "n/a", never 0."""
        out: dict[Code, str] = {}
        for u in self.unavailable:
            if u.scope == "all":
                out.setdefault(u.code, u.reason)
        return out
