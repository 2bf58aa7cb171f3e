"""The write engine: re-read, check, write, read back — one account at a time, every step in the audit log.

LearnUpon can answer 200 to a write and change nothing, and a plan can be days old. So for each account:

1. `GET /users/{id}` — skip (with the reason) an account that is gone or differs in any field from the
   state the plan saved (email, enabled, user type, username, updated_at): the id may belong to someone
   else now, or someone changed it since. An undo compares against our own read-back of the disable;
2. ask the IdPs that can be searched: a disable is skipped if the person is active again; an undo is
   refused while the IdP still says the person is disabled (unless forced) (`idp_check`);
3. append a write-ahead `intent` entry to the audit log (fsynced): no write is sent that the log cannot hold;
4. `PUT /users/{id}` with `{"User": {"enabled": false}}` (capitalised wrapper: the real API 404s without it).
   A PUT that times out or loses its connection may have been applied: its outcome is "unknown" and the
   read-back settles it — it is never recorded as refused;
5. `GET /users/{id}` again — only an account that now reads `enabled: false` counts as done; a silent no-op
   is a failure. The `outcome` entry names its intent's seq;
6. optionally remove its group memberships (`DELETE /group_memberships/0` with a `GroupMembership` body) and
   read the memberships back the same way.

Requests (`portal.PortalClient`) go through each portal's own `SourceHttp`, built by
`orchestrator.portal_source` (same session, credentials and rate controller as a crawl), so 429s requeue
and transient faults retry exactly as they do there. Portals run concurrently, accounts within a portal
one after another; one portal failing never stops the others. `DELETE /users` is never sent: deleting a
LearnUpon user purges its learning history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from crawler.config import Config, PortalConfig
from crawler.errors import AuthError, SourceError, TransientError
from crawler.orchestrator import portal_source
from crawler.records import LUUser
from crawler.remediation.audit import AuditError, AuditLog
from crawler.remediation.idp_check import IdpChecker
from crawler.remediation.plan import Plan
from crawler.remediation.portal import PortalClient
from crawler.vocabulary import REMEDIABLE

DONE, SKIPPED, FAILED, INTENT = "done", "skipped", "failed", "intent"
# What `apply` compares the live account against, and what every before/after records.
STATE_FIELDS = ("enabled", "email", "username", "user_type", "updated_at")
logger = logging.getLogger("idgraph.remediation")
GIVE_UP_AFTER = 3  # consecutive transport failures before the rest of a portal is left alone


@dataclass(frozen=True)
class Target:
    """One account to put in one state, and why (the plan or the log entry it comes from)."""

    portal: str
    user_id: int
    email: str  # the address the account must still have, or it is not the account we mean
    enable: bool  # the state to set: False disables, True re-enables (undo)
    plan_hash: str
    finding: str | None = None
    finding_id: str | None = None
    undo_of: int | None = None  # the log entry an undo reverses
    expect: dict[str, Any] | None = None  # the saved state the live account must still match (STATE_FIELDS)
    force: bool = False  # undo only: re-enable although the IdP still says the person is disabled

    @property
    def action(self) -> str:
        return "enable" if self.enable else "disable"


@dataclass
class Outcome:
    """What happened to one action; `entry()` is its audit-log record."""

    target: Target
    command: str
    action: str
    result: str
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    group: dict[str, Any] | None = None  # for membership removals: the group's id and title
    idp_recheck: dict[str, str] | None = None
    phase: str = "outcome"  # "intent": written (and fsynced) before the write is sent
    intent_seq: int | None = None  # for an outcome: the seq of the intent it settles

    def entry(self) -> dict[str, Any]:
        t = self.target
        return {
            "phase": self.phase,
            "intent_seq": self.intent_seq,
            "command": self.command,
            "plan_hash": t.plan_hash,
            "portal": t.portal,
            "user_id": t.user_id,
            "email": t.email,
            "action": self.action,
            "result": self.result,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
            "group": self.group,
            "finding": t.finding,
            "finding_id": t.finding_id,
            "undo_of": t.undo_of,
            "idp_recheck": self.idp_recheck,
        }


def targets_from_plan(plan: Plan) -> list[Target]:
    return [
        Target(
            portal=a.portal,
            user_id=a.user_id,
            email=a.email,
            enable=False,
            plan_hash=plan.plan_hash,
            finding=a.finding.code.value,
            finding_id=a.finding.id,
            expect=a.state.model_dump(include=set(STATE_FIELDS)),
        )
        for a in plan.actions
    ]


class UndoError(ValueError):
    """An `--entry` that cannot be undone; nothing is done when any of them is refused."""


def undo_targets(
    entries: Sequence[dict[str, Any]], numbers: Iterable[int], *, force: bool = False
) -> list[Target]:
    """Re-enable targets for log entries `numbers` (1-based), each a completed disable not yet undone.

    Each target expects the account exactly as the disable's read-back left it: if anyone touched it since
    (re-enabled and disabled it again, changed its email or type), the undo is refused for that account.
    """
    by_seq = {e.get("seq"): e for e in entries}
    undone = {
        e["undo_of"]: e["seq"]
        for e in entries
        if e.get("action") == "enable" and e.get("result") == DONE and e.get("undo_of") is not None
    }
    targets = []
    for number in dict.fromkeys(numbers):
        entry = by_seq.get(number)
        if entry is None:
            raise UndoError(f"--entry {number}: the log has no such entry (it has {len(entries)})")
        if entry.get("action") != "disable" or entry.get("result") != DONE or entry.get("phase") == INTENT:
            raise UndoError(
                f"--entry {number}: only a completed disable can be undone; this entry is "
                f"{entry.get('action')} / {entry.get('result')}"
            )
        if number in undone:
            raise UndoError(f"--entry {number}: already undone by entry {undone[number]}")
        after = entry.get("after") or {}
        if after.get("enabled") is not False:
            raise UndoError(f"--entry {number}: the entry has no read-back showing the account disabled")
        targets.append(
            Target(
                portal=entry["portal"],
                user_id=int(entry["user_id"]),
                email=after.get("email") or entry["email"],
                enable=True,
                plan_hash=entry.get("plan_hash") or "",
                finding=entry.get("finding"),
                finding_id=entry.get("finding_id"),
                undo_of=number,
                expect={k: after[k] for k in STATE_FIELDS if k in after},
                force=force,
            )
        )
    return targets


def _state(user: LUUser) -> dict[str, Any]:
    return {name: getattr(user, name) for name in STATE_FIELDS}


def drift(expect: dict[str, Any] | None, live: LUUser) -> list[str]:
    """Each saved field the live account no longer has, as `field 'saved' is now 'live'`."""
    changes = []
    for name, saved in (expect or {}).items():
        now = getattr(live, name)
        equal = _same_email(saved, now) if name == "email" else saved == now
        if not equal:
            changes.append(f"{name} {saved!r} is now {now!r}")
    return changes


def _rests_on_idp(finding: str | None) -> bool:
    """Whether the finding behind a disable says "the IdPs let this person go": an active IdP identity
    then undoes it. A reviewer's revoke of a dormant or duplicate account stands whatever the IdP says."""
    return finding is None or finding in REMEDIABLE


