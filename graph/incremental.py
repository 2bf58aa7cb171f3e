"""The full crawl's rule, applied to the few people a watch round was told about.

A feed says one identity changed; the verdict must be the one a crawl would give, with the same finding id.
So the person is rebuilt as the crawl builds people (`graph.resolve.resolve`): every identity that shares an
address with it, transitively — taken from the newest finished crawl, with every status the watcher
recorded since laid over it (the feed's own identity from the feed) — and the accounts `/users/search`
found for those addresses. `graph.rules.idp_disabled_active` then judges them, under the crawl's coverage:
an IdP the crawl did not read completely withholds the verdict, as it would in the crawl, and a
quarantined identity or an address two identities of one IdP claim withholds it for those accounts. Each
finding's evidence says which statuses came from the feed and which from the crawl (`evidence["watch"]`).

Nothing here is network: the round (`idgraph.watch_round`) brings the feed's change and the lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crawler.coverage import IDENTITIES, SourceCoverage
from crawler.runs import RunInfo
from crawler.snapshot_reader import SnapshotReader
from crawler.watch.tables import AssertedStatus as Assertion
from graph.model import Code, Finding, Unavailable
from graph.resolve import fold, resolve
from graph.rules import (
    AccountDetails,
    ReviewSettings,
    RuleInput,
    Sources,
    attach_details,
    idp_disabled_active,
)

MAX_PERSON_IDENTITIES = 500  # a person this large is an address everybody shares, not a person
IdentityKey = tuple[str, str]  # (IdP source, idp_id)
NO_CRAWL = (
    "no finished crawl in this snapshot: run `idgraph crawl` first, so every IdP's identities are known"
)


@dataclass
class Person:
    """The identities a crawl would join into one person, as rows `resolve` reads, and where each
    status came from."""

    identities: list[tuple[Any, ...]]
    addresses: list[tuple[Any, ...]]
    status_from: dict[IdentityKey, str]  # "crawl N" or "feed (watch run M)"
    too_large: bool = False

    @property
    def keys(self) -> list[IdentityKey]:
        return [(row[0], row[1]) for row in self.identities]

    def lookup_addresses(self) -> list[str]:
        """Every address of the person's identities, casefolded, once each: the accounts to look for."""
        return sorted({fold(row[2]) for row in self.addresses if fold(row[2] or "")})


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)  # "source:idp_id" of the person's identities


