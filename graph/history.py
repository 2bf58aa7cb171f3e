"""Finding history across runs, and what changed since the previous run.

Tables live in the snapshot file next to the runs they describe (`crawler.store.SCHEMA`); this module writes
them through `SnapshotStore.transaction` and reads them through `crawler.snapshot_reader`. A finding is
identified by `Finding.id`, which is stable across runs. The one subtle verdict: a finding that is gone from
a newer run is *resolved* only if that run read again every fact it rested on (`Finding.depends_on`: its
account, the other accounts it names, every IdP) and the verdict was not withheld for it; anything else is
*not re-checked* — absence from a partial crawl proves nothing. An account is read again when its record was
read, or when its portal's users listing completed without it (then it is gone, which is a fact too).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from crawler.config import ExcludeRule
from crawler.coverage import IDENTITIES, USERS
from crawler.review_tables import record_findings, write_review_settings
from crawler.snapshot_reader import HISTORY_COLUMNS, SnapshotReader
from crawler.store import INCREMENTAL, SnapshotStore
from graph.model import Code, Finding, FindingSet, Unavailable
from graph.rules import FACTS, IDPS_FACT, ReviewSettings


# --- review settings --------------------------------------------------------------------------------------
def save_review_settings(store: SnapshotStore, run_id: int, settings: ReviewSettings) -> None:
    """Remember the `[review]` settings a run was judged with, so a report needs no config file."""
    write_review_settings(
        store, run_id, list(settings.managed_domains), settings.dormant_days, settings.review_rules()
    )


def load_review_settings(store: SnapshotStore, run_id: int) -> ReviewSettings | None:
    """The settings saved for a run, or None."""
    reader = store.reader()
    saved = reader.review_settings(run_id)
    if saved is None:
        return None
    rules = reader.review_rules(run_id) or {}
    return ReviewSettings(
        tuple(saved[0]),
        saved[1],
        tuple(ExcludeRule.model_validate(r) for r in rules.get("exclude", ())),
        int(rules.get("max_exception_days", ReviewSettings.max_exception_days)),
    )


# --- recording ----------------------------------------------------------------------------------------------
def history_rows(findings: Iterable[Finding]) -> list[tuple[Any, ...]]:
    """The history rows of findings (one per id): what `crawler.review_tables` writes."""
    unique = {f.id: f for f in findings}
    return [
        (
            fid,
            f.code.value,
            f.severity.value,
            *(getattr(f, c) for c in HISTORY_COLUMNS[2:]),
            list(f.depends_on),
        )
        for fid, f in unique.items()
    ]


def record(store: SnapshotStore, findings: FindingSet, settings: ReviewSettings | None = None) -> None:
    """Record one run's findings. Idempotent: recording a run again replaces what it said before."""
    run_id = findings.run_id
    seen_at = store.reader().run_started_at(run_id)
    rows = history_rows(findings.findings)
    record_findings(store, run_id, seen_at, rows, [asdict(u) for u in findings.unavailable])
    if settings is not None:
        save_review_settings(store, run_id, settings)


# --- reading ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryEntry:
    """What the history knows about one finding (as last seen), enough to list it in a report."""

    finding_id: str
    code: Code
    severity: str | None
    email: str | None
    person: str | None
    portal: str | None
    learnupon_user_id: int | None
    user_type: str | None
    idp: str | None
    idp_status: str | None
    first_seen_run: int
    last_seen_run: int
    first_seen_at: str | None
    last_seen_at: str | None
    depends_on: tuple[str, ...] | None = None  # None: recorded before dependencies were

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["code"] = self.code.value
        data["depends_on"] = None if self.depends_on is None else list(self.depends_on)
        return data


def _entry(row: sqlite3.Row | tuple[Any, ...]) -> HistoryEntry:
    values = list(row)
    values[1] = Code(values[1])
    values[-1] = None if values[-1] is None else tuple(json.loads(values[-1]))
    return HistoryEntry(*values)


def entries(store: SnapshotStore, finding_ids: set[str] | None = None) -> dict[str, HistoryEntry]:
    rows = store.reader().history()
    return {r[0]: _entry(r) for r in rows if finding_ids is None or r[0] in finding_ids}


def run_findings(store: SnapshotStore, run_id: int) -> set[str]:
    """The finding ids a recorded run produced; LookupError if the run was never recorded."""
    recorded = store.reader().recorded_findings(run_id)
    if recorded is None:
        raise LookupError(f"findings of run {run_id} were never recorded")
    return recorded


def first_seen(store: SnapshotStore, finding_ids: set[str] | None = None) -> dict[str, str]:
    """finding id -> when it was first seen (the start of the first run that found it)."""
    return {fid: e.first_seen_at for fid, e in entries(store, finding_ids).items() if e.first_seen_at}


