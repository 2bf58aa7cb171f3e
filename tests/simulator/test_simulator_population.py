"""The shared population: deterministic, realistic proportions, unique lower-case addresses."""

from collections import Counter
from datetime import UTC, datetime

from crawler.simulator.population import IDP_DISABLED, IDP_STATUSES, generate_population

REF = datetime(2026, 1, 15, tzinfo=UTC)


def test_same_seed_same_people_and_other_seed_differs():
    assert generate_population(5, 300, reference_time=REF) == generate_population(5, 300, reference_time=REF)
    assert generate_population(5, 300) != generate_population(6, 300)


def test_proportions_match_a_real_company():
    people = generate_population(1, 2000, reference_time=REF)
    share = {status: n / len(people) for status, n in Counter(p.idp_status for p in people).items()}
    assert set(share) == set(IDP_STATUSES)
    assert 0.75 <= share["active"] <= 0.82
    assert 0.09 <= sum(share[s] for s in IDP_DISABLED) <= 0.11
    external = [p for p in people if p.domain != "acme.com"]
    assert all(p.idp_status == "absent" for p in external)
    assert 0.07 <= len(external) / len(people) <= 0.09
    managed_absent = [p for p in people if p.domain == "acme.com" and p.idp_status == "absent"]
    assert 0 < len(managed_absent) < len(people) * 0.03


def test_every_category_present_in_a_small_population():
    people = generate_population(2, 12)
    assert {p.idp_status for p in people} == set(IDP_STATUSES)


def test_addresses_are_unique_lower_case_and_dated():
    people = generate_population(3, 1500, managed_domains=("acme.com", "acme.co.uk"), reference_time=REF)
    addresses = [a for p in people for a in p.addresses]
    assert len(addresses) == len(set(addresses))
    assert all(a == a.lower() and a.endswith("@" + a.split("@")[1]) for a in addresses)
    assert all(p.email.split("@")[1] == p.domain for p in people)
    assert [p.key for p in people] == list(range(len(people)))
    with_alias = [p for p in people if p.aliases]
    assert 0.08 * len(people) < len(with_alias) < 0.15 * len(people)
    assert any(a.endswith("@acme.co.uk") for p in with_alias for a in p.aliases)
    assert all(p.status_changed_at <= REF and p.status_changed_at.tzinfo for p in people)
    assert all(p.idp_disabled == (p.idp_status in IDP_DISABLED) for p in people)
