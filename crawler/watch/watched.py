"""Accounts that must stay disabled, and the LearnUpon audit-trail events that say one was enabled again.

`watched_accounts` is the one place that says which accounts the audit trail is watched for: every
account `idgraph remediate apply` disabled (a completed disable in the verified remediation audit log)
that no later `undo` re-enabled, and every account under a reviewer's standing `revoke` decision
(`SnapshotReader.live_revokes`). The audit trail names the impacted user by email only, so accounts are
matched by (portal, casefolded email).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.config import Config
from crawler.feeds.events import AuditAction, AuditEvent, FeedPage
from crawler.remediation.audit import read_entries
from crawler.remediation.keys import resolve_key
from crawler.runs import utcnow
from crawler.snapshot_reader import LiveRevoke, SnapshotReader
from crawler.store import SnapshotStore
from crawler.watch.feeds import AuditSource
from crawler.watch.follow import follow
from crawler.watch.outbox import Outbox
from crawler.watch.run import IncrementalRun

REENABLED = "account_reenabled"


@dataclass(frozen=True)
class WatchedAccount:
    portal: str
    user_id: int
    email: str
    why: str  # for the alert: what made idgraph watch it
    reference: Mapping[str, Any]  # where that is recorded (an audit-log entry, a decision)

    @property
    def key(self) -> tuple[str, str]:
        return (self.portal, self.email.strip().casefold())


def watched_accounts(
    config: Config, reader: SnapshotReader | None = None
) -> dict[tuple[str, str], WatchedAccount]:
    """(portal, casefolded email) -> the account, from every source of accounts that must stay disabled:
    the snapshot's standing revoke decisions (when a reader is given) and the remediation audit log."""
    watched: dict[tuple[str, str], WatchedAccount] = {}
    for account in revoked(reader.live_revokes()) if reader is not None else ():
        watched[account.key] = account
    log = config.watch.remediation_log
    if log is not None and log.exists():
        for account in remediated(log, resolve_key(config)):  # KeyMissing without [remediation] key_env
            watched[account.key] = account
    return watched


def revoked(revokes: Iterable[LiveRevoke]) -> list[WatchedAccount]:
    """Accounts a reviewer decided to revoke, while that decision stands (one without an email cannot be
    matched to the audit trail, which names people by email only)."""
    return [
        WatchedAccount(
            portal=r.portal,
            user_id=r.learnupon_user_id,
            email=r.email,
            why=f"under a revoke decision by {r.reviewer} ({r.decided_at})",
            reference={"decision": r.decision_id, "finding_id": r.finding_id},
        )
        for r in revokes
        if r.email and r.email.strip()
    ]


def remediated(log: Path, key: bytes) -> list[WatchedAccount]:
    """Completed disables in a verified remediation audit log that no later undo reversed."""
    entries = read_entries(log, key)
    undone = {
        e.get("undo_of")
        for e in entries
        if e.get("action") == "enable" and e.get("result") == "done" and e.get("phase") != "intent"
    }
    out = []
    for e in entries:
        if e.get("action") != "disable" or e.get("result") != "done" or e.get("phase") == "intent":
            continue
        if e.get("seq") in undone or e.get("group") or not isinstance(e.get("user_id"), int):
            continue
        email = (e.get("after") or {}).get("email") or e.get("email")
        if not isinstance(email, str) or not email.strip():
            continue
        out.append(
            WatchedAccount(
                portal=str(e["portal"]),
                user_id=int(e["user_id"]),
                email=email,
                why=f"disabled by idgraph remediation (audit entry {e.get('seq')}, {e.get('ts')})",
                reference={"audit_log": str(log), "entry": e.get("seq"), "finding_id": e.get("finding_id")},
            )
        )
    return out


def reenabled(
    events: Iterable[AuditEvent], watched: Mapping[tuple[str, str], WatchedAccount]
) -> list[tuple[str, dict[str, Any]]]:
    """(alert id, payload) for every "login enabled" event on a watched account."""
    alerts = []
    for event in events:
        if event.action != AuditAction.LOGIN_ENABLED or not event.impacted_user_email:
            continue
        account = watched.get((event.portal, event.impacted_user_email.strip().casefold()))
        if account is None:
            continue
        alert_id = hashlib.sha256(f"{REENABLED}|{event.key}".encode()).hexdigest()[:24]
        alerts.append(
            (
                alert_id,
                {
                    "finding_id": None,
                    "portal": account.portal,
                    "learnupon_user_id": account.user_id,
                    "email": event.impacted_user_email,
                    "reason": account.why,
                    "watched_because": dict(account.reference),
                    "audit_event": {
                        "action": int(event.action),
                        "at": event.at.isoformat().replace("+00:00", "Z"),
                        "initiated_by_email": event.initiated_by_email,
                        "impacted_data": event.impacted_data,
                    },
                    "detected_at": utcnow(),
                },
            )
        )
    return alerts


@dataclass
class AuditRound:
    reenabled: int = 0  # alerts written
    read: list[str] = field(default_factory=list)  # portals whose audit trail this round read (or tried)
    errors: dict[str, str] = field(default_factory=dict)  # portal -> why its audit trail was not read


async def read_audit_trails(
    store: SnapshotStore,
    outbox: Outbox,
    audits: Sequence[AuditSource],
    watched: Mapping[tuple[str, str], WatchedAccount],
    run: IncrementalRun,
) -> AuditRound:
    """Each portal's audit trail from its cursor: an alert per enabled-again watched account (written once
    per event: a window read twice writes nothing twice). Not read at all while nothing is watched. The
    caller records each read in the round's coverage: the requests are counted on the portal's http."""
    result = AuditRound()
    if not watched:
        return result
    for audit in audits:

        async def handle(page: FeedPage[AuditEvent], portal: str = audit.portal) -> None:
            if page.skipped:
                run.quarantine(portal, "learnupon", page.skipped)
            alerts = reenabled(page.items, watched)
            with store.transaction() as db:
                for alert_id, payload in alerts:
                    result.reenabled += outbox.enqueue(
                        db, alert_id, REENABLED, payload, finding_id=None, run_id=None
                    )

        error = await follow(store, outbox, f"audit:{audit.portal}", audit.feed, handle)
        result.read.append(audit.portal)
        if error is not None:
            result.errors[audit.portal] = error
    return result
