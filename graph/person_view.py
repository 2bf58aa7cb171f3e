"""The per-person view of a run: a person's accounts across every portal, with one combined verdict.

A reviewer acts per person ("Bob left: close everything he has"), while findings are per account. The
verdict of a person is the most severe finding still open on any of their accounts, with every code
involved; a person whose findings are all accepted under exceptions shows as accepted. Every account of
the person is listed — the disabled ones and those without a finding too — so the view shows where the
offboarding stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crawler.vocabulary import SEVERITY_ORDER
from graph.decisions import ACCEPTED, OPEN, FindingReview
from graph.model import Finding
from graph.resolve import Resolution


@dataclass(frozen=True)
class PersonView:
    person: str
    verdict: str  # "critical", "high", … (the worst open finding) or "accepted"
    codes: tuple[str, ...]  # the open findings' codes (accepted ones when nothing is open)
    idp_status: str | None
    accounts: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        enabled = sum(1 for a in self.accounts if a["enabled"])
        portals = sorted({a["portal"] for a in self.accounts if a["enabled"]})
        where = f"{enabled} enabled account(s) in {', '.join(portals)}" if portals else "no enabled account"
        return f"{self.verdict}: {', '.join(self.codes)} — {where}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "verdict": self.verdict,
            "codes": list(self.codes),
            "idp_status": self.idp_status,
            "summary": self.summary,
            "accounts": [dict(a) for a in self.accounts],
        }


def people_view(
    resolution: Resolution, findings: Iterable[Finding], states: Mapping[str, FindingReview]
) -> list[PersonView]:
    """One view per person with an open or accepted finding, most severe first, then by person."""
    by_person: dict[str, list[Finding]] = {}
    for f in findings:
        state = states.get(f.id, FindingReview(OPEN)).state
        if f.person and state in (OPEN, ACCEPTED):
            by_person.setdefault(f.person, []).append(f)
    views = []
    for key, found in by_person.items():
        person = resolution.persons.get(key)
        open_ = [f for f in found if states.get(f.id, FindingReview(OPEN)).state == OPEN]
        shown = open_ or found
        worst = min(shown, key=lambda f: SEVERITY_ORDER[f.severity]).severity.value
        per_account: dict[tuple[str | None, int | None], list[str]] = {}
        for f in found:
            state = states.get(f.id, FindingReview(OPEN)).state
            per_account.setdefault((f.portal, f.learnupon_user_id), []).append(
                f.code.value if state == OPEN else f"{f.code.value} (accepted)"
            )
        accounts = sorted(person.accounts if person else [], key=lambda a: (a.portal, a.id))
        statuses = sorted({f"{i.source}:{i.status}" for i in person.identities}) if person else []
        views.append(
            PersonView(
                person=key,
                verdict=worst if open_ else ACCEPTED,
                codes=tuple(sorted({f.code.value for f in shown})),
                idp_status=";".join(statuses) or None,
                accounts=tuple(
                    {
                        "portal": a.portal,
                        "learnupon_user_id": a.id,
                        "email": a.email,
                        "enabled": a.enabled,
                        "user_type": a.user_type,
                        "last_sign_in_at": a.last_sign_in_at,
                        "findings": sorted(per_account.get((a.portal, a.id), [])),
                    }
                    for a in accounts
                ),
            )
        )
    rank = {ACCEPTED: len(SEVERITY_ORDER)} | {s.value: r for s, r in SEVERITY_ORDER.items()}
    return sorted(views, key=lambda v: (rank[v.verdict], v.person))
