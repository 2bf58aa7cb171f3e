"""Identity resolution: which LearnUpon accounts and IdP identities are one person.

Email is the only key LearnUpon and the IdPs share, so everything hangs on comparing addresses well:
trimmed and casefolded (the original kept for display), matched against *every* address an identity has,
with no `+tag` or dot stripping. Identities of different IdPs that share an address are one person (Okta
and Entra both know Ana); one address claimed by two identities of the *same* IdP is a collision, which we
report instead of guessing — the accounts on it get no IdP verdict.

Person keys are stable strings: the casefolded primary address of the person's identities (the most common
one across IdPs, then the smallest), or the account's own casefolded email when no identity matches it.
A key is never a colliding address, so a collision account can never borrow an identity's verdict; an
identity with no usable address at all is keyed `<idp>:<id>` (no `@`, so no email can ever meet it).
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from crawler.snapshot_reader import SnapshotReader
from crawler.vocabulary import is_privileged

# When an identity flags no primary address, prefer a mailbox over a login name or an alias.
_KIND_RANK = {"email": 0, "proxy": 1, "upn": 2, "alias": 3}


def fold(address: str) -> str:
    """The comparison form of an address: trimmed and casefolded, nothing else."""
    return address.strip().casefold()


def account_node(portal: str, user_id: int) -> str:
    return f"account:{portal}:{user_id}"


def identity_node(source: str, idp_id: str) -> str:
    return f"identity:{source}:{idp_id}"


def person_node(key: str) -> str:
    return f"person:{key}"


class Match(StrEnum):
    """How an account relates to the IdPs."""

    MATCHED = "matched"  # its email is an address of (non-colliding) IdP identities
    NO_IDENTITY = "no_identity"  # it has an email that no identity holds
    COLLISION = "collision"  # its email is claimed by several identities of one IdP: no verdict
    NO_EMAIL = "no_email"  # username-only: cannot be matched at all


@dataclass(slots=True, eq=False)
class Account:
    """One LearnUpon user, with the person it resolved to."""

    portal: str
    id: int
    email: str | None
    username: str | None
    user_type: str | None
    enabled: bool
    last_sign_in_at: str | None
    created_at: str | None
    email_key: str | None = None
    person: str | None = None
    match: Match = Match.NO_EMAIL

    @property
    def node_id(self) -> str:
        return account_node(self.portal, self.id)

    @property
    def key(self) -> tuple[str, int]:
        return (self.portal, self.id)

    @property
    def privileged(self) -> bool:
        return is_privileged(self.user_type)


class Address(NamedTuple):
    display: str
    key: str
    primary: bool
    kind: str


@dataclass(slots=True, eq=False)
class IdentityRecord:
    """One identity as one IdP knows it."""

    source: str
    idp_id: str
    raw_status: str
    status: str
    status_changed_at: str | None
    last_login: str | None
    user_type: str | None
    display_name: str | None
    addresses: list[Address] = field(default_factory=list)
    primary: str | None = None  # casefolded
    person: str | None = None

    @property
    def node_id(self) -> str:
        return identity_node(self.source, self.idp_id)

    def address_for(self, key: str) -> str | None:
        """The identity's own spelling of the address `key`, if it has it."""
        for address in self.addresses:
            if address.key == key:
                return address.display
        return None


@dataclass(slots=True, eq=False)
class Person:
    key: str
    identities: list[IdentityRecord] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return person_node(self.key)


@dataclass(frozen=True)
class Collision:
    """One address claimed by several identities of the same IdP."""

    address: str  # casefolded
    idp: str
    identities: tuple[str, ...]  # the IdP's ids, sorted
    accounts: tuple[tuple[str, int], ...]  # (portal, user id) of the accounts on this address

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "idp": self.idp,
            "identities": list(self.identities),
            "accounts": [{"portal": p, "learnupon_user_id": i} for p, i in self.accounts],
        }


