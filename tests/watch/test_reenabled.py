"""The LearnUpon audit trail: an account idgraph disabled and someone enabled again raises an alert, once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from watch_helpers import REMEDIATION_KEY, Directory, ListFeed, Rig, change, watch_config

from crawler.feeds.events import AuditAction, AuditEvent
from crawler.remediation.audit import AuditLog
from crawler.watch.watched import watched_accounts

KEY = REMEDIATION_KEY.encode()


def outcome(portal: str, user_id: int, email: str, action: str, **extra: object) -> dict[str, object]:
    return {
        "phase": "outcome", "command": "apply", "plan_hash": "p" * 64, "portal": portal, "user_id": user_id,
        "email": email, "action": action, "result": "done", "reason": "", "before": None,
        "after": {"enabled": action == "enable", "email": email}, "group": None,
        "finding": "idp_disabled_active", "finding_id": f"f{user_id}", "undo_of": None, "idp_recheck": None,
        **extra,
    }  # fmt: skip


@pytest.fixture
def remediation_log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key=KEY) as log:
        log.append(outcome("emea", 1, "Alice@acme.com", "disable"))  # seq 1
        log.append(outcome("emea", 2, "bob@acme.com", "disable"))  # seq 2
        log.append(outcome("emea", 2, "bob@acme.com", "enable", undo_of=2))  # undone: not watched
        log.append({**outcome("apac", 7, "alice@acme.com", "disable"), "result": "failed"})  # never disabled
    return path


def event(portal: str, email: str, action: int, key: str, at: datetime | None = None) -> AuditEvent:
    return AuditEvent(
        portal, action, email, None, "admin@acme.com", at or datetime(2026, 6, 2, tzinfo=UTC), key
    )


def audited_rig(tmp_path: Path, snapshot, remediation_log: Path) -> Rig:
    """Watchers of emea and apac: audit trails as list feeds, the remediation log naming who is watched."""
    config = watch_config(
        tmp_path, ["emea", "apac"], ["okta"],
        remediation={"key_env": "REMEDIATION_KEY"}, watch={"remediation_log": str(remediation_log)},
    )  # fmt: skip
    rig = Rig(tmp_path, snapshot.store, config, Directory())
    rig.audit_feeds = {"emea": ListFeed("emea"), "apac": ListFeed("apac")}
    return rig


def test_the_watched_accounts_are_the_completed_disables_not_undone(
    tmp_path: Path, remediation_log: Path
) -> None:
    config = watch_config(
        tmp_path, ["emea", "apac"], ["okta"],
        remediation={"key_env": "REMEDIATION_KEY"}, watch={"remediation_log": str(remediation_log)},
    )  # fmt: skip
    watched = watched_accounts(config)
    assert list(watched) == [("emea", "alice@acme.com")]
    assert watched[("emea", "alice@acme.com")].reference["entry"] == 1


async def test_an_enabled_again_event_on_a_watched_account_alerts_once(
    tmp_path: Path, snapshot, remediation_log: Path
) -> None:
    rig = audited_rig(tmp_path, snapshot, remediation_log)
    rig.audit_feeds["emea"].add(
        event("emea", "ALICE@acme.com", AuditAction.LOGIN_ENABLED, "k1"),
        event("emea", "bob@acme.com", AuditAction.LOGIN_ENABLED, "k2"),  # undone by idgraph itself
        event("emea", "alice@acme.com", AuditAction.LOGIN_DISABLED, "k3"),
    )
    rig.audit_feeds["apac"].add(event("apac", "alice@acme.com", AuditAction.LOGIN_ENABLED, "k4"))  # not ours
    async with rig:
        first = await rig.watcher.round()
        rig.audit_feeds["emea"].add(
            event("emea", "alice@acme.com", AuditAction.LOGIN_ENABLED, "k1")
        )  # overlap
        second = await rig.watcher.round()
    assert first.reenabled == 1 and second.reenabled == 0
    [alert] = rig.alerts()
    assert alert["type"] == "account_reenabled"
    assert (alert["portal"], alert["learnupon_user_id"], alert["email"]) == ("emea", 1, "ALICE@acme.com")
    assert alert["watched_because"]["entry"] == 1 and "remediation" in alert["reason"]
    assert alert["audit_event"]["initiated_by_email"] == "admin@acme.com"


def _revoke(finding_id: str, portal: str, user_id: int, email: str | None, decision: str = "revoke") -> dict:
    return {
        "finding_id": finding_id, "code": "idp_disabled_active", "severity": "high", "portal": portal,
        "learnupon_user_id": user_id, "person": email, "email": email, "decision": decision,
        "scope": "account" if decision == "exception" else None, "reason": "left in May",
        "expires_at": "2099-01-01T00:00:00Z" if decision == "exception" else None,
        "reviewer": "lead@acme.com", "decided_at": "2026-06-01T00:00:00Z", "run_id": 1, "facts": {},
    }  # fmt: skip


def _import(store, *decisions: dict) -> None:
    from crawler.review_tables import record_decisions

    received = {"imported_at": "2026-06-01T00:00:00Z", "reviewer": "lead@acme.com", "run_id": 1,
                "file_name": "d.csv", "file_sha256": "0" * 64, "content": b""}  # fmt: skip
    record_decisions(store, received, list(decisions))


async def test_an_account_under_a_revoke_decision_is_watched_until_a_reviewer_decides_otherwise(
    tmp_path: Path, snapshot
) -> None:
    """Issue 19, item 2: re-enabling an account a reviewer decided to revoke alerts, without any
    remediation log; a later keep on that finding stops the watch, and an account without an email
    (the audit trail names people by email) is not matched."""
    store = snapshot.store
    _import(
        store,
        _revoke("f-carol", "emea", 3, "Carol@acme.com"),
        _revoke("f-dan", "emea", 4, "dan@acme.com"),
        _revoke("f-noemail", "emea", 5, None),
    )
    _import(store, _revoke("f-dan", "emea", 4, "dan@acme.com", decision="keep"))  # dan: kept after all
    config = watch_config(tmp_path, ["emea"], ["okta"])
    watched = watched_accounts(config, store.reader())
    assert list(watched) == [("emea", "carol@acme.com")]
    assert watched[("emea", "carol@acme.com")].reference["finding_id"] == "f-carol"

    rig = Rig(tmp_path, store, config, Directory())
    rig.audit_feeds = {"emea": ListFeed("emea")}
    rig.audit_feeds["emea"].add(
        event("emea", "carol@acme.com", AuditAction.LOGIN_ENABLED, "k1"),
        event("emea", "dan@acme.com", AuditAction.LOGIN_ENABLED, "k2"),
    )
    async with rig:
        report = await rig.watcher.round()
    assert report.reenabled == 1
    [alert] = rig.alerts()
    assert (alert["type"], alert["learnupon_user_id"]) == ("account_reenabled", 3)
    assert "revoke decision by lead@acme.com" in alert["reason"]


async def test_each_audit_trail_read_is_in_the_rounds_coverage(
    tmp_path: Path, snapshot, remediation_log: Path
) -> None:
    """A round that read a portal's audit trail says so in its coverage, complete or with the reason."""
    rig = audited_rig(tmp_path, snapshot, remediation_log)
    rig.audit_feeds["emea"].add(event("emea", "alice@acme.com", AuditAction.LOGIN_ENABLED, "k1"))
    rig.feeds["okta"].add(change("okta", "00ub", "disabled", "bob@acme.com"))  # a round with a run
    async with rig:
        report = await rig.watcher.round()
    assert report.run_id is not None
    coverage = {c.source: c for c in snapshot.store.coverage(report.run_id)}
    trails = {
        source: [(c.state, c.reason) for c in cov.collections if c.name == "audit_trail"]
        for source, cov in coverage.items()
    }
    assert trails["emea"] == [("complete", None)] and trails["apac"] == [("complete", None)]
    assert trails["okta"] == []
