"""`idgraph remediate plan --from-review`: a plan of exactly the `revoke` decisions that still stand.

A revoke is planned when it is the latest decision on a finding the run (the newest by default) still
has, on the same facts the reviewer saw (`graph.decisions`). It is left out, with the reason, when its
finding is gone (resolved, or not re-checked), when the facts changed since the decision, when the
account is under a live exception (for any finding) or excluded by a `[review] exclude` rule, or when the
snapshot already shows the account disabled. One action per account, whatever number of findings on it
were revoked. Each action's evidence carries the decision (who, when, why), so the plan a second person
approves says who asked for every disable.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from crawler.config import Config
from crawler.remediation.plan import REVIEW_SELECTION, Plan, PlanError, PlanSelection
from crawler.store import SnapshotStore
from graph.campaign import RunReview, open_review
from graph.decisions import Decision, standing_revokes
from graph.model import Finding, Severity
from graph.remediation_plan import (
    NotPlanned,
    PlanBasis,
    check_portals,
    ordered_severities,
    plan_gaps,
    protected_accounts,
    seal_plan,
)
from graph.rules import ReviewSettings


def plan_from_review(
    db: Path,
    *,
    config: Config,
    key: bytes,
    run_id: int | None = None,
    portals: Collection[str] = (),
    severities: Collection[Severity] = (),
) -> tuple[Plan, list[NotPlanned]]:
    """The plan of the standing revoke decisions over the run, and the revokes it leaves out."""
    if not db.exists():
        raise PlanError(f"--db: no snapshot at {db}")
    settings = ReviewSettings.from_config(config.review)
    try:
        with SnapshotStore(db) as store, open_review(store, run_id, settings) as review:
            return _plan(store, review, db, config, key, portals, severities, settings)
    except LookupError as exc:
        raise PlanError(f"--run: {exc}") from None


def _plan(
    store: SnapshotStore,
    review: RunReview,
    db: Path,
    config: Config,
    key: bytes,
    portals: Collection[str],
    severities: Collection[Severity],
    settings: ReviewSettings,
) -> tuple[Plan, list[NotPlanned]]:
    coverage = review.graph.coverage
    known = check_portals(coverage, portals, review.graph.run)
    protected = protected_accounts(review)
    chosen: list[Finding] = []
    skipped: list[NotPlanned] = []
    annotations: dict[str, dict[str, Any]] = {}
    current = {f.id: f for f in review.findings.findings}
    for d in standing_revokes(review.decisions):
        f = current.get(d.finding_id)
        if portals and d.portal not in portals:
            continue
        if f is not None and severities and f.severity not in severities:
            continue

        def leave_out(why: str, d: Decision = d) -> None:
            skipped.append(NotPlanned(d.finding_id, d.portal, d.learnupon_user_id, d.email, why))

        if f is None:
            leave_out(f"no longer a finding of run {review.run_id} (resolved, or not re-checked)")
            continue
        state = review.state(f)
        account = (f.portal or "", f.learnupon_user_id or 0)
        if state.lapsed is d:
            leave_out(state.note or "the decision no longer holds")
        elif account in protected:
            leave_out(protected[account])
        elif state.decision is not d:
            leave_out(f"a later decision governs this finding ({state.note})")
        else:
            chosen.append(f)
            annotations[f.id] = {
                "review_decision": {
                    "decision_id": d.id,
                    "reviewer": d.reviewer,
                    "decided_at": d.decided_at,
                    "reason": d.reason,
                    "decided_on_run": d.run_id,
                }
            }
    unavailable = plan_gaps(review.findings.unavailable, {f.code for f in chosen}, portals, known)
    accounts = store.reader().user_records(review.run_id, {(f.portal, f.learnupon_user_id) for f in chosen})
    for f in chosen:
        row = accounts.get((f.portal or "", f.learnupon_user_id or 0))
        if row is not None and not row["enabled"]:
            skipped.append(NotPlanned(f.id, f.portal, f.learnupon_user_id, f.email, "already disabled"))
    selection = PlanSelection(
        finding=REVIEW_SELECTION, portals=sorted(portals), severities=ordered_severities(severities)
    )
    basis = PlanBasis.of(review.graph.run, db, coverage, settings, key, config)
    plan = seal_plan(chosen, accounts, unavailable, basis, selection, annotations)
    skipped.sort(key=lambda n: (n.portal or "", n.user_id or 0, n.finding_id))
    return plan, skipped
