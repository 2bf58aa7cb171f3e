"""One round of `idgraph watch`: each feed from its cursor, a verdict for whoever changed, alerts settled.

For every status change a feed reports (`crawler.feeds.events.StatusChange`, an assertion of state):
* nothing new — the status the watcher (or, failing that, the newest crawl) already knows, or an event
  older than what it knows — is skipped; that is what makes a replayed page harmless;
* newly disabled: the person is rebuilt from the crawl plus the feed (`graph.incremental`), every address
  of theirs is looked up in every portal (`crawler.watch.lookups`), and the crawl's rule judges the
  accounts found; each finding opens (if it is not open already) with an alert;
* active again: the open findings that rested on this identity close, each with an alert saying why;
* anything else (disabled → deleted, a first sight of a person) is only recorded.
Everything one change leads to — its new status, the lookups it still owes (a portal that failed: retried
next round, never "no account"), the findings, their alerts, the incremental run's finding history —
lands in one transaction. After each page the outbox is delivered, and the feed's cursor is saved only
when no alert is waiting for any sink.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from crawler.config import Config
from crawler.feeds.events import FeedPage, StatusChange
from crawler.records import Identity, IdentityAddress, LUUser, canonical_utc
from crawler.review_tables import add_findings
from crawler.runs import utcnow
from crawler.store import SnapshotStore
from crawler.vocabulary import IdentityStatus, is_disabled
from crawler.watch import tables
from crawler.watch.feeds import AuditSource, FeedSource
from crawler.watch.follow import follow
from crawler.watch.lookups import PortalLookups
from crawler.watch.outbox import Outbox
from crawler.watch.run import AUDIT_TRAIL, IncrementalRun
from crawler.watch.tables import AssertedStatus, WatchFinding
from crawler.watch.watched import read_audit_trails, watched_accounts
from graph.history import history_rows
from graph.incremental import Estate, IdentityKey, Verdict
from graph.model import Finding
from graph.rules import ReviewSettings, parse_time

log = logging.getLogger("idgraph.watch")
OPENED, CLOSED = "finding_opened", "finding_closed"


@dataclass
class RoundReport:
    run_id: int | None = None
    changes: int = 0  # status changes the feeds reported
    checked: int = 0  # people looked up
    opened: list[str] = field(default_factory=list)  # finding ids
    closed: list[str] = field(default_factory=list)
    reenabled: int = 0
    owed: list[str] = field(default_factory=list)  # lookups that failed: "portal address: reason"
    withheld: list[str] = field(default_factory=list)
    quarantined: int = 0  # feed records that could not be read as a change (kept with their reason)
    feed_errors: dict[str, str] = field(default_factory=dict)
    pending_alerts: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def complete(self) -> bool:
        """Every feed read, every lookup answered, every verdict given, every alert delivered."""
        return not (
            self.owed
            or self.withheld
            or self.quarantined
            or self.feed_errors
            or any(self.pending_alerts.values())
        )


def feed_key(source: str) -> str:
    return f"idp:{source}"


class Watcher:
    """The rounds of one `idgraph watch` process over one snapshot."""

    def __init__(
        self,
        config: Config,
        store: SnapshotStore,
        outbox: Outbox,
        lookups: PortalLookups,
        feeds: Sequence[FeedSource],
        audits: Sequence[AuditSource] = (),
        fingerprint: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.outbox = outbox
        self.lookups = lookups
        self.feeds = list(feeds)
        self.audits = list(audits)
        self.fingerprint = fingerprint
        self.settings = ReviewSettings.from_config(config.review)
        self._index: tuple[int, dict[str, set[IdentityKey]]] | None = None

    # --- the round ----------------------------------------------------------------------------------------
    async def round(self) -> RoundReport:
        report = RoundReport()
        run = IncrementalRun(self.store, self.fingerprint)
        try:
            await self.outbox.deliver()  # what a previous round (or a killed process) left waiting
            estate = self._estate()
            await self._retry_owed(estate, run, report)
            for source in self.feeds:
                await self._read_feed(source, estate, run, report)
            await self._read_audit_trails(run, report)
        finally:
            run.finish()
            report.run_id = run.run_id
            report.pending_alerts = self.outbox.pending()
        return report

    def _estate(self) -> Estate:
        crawl = self.store.latest_finished_crawl()
        index = None
        if crawl is not None and self._index is not None and self._index[0] == crawl.id:
            index = self._index[1]
        estate = Estate(
            self.store.reader(),
            crawl,
            self.store.coverage(crawl.id) if crawl else [],
            self.store.quarantined_addresses(crawl.id) if crawl else {},
            [i.name for i in self.config.idps],
            overlays=tables.asserted_since(self.store, crawl.id if crawl else 0),
            settings=self.settings,
            address_index=index,
        )
        if crawl is not None:
            self._index = (crawl.id, estate.address_index)
        return estate

    async def _read_feed(
        self, source: FeedSource, estate: Estate, run: IncrementalRun, report: RoundReport
    ) -> None:
        async def handle(page: FeedPage[StatusChange]) -> None:
            if page.skipped:
                run.quarantine(source.name, source.kind, page.skipped)
                report.quarantined += len(page.skipped)
                for skipped in page.skipped:
                    log.warning("feed %s: a record was quarantined: %s", source.name, skipped.reason,
                                extra={"event": "quarantined", "source": source.name})  # fmt: skip
            for item in page.items:
                report.changes += 1
                await self._change(source, item, page.baseline, estate, run, report)

        before = source.http.stats.requests
        error = await follow(self.store, self.outbox, feed_key(source.name), source.feed, handle)
        if error is not None:
            report.feed_errors[source.name] = error
            log.warning(
                "feed %s: %s", source.name, error, extra={"event": "feed_failed", "source": source.name}
            )
        requests = source.http.stats.requests - before
        report.requests[source.name] += requests
        run.feed_read(source.name, source.kind, requests=requests, error=error)

    # --- one change -----------------------------------------------------------------------------------
    async def _change(
        self, source: FeedSource, item: StatusChange, baseline: bool, estate: Estate, run: IncrementalRun,
        report: RoundReport,
    ) -> None:  # fmt: skip
        idp_id = estate.identity_id(source.name, item.idp_id, item.addresses)
        key = (source.name, idp_id)
        observed = canonical_utc(item.observed_at) if item.observed_at else None
        prior = estate.overlays.get(key)
        if _older(observed, prior.observed_at if prior else None):
            return  # an event from before the status the watcher already holds
        if prior is None and estate.crawl is not None and _older(observed, estate.crawl.started_at):
            return  # the crawl read this identity after the event: its status is the newer fact
        known = estate.status_of(key)
        if known is not None and known[0] == item.status.value:
            return  # nothing new: a replay, or a second event for the same state
        addresses = tuple(dict.fromkeys((*item.addresses, *(prior.addresses if prior else ()))))
        assertion = AssertedStatus(
            source.name, idp_id, item.status.value, item.raw, observed, item.key, addresses, run.ensure()
        )
        run.identity(source.name, source.kind, _identity(assertion))
        event = {"source": source.name, "idp_id": item.idp_id, "raw": item.raw, "observed_at": observed,
                 "key": item.key, "baseline": baseline}  # fmt: skip
        was_disabled = known is not None and is_disabled(known[0])
        if is_disabled(item.status) and not was_disabled and not (baseline and known is None):
            await self._disabled(assertion, event, estate, run, report)
        elif not is_disabled(item.status) and was_disabled:
            self._enabled(assertion, event, run, report)
        else:
            with self.store.transaction() as db:
                tables.assert_status(db, assertion)
        estate.overlays[key] = assertion

    async def _disabled(
        self,
        assertion: AssertedStatus,
        event: dict[str, Any],
        estate: Estate,
        run: IncrementalRun,
        report: RoundReport,
        targets: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Look the person up everywhere (or only `targets`, lookups owed from an earlier round), judge,
        and record the verdict with its alerts in one commit."""
        person = estate.person(assertion)
        if targets is None:
            targets = [(p, a) for p in self.lookups.names for a in person.lookup_addresses()]
            if not targets:  # a feed entry without an address, for someone no crawl has read
                report.withheld.append(
                    f"{assertion.source}:{assertion.idp_id}: no address is known for this identity, so its "
                    "accounts cannot be looked up; the next crawl judges it"
                )
        targets = list(targets)
        report.checked += 1
        before = {p: self.lookups.requests(p) for p in self.lookups.names}
        answers = await self.lookups.find(targets)
        for portal, count in before.items():
            spent = self.lookups.requests(portal) - count
            report.requests[portal] += spent
            if spent:
                run.lookups(portal, (), error=None, requests=spent)
        accounts: list[tuple[Any, ...]] = []
        gaps: dict[str, str | None] = {}
        for answer in answers:
            run.lookups(answer.portal, answer.accounts, error=answer.error)
            accounts += [_account(answer.portal, u) for u in answer.accounts]
            if answer.error is not None:
                gaps[answer.portal] = answer.error
                report.owed.append(f"{answer.portal} {answer.address}: {answer.error}")
            else:
                gaps.setdefault(answer.portal, None)
        run_id = run.ensure()
        started = parse_time(run.started_at)
        assert started is not None
        verdict = estate.judge(
            assertion, person, accounts, gaps, run_id=run_id, run_started_at=started, event=event
        )
        report.withheld += [f"{u.scope}: {u.reason}" for u in verdict.unavailable]
        with self.store.transaction() as db:
            tables.assert_status(db, assertion)
            for answer in answers:
                if answer.error is None:
                    tables.settle_lookups(
                        db, assertion.source, assertion.idp_id, [(answer.portal, answer.address)]
                    )
                else:
                    tables.owe_lookup(
                        db, assertion.source, assertion.idp_id, answer.portal, answer.address, answer.error
                    )
            for finding in verdict.findings:
                if self._open(db, finding, verdict, run_id, event):
                    report.opened.append(finding.id)
            unavailable = [{**asdict(u), "code": u.code.value} for u in verdict.unavailable]
            add_findings(db, run_id, run.started_at, history_rows(verdict.findings), unavailable)
        for u in verdict.unavailable:
            log.warning("no verdict for %s: %s", u.scope, u.reason, extra={"event": "verdict_withheld"})

    def _open(self, db: Any, finding: Finding, verdict: Verdict, run_id: int, event: dict[str, Any]) -> bool:
        state = tables.finding_state(db, finding.id)
        if state is not None and state.state == "open":
            return False
        episode = 1 if state is None else state.episode + 1
        now = utcnow()
        tables.open_finding(
            db,
            WatchFinding(
                finding.id, finding.code.value, "open", episode, finding.person, finding.email,
                finding.portal, finding.learnupon_user_id, tuple(verdict.identities), run_id, now,
                None, None, None,
            ),
        )  # fmt: skip
        payload = {
            **finding.as_row(),
            "idp_event": event,
            "detected_at": now,
            "run_id": run_id,
            "evidence": finding.evidence,
        }
        self.outbox.enqueue(
            db, f"{finding.id}-opened-{episode}", OPENED, payload, finding_id=finding.id, run_id=run_id
        )
        log.warning(
            "%s: %s still enabled in %s (user %s)",
            finding.code.value,
            finding.email,
            finding.portal,
            finding.learnupon_user_id,
            extra={"event": "finding_opened", "run_id": run_id},
        )
        return True

    def _enabled(
        self, assertion: AssertedStatus, event: dict[str, Any], run: IncrementalRun, report: RoundReport
    ) -> None:
        run_id = run.ensure()
        identity = f"{assertion.source}:{assertion.idp_id}"
        reason = (
            f"{assertion.source} reports {assertion.idp_id} {assertion.status} again "
            f"({assertion.raw_status} at {assertion.observed_at or 'an unknown time'})"
        )
        with self.store.transaction() as db:
            tables.assert_status(db, assertion)
            tables.settle_lookups(db, assertion.source, assertion.idp_id, [("*", "*")])
            for open_finding in tables.open_findings_of(db, identity):
                tables.close_finding(db, open_finding.finding_id, run_id, reason)
                payload = {
                    "finding_id": open_finding.finding_id,
                    "finding": open_finding.code,
                    "email": open_finding.email,
                    "person": open_finding.person,
                    "portal": open_finding.portal,
                    "learnupon_user_id": open_finding.learnupon_user_id,
                    "reason": reason,
                    "idp_event": event,
                    "detected_at": utcnow(),
                    "run_id": run_id,
                }
                alert_id = f"{open_finding.finding_id}-closed-{open_finding.episode}"
                self.outbox.enqueue(
                    db, alert_id, CLOSED, payload, finding_id=open_finding.finding_id, run_id=run_id
                )
                report.closed.append(open_finding.finding_id)

    # --- lookups owed by earlier rounds ---------------------------------------------------------------
    async def _retry_owed(self, estate: Estate, run: IncrementalRun, report: RoundReport) -> None:
        owed: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for item in tables.owed_lookups(self.store):
            owed[(item.source, item.idp_id)].append((item.portal, item.address))
        for (source, idp_id), targets in owed.items():
            assertion = estate.overlays.get((source, idp_id))
            if assertion is None or not is_disabled(assertion.status):
                # Active again, or a crawl since read everything this lookup was for: nothing is owed.
                with self.store.transaction() as db:
                    tables.settle_lookups(db, source, idp_id, [("*", "*")])
                continue
            event = {"source": source, "idp_id": idp_id, "raw": assertion.raw_status,
                     "observed_at": assertion.observed_at, "key": assertion.event_key,
                     "retry": True}  # fmt: skip
            await self._disabled(assertion, event, estate, run, report, targets)

    # --- LearnUpon audit trails -------------------------------------------------------------------------
    async def _read_audit_trails(self, run: IncrementalRun, report: RoundReport) -> None:
        if not self.audits:
            return
        before = {a.portal: self.lookups.requests(a.portal) for a in self.audits}
        result = await read_audit_trails(
            self.store, self.outbox, self.audits, watched_accounts(self.config, self.store.reader()), run
        )
        report.reenabled += result.reenabled
        for portal in result.read:  # each read in the round's coverage, with what it cost
            spent = self.lookups.requests(portal) - before[portal]
            report.requests[portal] += spent
            error = result.errors.get(portal)
            run.feed_read(portal, "learnupon", requests=spent, error=error, collection=AUDIT_TRAIL)
        for portal, error in result.errors.items():
            report.feed_errors[f"{portal} audit trail"] = error
            log.warning("audit trail of %s: %s", portal, error, extra={"source": portal})


def _older(moment: str | None, than: str | None) -> bool:
    a, b = parse_time(moment), parse_time(than)
    return a is not None and b is not None and a < b


def _identity(assertion: AssertedStatus) -> Identity:
    return Identity(
        idp_id=assertion.idp_id,
        addresses=tuple(IdentityAddress(address=a) for a in assertion.addresses),
        raw_status=assertion.raw_status,
        status=IdentityStatus(assertion.status),
        status_changed_at=parse_time(assertion.observed_at),
    )


def _account(portal: str, user: LUUser) -> tuple[Any, ...]:
    """A looked-up account as resolution reads it (the columns of `SnapshotReader.accounts`)."""
    return (portal, user.id, user.email, user.username, user.user_type, user.enabled, user.last_sign_in_at,
            user.created_at)  # fmt: skip
