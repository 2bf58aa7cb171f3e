"""One description of fake people, rendered by every fake IdP in its own vendor's dialect.

Tests and the demo describe a person once — addresses, a status in a shared vocabulary, a guest flag — and
each fake turns that into an Okta user, a Graph user, a Directory user or a SCIM resource. `overrides` lets
a test bend one vendor's record (drop `accountEnabled`, null `mail`, an unknown Okta status) without
inventing a second way to describe people.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

# The shared status vocabulary. Each fake maps it onto its vendor's words.
STATUSES = (
    "active",
    "disabled",
    "deprovisioned",
    "suspended",
    "archived",
    "locked_out",
    "password_expired",
    "recovery",
    "not_activated",
    "provisioned",
)
DISABLED_STATUSES = frozenset({"disabled", "deprovisioned", "suspended", "archived"})
DEFAULT_TIME = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()  # an override value that removes the key from the vendor record


@dataclass(frozen=True)
class FakePerson:
    """One person as a fake IdP knows them."""

    id: str  # stable key; each vendor derives its own id format from it
    email: str
    given_name: str = "Test"
    family_name: str = "Person"
    aliases: tuple[str, ...] = ()
    status: str = "active"
    guest: bool = False
    login: str | None = None  # Okta login / SCIM userName / Entra UPN, when not the email
    second_email: str | None = None  # Okta secondEmail / Entra otherMails: a recovery address, never matched
    status_changed_at: datetime = DEFAULT_TIME
    last_login: datetime | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # vendor -> fields

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown fake status {self.status!r}; use one of {', '.join(STATUSES)}")

    @property
    def disabled(self) -> bool:
        return self.status in DISABLED_STATUSES

    @property
    def display_name(self) -> str:
        return f"{self.given_name.title()} {self.family_name.title()}"

    def render(self, vendor: str, record: dict[str, Any]) -> dict[str, Any]:
        """Apply this person's overrides for one vendor to the record it generated."""
        for key, value in self.overrides.get(vendor, {}).items():
            if value is DROP:
                record.pop(key, None)
            else:
                record[key] = value
        return record

    def stable_hex(self, vendor: str, length: int) -> str:
        return hashlib.sha256(f"{vendor}:{self.id}".encode()).hexdigest()[:length]

    def stable_uuid(self, vendor: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"idgraph-fake:{vendor}:{self.id}"))


class PersonLike(Protocol):
    """What the simulator's `Person` offers; any object with these attributes will do."""

    # Read-only (properties), so a frozen dataclass satisfies it.
    @property
    def key(self) -> int: ...
    @property
    def given_name(self) -> str: ...
    @property
    def family_name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def aliases(self) -> tuple[str, ...]: ...
    @property
    def idp_status(
        self,
    ) -> str: ...  # active|disabled|deprovisioned|suspended|locked_out|not_activated|absent
    @property
    def status_changed_at(self) -> datetime: ...


def directory_from_people(people: Iterable[PersonLike]) -> list[FakePerson]:
    """The simulator's population as fake IdP people; `absent` people are not in the IdP at all.

    A person's first alias becomes their login (the address they signed up with), which is how a
    renamed person still signs in under the old address.
    """
    out = []
    for person in people:
        if person.idp_status == "absent":
            continue
        aliases = tuple(person.aliases)
        out.append(
            FakePerson(
                id=f"p{person.key}",
                email=person.email,
                given_name=person.given_name,
                family_name=person.family_name,
                aliases=aliases,
                status=person.idp_status,
                login=aliases[0] if aliases else None,
                second_email=f"{person.given_name}.{person.family_name}.{person.key}@personal.example",
                status_changed_at=person.status_changed_at,
            )
        )
    return out


def iso(value: datetime | None) -> str | None:
    """Vendor timestamp format: UTC with milliseconds and a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def iso_ms(moment: float) -> str:
    """An epoch time in the format Okta and Google write event times: UTC, milliseconds, a Z."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_instant(value: str | None) -> float | None:
    """An RFC 3339 query parameter as epoch seconds (naive means UTC); None when absent or unreadable."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


__all__ = [
    "DEFAULT_TIME",
    "DISABLED_STATUSES",
    "DROP",
    "STATUSES",
    "FakePerson",
    "PersonLike",
    "directory_from_people",
    "iso",
    "iso_ms",
    "parse_instant",
]
