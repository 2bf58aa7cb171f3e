"""The incremental run: what one watch round read, kept in the snapshot like a crawl's run, but marked
`incremental` (`runs.kind`).

It is opened on the first record the round has to keep (a round that saw nothing writes nothing). The
accounts a lookup returned and the identities a feed reported are facts, stored in the usual tables. Its
coverage says what was read — per portal a `lookups` collection (and `audit_trail` when its audit trail was
read), per IdP a `feed` collection — and never a
`users` or `identities` collection: no listing of it is complete, so nothing may be read as absent from it
(`graph.history` relies on that). A record a feed could not read is quarantined with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from crawler.coverage import COMPLETE, INCOMPLETE, CollectionCoverage, SourceCoverage
from crawler.feeds.events import Skipped
from crawler.records import Identity, LUUser
from crawler.runs import utcnow
from crawler.store import INCREMENTAL, SnapshotStore

LOOKUPS, FEED, AUDIT_TRAIL = "lookups", "feed", "audit_trail"


@dataclass
class _Tally:
    kind: str
    collection: str
    records: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    quarantined: int = 0


class IncrementalRun:
    """One round's run. `run_id` is None until something was kept."""

    def __init__(self, store: SnapshotStore, config_fingerprint: str | None) -> None:
        self.store = store
        self.fingerprint = config_fingerprint
        self.run_id: int | None = None
        self.started_at: str | None = None
        self._tally: dict[tuple[str, str], _Tally] = {}  # (source, collection)

    def ensure(self) -> int:
        if self.run_id is None:
            self.run_id = self.store.start_run([], self.fingerprint, kind=INCREMENTAL)
            self.started_at = self.store.run(self.run_id).started_at
        return self.run_id

    def _of(self, source: str, kind: str, collection: str) -> _Tally:
        return self._tally.setdefault((source, collection), _Tally(kind, collection))

    def lookups(
        self, portal: str, accounts: Iterable[LUUser], *, error: str | None, requests: int = 0
    ) -> None:
        """What one lookup in `portal` returned (its accounts), or why it could not say."""
        tally = self._of(portal, "learnupon", LOOKUPS)
        tally.requests += requests
        if error is not None:
            tally.errors.append(error)
        found = list(accounts)
        if found:
            tally.records += self.store.write_page(self.ensure(), portal, LOOKUPS, found)

    def identity(self, source: str, kind: str, identity: Identity) -> None:
        tally = self._of(source, kind, FEED)
        tally.records += self.store.write_page(self.ensure(), source, FEED, [identity])

    def feed_read(
        self, source: str, kind: str, *, requests: int, error: str | None, collection: str = FEED
    ) -> None:
        """One read of a change feed (`audit_trail` for a portal's), complete or with why not."""
        tally = self._of(source, kind, collection)
        tally.requests += requests
        if error is not None:
            tally.errors.append(error)

    def quarantine(self, source: str, kind: str, skipped: Iterable[Skipped]) -> None:
        """Records a feed could not read as a change: kept with their reason, never read as harmless."""
        for item in skipped:
            self.store.quarantine(
                self.ensure(),
                source,
                FEED,
                item.reason,
                item.record,
                addresses=item.addresses,
                label=item.label,
            )
            self._of(source, kind, FEED).quarantined += 1

    @property
    def errors(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for (source, _), tally in self._tally.items():
            if tally.errors:
                out.setdefault(source, []).extend(tally.errors)
        return out

    def finish(self) -> str | None:
        """Save the coverage of what was read and close the run; its status, or None if none was opened."""
        if self.run_id is None:
            return None
        now = utcnow()
        by_source: dict[str, list[_Tally]] = {}
        for (source, _), tally in sorted(self._tally.items()):
            by_source.setdefault(source, []).append(tally)
        for source, tallies in by_source.items():
            reasons = {t.collection: "; ".join(dict.fromkeys(t.errors)) or None for t in tallies}
            reason = "; ".join(r for r in reasons.values() if r) or None
            self.store.save_coverage(
                self.run_id,
                SourceCoverage(
                    source=source,
                    kind=tallies[0].kind,
                    complete=reason is None,
                    error=reason,
                    requests=sum(t.requests for t in tallies),
                    records=sum(t.records for t in tallies),
                    quarantined=sum(t.quarantined for t in tallies),
                    started_at=self.started_at,
                    finished_at=now,
                    notes=["incremental run: only what the watcher looked at was read"],
                    collections=[
                        CollectionCoverage(
                            t.collection,
                            COMPLETE if reasons[t.collection] is None else INCOMPLETE,
                            reasons[t.collection],
                            requests=t.requests,
                            records=t.records,
                        )
                        for t in tallies
                    ],
                ),
            )
        return self.store.finish_run(self.run_id)
