"""Remediation planning: one run's findings -> the plan document (`crawler.remediation.plan`).

Planning lives where findings live (graph/): it evaluates the run, selects the remediable findings a
reviewer asked for, and freezes each account's state as the crawl saw it, so `apply` (crawler/, which
never reads findings) can refuse an account that changed since.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.config import Config
from crawler.coverage import SourceCoverage
from crawler.remediation.plan import (
    REMEDIABLE,
    AccountState,
    Plan,
    PlanAction,
    PlanError,
    PlanFinding,
    PlanRun,
    PlanSelection,
    actor,
    describe_recheck,
    iso_timestamp,
    parse_timestamp,
)
from crawler.runs import RunInfo, utcnow
from graph.model import SEVERITY_ORDER, Code, Finding, FindingSet, Severity, Unavailable
from graph.rules import ReviewSettings

if TYPE_CHECKING:
    from graph.campaign import RunReview


def _plain(value: Any) -> Any:
    """Evidence as plain JSON values (enums, datetimes and tuples included), so the hash is reproducible."""
    return json.loads(json.dumps(value, default=str))


def _selected(f: Finding, code: Code, portals: Collection[str], severities: Collection[Severity]) -> bool:
    return (
        f.code is code
        and (not portals or f.portal in portals)
        and (not severities or f.severity in severities)
        and f.portal is not None
        and f.learnupon_user_id is not None
    )


def scope_portal(scope: str) -> str:
    """The source an `Unavailable` is about: its scope is "all", a source name or `account:{portal}:{id}`.

    With a portal filter, a gap is left out of the plan only when it is about another portal: IdP gaps
    and "all" concern every portal.
    """
    kind, _, rest = scope.partition(":")
    return rest.rpartition(":")[0] if kind == "account" and rest else scope


@dataclass(frozen=True)
class PlanBasis:
    """What a plan binds besides its selection: the run it was made from, the rules' settings, the
    portals' URLs, the key that seals it, and its lifetime. Both kinds of plan (by finding, by review
    decision) share it."""

    run: RunInfo
    snapshot: str
    coverage: tuple[SourceCoverage, ...]
    settings: ReviewSettings
    key: bytes = field(repr=False)  # the plan-signing key: never in a repr, a log or a traceback
    base_urls: Mapping[str, str]
    max_age_hours: int = 72
    created_at: str | None = None
    created_by: str | None = None

    @classmethod
    def of(
        cls, run: RunInfo, db: Path, coverage: Iterable[SourceCoverage], settings: ReviewSettings,
        key: bytes, config: Config,
    ) -> PlanBasis:  # fmt: skip
        """The basis for a plan of `run` in snapshot `db`, with URLs and lifetime from `config`."""
        return cls(
            run, db.name, tuple(coverage), settings, key, {p.name: p.base_url for p in config.portals},
            config.remediation.plan_max_age_hours,
        )  # fmt: skip


def build_plan(
    findings: FindingSet,
    accounts: Mapping[tuple[str, int], Mapping[str, Any]],
    *,
    run: RunInfo,
    snapshot: str,
    coverage: Iterable[SourceCoverage],
    code: Code,
    settings: ReviewSettings,
    key: bytes,
    base_urls: Mapping[str, str],
    max_age_hours: int = 72,
    portals: Collection[str] = (),
    severities: Collection[Severity] = (),
    created_at: str | None = None,
    created_by: str | None = None,
) -> Plan:
    """The plan for one finding code over one run's findings and its `lu_users` rows (keyed (portal, id)).

    Pure: no network, no file. Accounts without an email are left out (nothing could re-identify them at
    apply time) and accounts the snapshot already shows disabled are left out (nothing to do). `base_urls`
    (portal -> URL, from the config) must name every portal with an action: the plan binds them.
    """
    basis = PlanBasis(
        run, snapshot, tuple(coverage), settings, key, base_urls, max_age_hours, created_at, created_by
    )
    return plan_for_code(findings, accounts, basis, code, portals, severities)


def plan_for_code(
    findings: FindingSet,
    accounts: Mapping[tuple[str, int], Mapping[str, Any]],
    basis: PlanBasis,
    code: Code,
    portals: Collection[str] = (),
    severities: Collection[Severity] = (),
) -> Plan:
    """`build_plan` on a basis already made."""
    if code not in REMEDIABLE:
        raise PlanError(
            f"--finding: {code.value} is not remediable by disabling; "
            f"choose one of {', '.join(sorted(c.value for c in REMEDIABLE))}"
        )
    known = check_portals(basis.coverage, portals, basis.run)
    gaps = plan_gaps(findings.unavailable, {code}, portals, known)
    selection = PlanSelection(
        finding=code.value, portals=sorted(portals), severities=ordered_severities(severities)
    )
    chosen = [f for f in findings.findings if _selected(f, code, portals, severities)]
    return seal_plan(chosen, accounts, gaps, basis, selection)


def check_portals(coverage: Iterable[SourceCoverage], portals: Collection[str], run: RunInfo) -> set[str]:
    known = {c.source for c in coverage if c.kind == "learnupon"}
    unknown = sorted(set(portals) - known)
    if unknown:
        raise PlanError(f"--portal: run {run.id} has no portal named {', '.join(unknown)}")
    return known


def plan_gaps(
    unavailable: Iterable[Unavailable], codes: Collection[Code], portals: Collection[str], known: set[str]
) -> list[dict[str, str]]:
    """The run's gaps a plan of `codes` over `portals` must show: every gap of those codes, except one
    about another portal of the run (`known`) when a portal filter is set."""
    return [
        {"code": u.code.value, "scope": u.scope, "reason": u.reason}
        for u in unavailable
        if u.code in codes and (not portals or scope_portal(u.scope) not in known - set(portals))
    ]


def ordered_severities(severities: Collection[Severity]) -> list[str]:
    return sorted((s.value for s in severities), key=lambda s: SEVERITY_ORDER[Severity(s)])


def seal_plan(
    chosen: Iterable[Finding],
    accounts: Mapping[tuple[str, int], Mapping[str, Any]],
    unavailable: list[dict[str, str]],
    basis: PlanBasis,
    selection: PlanSelection,
    annotations: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """The keyed plan disabling the accounts of `chosen` findings (one action per account: its first
    finding in `chosen` order). `annotations` (finding id -> facts) join that finding's evidence."""
    actions: dict[tuple[str, int], PlanAction] = {}
    for f in chosen:
        portal, user_id = f.portal, f.learnupon_user_id
        if portal is None or user_id is None or (portal, user_id) in actions:
            continue
        row = accounts.get((portal, user_id))
        email = (row or {}).get("email") or f.email
        if row is None or not email or not row["enabled"]:
            continue
        evidence = {**f.evidence, **(annotations or {}).get(f.id, {})}
        actions[(portal, user_id)] = PlanAction(
            portal=portal,
            user_id=user_id,
            email=email,
            finding=PlanFinding(
                code=f.code,
                id=f.id,
                severity=f.severity,
                person=f.person,
                idp=f.idp,
                idp_status=f.idp_status,
                evidence=_plain(evidence),
            ),
            state=AccountState(
                enabled=bool(row["enabled"]),
                email=row.get("email"),
                username=row.get("username"),
                first_name=row.get("first_name"),
                last_name=row.get("last_name"),
                user_type=row.get("user_type"),
                last_sign_in_at=row.get("last_sign_in_at"),
                updated_at=row.get("updated_at"),
                observed_at=basis.run.started_at,
            ),
        )
    ordered = sorted(actions.values(), key=lambda a: (a.portal, a.user_id))
    unavailable = sorted(unavailable, key=lambda u: (u["scope"], u["reason"]))
    acting = sorted({a.portal for a in ordered})
    unbound = [p for p in acting if p not in basis.base_urls]
    if unbound:
        raise PlanError(
            f"--config: the config has no portal named {', '.join(unbound)} (run {basis.run.id} has)"
        )
    created_at = basis.created_at or utcnow()
    expires = parse_timestamp(created_at, "created_at") + timedelta(hours=basis.max_age_hours)
    plan = Plan(
        created_at=created_at,
        expires_at=iso_timestamp(expires),
        created_by=basis.created_by or actor(),
        base_urls={p: basis.base_urls[p].rstrip("/") for p in acting},
        run=PlanRun.of(basis.run, basis.snapshot),
        selection=selection,
        settings={
            "managed_domains": list(basis.settings.managed_domains),
            "dormant_days": basis.settings.dormant_days,
        },
        idp_recheck=describe_recheck(basis.coverage),
        unavailable=unavailable,
        actions=ordered,
    )
    return plan.model_copy(update={"plan_hash": plan.compute_hash(basis.key)})


