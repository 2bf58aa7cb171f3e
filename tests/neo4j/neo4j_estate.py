"""A hand-made estate that produces every finding code, written with the graph tests' snapshot builder.

The builder (`RunBuilder` in tests/graph/conftest.py) writes a run the way the crawler does, through
`SnapshotStore.write_page`; it is imported by path, not copied. Two portals (emea, apac), two IdPs (okta,
entra), managed domain acme.com:

    ana   okta active; enabled in emea and apac                       -> no finding (several portals)
    bob   okta SUSPENDED + entra disabled; emea admin, apac learner    -> idp_disabled_active (critical, high)
          (disabled 30 days before the run; apac signed in 5 days before) -> active_after_offboarding (apac)
    mia   okta DEPROVISIONED; emea manager                             -> idp_disabled_active (critical)
    cara  in no IdP; emea                                              -> not_in_idp
    dan   okta active; disabled in emea, enabled in apac               -> partially_offboarded (apac)
    eve   okta active; two enabled emea accounts (case variants)       -> duplicate_account x2
    fay   okta active; last sign-in 400 days before the run            -> dormant
    gus   okta active; never signed in, created 500 days before        -> dormant (never)
    hal   okta active; never signed in, created 3 days before          -> nothing
    col   two okta identities claim col@acme.com                       -> no verdict (collision)
    ext   learner@customer.example, recent                             -> nothing (not a managed domain)
    (a username-only account, an identity with no account, an identity with no address)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from by_path import run_builder

from crawler.store import SnapshotStore

MANAGED_DOMAINS = ("acme.com",)
PORTALS = ["emea", "apac"]
IDPS = ["okta", "entra"]
START = "2026-06-01T00:00:00Z"


RunBuilder = run_builder()

# (portal, id, email, fields) — last_sign_in_at / created_at are days before the run start (None: never)
ACCOUNTS: list[tuple[str, int, str | None, dict[str, Any]]] = [
    ("emea", 1, "ana@acme.com", {}),
    ("emea", 2, "Bob@acme.com", {"user_type": "admin", "seen": 40}),
    ("emea", 3, "mia@acme.com", {"user_type": "manager", "seen": 40}),
    ("emea", 4, "cara@acme.com", {}),
    ("emea", 5, "dan@acme.com", {"enabled": False}),
    ("emea", 6, "eve@acme.com", {}),
    ("emea", 7, "Eve@Acme.com", {}),
    ("emea", 8, "fay@acme.com", {"seen": 400}),
    ("emea", 9, "gus@acme.com", {"seen": None, "created": 500}),
    ("emea", 10, "hal@acme.com", {"seen": None, "created": 3}),
    ("emea", 11, "col@acme.com", {}),
    ("emea", 12, "learner@customer.example", {}),
    ("emea", 13, None, {"username": "kiosk-7"}),
    ("apac", 101, "ana@acme.com", {}),
    ("apac", 102, "bob@acme.com", {}),
    ("apac", 105, "dan@acme.com", {}),
]
GROUPS = {
    "emea": {10: ("Sales", [1, 2]), 11: ("Admins", [2])},
    "apac": {10: ("Sales", [102]), 11: ("Admins", [])},
}
COURSES = {1: "Security Basics", 2: "Code of Conduct"}
# (portal, user, course, status, fields)
ENROLLMENTS: list[tuple[str, int, int, str, dict[str, Any]]] = [
    ("emea", 2, 1, "completed", {"percentage": 100.0, "enrolled": 300, "completed": 200}),
    ("emea", 2, 2, "in_progress", {"percentage": 40.0, "enrolled": 20}),
    ("emea", 1, 1, "not_started", {"enrolled": 10}),
    ("apac", 102, 2, "passed", {"percentage": 90.0}),
]
# (idp, id, addresses, status)
IDENTITIES: list[tuple[str, str, tuple[str, ...], str, dict[str, Any]]] = [
    ("okta", "00u-ana", ("ana@acme.com",), "active", {}),
    ("okta", "00u-bob", ("bob@acme.com",), "disabled", {}),
    ("okta", "00u-mia", ("mia@acme.com",), "deleted", {"raw_status": "DEPROVISIONED"}),
    ("okta", "00u-dan", ("dan@acme.com",), "active", {}),
    ("okta", "00u-eve", ("eve@acme.com",), "active", {}),
    ("okta", "00u-fay", ("fay@acme.com",), "active", {}),
    ("okta", "00u-gus", ("gus@acme.com",), "active", {}),
    ("okta", "00u-hal", ("hal@acme.com",), "active", {}),
    ("okta", "00u-col1", ("col@acme.com",), "active", {}),
    ("okta", "00u-col2", ("col.two@acme.com", "col@acme.com"), "disabled", {}),
    ("okta", "00u-ivy", ("ivy@acme.com",), "active", {}),
    ("okta", "00u-none", (), "not_activated", {}),
    ("entra", "e-bob", ("BOB@acme.com", "robert@acme.com"), "disabled", {"raw_status": "false"}),
]


@dataclass(frozen=True)
class Omit:
    """What a run of the estate leaves out: accounts (with their memberships and enrollments), groups,
    courses (portal, id) and identities (idp, id)."""

    accounts: Collection[tuple[str, int]] = ()
    groups: Collection[tuple[str, int]] = ()
    courses: Collection[tuple[str, int]] = ()
    identities: Collection[tuple[str, str]] = ()


def write_estate(
    store: SnapshotStore,
    omit: Omit = Omit(),
    *,
    failed: Mapping[str, str] | None = None,
    started_at: str = START,
) -> int:
    """One run of the estate; sources named in `failed` are recorded incomplete with that error."""
    run = RunBuilder(store, PORTALS, IDPS, started_at, dict(failed or {}))
    accounts = set()
    for portal, user_id, email, fields in ACCOUNTS:
        if (portal, user_id) in omit.accounts:
            continue
        accounts.add((portal, user_id))
        fields = dict(fields)
        seen, created = fields.pop("seen", 5), fields.pop("created", 700)
        fields["last_sign_in_at"] = None if seen is None else run.ago(seen)
        fields["created_at"] = run.ago(created)
        run.user(portal, user_id, email, **fields)
    for portal, groups in GROUPS.items():
        for group_id, (title, members) in groups.items():
            if (portal, group_id) not in omit.groups:
                kept = [m for m in members if (portal, m) in accounts]
                run.group(portal, group_id, f"{portal} {title}", kept)
        for course_id, name in COURSES.items():
            if (portal, course_id) not in omit.courses:
                run.course(portal, course_id, name)
    for portal, user_id, course_id, status, fields in ENROLLMENTS:
        if (portal, user_id) in accounts and (portal, course_id) not in omit.courses:
            dates = {
                "date_enrolled": run.ago(fields["enrolled"]) if "enrolled" in fields else None,
                "date_completed": run.ago(fields["completed"]) if "completed" in fields else None,
            }
            run.enroll(portal, user_id, course_id, status, percentage=fields.get("percentage"), **dates)
    for idp, idp_id, addresses, status, fields in IDENTITIES:
        if (idp, idp_id) not in omit.identities:
            changed = {} if status == "active" else {"status_changed_at": run.ago(30)}
            run.identity(idp, idp_id, *addresses, status=status, **changed, **fields)
    return run.finish()
