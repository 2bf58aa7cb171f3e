"""One portal's generated directory: the invariants the crawler's cross-checks depend on."""

from collections import Counter

import pytest

from crawler.simulator.dataset import ENROLLMENT_STATUSES, PortalSpec, generate_portal
from crawler.simulator.population import generate_population
from crawler.simulator.server import make_portals

POPULATION = generate_population(11, 400)


def spec(**overrides) -> PortalSpec:
    fields = {"name": "emea", "username": "u", "password": "p", "seed": 4, "users": 250}
    return PortalSpec(**{**fields, **overrides})


def test_same_spec_same_data():
    a, b = generate_portal(spec(), POPULATION), generate_portal(spec(), POPULATION)
    assert (a.users, a.groups, a.memberships, a.courses, a.enrollments) == (
        b.users,
        b.groups,
        b.memberships,
        b.courses,
        b.enrollments,
    )
    assert generate_portal(spec(seed=5), POPULATION).users != a.users


def test_number_of_enrollments_counts_every_course_and_hides_archived_ones():
    data = generate_portal(spec(), POPULATION)
    per_user = Counter(row["user_id"] for row in data.enrollments.values())
    assert all(u["number_of_enrollments"] == per_user[uid] for uid, u in data.users.items())
    visible = set(data.visible_course_ids())
    archived = {c for c, course in data.courses.items() if course["archived"]}
    assert len(archived) == 2 and not archived & visible
    seen = Counter(r["user_id"] for r in data.enrollments.values() if r["course_id"] in visible)
    mismatched = {uid for uid, u in data.users.items() if u["number_of_enrollments"] != seen[uid]}
    assert mismatched == data.users_with_hidden_enrollments()
    assert 0 < len(mismatched) < len(data.users) / 2
    assert (
        len(data.enrollments_of_user(next(iter(mismatched))))
        == data.users[next(iter(mismatched))]["number_of_enrollments"]
    )


def test_every_enrollment_status_and_field_present():
    data = generate_portal(spec(users=20, enrollments_per_user=1), POPULATION)
    assert {r["status"] for r in data.enrollments.values()} == set(ENROLLMENT_STATUSES)
    row = next(iter(data.enrollments.values()))
    assert set(row) >= {
        "id",
        "course_id",
        "course_name",
        "user_id",
        "email",
        "username",
        "group_id",
        "status",
        "percentage",
        "percentage_complete",
        "date_enrolled",
        "date_started",
        "date_completed",
        "date_lastaccessed",
        "due_date",
        "cert_expires_at",
        "updated_at",
        "unenrolled",
        "certificate_name",
    }
    assert all(r["date_enrolled"].endswith("Z") for r in data.enrollments.values())


def test_group_counts_mostly_true_with_the_configured_stale_ones():
    data = generate_portal(spec(stale_group_counts=2), POPULATION)
    stale = [g for g, group in data.groups.items() if group["number_of_members"] != len(data.members_of(g))]
    assert len(stale) == 2


def test_accounts_cover_the_identity_edge_cases():
    data = generate_portal(
        spec(username_only_fraction=0.05, case_variants=3, duplicate_accounts=2), POPULATION
    )
    by_key = {p.key: p for p in POPULATION}
    users = data.users.values()
    username_only = [u for u in users if not u.get("email")]
    assert len(username_only) == round(248 * 0.05) and all(u["username"] for u in username_only)
    assert any("email" not in u for u in username_only) and any(u.get("email") == "" for u in username_only)
    emails = [u["email"] for u in users if u.get("email")]
    variants = [e for e in emails if e != e.lower()]
    assert len(variants) == 3 + 2
    folded = Counter(e.casefold() for e in emails)
    assert sum(1 for n in folded.values() if n == 2) == 2
    aliased = [uid for uid, u in data.users.items() if u.get("email") in by_key[data.person_of[uid]].aliases]
    assert len(aliased) == 1
    privileged = [uid for uid, u in data.users.items() if u["user_type"] in ("admin", "manager")]
    assert any(by_key[data.person_of[uid]].idp_disabled and data.users[uid]["enabled"] for uid in privileged)
    assert any(u["last_sign_in_at"] is None for u in users)
    assert 0 < sum(not u["enabled"] for u in users) < 30


def test_portals_sharing_a_population_share_idp_disabled_people_under_other_ids():
    portals = make_portals(["emea", "amer", "apac"], 150, 9)
    population = {p.key: p for p in portals[0].population}
    keys = [{k for k in p.data.person_of.values() if population[k].idp_disabled} for p in portals]
    assert len(keys[0] & keys[1] & keys[2]) >= 3
    ids = [set(p.data.users) for p in portals]
    assert not ids[0] & ids[1] and not ids[1] & ids[2]
    assert len({p.spec.password for p in portals}) == 3


def test_too_few_people_is_a_clear_error():
    with pytest.raises(ValueError, match="population has 400"):
        generate_portal(spec(users=1000), POPULATION)


def test_mutation_helpers_keep_the_indexes_true():
    data = generate_portal(spec(), POPULATION)
    victim = next(u for u in data.users if data.enrollments_of_user(u) and data.index.groups_of.get(u))
    group = data.index.groups_of[victim][0][1]
    before = data.groups[group]["number_of_members"]
    data.remove_user(victim)
    assert victim not in data.index.user_ids and not data.enrollments_of_user(victim)
    assert victim not in data.members_of(group) and data.groups[group]["number_of_members"] == before - 1
    new = data.add_user("New.Person@acme.com")
    assert data.index.user_ids[-1] == new and data.index.users_by_email["new.person@acme.com"] == [new]
    data.set_enabled(new, False)
    assert data.users[new]["enabled"] is False
    with pytest.raises(ValueError):
        data.add_user("x@acme.com", user_id=new)
