"""Report fixtures: a realistic review (3 portals, 2 IdPs, one IdP incomplete) and one of hostile strings.

Everything is built deterministically from plain data, the way the CLI fills a `ReportInput` from a snapshot.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cdp import Browser, find_chromium

from crawler.store import QuarantineReason, QuarantineSummary, RunInfo, SourceCoverage
from graph.model import Code, Finding, FindingSet, Severity, Unavailable
from graph.reports import ReportInput, RunDiff

RUN = RunInfo(
    id=42, started_at="2025-11-03T06:00:04Z", finished_at="2025-11-03T06:41:37Z", status="incomplete"
)

ENTRA_ERROR = "HTTP 503 Service Unavailable on GET /v1.0/users (page 14) after 5 retries"


def _coverage() -> list[SourceCoverage]:
    return [
        SourceCoverage(
            source="emea",
            kind="learnupon",
            complete=True,
            requests=655,
            throttled=11,
            retries=11,
            records=27_902,
            notes=["enrollment counts cross-checked: 6 users re-fetched"],
        ),
        SourceCoverage(
            source="amer",
            kind="learnupon",
            complete=True,
            requests=412,
            throttled=3,
            retries=3,
            records=18_240,
        ),
        SourceCoverage(
            source="apac",
            kind="learnupon",
            complete=True,
            requests=128,
            records=3_115,
            quarantined=2,
            notes=["2 user records quarantined: missing id"],
        ),
        SourceCoverage(source="okta", kind="okta", complete=True, requests=36, records=8_412, quarantined=4),
        SourceCoverage(
            source="entra",
            kind="entra",
            complete=False,
            error=ENTRA_ERROR,
            requests=19,
            throttled=2,
            retries=5,
            records=1_300,
            notes=["stopped after the retry budget; 1,300 users read before the failure"],
        ),
    ]


SECONDMENT = (
    "status 'Secondment' is not in the status vocabulary (active_values/disabled_values/not_activated_values)"
)
QUARANTINE = {
    "apac": QuarantineSummary(
        count=2, reasons=[QuarantineReason("id: Field required", 2, ["record #3", "record #9"])]
    ),
    "okta": QuarantineSummary(
        count=4,
        reasons=[
            QuarantineReason(SECONDMENT, 3, ["row 4 (k.osei@acme.com)", "row 9 (l.chen@acme.com)", "row 12"]),
            QuarantineReason("no email in column 'Work Email'", 1, ["row 17"]),
        ],
    ),
}

UNAVAILABLE = [
    Unavailable(
        Code.NOT_IN_IDP,
        "all",
        "IdP 'entra' did not complete: an account missing from a partial listing is not proof it is absent",
    ),
    Unavailable(
        Code.IDP_DISABLED_ACTIVE,
        "entra",
        "people known only to 'entra' cannot be judged until its listing completes",
    ),
]

PEOPLE = [
    ("Dana", "Whitfield"), ("Marcus", "Oyelaran"), ("Priya", "Raman"), ("Tomás", "Etxeberria"),
    ("Hannah", "Lindqvist"), ("Kenji", "Watanabe"), ("Sofia", "Marchetti"), ("Owen", "Gallagher"),
    ("Amara", "Nwosu"), ("Lukas", "Brandt"), ("Chloé", "Dubois"), ("Rahul", "Mehta"),
    ("Ingrid", "Solberg"), ("Mateo", "Alvarez"), ("Yara", "Haddad"), ("Felix", "Novak"),
    ("Grace", "O'Connell"), ("Wei", "Zhang"), ("Nadia", "Petrova"), ("Samuel", "Adeyemi"),
    ("Elena", "Kowalski"), ("Jonas", "Berg"), ("Aisha", "Khan"), ("Diego", "Santos"),
    ("Freya", "Holm"), ("Ravi", "Iyer"), ("Lena", "Vogel"), ("Tariq", "Mansour"),
    ("Mia", "Jensen"), ("Noah", "Fischer"),
]  # fmt: skip
PORTALS = ("emea", "amer", "apac")
GROUPS = {
    "emea": ["EMEA Sales", "Partner Enablement", "Compliance 2025", "Managers"],
    "amer": ["Americas Support", "Onboarding", "Compliance 2025", "Field Engineering"],
    "apac": ["APAC Sales", "Product Training", "Compliance 2025"],
}
# code, count, base severity
PLAN = [
    (Code.IDP_DISABLED_ACTIVE, 13, Severity.HIGH),
    (Code.DORMANT, 8, Severity.LOW),
    (Code.PARTIALLY_OFFBOARDED, 5, Severity.MEDIUM),
    (Code.DUPLICATE_ACCOUNT, 4, Severity.LOW),
]
RAISE = {Severity.LOW: Severity.MEDIUM, Severity.MEDIUM: Severity.HIGH, Severity.HIGH: Severity.CRITICAL}


def _day(n: int) -> str:
    month, day = (9, n) if n <= 30 else (10, n - 30)
    return f"2025-{month:02d}-{day:02d}T{8 + n % 9:02d}:{(n * 7) % 60:02d}:00Z"


def _findings() -> list[Finding]:
    findings: list[Finding] = []
    i = 0
    for code, count, severity in PLAN:
        for _ in range(count):
            first, last = PEOPLE[i % len(PEOPLE)]
            portal = PORTALS[(i * 2 + i // 3) % 3]
            user_type = "admin" if i % 7 == 3 else "manager" if i % 5 == 4 else "learner"
            sev = RAISE.get(severity, severity) if user_type != "learner" else severity
            domain = "northwind-contractors.com" if i % 6 == 5 else "acme.com"
            local = f"{first}.{last}".lower().replace("'", "").replace("á", "a").replace("é", "e")
            email = f"{local}@{domain}"
            idp = "okta" if i % 4 else "okta;entra"
            evidence: dict[str, Any] = {"name": f"{first} {last}"}
            if code == Code.IDP_DISABLED_ACTIVE:
                evidence["identities"] = [
                    {
                        "idp": "okta",
                        "idp_id": f"00u{i:04d}k2xQ9",
                        "status": "disabled",
                        "raw_status": "DEPROVISIONED" if i % 2 else "SUSPENDED",
                        "status_changed_at": _day(1 + i),
                        "last_login": _day(i),
                    }
                ]
                if idp == "okta;entra":
                    evidence["identities"].append(
                        {
                            "idp": "entra",
                            "idp_id": f"7f3c{i:04d}-9b1e-4c55-a0d2-5e8f{i:08d}",
                            "status": "disabled",
                            "raw_status": "accountEnabled=false",
                            "status_changed_at": _day(2 + i),
                            "last_login": _day(i),
                        }
                    )
                status = "disabled"
            elif code == Code.PARTIALLY_OFFBOARDED:
                other = PORTALS[(PORTALS.index(portal) + 1) % 3]
                evidence["other_accounts"] = [
                    {"portal": other, "learnupon_user_id": 90_000 + i, "enabled": False}
                ]
                status = "active"
            else:
                status = "active"
            evidence["last_sign_in_at"] = None if i % 9 == 2 else _day(i % 20 + 1)
            evidence["sign_in_count"] = (i * 37) % 300
            evidence["groups"] = GROUPS[portal][: 1 + i % 3]
            evidence["enrollments"] = {"total": 4 + i % 11, "completed": 2 + i % 7, "in_progress": i % 4}
            if code == Code.DUPLICATE_ACCOUNT:
                evidence["accounts"] = [
                    {"learnupon_user_id": 50_000 + i, "email": email},
                    {"learnupon_user_id": 60_000 + i, "email": email.capitalize()},
                ]
            findings.append(
                Finding(
                    code=code,
                    severity=sev,
                    email=email,
                    person=email.casefold(),
                    portal=portal,
                    learnupon_user_id=None if i == 17 else 10_000 + (i * 7919) % 9_000,
                    user_type=user_type,
                    idp=idp,
                    idp_status=status if idp == "okta" else f"{status};{status}",
                    evidence=evidence,
                )
            )
            i += 1
    return findings


def build_realistic() -> ReportInput:
    findings = _findings()
    first_seen = {f.id: _day(1 + n % 40) for n, f in enumerate(findings)}
    new = [f.id for n, f in enumerate(findings) if n % 8 == 1]
    diff = RunDiff(
        previous_run_id=41,
        new=new,
        resolved=[
            {
                "finding_id": "9c1d2e3f4a5b6c7d",
                "code": "idp_disabled_active",
                "email": "r.moss@acme.com",
                "portal": "emea",
            },
            {
                "finding_id": "1a2b3c4d5e6f7a8b",
                "code": "dormant",
                "email": "j.ortiz@acme.com",
                "portal": "amer",
            },
            "0f1e2d3c4b5a6978",
        ],
        not_rechecked=["aa11bb22cc33dd44", "ee55ff6677889900"],
    )
    return ReportInput(
        run=RUN,
        coverage=_coverage(),
        findings=FindingSet(run_id=RUN.id, findings=findings, unavailable=list(UNAVAILABLE)),
        first_seen=first_seen,
        diff=diff,
        collisions=2,
        unmatchable=5,
        title="Acme LearnUpon access review",
        quarantine=dict(QUARANTINE),
    )


HOSTILE_NAME = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
HOSTILE_GROUP = "<img src='https://evil.invalid/pixel.png'>"


def build_hostile() -> ReportInput:
    evil = [
        ('=HYPERLINK("https://evil.invalid","click")@acme.com', "=cmd|' /C calc'!A0"),
        ("+1-555-0100@acme.com", "+SUM(1,2)"),
        ("-2+3@acme.com", "-2+3"),
        ("@SUM(A1:A9)@acme.com", "@SUM(A1:A9)"),
        ("\ttab@acme.com", "\t=1+1"),
        ("\rcr@acme.com", "\r=1+1"),
        ("pipe|and\nnewline@acme.com", "a | b\nc"),
    ]
    findings = []
    for n, (email, group) in enumerate(evil):
        findings.append(
            Finding(
                code=Code.IDP_DISABLED_ACTIVE,
                severity=Severity.HIGH,
                email=email,
                person=email.casefold(),
                portal="emea" if n % 2 else "<b>amer</b>",
                learnupon_user_id=100 + n,
                user_type="=learner" if n == 0 else "learner",
                idp="okta",
                idp_status="disabled",
                evidence={
                    "name": HOSTILE_NAME if n == 0 else f"Person {n}",
                    "groups": [group, HOSTILE_GROUP],
                    "note": "</script><script>window.__pwned = 3</script>",
                },
            )
        )
    coverage = [
        SourceCoverage(source="emea", kind="learnupon", complete=True, requests=3, records=7),
        SourceCoverage(
            source="okta", kind="okta", complete=True, requests=1, records=7, quarantined=1,
            notes=["<script>window.__pwned = 4</script>"],
        ),
    ]  # fmt: skip
    quarantine = {
        "okta": QuarantineSummary(
            1,
            [
                QuarantineReason(
                    "<script>window.__pwned = 6</script>", 1, ['<img src=x onerror="window.__pwned = 7">']
                )
            ],
        )
    }
    return ReportInput(
        run=RunInfo(
            id=7, started_at="2025-11-01T00:00:00Z", finished_at="2025-11-01T00:05:00Z", status="complete"
        ),
        coverage=coverage,
        findings=FindingSet(run_id=7, findings=findings),
        title="<script>window.__pwned = 5</script> review",
        quarantine=quarantine,
    )


@pytest.fixture
def realistic_report() -> ReportInput:
    return build_realistic()


@pytest.fixture
def hostile_report() -> ReportInput:
    return build_hostile()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium. In CI (CI=true) a missing browser fails the test; elsewhere it is skipped."""
    executable = find_chromium()
    if executable is None:
        message = (
            "chromium not found: apt-get install chromium (or set IDGRAPH_CHROMIUM to a Chromium binary)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    async with Browser(executable) as running:
        yield running
