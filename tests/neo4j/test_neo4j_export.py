"""The Neo4j export against a real Neo4j: model, idempotence, scoped cleanup, findings."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from conftest import Exporter
from neo4j.time import DateTime
from neo4j_estate import IDENTITIES, MANAGED_DOMAINS, Omit, write_estate

from crawler.store import SnapshotStore
from graph.api import load_run
from graph.model import Code
from graph.neo4j_cypher import schema_statements
from graph.neo4j_export import ExportError
from graph.neo4j_model import LABELS

pytestmark = pytest.mark.neo4j


def test_export_writes_the_networkx_graph_with_its_findings(exporter: Exporter, first_run: int) -> None:
    stats = exporter()

    with load_run(exporter.store, managed_domains=MANAGED_DOMAINS) as ig:
        graph, findings = ig.graph, ig.findings().findings
    kinds: dict[str, int] = {}
    for _, attrs in graph.nodes(data=True):
        kinds[LABELS[attrs["kind"]]] = kinds.get(LABELS[attrs["kind"]], 0) + 1
    types: dict[str, int] = {}
    for _, _, attrs in graph.edges(data=True):
        types[attrs["type"]] = types.get(attrs["type"], 0) + 1
    with_person = sum(f.person is not None for f in findings)
    expected = {**kinds, **types, "Finding": len(findings), "HAS_FINDING": len(findings) + with_person}
    assert exporter.counts() == {**expected, "IdgraphRun": 1}
    assert dict(stats.nodes_created) == {**kinds, "Finding": len(findings)}
    assert stats.nodes_written == stats.nodes_created
    assert not stats.nodes_deleted and not stats.rels_deleted
    assert stats.transactions > len(expected)  # batches of 4 rows: several transactions per label

    stamped = exporter.rows(
        "MATCH (n) WITH collect(n.last_seen_run) AS nodes "
        "MATCH ()-[r]->() RETURN nodes, collect(r.last_seen_run) AS rels"
    )[0]
    assert set(stamped["nodes"]) == {first_run} and set(stamped["rels"]) == {first_run}
    constraints = exporter.rows("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type RETURN *")
    unique = {c["labelsOrTypes"][0] for c in constraints if c["properties"] == ["uid"]}
    assert unique >= {*LABELS.values(), "Finding"}

    bob = exporter.rows(
        "MATCH (p:Person {key: 'bob@acme.com'})-[:HAS_ACCOUNT]->(a:LearnUponAccount {uid: 'emea:2'})"
        "-[:IN_PORTAL]->(:Portal {name: 'emea', complete: true}) "
        "MATCH (p)-[:HAS_IDENTITY]->(i:IdPIdentity)-[:FROM]->(idp:IdP) "
        "RETURN a, collect(i.source + ':' + i.raw_status + ':' + i.status) AS identities"
    )[0]
    account = bob["a"]
    assert (account["email"], account["email_key"], account["user_type"]) == (
        "Bob@acme.com",
        "bob@acme.com",
        "admin",
    )
    assert account["enabled"] is True and account["privileged"] is True and account["match"] == "matched"
    assert isinstance(account["last_sign_in_at"], DateTime)
    assert sorted(bob["identities"]) == ["entra:false:disabled", "okta:SUSPENDED:disabled"]
    enrolled = exporter.rows(
        "MATCH (:LearnUponAccount {uid: 'emea:2'})-[e:ENROLLED_IN]->(c:Course) "
        "RETURN c.name AS course, e.status AS status, e.score AS score, e.date_completed AS done "
        "ORDER BY course"
    )
    assert [(e["course"], e["status"], e["score"]) for e in enrolled] == [
        ("Code of Conduct", "in_progress", 40.0),
        ("Security Basics", "completed", 100.0),
    ]
    assert enrolled[0]["done"] is None and isinstance(enrolled[1]["done"], DateTime)

    exported = {
        r["id"]: r
        for r in exporter.rows(
            "MATCH (a:LearnUponAccount)-[:HAS_FINDING]->(f:Finding) "
            "OPTIONAL MATCH (p:Person)-[:HAS_FINDING]->(f) "
            "RETURN f.finding_id AS id, f.code AS code, f.severity AS severity, f.evidence AS evidence, "
            "a.uid AS account, p.key AS person"
        )
    }
    assert exported.keys() == {f.id for f in findings}
    for f in findings:
        row = exported[f.id]
        assert (row["code"], row["severity"]) == (f.code.value, f.severity.value)
        assert (row["account"], row["person"]) == (f"{f.portal}:{f.learnupon_user_id}", f.person)
        assert json.loads(row["evidence"]) == json.loads(json.dumps(f.evidence, default=str))
    assert {f.code for f in findings} == set(Code)  # the estate exercises every rule


def test_exporting_the_same_run_again_changes_nothing(exporter: Exporter, first_run: int) -> None:
    exporter()
    before = exporter.dump()

    again = exporter()

    assert not again.changed, again.as_dict()
    assert exporter.dump() == before


def test_a_newer_run_removes_what_disappeared(exporter: Exporter, store: SnapshotStore) -> None:
    write_estate(store)
    exporter()
    gone = Omit(
        accounts={("emea", 4), ("apac", 102)},  # cara (no identity: her person goes too); bob's apac orphan
        groups={("emea", 11)},
        identities={("okta", "00u-ivy")},  # ivy had no account: her person goes with the identity
    )
    second = write_estate(store, gone)

    stats = exporter()

    assert exporter.uids("LearnUponAccount", "n.uid IN ['emea:4', 'apac:102']") == set()
    assert exporter.uids("Group", "n.uid = 'emea:11'") == set()
    assert exporter.uids("IdPIdentity", "n.uid = 'okta:00u-ivy'") == set()
    assert exporter.uids("Person", "n.key IN ['cara@acme.com', 'ivy@acme.com']") == set()
    assert "bob@acme.com" in exporter.uids("Person")  # still has identities and an emea account
    gone = exporter.rows("MATCH (f:Finding) WHERE f.account_uid IN ['emea:4', 'apac:102'] RETURN f")
    assert gone == []
    assert stats.nodes_deleted == {
        "LearnUponAccount": 2,
        "Group": 1,
        "IdPIdentity": 1,
        "Person": 2,
        "Finding": 3,  # cara's not_in_idp; bob's apac idp_disabled_active and active_after_offboarding
    }
    assert stats.rels_deleted["MEMBER_OF"] == 2 and stats.rels_deleted["ENROLLED_IN"] == 1
    stale = exporter.rows("MATCH (n) WHERE n.last_seen_run < $run AND NOT n:IdgraphRun RETURN n", run=second)
    assert stale == []


APAC = (
    "MATCH (n) WHERE n.portal = 'apac' OPTIONAL MATCH (n)-[r]-(m) "
    "WITH n, type(r) + ' ' + coalesce(m.uid, '') AS rel ORDER BY rel "
    "RETURN labels(n)[0] AS label, n.uid AS uid, n.last_seen_run AS seen, collect(rel) AS rels "
    "ORDER BY label, uid"
)


def test_a_failed_portal_keeps_what_the_graph_last_saw(exporter: Exporter, store: SnapshotStore) -> None:
    first = write_estate(store)
    exporter()
    apac_before = exporter.rows(APAC)
    # Run 2: apac's crawl fails after its first user page (everything else of apac is missing) and a user
    # also vanishes from emea, which did complete.
    partial = Omit(
        accounts={("apac", 102), ("apac", 105), ("emea", 4)},
        groups={("apac", 10), ("apac", 11)},
        courses={("apac", 1), ("apac", 2)},
    )
    write_estate(store, partial, failed={"apac": "HTTP 500 on /api/v1/enrollments"})

    stats = exporter()

    assert stats.complete_portals == ("emea",)
    apac_after = exporter.rows(APAC)
    # Every apac node (accounts, groups, courses, findings) and every relationship touching one stays.
    assert [(r["label"], r["uid"], r["rels"]) for r in apac_after] == [
        (r["label"], r["uid"], r["rels"]) for r in apac_before
    ]
    seen = {r["uid"]: r["seen"] for r in apac_after if r["label"] == "LearnUponAccount"}
    assert seen == {"apac:101": first + 1, "apac:102": first, "apac:105": first}  # re-read vs last seen
    assert exporter.rows("MATCH (:LearnUponAccount {portal: 'apac'})-[r:MEMBER_OF|ENROLLED_IN]->() RETURN r")
    portal = exporter.rows("MATCH (p:Portal {name: 'apac'}) RETURN p.complete AS ok, p.error AS error")[0]
    assert portal == {"ok": False, "error": "HTTP 500 on /api/v1/enrollments"}
    # apac's findings stand as last judged; emea's vanished account and its finding are gone.
    codes: dict[str, set[str]] = {}
    for r in exporter.rows("MATCH (f:Finding) RETURN f.account_uid AS uid, f.code AS code"):
        codes.setdefault(r["uid"], set()).add(r["code"])
    assert codes["apac:102"] == {"idp_disabled_active", "active_after_offboarding"}
    assert codes["apac:105"] == {"partially_offboarded"}
    assert "emea:4" not in codes and exporter.uids("LearnUponAccount", "n.uid = 'emea:4'") == set()
    assert stats.nodes_deleted == {"LearnUponAccount": 1, "Finding": 1, "Person": 1}  # cara, nothing of apac


def test_a_failed_idp_keeps_its_identities_and_the_idp_verdicts(
    exporter: Exporter, store: SnapshotStore
) -> None:
    write_estate(store)
    exporter()
    orphans = exporter.uids("Finding", "n.code = 'idp_disabled_active'")
    broken_off = {(idp, idp_id) for idp, idp_id, *_ in IDENTITIES if idp == "okta"} - {
        ("okta", "00u-ana"),
        ("okta", "00u-bob"),
    }
    # okta's listing broke off after two users; mia left emea (her orphan finding goes with the account)
    write_estate(store, Omit(accounts={("emea", 3)}, identities=broken_off), failed={"okta": "timeout"})

    stats = exporter()

    assert stats.complete_idps == ("entra",)
    assert len(exporter.uids("IdPIdentity", "n.source = 'okta'")) == 12  # none deleted
    assert exporter.rows("MATCH (:Person)-[r:HAS_IDENTITY]->(:IdPIdentity {source: 'okta'}) RETURN r")
    # The IdP verdicts could not be given this run: they stand as last judged, except for the account
    # that a complete portal no longer has.
    kept = exporter.rows(
        "MATCH (f:Finding {code: 'idp_disabled_active'}) RETURN f.uid AS uid, f.account_uid AS account"
    )
    assert {r["uid"] for r in kept} < orphans
    assert sorted(r["account"] for r in kept) == ["apac:102", "emea:2"]
    assert len(exporter.uids("Finding", "n.code = 'not_in_idp'")) == 1


def test_an_older_run_is_refused(exporter: Exporter, store: SnapshotStore) -> None:
    first = write_estate(store)
    write_estate(store)
    exporter()
    before = exporter.dump()

    with pytest.raises(ExportError, match="already holds run 2"):
        exporter(first)

    assert exporter.dump() == before


def test_schema_uses_uniqueness_constraints_only() -> None:
    """Community edition has no node keys or existence constraints."""
    for statement in schema_statements():
        assert "IS NODE KEY" not in statement and "IS NOT NULL" not in statement


def test_timestamps_become_datetimes_and_garbled_ones_null(exporter: Exporter, store: SnapshotStore) -> None:
    run = write_estate(store)
    with store.transaction() as db:
        db.execute(
            "UPDATE lu_users SET last_sign_in_at = 'yesterday-ish' WHERE run_id = ? AND id = 1", (run,)
        )
    exporter()
    rows = exporter.rows(
        "MATCH (a:LearnUponAccount) WHERE a.uid IN ['emea:1', 'emea:2'] "
        "RETURN a.uid AS uid, a.last_sign_in_at AS seen ORDER BY uid"
    )
    assert rows[0]["seen"] is None
    assert isinstance(rows[1]["seen"].to_native(), datetime)


def test_a_user_added_between_runs_is_created(exporter: Exporter, store: SnapshotStore) -> None:
    write_estate(store, Omit(accounts={("emea", 12)}))
    exporter()
    write_estate(store)
    stats = exporter()
    assert dict(stats.nodes_created) == {"LearnUponAccount": 1, "Person": 1}
    assert "emea:12" in exporter.uids("LearnUponAccount")