def _same_email(a: str | None, b: str | None) -> bool:
    return (a or "").strip().casefold() == (b or "").strip().casefold()


class _StopPortal(Exception):
    """Leave the rest of this portal alone (the current account's outcome is already recorded)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Run:
    config: Config
    log: AuditLog
    command: str
    remove_memberships: bool
    checker: IdpChecker | None
    on_outcome: Callable[[Outcome], None] | None
    outcomes: list[Outcome] = field(default_factory=list)

    def record(self, outcome: Outcome) -> int:
        """Log first, then report: an action nobody can find in the log did not happen as far as we know.

        Returns the entry's seq. Intents are logged but not reported: their outcome follows.
        """
        seq = int(self.log.append(outcome.entry())["seq"])
        if outcome.phase == INTENT:
            return seq
        self.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return seq

    def outcome(self, t: Target, result: str, reason: str, **kw: Any) -> Outcome:
        return Outcome(t, self.command, t.action, result, reason, **kw)

    async def portal(
        self, cfg: PortalConfig | None, name: str, targets: list[Target], connector: Any
    ) -> None:
        if cfg is None:
            self._abandon(targets, f"portal {name} is not in the config")
            return
        http, _ = portal_source(cfg, connector, self.config.crawl)
        client = PortalClient(http, cfg.base_url)
        transport_failures = 0
        try:
            for index, t in enumerate(targets):
                try:
                    await self.account(client, t)
                    transport_failures = 0
                except AuditError:
                    raise  # nothing more may happen that the log cannot hold
                except _StopPortal as stop:
                    self._abandon(targets[index + 1 :], stop.reason)
                    return
                except AuthError as exc:
                    self._abandon(targets[index:], str(exc))
                    return
                except TransientError as exc:
                    transport_failures += 1
                    self.record(self.outcome(t, FAILED, str(exc)))
                    if transport_failures >= GIVE_UP_AFTER:
                        self._abandon(targets[index + 1 :], f"portal {name} keeps failing ({exc})")
                        return
                except SourceError as exc:
                    self.record(self.outcome(t, FAILED, str(exc)))
                except Exception as exc:  # a bug must not leave other portals' work undone or unlogged
                    logger.error("internal error on %s/%s", t.portal, t.user_id, exc_info=exc)
                    self.record(self.outcome(t, FAILED, f"internal error: {type(exc).__name__}"))
        finally:
            await http.close()

    def _abandon(self, targets: list[Target], why: str) -> None:
        for t in targets:
            self.record(self.outcome(t, FAILED, f"not attempted: {why}"))

    async def account(self, client: PortalClient, t: Target) -> None:
        """Re-read, check, write, read back. Errors before the write leave the account untouched."""
        before = await client.read_user(t.user_id)
        if before is None:
            self.record(self.outcome(t, SKIPPED, "not found: the account no longer exists"))
            return
        state = _state(before)
        if not _same_email(before.email, t.email):
            reason = f"email changed since the plan: {t.email} is now {before.email or 'empty'}"
            self.record(self.outcome(t, SKIPPED, reason, before=state))
            return
        if before.enabled == t.enable:
            already = f"already {'enabled' if t.enable else 'disabled'}"
            self.record(self.outcome(t, SKIPPED, already, before=state))
            return
        changes = drift(t.expect, before)
        if changes:
            since = "our disable's read-back" if t.enable else "the plan"
            result = FAILED if t.enable else SKIPPED  # an undo asked for by a person must not pass quietly
            prefix = "refused: " if t.enable else ""
            reason = f"{prefix}changed since {since}: {'; '.join(changes)}"
            self.record(self.outcome(t, result, reason, before=state))
            return
        recheck = None
        if self.checker is not None:
            verdict = await self.checker.check(t.email)
            recheck = verdict.statuses
            if verdict.error is not None and not t.force:
                self.record(self.outcome(t, FAILED, verdict.error, before=state, idp_recheck=recheck))
                return
            if not t.enable and verdict.active_in and _rests_on_idp(t.finding):
                reason = f"active again in the IdP: {', '.join(verdict.active_in)}"
                self.record(self.outcome(t, SKIPPED, reason, before=state, idp_recheck=recheck))
                return
            if t.enable and verdict.disabled_in and not verdict.active_in and not t.force:
                reason = (
                    f"refused: the IdP still says the person is disabled ({', '.join(verdict.disabled_in)}); "
                    "re-enable them there first, or pass --force"
                )
                self.record(self.outcome(t, FAILED, reason, before=state, idp_recheck=recheck))
                return
        verb = "re-enable" if t.enable else "disable"
        intent = self.record(
            self.outcome(t, INTENT, f"about to {verb}", before=state, idp_recheck=recheck, phase=INTENT)
        )
        unknown = None
        try:
            await client.set_enabled(t.user_id, t.enable)
        except TransientError as exc:  # a timeout or a lost connection: the PUT may have been applied
            unknown = f"write outcome unknown ({exc}); settled by read-back: "
        except SourceError as exc:
            reason = f"write refused: {exc}"
            self.record(self.outcome(t, FAILED, reason, before=state, idp_recheck=recheck, intent_seq=intent))
            if isinstance(exc, AuthError):  # e.g. a read-only API key: every other write would fail too
                raise _StopPortal(f"writes refused on portal {t.portal} ({exc})") from None
            return
        try:
            after = await client.read_user(t.user_id)
        except SourceError as exc:
            reason = f"the write was sent but the read-back failed ({exc}): state unknown, run apply again"
            self.record(self.outcome(t, FAILED, reason, before=state, idp_recheck=recheck, intent_seq=intent))
            return
        if after is None:
            reason = "the account vanished after the write"
            self.record(self.outcome(t, FAILED, reason, before=state, intent_seq=intent))
            return
        if after.enabled != t.enable:
            result, reason = (
                FAILED,
                (
                    "the write answered success but the account still reads "
                    f"enabled={str(after.enabled).lower()} (silent no-op)"
                ),
            )
            if unknown is not None:
                reason = f"{unknown}the account still reads enabled={str(after.enabled).lower()}"
        else:
            result, reason = DONE, f"{'re-enabled' if t.enable else 'disabled'}; verified by read-back"
            if unknown is not None:
                reason = f"{unknown}{'re-enabled' if t.enable else 'disabled'}"
        self.record(
            self.outcome(t, result, reason, before=state, after=_state(after), idp_recheck=recheck,
                         intent_seq=intent)
        )  # fmt: skip
        if result == DONE and self.remove_memberships and not t.enable:
            await self.memberships(client, t)

    async def memberships(self, client: PortalClient, t: Target) -> None:
        """Remove every group membership of a just-disabled account, each verified by reading them back.

        Like the disable, the DELETEs are preceded by a write-ahead intent naming every group.
        """
        kind = "remove_membership"
        intent = None
        try:
            groups = await client.groups_of(t.user_id)
            if groups:
                ids = ", ".join(str(g) for g in sorted(groups))
                about = Outcome(
                    t, self.command, kind, INTENT, f"about to remove memberships: {ids}", phase=INTENT
                )
                intent = self.record(about)
            for group_id in sorted(groups):
                await client.remove_membership(group_id, t.user_id)
            remaining = await client.groups_of(t.user_id) if groups else {}
        except SourceError as exc:  # the disable stands; the memberships are reported, not guessed
            reason = f"memberships not removed (or not verified): {exc}"
            self.record(Outcome(t, self.command, kind, FAILED, reason, intent_seq=intent))
            return
        for group_id, title in sorted(groups.items()):
            group = {"id": group_id, "title": title}
            before = {"member": True}
            if group_id in remaining:
                reason = "the DELETE answered success but the account is still a member (silent no-op)"
                outcome = Outcome(
                    t, self.command, kind, FAILED, reason, before, before, group, intent_seq=intent
                )
            else:
                reason = "membership removed; verified by read-back"
                after = {"member": False}
                outcome = Outcome(
                    t, self.command, kind, DONE, reason, before, after, group, intent_seq=intent
                )
            self.record(outcome)


async def run_targets(
    targets: Sequence[Target],
    config: Config,
    log: AuditLog,
    *,
    command: str,
    remove_memberships: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Carry out every target (portals concurrently), logging each action; returns the outcomes.

    The IdPs of `config` are re-checked before each disable where they can be searched.
    """
    by_portal: dict[str, list[Target]] = {}
    for t in targets:
        by_portal.setdefault(t.portal, []).append(t)
    portals = {p.name: p for p in config.portals}
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
    checker = None
    try:
        if targets:
            checker = IdpChecker(config.idps, connector, config.crawl)
        run = _Run(config, log, command, remove_memberships, checker, on_outcome)
        try:
            # A TaskGroup: if the log cannot be written, every portal stops at once.
            async with asyncio.TaskGroup() as group:
                for name, ts in sorted(by_portal.items()):
                    group.create_task(run.portal(portals.get(name), name, ts, connector))
        except BaseExceptionGroup as exc:
            raise exc.exceptions[0] from None
        return run.outcomes
    finally:
        if checker is not None:
            await checker.close()
        await connector.close()


