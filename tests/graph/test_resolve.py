"""Identity resolution: who is who across portals and IdPs."""

from __future__ import annotations

from crawler.records import LUUser
from graph.resolve import Match, Resolution, load_resolution, resolve


def _resolve(snapshot, run_id: int) -> Resolution:
    return load_resolution(snapshot.store.reader(), run_id)


def test_case_variants_are_one_person_and_keep_their_spelling(snapshot):
    run = snapshot.run(portals=["emea", "apac"])
    run.user("emea", 1, "Ana@ACME.com").user("apac", 7, "ana@acme.com")
    run.identity("okta", "00u1", "ana@Acme.com")
    r = _resolve(snapshot, run.finish())
    emea, apac = r.account("emea", 1), r.account("apac", 7)
    assert emea.person == apac.person == "ana@acme.com"
    assert emea.email == "Ana@ACME.com"  # display form kept
    assert emea.match is Match.MATCHED
    assert [a.key for a in r.persons["ana@acme.com"].accounts] == [("apac", 7), ("emea", 1)]


def test_account_on_an_alias_joins_the_primary_address_person(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana@acme.com").user("emea", 2, "A.Smith@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", ("a.smith@acme.com", "alias"))
    r = _resolve(snapshot, run.finish())
    assert r.account("emea", 2).person == "ana@acme.com"
    assert r.account("emea", 2).match is Match.MATCHED
    assert r.persons["ana@acme.com"].identities[0].address_for("a.smith@acme.com") == "a.smith@acme.com"


def test_proxy_and_upn_addresses_match_too(snapshot):
    run = snapshot.run(idps=["entra"])
    run.user("emea", 1, "ana.proxy@acme.com").user("emea", 2, "ana@acme.onmicrosoft.com")
    run.identity(
        "entra", "e1", "ana@acme.com", ("ana.proxy@acme.com", "proxy"), ("ana@acme.onmicrosoft.com", "upn")
    )
    r = _resolve(snapshot, run.finish())
    assert {a.person for a in r.accounts} == {"ana@acme.com"}


def test_same_address_in_two_idps_is_one_person_with_two_identities(snapshot):
    run = snapshot.run(idps=["okta", "entra"])
    run.user("emea", 1, "ana@acme.com")
    run.identity("okta", "00u1", "ana@acme.com").identity("entra", "e1", "Ana@acme.com")
    r = _resolve(snapshot, run.finish())
    assert not r.collisions
    person = r.persons["ana@acme.com"]
    assert [(i.source, i.idp_id) for i in person.identities] == [("entra", "e1"), ("okta", "00u1")]


def test_identities_with_different_primaries_are_linked_by_a_shared_address(snapshot):
    run = snapshot.run(idps=["okta", "entra"])
    run.user("emea", 1, "ana@acme.com").user("emea", 2, "asmith@acme.com")
    run.identity("okta", "00u1", "ana@acme.com")
    run.identity("entra", "e1", "asmith@acme.com", ("ana@acme.com", "proxy"))
    r = _resolve(snapshot, run.finish())
    # one person, keyed by the smallest of the equally common primaries: stable across runs
    assert r.account("emea", 1).person == r.account("emea", 2).person == "ana@acme.com"
    assert len(r.persons["ana@acme.com"].identities) == 2


def test_same_idp_collision_is_reported_never_picked(snapshot):
    run = snapshot.run(portals=["emea", "apac"])
    run.user("emea", 1, "shared@acme.com").user("apac", 3, "SHARED@acme.com").user("emea", 2, "bo@acme.com")
    run.identity("okta", "00u1", "bo@acme.com", ("shared@acme.com", "alias"))
    run.identity("okta", "00u2", "shared@acme.com", status="disabled")
    r = _resolve(snapshot, run.finish())
    assert len(r.collisions) == 1
    collision = r.collisions[0]
    assert collision.address == "shared@acme.com"
    assert collision.idp == "okta"
    assert collision.identities == ("00u1", "00u2")
    assert collision.accounts == (("apac", 3), ("emea", 1))
    for key in (("emea", 1), ("apac", 3)):
        account = r.account(*key)
        assert account.match is Match.COLLISION
        assert r.persons[account.person].identities == []  # no identity borrowed
    # the colliding address is never a person key; 00u2 has no other address, so it is keyed by id
    assert r.account("emea", 2).person == "bo@acme.com"
    assert r.identities[("okta", "00u2")].person == "okta:00u2"


def test_username_only_accounts_are_kept_and_reported(snapshot):
    run = snapshot.run()
    run.user("emea", 1, None, username="kiosk-1")
    # The crawler stores a blank email as NULL; a snapshot row with a blank one is still not a match.
    blank = {"id": 2, "email": "  ", "username": "kiosk-2", "enabled": True, "user_type": "learner"}
    run.records["emea"].append(LUUser.model_construct(**blank))
    run.user("emea", 3, "ana@acme.com")
    run.identity("okta", "00u1", "ana@acme.com")
    r = _resolve(snapshot, run.finish())
    assert len(r.accounts) == 3
    assert [a.username for a in r.unmatchable] == ["kiosk-1", "kiosk-2"]
    assert all(a.person is None and a.match is Match.NO_EMAIL for a in r.unmatchable)


def test_no_tag_or_dot_stripping_but_whitespace_is_trimmed(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana+lms@acme.com").user("emea", 2, "a.na@acme.com").user("emea", 3, " ana@acme.com ")
    run.identity("okta", "00u1", "ana@acme.com")
    r = _resolve(snapshot, run.finish())
    assert r.account("emea", 1).match is Match.NO_IDENTITY
    assert r.account("emea", 1).person == "ana+lms@acme.com"
    assert r.account("emea", 2).person == "a.na@acme.com"
    assert r.account("emea", 3).person == "ana@acme.com"
    assert r.account("emea", 3).match is Match.MATCHED


def test_unmatched_account_is_its_own_person(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "Zoe@Example.org")
    r = _resolve(snapshot, run.finish())
    assert r.account("emea", 1).person == "zoe@example.org"
    assert r.persons["zoe@example.org"].identities == []


def test_primary_falls_back_to_the_mailbox_when_none_is_flagged(snapshot):
    run = snapshot.run(idps=["entra"])
    run.identity(
        "entra", "e1", ("x_y.com#EXT#@t.onmicrosoft.com", "upn"), ("guest@y.com", "email"), primary=False
    )
    r = _resolve(snapshot, run.finish())
    assert r.identities[("entra", "e1")].primary == "guest@y.com"
    assert "guest@y.com" in r.persons


def test_person_lookup_by_any_address(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", ("a.smith@acme.com", "alias"))
    r = _resolve(snapshot, run.finish())
    assert r.person_for("A.SMITH@acme.com").key == "ana@acme.com"
    assert r.person_for(" Ana@Acme.com ").key == "ana@acme.com"
    assert r.person_for("nobody@acme.com") is None


def test_resolve_is_pure_over_rows():
    accounts = [("emea", 1, "Ana@acme.com", None, "learner", 1, None, None)]
    identities = [("okta", "00u1", "SUSPENDED", "disabled", None, None, None, None)]
    addresses = [("okta", "00u1", "ana@acme.com", 1, "email")]
    r = resolve(accounts, identities, addresses)
    assert r.account("emea", 1).person == "ana@acme.com"
    assert r.idps == ("okta",)
