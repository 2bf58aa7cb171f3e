"""The incremental run: what one watch round read, kept in the snapshot like a crawl's run, but marked
`incremental` (`runs.kind`).

It is opened on the first record the round has to keep (a round that saw nothing writes nothing). The
accounts a lookup returned and the identities a feed reported are facts, stored in the usual tables. Its
coverage says what was read — per portal a `lookups` collection, per IdP a `feed` collection — and never a
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

LOOKUPS, FEED = "lookups", "feed"


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
        self._tally: dict[str, _Tally] = {}

    def ensure(self) -> int:
        if self.run_id is None:
            self.run_id = self.store.start_run([], self.fingerprint, kind=INCREMENTAL)
            self.started_at = self.store.run(self.run_id).started_at
        return self.run_id

    def _of(self, source: str, kind: str, collection: str) -> _Tally:
        return self._tally.setdefault(source, _Tally(kind, collection))

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

    def feed_read(self, source: str, kind: str, *, requests: int, error: str | None) -> None:
        tally = self._of(source, kind, FEED)
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
        return {source: t.errors for source, t in self._tally.items() if t.errors}

    def finish(self) -> str | None:
        """Save the coverage of what was read and close the run; its status, or None if none was opened."""
        if self.run_id is None:
            return None
        now = utcnow()
        for source, tally in sorted(self._tally.items()):
            reason = "; ".join(dict.fromkeys(tally.errors)) or None
            self.store.save_coverage(
                self.run_id,
                SourceCoverage(
                    source=source,
                    kind=tally.kind,
                    complete=reason is None,
                    error=reason,
                    requests=tally.requests,
                    records=tally.records,
                    quarantined=tally.quarantined,
                    started_at=self.started_at,
                    finished_at=now,
                    notes=["incremental run: only what the watcher looked at was read"],
                    collections=[
                        CollectionCoverage(
                            tally.collection,
                            COMPLETE if reason is None else INCOMPLETE,
                            reason,
                            requests=tally.requests,
                            records=tally.records,
                        )
                    ],
                ),
            )
        return self.store.finish_run(self.run_id)