@dataclass
class Resolution:
    """Every account and identity of one run, joined into people."""

    accounts: list[Account]
    identities: dict[tuple[str, str], IdentityRecord]
    persons: dict[str, Person]
    collisions: list[Collision]
    idps: tuple[str, ...]
    _by_key: dict[tuple[str, int], Account] | None = field(default=None, repr=False)
    _by_address: dict[str, str] | None = field(default=None, repr=False)
    _collisions_by_address: dict[str, list[Collision]] | None = field(default=None, repr=False)

    @property
    def unmatchable(self) -> list[Account]:
        """Username-only accounts: kept everywhere, but no IdP can ever be asked about them."""
        return [a for a in self.accounts if a.match is Match.NO_EMAIL]

    @property
    def portals(self) -> tuple[str, ...]:
        return tuple(sorted({a.portal for a in self.accounts}))

    def account(self, portal: str, user_id: int) -> Account | None:
        if self._by_key is None:
            self._by_key = {a.key: a for a in self.accounts}
        return self._by_key.get((portal, user_id))

    def collisions_for(self, key: str) -> list[Collision]:
        """The collisions on one casefolded address (one per IdP that has it twice)."""
        if self._collisions_by_address is None:
            self._collisions_by_address = defaultdict(list)
            for collision in self.collisions:
                self._collisions_by_address[collision.address].append(collision)
        return self._collisions_by_address.get(key, [])

    def person_for(self, email: str) -> Person | None:
        """The person an address belongs to: a person key, an account email or any identity address.

        A colliding address names no identity's person; it finds the accounts' own person, if any.
        """
        key = fold(email)
        if key in self.persons:
            return self.persons[key]
        if self._by_address is None:
            index: dict[str, str] = {}
            colliding = {c.address for c in self.collisions}
            for identity in self.identities.values():
                for address in identity.addresses:
                    if identity.person and address.key not in colliding:
                        index[address.key] = identity.person
            for account in self.accounts:
                if account.email_key and account.person:
                    index.setdefault(account.email_key, account.person)
            self._by_address = index
        person = self._by_address.get(key)
        return self.persons.get(person) if person else None


class _UnionFind:
    """Groups of identities; only identities that share an address are ever stored."""

    def __init__(self) -> None:
        self.parent: dict[IdentityRecord, IdentityRecord] = {}

    def find(self, item: IdentityRecord) -> IdentityRecord:
        parent = self.parent
        while (up := parent.get(item, item)) is not item:
            parent[item] = parent.get(up, up)
            item = up
        return item

    def union(self, a: IdentityRecord, b: IdentityRecord) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is not rb:
            self.parent[rb] = ra


def _primary(identity: IdentityRecord) -> str | None:
    addresses = identity.addresses
    if len(addresses) == 1:
        return addresses[0].key
    flagged = [a.key for a in addresses if a.primary]
    if flagged:
        return min(flagged)
    return min(addresses, key=lambda a: (_KIND_RANK.get(a.kind, 9), a.key)).key if addresses else None


def _person_key(members: Sequence[IdentityRecord], colliding: set[str]) -> str:
    """A stable key for a group of identities, never an address that collides."""
    if len(members) == 1 and (primary := members[0].primary) and primary not in colliding:
        return primary
    primaries = Counter(i.primary for i in members if i.primary and i.primary not in colliding)
    if primaries:
        return min(primaries, key=lambda k: (-primaries[k], k))
    others = sorted(a.key for i in members for a in i.addresses if a.key not in colliding)
    if others:
        return others[0]
    first = min(members, key=lambda i: (i.source, i.idp_id))
    return f"{first.source}:{first.idp_id}"  # no usable address at all: no '@', cannot meet an email