@dataclass(frozen=True)
class NotPlanned:
    """A finding or revoke decision a plan does not carry out, and why."""

    finding_id: str
    portal: str | None
    user_id: int | None
    email: str | None
    reason: str


def protected_accounts(review: RunReview) -> dict[tuple[str, int], str]:
    """Accounts no plan may touch — under a live exception, or excluded by a rule — and why."""
    out: dict[tuple[str, int], str] = {}
    for f in review.accepted:
        if f.portal is not None and f.learnupon_user_id is not None:
            out[(f.portal, f.learnupon_user_id)] = f"under a live exception ({review.state(f).note})"
    for account, rule in review.exclusions.by_account.items():
        out.setdefault(account, f"excluded by rule {rule}")
    return out


def plan_from_snapshot(
    db: Path,
    *,
    code: Code,
    config: Config,
    key: bytes,
    run_id: int | None = None,
    portals: Collection[str] = (),
    severities: Collection[Severity] = (),
    left_out: list[NotPlanned] | None = None,
) -> Plan:
    """Evaluate the run's findings (graph.api) and build the plan; settings and base_urls from `config`.

    Accounts under a live exception or excluded by a `[review] exclude` rule are never planned; each one
    left out is appended to `left_out`, with why.
    """
    from graph.api import load_run
    from graph.campaign import crawl_run, review_of

    if not db.exists():
        raise PlanError(f"--db: no snapshot at {db}")
    review = config.review
    try:
        ig = load_run(
            db,
            run_id,
            managed_domains=None if review is None else review.managed_domains,
            dormant_days=None if review is None else review.dormant_days,
        )
    except LookupError as exc:
        raise PlanError(f"--run: {exc}") from None
    with ig:
        try:
            crawl_run(ig.store, ig.run.id)
        except LookupError as exc:
            raise PlanError(f"--run: {exc}") from None
        ig.settings = replace(
            ig.settings, exclude=tuple(review.exclude), max_exception_days=review.max_exception_days
        )
        findings = ig.findings()
        protected = protected_accounts(review_of(ig, ig.store))
        kept = []
        for f in findings.findings:
            account = (f.portal or "", f.learnupon_user_id or 0)
            if account not in protected:
                kept.append(f)
            elif left_out is not None and f.code is code:
                left_out.append(NotPlanned(f.id, f.portal, f.learnupon_user_id, f.email, protected[account]))
        findings = FindingSet(findings.run_id, kept, findings.unavailable, findings.recall_gaps)
        wanted = {(f.portal, f.learnupon_user_id) for f in findings.findings if f.code is code}
        accounts = ig.store.reader().user_records(ig.run.id, wanted)
        basis = PlanBasis.of(ig.run, db, ig.coverage, ig.settings, key, config)
        return plan_for_code(findings, accounts, basis, code, portals, severities)
