"""The simulated company's people: one population shared by every fake portal and IdP.

Portals and IdPs are generated from the same list so that the crawler's joins (by case-folded email, against
every alias) have a known right answer. Generation is deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

IDP_STATUSES = ("active", "disabled", "deprovisioned", "suspended", "locked_out", "not_activated", "absent")
# Statuses under which the IdP no longer lets the person in (the `idp_disabled_active` finding).
IDP_DISABLED = frozenset({"disabled", "deprovisioned", "suspended"})
DEFAULT_REFERENCE_TIME = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

# Share of the population per status; "active" takes whatever is left (about 78%).
_STATUS_SHARES = {
    "disabled": 0.04,
    "deprovisioned": 0.035,
    "suspended": 0.025,
    "locked_out": 0.01,
    "not_activated": 0.01,
    "absent": 0.015,  # managed-domain people missing from the IdP: the `not_in_idp` finding
}
_EXTERNAL_SHARE = 0.08  # contractors and external learners, never in the IdP
_ALIAS_SHARE = 0.12

GIVEN_NAMES = (
    "ana",
    "ben",
    "chloe",
    "david",
    "elena",
    "farid",
    "grace",
    "hiro",
    "ines",
    "jamal",
    "karin",
    "liam",
    "maria",
    "noah",
    "olga",
    "pedro",
    "quinn",
    "rosa",
    "sam",
    "tara",
    "umar",
    "vera",
    "wei",
    "ximena",
    "yusuf",
    "zoe",
    "aisha",
    "bruno",
    "carmen",
    "diego",
    "emma",
    "felix",
    "giulia",
    "hannah",
    "ivan",
    "julia",
    "kofi",
    "lucia",
    "mateo",
    "nadia",
    "oscar",
    "priya",
    "rafael",
    "sofia",
    "tomas",
    "ursula",
    "victor",
    "wanda",
    "yara",
    "zain",
)
FAMILY_NAMES = (
    "silva",
    "smith",
    "garcia",
    "muller",
    "rossi",
    "kowalski",
    "nguyen",
    "tanaka",
    "okafor",
    "johansson",
    "dubois",
    "haddad",
    "ivanova",
    "kim",
    "lopez",
    "murphy",
    "novak",
    "osei",
    "patel",
    "quinn",
    "reyes",
    "schmidt",
    "taylor",
    "usman",
    "varga",
    "walsh",
    "xu",
    "yilmaz",
    "zimmer",
    "andersen",
    "brown",
    "costa",
    "dimitrov",
    "evans",
    "fischer",
    "gomez",
    "horvat",
    "ito",
    "jensen",
    "khan",
    "larsen",
    "martin",
    "nowak",
    "oliveira",
    "petrov",
    "ramos",
    "santos",
    "torres",
    "weber",
    "young",
)


@dataclass(frozen=True, slots=True)
class Person:
    """One human, as the company's IdP (or its absence) sees them."""

    key: int
    given_name: str
    family_name: str
    email: str  # canonical, lower-case
    domain: str
    idp_status: str  # one of IDP_STATUSES
    status_changed_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def idp_disabled(self) -> bool:
        """True when the IdP no longer lets this person in."""
        return self.idp_status in IDP_DISABLED

    @property
    def in_idp(self) -> bool:
        return self.idp_status != "absent"

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address the IdP knows for the person, primary first."""
        return (self.email, *self.aliases)


def case_variant(email: str, rng: random.Random) -> str:
    """The same address in other letter case (`Ana.Silva17@ACME.com`): equal case-folded, not as bytes."""
    local, domain = email.split("@")
    variants = {
        ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.upper(),
        local.upper() + "@" + domain,
        local + "@" + domain.title(),
        local.capitalize() + "@" + domain.upper(),
    }
    variants.discard(email)
    return rng.choice(sorted(variants)) if variants else email.upper()


def _status_plan(size: int, rng: random.Random) -> list[tuple[str, bool]]:
    """(idp_status, external) per person, in exact proportions; every category present from size 10 on."""
    floor = 1 if size >= 10 else 0
    plan = [("absent", True)] * max(floor, round(size * _EXTERNAL_SHARE))
    for status, share in _STATUS_SHARES.items():
        plan += [(status, False)] * max(floor, round(size * share))
    plan = plan[:size]
    plan += [("active", False)] * (size - len(plan))
    rng.shuffle(plan)
    return plan


def _unique_address(
    given: str, family: str, domain: str, key: int, rng: random.Random, taken: set[str]
) -> str:
    """`given.family@domain`, with a number appended when taken (or by chance, as real directories do)."""
    base = f"{given}.{family}"
    if rng.random() < 0.6 and f"{base}@{domain}" not in taken:
        return f"{base}@{domain}"
    for _ in range(20):
        candidate = f"{base}{rng.randint(1, 99)}@{domain}"
        if candidate not in taken:
            return candidate
    return f"{base}.{key}@{domain}"  # crowded name: the key keeps it unique


def _alias_for(
    email: str, given: str, family: str, managed: tuple[str, ...], rng: random.Random, taken: set[str]
) -> str | None:
    """A second address: a short form at the same domain, or the same local part at another managed domain."""
    local, domain = email.split("@")
    candidates = [f"{given}.{family[0]}@{domain}", f"{given[0]}{family}@{domain}"]
    candidates += [f"{local}@{other}" for other in managed if other != domain]
    rng.shuffle(candidates)
    return next((c for c in candidates if c not in taken), None)


def generate_population(
    seed: int,
    size: int,
    managed_domains: tuple[str, ...] = ("acme.com",),
    external_domains: tuple[str, ...] = ("partner.org", "gmail.com"),
    reference_time: datetime = DEFAULT_REFERENCE_TIME,
) -> list[Person]:
    """Deterministic list of `size` people; `key` is the index in the list."""
    if not managed_domains:
        raise ValueError("generate_population needs at least one managed domain")
    rng = random.Random(f"population:{seed}")
    taken: set[str] = set()
    people: list[Person] = []
    for key, (status, external) in enumerate(_status_plan(size, rng)):
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        if external:
            domain = rng.choice(external_domains or managed_domains)
        else:
            # Most people sit at the first managed domain; the others hold a minority.
            domain = managed_domains[0] if rng.random() < 0.85 else rng.choice(managed_domains)
        email = _unique_address(given, family, domain, key, rng, taken)
        taken.add(email)
        aliases: tuple[str, ...] = ()
        if not external and rng.random() < _ALIAS_SHARE:
            alias = _alias_for(email, given, family, managed_domains, rng, taken)
            if alias:
                taken.add(alias)
                aliases = (alias,)
        if status in IDP_DISABLED or status in ("locked_out", "not_activated"):
            changed = reference_time - timedelta(days=rng.uniform(1, 200))
        else:
            changed = reference_time - timedelta(days=rng.uniform(30, 1500))
        people.append(
            Person(
                key=key,
                given_name=given.capitalize(),
                family_name=family.capitalize(),
                email=email,
                domain=domain,
                idp_status=status,
                status_changed_at=changed.replace(microsecond=0),
                aliases=aliases,
            )
        )
    return people
