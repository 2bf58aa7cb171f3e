"""The networkx graph (whole and local) and the notebook/report API."""

from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

from crawler.records import LUMembership
from graph.api import load_run
from graph.model import Code


def _estate(snapshot, **run_args) -> int:
    run = snapshot.run(portals=["emea", "apac"], idps=["okta", "entra"], **run_args)
    run.user("emea", 1, "Ana@ACME.com", user_type="admin").user("apac", 7, "a.smith@acme.com")
    run.user("emea", 2, "bo@acme.com", enabled=False).user("apac", 8, "bo@acme.com")
    run.user("emea", 3, None, username="kiosk").user("emea", 4, "ext@customer.example", last_sign_in_at=None)
    run.identity("okta", "00u1", "ana@acme.com", ("a.smith@acme.com", "alias"), status="disabled")
    run.identity("entra", "e1", "ana@acme.com", status="disabled")
    run.identity("okta", "00u2", "bo@acme.com").identity("okta", "00u9", "nobody@acme.com")
    run.identity("okta", "00u3", "cy@acme.com", ("shared@acme.com", "alias")).identity(
        "okta", "00u4", "shared@acme.com"
    )
    run.user("apac", 9, "Shared@acme.com").identity(
        "okta", "00u5"
    )  # a collision; an identity with no address
    run.group("emea", 77, "Sales", members=[1, 3]).group("apac", 5, "Ops", members=[7, 8])
    run.course("emea", 5, "Security 101").course("apac", 5, "Security 101 APAC")
    run.enroll("emea", 1, 5, "completed", percentage=92.0, date_enrolled=run.ago(30))
    run.enroll("emea", 1, 5, "in_progress", date_enrolled=run.ago(3))  # enrolled again
    run.enroll("emea", 4, 5, "not_started").enroll("apac", 7, 5, "passed")
    run.enroll("emea", 4, 99, "in_progress")  # a course the crawl did not list
    run.records["emea"].append(LUMembership(group_id=404, user_id=4))  # a group the crawl did not list
    return run.finish()


def test_node_ids_kinds_and_edges(snapshot):
    ig = load_run(snapshot.store, _estate(snapshot))
    g = ig.graph
    assert isinstance(g, nx.DiGraph)
    kinds = dict(g.nodes(data="kind"))
    assert kinds["person:ana@acme.com"] == "person"
    assert kinds["account:emea:1"] == kinds["account:emea:3"] == "account"
    assert kinds["identity:okta:00u1"] == "identity" and kinds["idp:okta"] == "idp"
    assert kinds["portal:emea"] == "portal" and kinds["group:emea:77"] == "group"
    assert kinds["course:emea:5"] == "course"
    assert None not in kinds.values()
    assert g.edges["person:ana@acme.com", "account:emea:1"]["type"] == "HAS_ACCOUNT"
    assert g.edges["person:ana@acme.com", "account:apac:7"]["type"] == "HAS_ACCOUNT"  # via the alias
    assert g.edges["account:emea:1", "portal:emea"]["type"] == "IN_PORTAL"
    assert g.edges["account:emea:1", "group:emea:77"]["type"] == "MEMBER_OF"
    assert g.edges["person:ana@acme.com", "identity:entra:e1"]["type"] == "HAS_IDENTITY"
    assert g.edges["identity:okta:00u1", "idp:okta"]["type"] == "FROM"
    enrolled = g.edges["account:emea:1", "course:emea:5"]
    assert (enrolled["type"], enrolled["status"], enrolled["enrollments"]) == (
        "ENROLLED_IN",
        "in_progress",
        2,
    )
    assert g.nodes["account:emea:3"]["match"] == "no_email"  # username-only: kept
    assert not any(g.predecessors("account:emea:3"))
    assert g.nodes["course:emea:99"]["name"] is None and g.nodes["group:emea:404"]["title"] is None
    assert g.nodes["identity:okta:00u9"]["person"] == "nobody@acme.com"  # a person without accounts
    assert g.nodes["portal:emea"]["complete"] is True