class Estate:
    """The crawl the watcher stands on: its identities indexed by address, what it read of each IdP, and
    the statuses the watcher recorded since. Build one per round (the overlays change)."""

    def __init__(
        self,
        reader: SnapshotReader,
        crawl: RunInfo | None,
        coverage: Sequence[SourceCoverage],
        quarantined: Mapping[str, Sequence[tuple[str, str]]],
        configured_idps: Iterable[str],
        overlays: Iterable[Assertion] = (),
        settings: ReviewSettings | None = None,
        address_index: dict[str, set[IdentityKey]] | None = None,
    ) -> None:
        self.reader = reader
        self.crawl = crawl
        self.settings = settings or ReviewSettings()
        self.overlays = {a.key: a for a in overlays}
        idps = {c.source: c.collection_gap(IDENTITIES) for c in coverage if c.kind != "learnupon"}
        for name in configured_idps:
            idps.setdefault(name, f"not read by crawl {crawl.id}" if crawl else NO_CRAWL)
        if crawl is None:
            idps = dict.fromkeys(idps, NO_CRAWL)
        self.idp_gaps = idps
        self.quarantined = {
            address: [(s, r) for s, r in entries if s in idps]
            for address, entries in quarantined.items()
            if any(s in idps for s, _ in entries)
        }
        self._index = address_index

    @property
    def address_index(self) -> dict[str, set[IdentityKey]]:
        """Casefolded address -> the crawl's identities holding it (built once, on first use)."""
        if self._index is None:
            index: dict[str, set[IdentityKey]] = {}
            if self.crawl is not None:
                for source, idp_id, address, _primary, _kind in self.reader.addresses(self.crawl.id):
                    key = fold(address or "")
                    if key:
                        index.setdefault(key, set()).add((source, idp_id))
            self._index = index
        return self._index

    def status_of(self, key: IdentityKey) -> tuple[str, str] | None:
        """(status, raw status) last known for an identity: recorded since the crawl, else the crawl's."""
        if key in self.overlays:
            return self.overlays[key].status, self.overlays[key].raw_status
        if self.crawl is None:
            return None
        rows, _ = self.reader.identities_of(self.crawl.id, [key])
        return (rows[0][3], rows[0][2]) if rows else None

    def identity_id(self, source: str, idp_id: str, addresses: Iterable[str]) -> str:
        """The id the crawl knows this identity by. A feed that names people by email (Google's reports)
        gives an id no crawl has; then the one identity of that IdP holding one of its addresses is it
        (with several, or none, the feed's id stays: the rule then sees exactly what a crawl would)."""
        if (source, idp_id) in self.overlays or self.status_of((source, idp_id)) is not None:
            return idp_id
        holders = {
            key
            for address in addresses
            for key in self.address_index.get(fold(address), set())
            | {k for k, a in self.overlays.items() if fold(address) in {fold(x) for x in a.addresses}}
            if key[0] == source
        }
        return next(iter(holders))[1] if len(holders) == 1 else idp_id

    def person(self, seed: Assertion) -> Person:
        """Every identity sharing an address with `seed`, transitively, as the crawl would group them,
        with `seed`'s own status (the feed's) over everything else's."""
        overlays = {**self.overlays, seed.key: seed}
        overlay_index: dict[str, set[IdentityKey]] = {}
        for assertion in overlays.values():
            for address in assertion.addresses:
                overlay_index.setdefault(fold(address), set()).add(assertion.key)
        person = Person([], [], {})
        queue, seen = [seed.key], {seed.key}
        while queue:
            key = queue.pop()
            identity, addresses, origin = self._identity(key, overlays.get(key))
            person.identities.append(identity)
            person.addresses += addresses
            person.status_from[key] = origin
            for row in addresses:
                address = fold(row[2] or "")
                for other in self.address_index.get(address, set()) | overlay_index.get(address, set()):
                    if other not in seen:
                        seen.add(other)
                        queue.append(other)
            if len(seen) > MAX_PERSON_IDENTITIES:
                person.too_large = True
                break
        return person

    def _identity(
        self, key: IdentityKey, assertion: Assertion | None
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], str]:
        rows, addresses = ([], []) if self.crawl is None else self.reader.identities_of(self.crawl.id, [key])
        if assertion is None:
            assert self.crawl is not None and rows  # only the crawl's identities are reached by address
            return rows[0], addresses, f"crawl {self.crawl.id}"
        known = {fold(a[2] or "") for a in addresses}
        addresses = list(addresses) + [
            (key[0], key[1], address, 0, "email")
            for address in dict.fromkeys(assertion.addresses)
            if fold(address) and fold(address) not in known
        ]
        _, _, _, _, _, last_login, user_type, display_name = rows[0] if rows else (None,) * 8
        identity = (
            key[0],
            key[1],
            assertion.raw_status,
            assertion.status,
            assertion.observed_at,
            last_login,
            user_type,
            display_name,
        )
        where = f"watch run {assertion.run_id}" if assertion.run_id is not None else "watch"
        return identity, addresses, f"change feed ({where})"

    def judge(
        self,
        seed: Assertion,
        person: Person,
        accounts: Sequence[tuple[Any, ...]],
        lookup_gaps: Mapping[str, str | None],
        *,
        run_id: int,
        run_started_at: datetime,
        event: Mapping[str, Any],
    ) -> Verdict:
        """`idp_disabled_active` for the accounts the lookups read, exactly as a crawl would judge them.

        `accounts`: the rows the lookups read, in the columns of `SnapshotReader.accounts`;
        `lookup_gaps`: portal -> None when every lookup there was answered, else why not.
        """
        verdict = Verdict(identities=[f"{s}:{i}" for s, i in person.keys])
        if person.too_large:
            reason = (
                f"{seed.source}:{seed.idp_id} shares addresses with over {MAX_PERSON_IDENTITIES} identities; "
                "no verdict until a crawl reads them"
            )
            verdict.unavailable.append(Unavailable(Code.IDP_DISABLED_ACTIVE, "all", reason))
            return verdict
        resolution = resolve(accounts, person.identities, person.addresses)
        sources = Sources(portals=dict(lookup_gaps), idps=self.idp_gaps, quarantined=self.quarantined)
        findings, unavailable = idp_disabled_active(
            RuleInput(run_id, run_started_at, resolution, sources, self.settings)
        )
        verdict.unavailable = unavailable
        if findings and self.crawl is not None:
            keys = {(f.portal, f.learnupon_user_id) for f in findings if f.portal and f.learnupon_user_id}
            groups, enrollments = self.reader.account_details(self.crawl.id, {(p, i) for p, i in keys if p})
            attach_details(findings, AccountDetails(groups, enrollments))
        for finding in findings:
            finding.evidence["watch"] = self._evidence(seed, person, run_id, event)
        verdict.findings = findings
        return verdict

    def _evidence(
        self, seed: Assertion, person: Person, run_id: int, event: Mapping[str, Any]
    ) -> dict[str, Any]:
        crawl = self.crawl
        assert crawl is not None  # a verdict is given only over a crawl's IdP coverage
        return {
            "incremental_run": run_id,
            "crawl_run": crawl.id,
            "crawl_started_at": crawl.started_at,
            "event": dict(event),
            "basis": (
                f"{seed.source}'s status of {seed.idp_id} is its change feed's; every other identity's "
                f"status is the one crawl {crawl.id} (started {crawl.started_at}) read, or a later watch "
                "round recorded, and the IdPs' completeness is that crawl's"
            ),
            "status_from": {f"{s}:{i}": origin for (s, i), origin in sorted(person.status_from.items())},
        }
