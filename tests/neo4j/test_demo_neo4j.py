"""`idgraph demo --neo4j URI` loads the demo graph into a real Neo4j, and the query library can read it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from typer.testing import CliRunner

from idgraph.cli import app

if TYPE_CHECKING:
    import neo4j
    from neo4j_fixture import Neo4jServer


def test_demo_loads_the_graph_into_neo4j(
    tmp_path: Path, neo4j_server: Neo4jServer, neo4j_driver: neo4j.Driver
) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--portals",
            "2",
            "--users",
            "150",
            "--neo4j",
            neo4j_server.uri,
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    records, _, _ = neo4j_driver.execute_query(
        "MATCH (a:LearnUponAccount) RETURN count(a) AS accounts", database_=neo4j_server.database
    )
    assert records[0]["accounts"] > 250
    findings, _, _ = neo4j_driver.execute_query(
        "MATCH (f:Finding {code: 'idp_disabled_active'}) RETURN count(f) AS n",
        database_=neo4j_server.database,
    )
    assert findings[0]["n"] > 0