def failed(outcomes: Iterable[Outcome]) -> bool:
    return any(o.result == FAILED for o in outcomes)


async def read_live(targets: Sequence[Target], config: Config) -> dict[tuple[str, int], LUUser | str | None]:
    """A read-only pass: each target's account as it is now (None: gone; a string: why it could not be read).

    This is what the confirmation table shows — live values, not the plan's claims. Nothing is written.
    """
    by_portal: dict[str, list[Target]] = {}
    for t in targets:
        by_portal.setdefault(t.portal, []).append(t)
    portals = {p.name: p for p in config.portals}
    found: dict[tuple[str, int], LUUser | str | None] = {}
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)

    async def one_portal(cfg: PortalConfig, ts: list[Target]) -> None:
        http, _ = portal_source(cfg, connector, config.crawl)
        client = PortalClient(http, cfg.base_url)
        try:
            for t in ts:
                try:
                    found[(t.portal, t.user_id)] = await client.read_user(t.user_id)
                except SourceError as exc:
                    found[(t.portal, t.user_id)] = f"cannot read: {exc}"
        finally:
            await http.close()

    try:
        async with asyncio.TaskGroup() as group:
            for name, ts in sorted(by_portal.items()):
                if name in portals:
                    group.create_task(one_portal(portals[name], ts))
    finally:
        await connector.close()
    return found
