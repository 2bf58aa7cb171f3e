"""The findings: one small pure function per code, over one run's resolved people and its coverage.

Rules read the resolution (plain objects, not the networkx graph) so that a million accounts are judged
in seconds; the graph is for exploring, the rules are for verdicts. A verdict is given exactly when the
facts it needs were read (the table in `FACTS`): an account record that was read is a fact, whatever
happened to the rest of its listing, so a portal whose users listing broke off still gets verdicts on
every account read, and a `RecallGap` says findings there may be missing. The IdP verdicts need every
IdP's identities read completely (an active identity could hide in an unread IdP): otherwise they are
`Unavailable` for everyone. Dates are measured against the run's start, so re-reading a snapshot
tomorrow gives the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crawler.config import ExcludeRule, ReviewConfig
from crawler.coverage import IDENTITIES, USERS, SourceCoverage
from crawler.vocabulary import UNKNOWN_USER_TYPE, is_disabled, is_privileged
from graph.model import Code, Finding, FindingSet, RecallGap, Severity, Unavailable
from graph.resolve import Account, IdentityRecord, Match, Person, Resolution

BASE_SEVERITY = {
    Code.IDP_DISABLED_ACTIVE: Severity.HIGH,
    Code.PARTIALLY_OFFBOARDED: Severity.HIGH,
    Code.NOT_IN_IDP: Severity.MEDIUM,
    Code.DUPLICATE_ACCOUNT: Severity.LOW,
    Code.DORMANT: Severity.LOW,
    Code.ACTIVE_AFTER_OFFBOARDING: Severity.CRITICAL,
}
_RAISED = {
    Severity.LOW: Severity.MEDIUM,
    Severity.MEDIUM: Severity.HIGH,
    Severity.HIGH: Severity.CRITICAL,
    Severity.CRITICAL: Severity.CRITICAL,
}

# What each verdict needs read, for the README and for history (a finding is resolved only when a later
# run read every one of these again). "account": the account's own record; "counterparts": the other
# accounts the finding names; "idps": every IdP's identities, completely.
FACTS: dict[Code, tuple[str, ...]] = {
    Code.IDP_DISABLED_ACTIVE: ("account", "idps"),
    Code.NOT_IN_IDP: ("account", "idps"),
    Code.PARTIALLY_OFFBOARDED: ("account", "counterparts"),
    Code.DORMANT: ("account",),
    Code.DUPLICATE_ACCOUNT: ("account", "counterparts"),
    # the account's record (its last sign-in) and every IdP's identities (their status-change dates)
    Code.ACTIVE_AFTER_OFFBOARDING: ("account", "idps"),
}
IDPS_FACT = "idps"
EVIDENCE_COLLECTIONS = ("memberships", "enrollments")  # evidence only: no verdict needs them

AccountKey = tuple[str, int]
Verdicts = tuple[list[Finding], list[Unavailable]]


@dataclass(frozen=True)
class ReviewSettings:
    """The `[review]` part of the config: what the rules need beyond the snapshot, and what the review
    layer applies after them (exclusion rules, the longest exception), saved with each run alike."""

    managed_domains: tuple[str, ...] = ()
    dormant_days: int = 90
    exclude: tuple[ExcludeRule, ...] = ()
    max_exception_days: int = 365

    def __post_init__(self) -> None:
        domains = tuple(sorted({d.strip().casefold().lstrip("@") for d in self.managed_domains if d.strip()}))
        object.__setattr__(self, "managed_domains", domains)
        if self.dormant_days < 1:
            raise ValueError("dormant_days must be at least 1")

    @classmethod
    def from_config(cls, review: ReviewConfig) -> ReviewSettings:
        """The settings a config's `[review]` table names."""
        return cls(
            tuple(review.managed_domains),
            review.dormant_days,
            tuple(review.exclude),
            review.max_exception_days,
        )

    def review_rules(self) -> dict[str, Any]:
        """The review layer's part, as saved with a run (`graph.history.save_review_settings`)."""
        return {
            "exclude": [r.model_dump(mode="json") for r in self.exclude],
            "max_exception_days": self.max_exception_days,
        }


def account_fact(portal: str, user_id: int) -> str:
    return f"account:{portal}:{user_id}"