@dataclass
class Diff:
    run_id: int
    previous_run_id: int | None
    new: list[HistoryEntry] = field(default_factory=list)
    resolved: list[HistoryEntry] = field(default_factory=list)
    still_open: list[HistoryEntry] = field(default_factory=list)
    not_rechecked: list[HistoryEntry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The shape report writers read (`graph.reports.input.RunDiff.from_mapping`)."""
        return {
            "run_id": self.run_id,
            "previous_run_id": self.previous_run_id,
            **{
                name: [e.as_dict() for e in getattr(self, name)]
                for name in ("new", "resolved", "still_open", "not_rechecked")
            },
        }


@dataclass
class _RunChecks:
    """What one run read, and which verdicts it withheld."""

    snapshot: SnapshotReader  # one reader for every account looked up: `store.reader()` flushes each time
    run_id: int
    unavailable: list[Unavailable]
    users_complete: dict[str, bool]  # portal -> its users listing completed
    idps_complete: bool

    @classmethod
    def of(cls, store: SnapshotStore, run_id: int) -> _RunChecks:
        snapshot = store.reader()
        withheld = snapshot.withheld(run_id)
        unavailable = [Unavailable(Code(u["code"]), u["scope"], u["reason"]) for u in withheld]
        if snapshot.run_kind(run_id) == INCREMENTAL:
            # A watch round looked a few people up: the records it read are facts (an account it read
            # disabled settles a finding), but no listing of it was complete, so nothing is absent.
            return cls(snapshot, run_id, unavailable, {}, False)
        coverage = store.coverage(run_id)
        users = {c.source: c.collection_complete(USERS) for c in coverage if c.kind == "learnupon"}
        idps = [c.collection_complete(IDENTITIES) for c in coverage if c.kind != "learnupon"]
        return cls(snapshot, run_id, unavailable, users, bool(idps) and all(idps))

    def account(self, portal: str, user_id: int) -> tuple[bool, bool]:
        """(read again: its record was read, or its users listing completed without it; still enabled)."""
        enabled = self.snapshot.account_enabled(self.run_id, portal, user_id)
        if enabled is not None:
            return True, enabled
        return self.users_complete.get(portal, False), False

    def fact_read(self, fact: str) -> bool:
        if fact == IDPS_FACT:
            return self.idps_complete
        kind, _, rest = fact.partition(":")
        portal, _, user_id = rest.rpartition(":")
        if kind != "account" or not user_id.isdigit():
            return False  # a fact this version does not know how to re-read
        return self.account(portal, int(user_id))[0]

    def rechecked(self, entry: HistoryEntry) -> bool:
        """Did this run read every fact the finding rested on, and give the verdict for it?

        Every rule is about an enabled account, so an account read again and found disabled (or gone from
        a complete listing) settles it whatever else was missing.
        """
        if entry.portal is None or entry.learnupon_user_id is None:
            return False
        read, enabled = self.account(entry.portal, entry.learnupon_user_id)
        if read and not enabled:
            return True
        if not all(self.fact_read(f) for f in _dependencies(entry, self.users_complete)):
            return False
        account = f"account:{entry.portal}:{entry.learnupon_user_id}"
        return not any(u.code is entry.code and u.scope in ("all", account) for u in self.unavailable)


def _dependencies(entry: HistoryEntry, portals: Mapping[str, bool]) -> tuple[str, ...]:
    """The facts a finding rested on; for one recorded before they were, the most it could have needed."""
    if entry.depends_on is not None:
        return entry.depends_on
    own = (f"account:{entry.portal}:{entry.learnupon_user_id}",)
    needs = FACTS.get(entry.code, ("account", "counterparts", IDPS_FACT))
    idps = (IDPS_FACT,) if IDPS_FACT in needs else ()
    if "counterparts" in needs:  # unknown counterparts: any portal's account may have been one
        unknown = tuple(f"portal-users:{p}" for p, done in portals.items() if not done)
        return own + unknown + idps
    return own + idps


def diff(store: SnapshotStore, run_id: int, previous_run_id: int | None = None) -> Diff:
    """Compare a recorded run with the recorded run before it (or `previous_run_id`).

    new: found now, not before (unless the run before could not re-check it: then still open);
    resolved: found before, re-checked now and gone; not_rechecked: found before, and its portal or rule
    was not complete now; still_open: found in both.
    """
    current = run_findings(store, run_id)
    if previous_run_id is None:
        previous_run_id = store.reader().previous_recorded_run(run_id)
    result = Diff(run_id, previous_run_id)
    previous = run_findings(store, previous_run_id) if previous_run_id is not None else set()
    known = entries(store, current | previous)
    now = _RunChecks.of(store, run_id)
    before = _RunChecks.of(store, previous_run_id) if previous_run_id is not None else None
    for fid in sorted(current):
        entry = known[fid]
        if fid in previous:
            result.still_open.append(entry)
        elif before is not None and entry.first_seen_run < before.run_id and not before.rechecked(entry):
            result.still_open.append(entry)  # carried across a run that could not look at it
        else:
            result.new.append(entry)
    for fid in sorted(previous - current):
        entry = known[fid]
        (result.resolved if now.rechecked(entry) else result.not_rechecked).append(entry)
    return result
