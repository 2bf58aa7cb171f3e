"""Shared normalisation for IdP sources: vendor statuses, addresses, timestamps and paging links.

Every vendor says "disabled" differently; this module is the one place that decides what each vendor word
means, so a new status is a deliberate choice here and never a silent default. An unknown status raises
`ValueError`, which `SourceContext.normalise` turns into a quarantined record with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from crawler.errors import SourceError
from crawler.records import Identity, IdentityAddress
from crawler.vocabulary import IdentityStatus

# --- statuses --------------------------------------------------------------------------------------

OKTA_STATUSES: Mapping[str, IdentityStatus] = {
    "ACTIVE": IdentityStatus.ACTIVE,
    "LOCKED_OUT": IdentityStatus.ACTIVE,  # locked, but the account is live: still a way in
    "PASSWORD_EXPIRED": IdentityStatus.ACTIVE,
    "RECOVERY": IdentityStatus.ACTIVE,
    "SUSPENDED": IdentityStatus.DISABLED,
    "DEPROVISIONED": IdentityStatus.DISABLED,
    "STAGED": IdentityStatus.NOT_ACTIVATED,
    "PROVISIONED": IdentityStatus.NOT_ACTIVATED,
    "ACTIVATING": IdentityStatus.NOT_ACTIVATED,  # transitional: activation started, never signed in yet
}


def okta_status(raw: Any) -> IdentityStatus:
    """Okta's `status`; anything not in the documented vocabulary is refused, never guessed."""
    if not isinstance(raw, str) or raw not in OKTA_STATUSES:
        raise ValueError(f"unknown Okta status {raw!r}")
    return OKTA_STATUSES[raw]


def entra_status(account_enabled: Any) -> tuple[str, IdentityStatus]:
    """Graph's `accountEnabled`; a missing value means `$select` was lost, so it is refused."""
    if not isinstance(account_enabled, bool):
        raise ValueError(
            f"accountEnabled is {'missing' if account_enabled is None else repr(account_enabled)}: "
            "the status is unknown (was $select dropped?)"
        )
    if account_enabled:
        return "enabled", IdentityStatus.ACTIVE
    return "disabled", IdentityStatus.DISABLED


def google_status(suspended: Any, archived: Any) -> tuple[str, IdentityStatus]:
    """Directory API: `suspended` or `archived` both keep the person out."""
    for name, value in (("suspended", suspended), ("archived", archived)):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{name} is {value!r}, expected true or false")
    if suspended is None:
        raise ValueError("suspended is missing: the status is unknown")
    if archived:
        return "archived", IdentityStatus.DISABLED
    if suspended:
        return "suspended", IdentityStatus.DISABLED
    return "active", IdentityStatus.ACTIVE


def scim_status(active: Any) -> tuple[str, IdentityStatus]:
    """SCIM `active` has no default in RFC 7643, so a missing value is refused."""
    if not isinstance(active, bool):
        raise ValueError(f"active is {'missing' if active is None else repr(active)}: the status is unknown")
    return ("active", IdentityStatus.ACTIVE) if active else ("inactive", IdentityStatus.DISABLED)


class UnknownStatus(ValueError):
    """A status word the configured vocabulary does not map; `value` is the word as the source wrote it."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"status {value!r} is not in the status vocabulary "
            "(active_values/disabled_values/not_activated_values)"
        )
        self.value = value


def vocabulary_status(
    raw: str | None,
    *,
    active: Iterable[str],
    disabled: Iterable[str],
    not_activated: Iterable[str],
) -> IdentityStatus:
    """A configured vocabulary (CSV exports): matched casefolded; unknown words are refused."""
    word = (raw or "").strip().casefold()
    for words, status in (
        (active, IdentityStatus.ACTIVE),
        (disabled, IdentityStatus.DISABLED),
        (not_activated, IdentityStatus.NOT_ACTIVATED),
    ):
        if word and word in {w.strip().casefold() for w in words}:
            return status
    if not word:
        raise ValueError("status is empty")
    raise UnknownStatus((raw or "").strip())


def entra_user_type(raw: Any) -> str | None:
    """Graph's `userType` (Member / Guest) as our lower-case vocabulary."""
    return raw.strip().lower() if isinstance(raw, str) and raw.strip() else None


def require_id(raw: Mapping[str, Any], key: str = "id") -> str:
    """The IdP's immutable id: the one field a record cannot do without."""
    value = raw.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} is missing")
    return value.strip()