def resolve(
    account_rows: Iterable[Sequence[Any]],
    identity_rows: Iterable[Sequence[Any]],
    address_rows: Iterable[Sequence[Any]],
) -> Resolution:
    """Join accounts and identities into people. Rows are in the column order of the *_SQL queries."""
    intern: dict[str, str] = {}
    identities: dict[tuple[str, str], IdentityRecord] = {}
    for source, idp_id, raw_status, status, changed, last_login, user_type, display_name in identity_rows:
        source = intern.setdefault(source, source)
        identities[(source, idp_id)] = IdentityRecord(
            source, idp_id, raw_status, status, changed, last_login, user_type, display_name
        )

    owners: dict[str, list[IdentityRecord]] = {}
    for source, idp_id, address, is_primary, kind in address_rows:
        identity = identities.get((source, idp_id))
        key = fold(address or "")
        if identity is None or not key:
            continue
        identity.addresses.append(Address(address, key, bool(is_primary), kind))
        holders = owners.get(key)
        if holders is None:
            owners[key] = [identity]
        elif identity not in holders:  # one identity may list an address twice (primary and proxy)
            holders.append(identity)

    shared = {key: holders for key, holders in owners.items() if len(holders) > 1}
    collisions_by_key: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for key, holders in shared.items():
        per_idp: dict[str, list[str]] = defaultdict(list)
        for identity in holders:
            per_idp[identity.source].append(identity.idp_id)
        clashes = [(s, tuple(sorted(ids))) for s, ids in sorted(per_idp.items()) if len(ids) > 1]
        if clashes:
            collisions_by_key[key] = clashes
    colliding = set(collisions_by_key)

    # Identities of different IdPs sharing a (non-colliding) address are one person.
    groups = _UnionFind()
    for key, holders in shared.items():
        if key not in colliding:
            for other in holders[1:]:
                groups.union(holders[0], other)
    members: dict[IdentityRecord, list[IdentityRecord]] = {}
    for identity in identities.values():
        identity.primary = _primary(identity)
        members.setdefault(groups.find(identity), []).append(identity)

    persons: dict[str, Person] = {}
    for group in members.values():
        key = _person_key(group, colliding)
        persons[key] = Person(
            key, group if len(group) == 1 else sorted(group, key=lambda i: (i.source, i.idp_id))
        )
        for identity in group:
            identity.person = key

    # Every holder of a non-colliding address is in one group, so any of them names the person.
    person_of_address = {key: holders[0].person for key, holders in owners.items() if key not in colliding}

    accounts: list[Account] = []
    collision_accounts: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for portal, user_id, email, username, user_type, enabled, last_sign_in, created in account_rows:
        portal = intern.setdefault(portal, portal)
        user_type = intern.setdefault(user_type, user_type) if user_type is not None else None
        account = Account(portal, user_id, email, username, user_type, bool(enabled), last_sign_in, created)
        key = fold(email) if email else ""
        if key:
            account.email_key = email if key == email else key  # share the string when already folded
            if key in colliding:
                account.match, account.person = Match.COLLISION, key
                collision_accounts[key].append(account.key)
            elif key in person_of_address:
                account.match, account.person = Match.MATCHED, person_of_address[key]
            else:
                account.match, account.person = Match.NO_IDENTITY, key
            person_key = account.person or key  # every branch above set it
            person = persons.get(person_key)
            if person is None:
                person = persons[person_key] = Person(person_key)
            person.accounts.append(account)
        accounts.append(account)

    collisions = [
        Collision(key, source, ids, tuple(collision_accounts.get(key, ())))
        for key in sorted(collisions_by_key)
        for source, ids in collisions_by_key[key]
    ]
    idps = tuple(sorted({source for source, _ in identities}))
    return Resolution(accounts, identities, persons, collisions, idps)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic GC out of the way while millions of long-lived, acyclic objects are built.

    Left on, each allocation burst triggers collections that rescan everything built so far (at a million
    accounts that nearly doubles the time, BENCHMARKS.md); merely paused, the first collection afterwards
    still scans it all once. So the result is frozen (`gc.freeze`): the collector ignores it from then on,
    while reference counting still frees it when the run is dropped.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def load_resolution(snapshot: SnapshotReader, run_id: int) -> Resolution:
    """Resolve one run straight from the snapshot, streaming rows instead of materialising them."""
    with gc_paused():
        return resolve(snapshot.accounts(run_id), snapshot.identities(run_id), snapshot.addresses(run_id))