def _same(a: nx.DiGraph, b: nx.DiGraph) -> None:
    assert dict(a.nodes(data=True)) == dict(b.nodes(data=True))
    assert {(u, v): d for u, v, d in a.edges(data=True)} == {(u, v): d for u, v, d in b.edges(data=True)}


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_local_neighbourhood_equals_the_whole_graph_ego(snapshot, radius):
    run_id = _estate(snapshot)
    local = load_run(snapshot.store, run_id)
    whole = load_run(snapshot.store, run_id).graph
    for node in whole.nodes:
        _same(local.neighbourhood(node, radius), nx.ego_graph(whole, node, radius, undirected=True))
    assert "graph" not in local.__dict__  # never built the whole graph


def test_neighbourhood_of_an_unknown_node(snapshot):
    ig = load_run(snapshot.store, _estate(snapshot))
    with pytest.raises(nx.NodeNotFound):
        ig.neighbourhood("account:emea:999")


def test_load_run_defaults_to_the_newest_run_and_caches_findings(snapshot):
    first = _estate(snapshot)
    run = snapshot.run()
    run.user("emea", 1, "solo@acme.com")
    second = run.finish()
    with load_run(snapshot.path) as ig:
        assert ig.run.id == second > first
        assert ig.findings() is ig.findings()
        assert [c.source for c in ig.coverage] == ["emea", "okta"]


def test_load_run_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "nope.db")


def test_frames(snapshot):
    ig = load_run(snapshot.store, _estate(snapshot), managed_domains=["ACME.com"])
    accounts = ig.accounts_df()
    assert len(accounts) == 7
    assert accounts.set_index("node_id").loc["account:apac:7", "person"] == "ana@acme.com"
    by_portal = ig.accounts_by_portal()
    assert by_portal.loc["emea", "accounts"] == 4 and by_portal.loc["emea", "no_email"] == 1
    assert by_portal.loc["apac", "matched"] == 2 and bool(by_portal.loc["apac", "complete"])
    assert by_portal.loc["apac", "collision"] == 1
    persons = ig.persons_df().set_index("person")
    assert persons.loc["ana@acme.com", "identities"] == 2 and persons.loc["ana@acme.com", "idp_disabled"]
    assert persons.loc["nobody@acme.com", "accounts"] == 0
    findings = ig.findings_df()
    assert list(findings.columns[:8]) == [
        "finding",
        "severity",
        "email",
        "portal",
        "learnupon_user_id",
        "user_type",
        "idp",
        "idp_status",
    ]
    assert set(findings["finding"]) == {"idp_disabled_active", "partially_offboarded", "dormant"}
    multi = ig.multi_portal_people()
    assert list(multi["person"]) == ["ana@acme.com", "bo@acme.com"]
    assert multi.iloc[0]["portals"] == ["apac", "emea"]


def test_person_and_exposure(snapshot):
    ig = load_run(snapshot.store, _estate(snapshot))
    person = ig.person("A.Smith@acme.com")
    assert person.key == "ana@acme.com"
    assert sorted(a.node_id for a in person.accounts) == ["account:apac:7", "account:emea:1"]
    exposure = ig.exposure("ana@acme.com")
    status = [None if pd.isna(s) else s for s in exposure["status"]]
    held = sorted(zip(exposure["portal"], exposure["kind"], exposure["title"], status, strict=True), key=str)
    assert held == [
        ("apac", "course", "Security 101 APAC", "passed"),
        ("apac", "group", "Ops", None),
        ("emea", "course", "Security 101", "in_progress"),
        ("emea", "group", "Sales", None),
    ]
    assert ig.exposure("bo@acme.com", include_disabled=False)["portal"].tolist() == ["apac"]
    assert ig.exposure("nobody@nowhere.example").empty


def test_review_settings_are_persisted_per_run(snapshot):
    run_id = _estate(snapshot)
    ig = load_run(snapshot.store, run_id, managed_domains=["acme.com"], dormant_days=30)
    ig.save_settings()
    again = load_run(snapshot.store, run_id)
    assert again.settings == ig.settings
    assert load_run(snapshot.store, run_id, dormant_days=60).settings.managed_domains == ("acme.com",)
    assert any(f.code is Code.NOT_IN_IDP for f in again.findings().findings) is False  # all in IdP
