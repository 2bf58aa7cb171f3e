"""Checks the test Neo4j server itself, so exporter test failures can be trusted to be exporter bugs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from neo4j.exceptions import ConstraintError

if TYPE_CHECKING:
    from neo4j import Driver
    from neo4j_fixture import Neo4jServer

pytestmark = pytest.mark.neo4j


def test_nodes_and_uniqueness_constraint_round_trip(neo4j_driver: Driver, neo4j_server: Neo4jServer) -> None:
    db = neo4j_server.database
    neo4j_driver.execute_query(
        "CREATE CONSTRAINT identity_key IF NOT EXISTS FOR (i:Identity) REQUIRE (i.kind, i.value) IS UNIQUE",
        database_=db,
    )
    neo4j_driver.execute_query(
        "UNWIND $rows AS row CREATE (:Identity {kind: row.kind, value: row.value})",
        rows=[{"kind": "email", "value": "a@example.org"}, {"kind": "github", "value": "alice"}],
        database_=db,
    )

    records, _, _ = neo4j_driver.execute_query(
        "MATCH (i:Identity) RETURN i.kind AS kind, i.value AS value ORDER BY kind", database_=db
    )
    assert [(r["kind"], r["value"]) for r in records] == [("email", "a@example.org"), ("github", "alice")]

    constraints, _, _ = neo4j_driver.execute_query(
        "SHOW CONSTRAINTS YIELD name, type RETURN name, type", database_=db
    )
    # 5.x says UNIQUENESS; Cypher 25 renames it NODE_PROPERTY_UNIQUENESS.
    assert [r["name"] for r in constraints] == ["identity_key"]
    assert constraints[0]["type"] in {"UNIQUENESS", "NODE_PROPERTY_UNIQUENESS"}

    with pytest.raises(ConstraintError):
        neo4j_driver.execute_query("CREATE (:Identity {kind: 'github', value: 'alice'})", database_=db)
    count, _, _ = neo4j_driver.execute_query("MATCH (i:Identity) RETURN count(i) AS n", database_=db)
    assert count[0]["n"] == 2


def test_each_test_starts_from_an_empty_database(neo4j_driver: Driver, neo4j_server: Neo4jServer) -> None:
    """Runs after the test above: its nodes and constraint must be gone, the LOOKUP indexes kept."""
    db = neo4j_server.database
    nodes, _, _ = neo4j_driver.execute_query("MATCH (n) RETURN count(n) AS n", database_=db)
    assert nodes[0]["n"] == 0
    constraints, _, _ = neo4j_driver.execute_query("SHOW CONSTRAINTS", database_=db)
    assert constraints == []
    indexes, _, _ = neo4j_driver.execute_query("SHOW INDEXES YIELD type RETURN type", database_=db)
    assert {r["type"] for r in indexes} == {"LOOKUP"}


def test_server_is_neo4j_5_26(neo4j_driver: Driver, neo4j_server: Neo4jServer) -> None:
    records, _, _ = neo4j_driver.execute_query(
        "CALL dbms.components() YIELD name, versions RETURN name, versions", database_=neo4j_server.database
    )
    kernel = {r["name"]: r["versions"] for r in records}["Neo4j Kernel"]
    if neo4j_server.managed:
        assert kernel[0].startswith("5.26."), kernel
    else:
        assert kernel[0].startswith("5."), kernel