@dataclass(frozen=True)
class Sources:
    """What the run read. portals: name -> None when its users listing is complete, else why not;
    idps: name -> None when its identities are complete, else why not; evidence gaps per portal."""

    portals: Mapping[str, str | None]
    idps: Mapping[str, str | None]
    evidence_gaps: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # casefolded address -> [(IdP, reason)] of identities an IdP listed but we could not read (quarantined):
    # evidence that the person exists, with a status nobody knows
    quarantined: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def from_coverage(
        cls,
        coverage: Iterable[SourceCoverage],
        resolution: Resolution,
        quarantined: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> Sources:
        """A source with records but no coverage row is incomplete: nothing says it finished."""
        portals: dict[str, str | None] = {}
        idps: dict[str, str | None] = {}
        evidence: dict[str, list[str]] = {}
        for c in coverage:
            if c.kind == "learnupon":
                portals[c.source] = c.collection_gap(USERS)
                gaps = [g for name in EVIDENCE_COLLECTIONS if c.collections and (g := c.collection_gap(name))]
                if gaps:
                    evidence[c.source] = gaps
            else:
                idps[c.source] = c.collection_gap(IDENTITIES)
        for portal in resolution.portals:
            portals.setdefault(portal, "no coverage recorded for this source")
        for idp in resolution.idps:
            idps.setdefault(idp, "no coverage recorded for this source")
        unread = {
            address: [(source, reason) for source, reason in entries if source in idps]
            for address, entries in (quarantined or {}).items()
        }
        return cls(portals, idps, evidence, {a: e for a, e in unread.items() if e})

    def portal_gap(self, portal: str) -> str | None:
        """Why `portal`'s users were not all read, or None when they were."""
        reason = self.portals.get(portal, "no coverage recorded for this source")
        return None if reason is None else f"portal {portal}: {reason}"

    def idp_gap(self) -> str | None:
        """Why IdP verdicts cannot be given for anyone this run, or None when they can."""
        if not self.idps:
            return "no IdP configured: nobody's IdP status is known"
        missing = [f"{name} ({reason})" for name, reason in sorted(self.idps.items()) if reason is not None]
        return f"IdP crawl incomplete: {'; '.join(missing)}" if missing else None


@dataclass(frozen=True)
class AccountDetails:
    """Groups (titles) and enrollment counts by status, for the accounts that have findings."""

    groups: Mapping[AccountKey, Sequence[str]] = field(default_factory=dict)
    enrollments: Mapping[AccountKey, Mapping[str, int]] = field(default_factory=dict)
    gaps: Mapping[str, Sequence[str]] = field(default_factory=dict)  # portal -> evidence not fully read


@dataclass(frozen=True)
class RuleInput:
    run_id: int
    run_started_at: datetime
    resolution: Resolution
    sources: Sources
    settings: ReviewSettings = ReviewSettings()


def parse_time(value: str | None) -> datetime | None:
    """Snapshot timestamps are ISO 8601; a naive one is taken as UTC, a garbled one as unknown."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def severity(code: Code, account: Account) -> Severity:
    """Admins and managers can do more with a live account, so their findings rank one level higher; so
    does an account whose type is unknown (fail-closed: it may be an admin)."""
    base = BASE_SEVERITY[code]
    return _RAISED[base] if account.privileged else base


# --- shared helpers -------------------------------------------------------------------------------------
def _recall_gaps(inp: RuleInput, code: Code) -> list[RecallGap]:
    """Portals whose users were not all read: findings there may be missing. A finding that names
    accounts in two portals may be missing on every portal when any portal's users were not all read."""
    gaps = []
    for portal in sorted(inp.sources.portals):
        reason = inp.sources.portal_gap(portal)
        if reason is None:
            continue
        gaps.append(RecallGap(code, portal, f"{reason}; findings on {portal} may be missing"))
        if "counterparts" in FACTS[code]:
            gaps += [
                RecallGap(code, other, f"{reason}; {code.value} findings whose counterpart is on {portal} "
                         "may be missing")
                for other in sorted(inp.sources.portals)
                if other != portal
            ]  # fmt: skip
    return gaps


def _live(inp: RuleInput) -> Iterator[Account]:
    """Enabled accounts that were read: each is a fact, whether or not its listing finished."""
    return (a for a in inp.resolution.accounts if a.enabled)


def _person(inp: RuleInput, account: Account) -> Person | None:
    return inp.resolution.persons.get(account.person) if account.person else None


def _collision_gap(inp: RuleInput, code: Code, account: Account) -> Unavailable:
    parts = [
        f"{len(c.identities)} {c.idp} identities ({', '.join(c.identities)})"
        for c in inp.resolution.collisions_for(account.email_key or "")
    ]
    reason = f"{account.email_key} is claimed by {' and '.join(parts)}; no IdP verdict for this account"
    return Unavailable(code, account.node_id, reason)


def _quarantine_gap(inp: RuleInput, code: Code, account: Account) -> Unavailable | None:
    """An IdP verdict the person's quarantined identity could change (its status is unknown: maybe active)."""
    quarantined = inp.sources.quarantined
    if not quarantined:
        return None
    addresses = {account.email_key} if account.email_key else set()
    person = _person(inp, account)
    if person is not None and account.match is Match.MATCHED:
        addresses |= {a.key for i in person.identities for a in i.addresses}
    hits = sorted({entry for address in addresses for entry in quarantined.get(address, ())})
    if not hits:
        return None
    why = "; ".join(f"{source}: {reason}" for source, reason in hits)
    reason = f"quarantined identity ({why}): its status is unknown, so no IdP verdict for {account.email_key}"
    return Unavailable(code, account.node_id, reason)


def _finding(
    inp: RuleInput, code: Code, account: Account, counterparts: Sequence[Account] = (), **extra: Any
) -> Finding:
    """A finding with the evidence every reviewer asks for; rule-specific facts go in `extra`.

    `counterparts` are the other accounts the verdict rests on (they become facts it depends on).
    """
    person = _person(inp, account)
    identities = person.identities if person is not None and account.match is Match.MATCHED else []
    key = account.email_key or ""
    evidence: dict[str, Any] = {
        "match": account.match.value,
        "matched_address": key if account.match is Match.MATCHED else None,
        "identities": [
            {
                "idp": i.source,
                "idp_id": i.idp_id,
                "status": i.status,
                "raw_status": i.raw_status,
                "status_changed_at": i.status_changed_at,
                "matched_address": i.address_for(key),
                "primary_address": i.primary,
            }
            for i in identities
        ],
        "last_sign_in_at": account.last_sign_in_at,
        "created_at": account.created_at,
        "user_type": account.user_type,
        "username": account.username,
        **extra,
    }
    if account.match is Match.COLLISION:
        evidence["collisions"] = [c.as_dict() for c in inp.resolution.collisions_for(key)]
    if account.user_type == UNKNOWN_USER_TYPE:
        evidence["user_type_note"] = (
            "LearnUpon did not say this account's user type; it is ranked like an admin until someone checks"
        )
    elif is_privileged(account.user_type) and account.user_type not in ("admin", "manager"):
        evidence["user_type_note"] = (
            f"user type {account.user_type!r} is not one LearnUpon documents; ranked like an admin"
        )
    depends = [account_fact(account.portal, account.id)]
    depends += sorted(account_fact(c.portal, c.id) for c in counterparts)
    if IDPS_FACT in FACTS[code]:
        depends.append(IDPS_FACT)
    return Finding(
        code=code,
        severity=severity(code, account),
        email=account.email,
        person=account.person,
        portal=account.portal,
        learnupon_user_id=account.id,
        user_type=account.user_type,
        idp=";".join(i.source for i in identities) or None,
        idp_status=";".join(i.status for i in identities) or None,
        evidence=evidence,
        depends_on=tuple(depends),
    )


def _brief(account: Account) -> dict[str, Any]:
    return {
        "portal": account.portal,
        "learnupon_user_id": account.id,
        "email": account.email,
        "enabled": account.enabled,
        "user_type": account.user_type,
    }


# --- the rules --------------------------------------------------------------------------------------------
def idp_disabled_active(inp: RuleInput) -> Verdicts:
    """Enabled account; its person is known to the IdPs and disabled (or deleted) in every identity."""
    code = Code.IDP_DISABLED_ACTIVE
    unavailable: list[Unavailable] = []
    if gap := inp.sources.idp_gap():
        return [], [Unavailable(code, "all", gap)]
    findings = []
    for account in _live(inp):
        if account.match is Match.COLLISION:
            unavailable.append(_collision_gap(inp, code, account))
        elif (quarantined := _quarantine_gap(inp, code, account)) is not None:
            if account.match is Match.MATCHED:
                unavailable.append(quarantined)
        elif account.match is Match.MATCHED:
            person = _person(inp, account)
            if person and person.identities and all(is_disabled(i.status) for i in person.identities):
                disabled_at, _ = disabled_since(person.identities)
                dated = days_since_disabled(inp, disabled_at) if disabled_at is not None else {}
                findings.append(_finding(inp, code, account, **dated))
    return findings, unavailable


def disabled_since(identities: Sequence[IdentityRecord]) -> tuple[datetime | None, list[str]]:
    """When the IdPs let the person go — the latest status change, when the last IdP disabled them — and
    the IdPs that did not say when (then the moment is unknown, never guessed)."""
    changed = [(i, parse_time(i.status_changed_at)) for i in identities]
    undated = sorted({i.source for i, moment in changed if moment is None})
    if undated or not changed:
        return None, undated
    return max(moment for _, moment in changed if moment is not None), []


def days_since_disabled(inp: RuleInput, disabled_at: datetime) -> dict[str, Any]:
    """Whole days from the IdP disable to the run's start; a disable dated after the start (a clock ahead,
    or a change during the crawl) counts as 0 days, and the evidence says so."""
    days = (inp.run_started_at - disabled_at).days
    out: dict[str, Any] = {
        "idp_disabled_at": disabled_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "days_since_disabled": max(days, 0),
    }
    if days < 0:
        out["days_since_disabled_note"] = (
            "the IdP dates the disable after this run started; counted as 0 days"
        )
    return out


def active_after_offboarding(inp: RuleInput) -> Verdicts:
    """Enabled account that signed in to LearnUpon after the IdPs disabled its person: the person left,
    and someone still used the account. Needs every identity's status-change date: an IdP that does not
    say when it disabled the person leaves the verdict withheld for that account (never "not after")."""
    code = Code.ACTIVE_AFTER_OFFBOARDING
    if gap := inp.sources.idp_gap():
        return [], [Unavailable(code, "all", gap)]
    findings: list[Finding] = []
    unavailable: list[Unavailable] = []
    for account in _live(inp):
        if account.match is Match.COLLISION:
            unavailable.append(_collision_gap(inp, code, account))
            continue
        if account.match is not Match.MATCHED:
            continue
        if (quarantined := _quarantine_gap(inp, code, account)) is not None:
            unavailable.append(quarantined)
            continue
        person = _person(inp, account)
        if not (person and person.identities and all(is_disabled(i.status) for i in person.identities)):
            continue
        signed_in = parse_time(account.last_sign_in_at)
        if signed_in is None:
            continue  # never signed in (or no date LearnUpon gave): no use after offboarding to show
        disabled_at, undated = disabled_since(person.identities)
        if disabled_at is None:
            reason = (
                f"{', '.join(undated)} did not say when it disabled {account.email_key}: whether the "
                "account was used after offboarding is unknown"
            )
            unavailable.append(Unavailable(code, account.node_id, reason))
        elif signed_in > disabled_at:
            after = signed_in - disabled_at
            extra = {
                **days_since_disabled(inp, disabled_at),
                "signed_in_after_disable_days": round(after.total_seconds() / 86400, 2),
            }
            findings.append(_finding(inp, code, account, **extra))
    return findings, unavailable


def not_in_idp(inp: RuleInput) -> Verdicts:
    """Enabled account in a managed domain that no IdP knows — only said when every IdP was fully read."""
    code = Code.NOT_IN_IDP
    unavailable: list[Unavailable] = []
    domains = set(inp.settings.managed_domains)
    if gap := inp.sources.idp_gap():
        return [], [Unavailable(code, "all", gap)]
    if not domains:
        return [], [Unavailable(code, "all", "no managed_domains configured")]
    findings = []
    for account in _live(inp):
        if account.email_key is None or account.email_key.rpartition("@")[2] not in domains:
            continue
        if account.match is Match.COLLISION:
            unavailable.append(_collision_gap(inp, code, account))
        elif account.match is Match.NO_IDENTITY and (quarantined := _quarantine_gap(inp, code, account)):
            unavailable.append(quarantined)  # an IdP lists this address: the person is not absent
        elif account.match is Match.NO_IDENTITY:
            findings.append(_finding(inp, code, account, domain=account.email_key.rpartition("@")[2]))
    return findings, unavailable


def _several_accounts(inp: RuleInput) -> Iterator[list[Account]]:
    """The accounts of each person who has more than one: the only people the cross-account rules see."""
    for person in inp.resolution.persons.values():
        if len(person.accounts) >= 2:
            yield person.accounts


def partially_offboarded(inp: RuleInput) -> Verdicts:
    """One finding per enabled account whose person has a disabled account in another portal."""
    code = Code.PARTIALLY_OFFBOARDED
    findings = []
    for accounts in _several_accounts(inp):
        disabled = [a for a in accounts if not a.enabled]
        if not disabled:
            continue
        for account in accounts:
            if not account.enabled:
                continue
            elsewhere = [d for d in disabled if d.portal != account.portal]
            if elsewhere:
                findings.append(
                    _finding(inp, code, account, elsewhere, disabled_in=[_brief(d) for d in elsewhere])
                )
    return findings, []


def dormant(inp: RuleInput) -> Verdicts:
    """Enabled account without a sign-in for `dormant_days` before the run started (or never).

    A never-used account counts only if it is older than the cutoff (or its age is unknown): a learner
    invited last week is not dormant.
    """
    code = Code.DORMANT
    cutoff = inp.run_started_at - timedelta(days=inp.settings.dormant_days)
    extra: dict[str, Any] = {
        "dormant_days": inp.settings.dormant_days,
        "cutoff": cutoff.isoformat().replace("+00:00", "Z"),
    }
    findings = []
    for account in _live(inp):
        last = parse_time(account.last_sign_in_at)
        if last is None:
            created = parse_time(account.created_at)
            if created is None or created < cutoff:
                findings.append(_finding(inp, code, account, never_signed_in=True, **extra))
        elif last < cutoff:
            findings.append(_finding(inp, code, account, never_signed_in=False, **extra))
    return findings, []


def duplicate_account(inp: RuleInput) -> Verdicts:
    """One person with several *enabled* accounts in one portal: one finding per enabled account."""
    code = Code.DUPLICATE_ACCOUNT
    findings = []
    for person_accounts in _several_accounts(inp):
        by_portal: dict[str, list[Account]] = defaultdict(list)
        for account in person_accounts:
            by_portal[account.portal].append(account)
        for accounts in by_portal.values():
            enabled = [a for a in accounts if a.enabled]
            if len(enabled) < 2:
                continue
            for account in enabled:
                others = [a for a in accounts if a is not account]
                findings.append(
                    _finding(inp, code, account, others, other_accounts=[_brief(a) for a in others])
                )
    return findings, []


RULES: dict[Code, Callable[[RuleInput], Verdicts]] = {
    Code.IDP_DISABLED_ACTIVE: idp_disabled_active,
    Code.NOT_IN_IDP: not_in_idp,
    Code.PARTIALLY_OFFBOARDED: partially_offboarded,
    Code.DORMANT: dormant,
    Code.DUPLICATE_ACCOUNT: duplicate_account,
    Code.ACTIVE_AFTER_OFFBOARDING: active_after_offboarding,
}


def attach_details(findings: Iterable[Finding], details: AccountDetails) -> None:
    """Add groups and enrollment counts to each finding's evidence (evidence dicts are filled in place)."""
    for f in findings:
        if f.portal is None or f.learnupon_user_id is None:  # a person-level finding holds nothing itself
            f.evidence["groups"], f.evidence["enrollments"] = [], {}
        else:
            key = (f.portal, f.learnupon_user_id)
            f.evidence["groups"] = sorted(details.groups.get(key, ()))
            f.evidence["enrollments"] = dict(sorted(details.enrollments.get(key, {}).items()))
        if gaps := details.gaps.get(f.portal or ""):
            f.evidence["evidence_incomplete"] = list(gaps)


def evaluate(
    inp: RuleInput,
    details: AccountDetails | Callable[[Collection[AccountKey]], AccountDetails] | None = None,
) -> FindingSet:
    """Run every rule. `details` (or a loader called once with the finding accounts) fills the evidence."""
    findings: list[Finding] = []
    unavailable: list[Unavailable] = []
    recall: list[RecallGap] = []
    for code, rule in RULES.items():
        found, missing = rule(inp)
        findings += found
        unavailable += missing
        if not any(u.scope == "all" for u in missing):
            recall += _recall_gaps(inp, code)
    if details is not None:
        if callable(details):
            keys = {
                (f.portal, f.learnupon_user_id)
                for f in findings
                if f.portal is not None and f.learnupon_user_id is not None
            }
            details = details(keys)
        if inp.sources.evidence_gaps and not details.gaps:
            details = AccountDetails(details.groups, details.enrollments, inp.sources.evidence_gaps)
        attach_details(findings, details)
    return FindingSet(inp.run_id, findings, unavailable, recall)
