"""The Cypher query library: its YAML files, parameter handling, and each query against a real export."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Exporter
from neo4j_estate import Omit, write_estate

from crawler.store import SnapshotStore
from graph.query_library import QUERIES_DIR, Parameter, QueryError, get_query, load_queries, run_query


def test_every_yaml_file_is_a_query_named_after_it() -> None:
    queries = load_queries()
    assert sorted(queries) == sorted(p.stem for p in QUERIES_DIR.glob("*.yaml"))
    assert len(queries) >= 10
    for query in queries.values():
        assert (
            query.description and query.cypher and query.category in {"findings", "exploration", "coverage"}
        )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name: bad\ndescription: d\n", "missing cypher"),
        ("name: other\ndescription: d\ncypher: RETURN 1\n", "must match the file name"),
        ("name: bad\ndescription: d\ncypher: RETURN 1\nquery: x\n", "unknown key"),
        ("name: bad\ndescription: d\ncypher: RETURN 1\nfinding: nope\n", "not a finding code"),
        (
            "name: bad\ndescription: d\ncypher: RETURN 1\nparameters: [{name: x, type: float}]\n",
            "type must be",
        ),
        ("name: [bad\n", "not valid YAML"),
    ],
)
def test_malformed_query_files_are_refused_with_the_reason(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(QueryError, match=error):
        load_queries(tmp_path)


def test_parameters_get_their_defaults_and_unknown_names_are_refused() -> None:
    query = get_query("people_in_several_portals")
    assert query.bind({"min_portals": 3}) == {"min_portals": 3, "limit": 1000}
    with pytest.raises(QueryError, match="unknown parameter"):
        query.bind({"min_portal": 3})
    with pytest.raises(QueryError, match="no query named"):
        get_query("orphans")


def test_command_line_values_are_parsed_by_type() -> None:
    assert Parameter("n", "int", None, "").parse("7") == 7
    assert Parameter("b", "bool", True, "").parse("false") is False
    assert Parameter("l", "list", None, "").parse("acme.com, acme.org") == ["acme.com", "acme.org"]
    assert Parameter("s", "str", None, "").parse("null") is None
    with pytest.raises(QueryError, match="expected an integer"):
        Parameter("n", "int", None, "").parse("seven")


@pytest.mark.neo4j
def test_every_query_runs_on_an_empty_graph(exporter: Exporter) -> None:
    for name in load_queries():
        assert run_query(exporter.driver, name, {}, exporter.database) == [], name


@pytest.mark.neo4j
def test_exploration_queries_on_the_estate(exporter: Exporter, first_run: int) -> None:
    exporter()

    def run(name: str, **params: object) -> list[dict]:
        return run_query(exporter.driver, name, params, exporter.database)

    several = {r["person"]: r for r in run("people_in_several_portals")}
    assert sorted(several) == ["ana@acme.com", "bob@acme.com", "dan@acme.com"]
    assert several["dan@acme.com"]["enabled_accounts"] == 1
    assert sorted(several["bob@acme.com"]["idp_status"]) == ["entra:disabled", "okta:disabled"]
    assert run("people_in_several_portals", min_portals=3) == []

    privileged = [
        (r["portal"], r["learnupon_user_id"], r["user_type"])
        for r in run("privileged_accounts_of_disabled_people")
    ]
    assert privileged == [("emea", 2, "admin"), ("emea", 3, "manager")]

    access = {(r["portal"], r["learnupon_user_id"]): r for r in run("orphan_access")}
    assert sorted(access) == [("apac", 102), ("emea", 2), ("emea", 3)]
    assert sorted(access[("emea", 2)]["groups"]) == ["emea Admins", "emea Sales"]
    assert sorted((e["course"], e["status"]) for e in access[("emea", 2)]["enrollments"]) == [
        ("Code of Conduct", "in_progress"),
        ("Security Basics", "completed"),
    ]
    assert access[("emea", 3)]["groups"] == [] and access[("emea", 3)]["enrollments"] == []
    assert [r["learnupon_user_id"] for r in run("orphan_access", portal="apac")] == [102]

    external = run("not_in_idp", managed_domains=["Customer.Example"])
    assert [(r["email"], r["domain"]) for r in external] == [("learner@customer.example", "customer.example")]
    assert len(run("dormant_accounts", dormant_days=1)) > len(run("dormant_accounts"))


@pytest.mark.neo4j
def test_coverage_shows_failed_sources_and_what_is_carried_over(
    exporter: Exporter, store: SnapshotStore
) -> None:
    write_estate(store)
    exporter()
    second = write_estate(store, Omit(accounts={("apac", 102), ("apac", 105)}), failed={"apac": "HTTP 500"})
    exporter()

    rows = {r["source"]: r for r in run_query(exporter.driver, "coverage", {}, exporter.database)}
    assert [r["kind"] for r in rows.values()] == ["learnupon", "learnupon", "idp", "idp"]
    apac, emea = rows["apac"], rows["emea"]
    assert (apac["complete"], apac["error"], apac["records"], apac["stale_records"]) == (
        False,
        "HTTP 500",
        3,
        2,
    )
    assert (emea["complete"], emea["error"], emea["records"], emea["stale_records"]) == (True, None, 13, 0)
    assert all(r["latest_run"] == second and r["in_latest_run"] for r in rows.values())