def vendor_identity(
    raw: Mapping[str, Any], status: tuple[str, IdentityStatus], book: AddressBook, empty: str, **fields: Any
) -> Identity:
    """A vendor's user record as an `Identity`: the fields every vendor must give — its immutable id, its
    status as (the vendor's word, ours) and at least one address (`empty` names the vendor fields that
    were all empty) — and whatever else it gives (`fields`). A record missing any of the three is refused
    (quarantined with the reason), never completed with a harmless default."""
    return Identity(
        idp_id=require_id(raw),
        addresses=book.build(f"address ({empty})"),
        raw_status=status[0],
        status=status[1],
        **fields,
    )


def text(value: Any) -> str | None:
    """A vendor's free-text field (a display name), or None when it sent something else."""
    return value if isinstance(value, str) else None


# --- addresses -------------------------------------------------------------------------------------


def address_key(address: str) -> str:
    """The matching key of an address: trimmed and casefolded; +tags and dots are kept."""
    return address.strip().casefold()


def is_email(value: Any) -> bool:
    """Loose check: one `@` with something on both sides and no whitespace."""
    if not isinstance(value, str):
        return False
    value = value.strip()
    local, at, domain = value.rpartition("@")
    return bool(at and local and domain and "." in domain and not any(c.isspace() for c in value))


def parse_proxy_addresses(values: Iterable[Any] | None) -> list[tuple[str, bool]]:
    """Exchange `proxyAddresses` → [(address, is_primary)]: `SMTP:` primary, `smtp:` alias, others ignored.

    `SIP:`, `X500:`, `EUM:`… are not mail addresses. A bare address without a prefix is kept as an alias.
    """
    out: list[tuple[str, bool]] = []
    for value in values or ():
        if not isinstance(value, str):
            continue
        prefix, colon, rest = value.partition(":")
        if colon and prefix.upper() == "SMTP":
            if is_email(rest):
                out.append((rest.strip(), prefix == "SMTP"))
        elif (not colon or "@" in prefix) and is_email(value):
            out.append((value.strip(), False))
    return out


class AddressBook:
    """Collects one identity's addresses: deduplicated by casefolded key, at most one primary."""

    def __init__(self) -> None:
        self._items: dict[str, IdentityAddress] = {}

    def add(self, address: Any, *, kind: str, primary: bool = False) -> None:
        if not is_email(address):
            return
        key = address_key(address)
        if key in self._items:
            return  # the first (most authoritative) source of an address wins
        has_primary = any(item.primary for item in self._items.values())
        self._items[key] = IdentityAddress(
            address=address.strip(), primary=primary and not has_primary, kind=kind
        )

    def keys(self) -> list[str]:
        """The casefolded matching keys of the addresses collected so far."""
        return list(self._items)

    def build(self, what: str = "address") -> tuple[IdentityAddress, ...]:
        """The addresses, primary first; an identity nothing can match is refused (quarantined)."""
        items = list(self._items.values())
        if not items:
            raise ValueError(f"no usable {what}")
        if not any(item.primary for item in items):
            items[0] = items[0].model_copy(update={"primary": True})
        return tuple(sorted(items, key=lambda item: not item.primary))


# --- timestamps ------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp, timezone-aware; absent, unparseable or the epoch ("never") → None.

    Dates are evidence, not identity: a bad one must not cost us the record.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return None if parsed <= _EPOCH else parsed


def format_time(moment: datetime) -> str:
    """A timestamp as vendors' query parameters take it: RFC 3339, UTC, milliseconds and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- paging --------------------------------------------------------------------------------------


def same_origin_link(link: str, current: str, base_url: str, source: str) -> str:
    """Resolve a paging link and refuse one that leaves the org: it would carry our token elsewhere."""
    target = urljoin(current, link)
    want, got = urlsplit(base_url), urlsplit(target)
    if (got.scheme, got.netloc.lower()) != (want.scheme, want.netloc.lower()):
        raise SourceError(
            f"{source}: a paging link points to {got.netloc or 'another host'}; refusing to follow"
        )
    return target


def addresses_reader(book: Callable[[Mapping[str, Any]], AddressBook]) -> Callable[[Any], list[str]]:
    """A vendor's `user_addresses`: the casefolded addresses of a raw user, even one its `parse_user`
    refuses, so a quarantined record still says which people it concerns."""

    def user_addresses(raw: Any) -> list[str]:
        return book(raw).keys() if isinstance(raw, Mapping) else []

    return user_addresses
