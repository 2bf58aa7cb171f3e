"""The findings vocabulary shared by rules, reports, history, Neo4j export and notebooks.

Codes are a public contract (see the design doc); so are the CSV columns built from these fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Code(StrEnum):
    IDP_DISABLED_ACTIVE = "idp_disabled_active"
    NOT_IN_IDP = "not_in_idp"
    PARTIALLY_OFFBOARDED = "partially_offboarded"
    DORMANT = "dormant"
    DUPLICATE_ACCOUNT = "duplicate_account"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# findings.csv starts with these columns, in this order (design doc contract); DataFrames follow it too.
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

SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


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
    """A verdict we refuse to give because a source it depends on did not complete."""

    code: Code
    scope: str  # "all" or a portal/IdP name
    reason: str


@dataclass
class FindingSet:
    run_id: int
    findings: list[Finding]
    unavailable: list[Unavailable] = field(default_factory=list)
