"""The notebooks' Neo4j side: where to find the server, the export's numbers, the Cypher library as a
table, and the parity check of Neo4j's answers against the report's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from graph.notebook.common import CODES

if TYPE_CHECKING:
    from neo4j import Driver

    from graph.neo4j_export import ExportStats

# --- Neo4j --------------------------------------------------------------------------------------------------
NEO4J_HOWTO = """The Neo4j cells are off: NEO4J_URI is not set.
To run them, start a Neo4j 5 server and set, before starting Jupyter:
    export NEO4J_URI=neo4j://localhost:7687
    export NEO4J_USER=neo4j NEO4J_PASSWORD=...     # unless the server has auth disabled
    export NEO4J_DATABASE=neo4j                     # optional
The tests' server works too: tests/neo4j_fixture.py builds one from Maven Central (java + mvn)."""


@dataclass(frozen=True)
class Neo4jTarget:
    """Where to export and query, read from NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD / NEO4J_DATABASE."""

    uri: str
    database: str = "neo4j"
    auth: tuple[str, str] | None = field(default=None, repr=False)  # never printed

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Neo4jTarget | None:
        uri = environ.get("NEO4J_URI", "").strip()
        if not uri:
            return None
        user = environ.get("NEO4J_USER")
        auth = (user, environ.get("NEO4J_PASSWORD", "")) if user else None
        return cls(uri, environ.get("NEO4J_DATABASE") or "neo4j", auth)

    def driver(self) -> Driver:
        from graph.neo4j_connect import open_driver

        return open_driver(self.uri, self.auth)


def export_table(stats: ExportStats) -> pd.DataFrame:
    """Per label / relationship type: rows written, created and deleted by one export."""
    data = stats.as_dict()
    frames = []
    for what in ("nodes", "rels"):
        part = pd.DataFrame({k: data[f"{what}_{k}"] for k in ("written", "created", "deleted")})
        frames.append(part.rename_axis("label").assign(what=what))
    table = pd.concat(frames).fillna(0).reset_index().set_index(["what", "label"])
    return table.astype(int)


def query_library() -> pd.DataFrame:
    """The saved Cypher queries (graph/queries/*.yaml): name, category, finding, parameters, description."""
    from graph.query_library import load_queries

    rows = [
        {
            "name": q.name,
            "category": q.category,
            "finding": q.finding,
            "parameters": ", ".join(f"{p.name}={p.default!r}" for p in q.parameters) or None,
            "description": q.description,
        }
        for q in load_queries().values()
    ]
    return pd.DataFrame(rows).set_index("name")


def query_df(
    driver: Driver, name: str, params: Mapping[str, Any] | None = None, database: str = "neo4j"
) -> pd.DataFrame:
    """One library query's rows as a DataFrame (columns in the query's RETURN order)."""
    from graph.query_library import run_query

    return pd.DataFrame(run_query(driver, name, params, database))


def parity(driver: Driver, findings: pd.DataFrame, database: str = "neo4j") -> pd.DataFrame:
    """Findings per code three ways: the networkx rules, the exported Finding nodes, the Cypher queries."""
    from graph.query_library import finding_queries, run_query

    exported = pd.Series([r["finding"] for r in run_query(driver, "findings", None, database)], dtype=object)
    cypher = {code: len(run_query(driver, q.name, None, database)) for code, q in finding_queries().items()}
    table = pd.DataFrame(
        {
            "rules": findings["finding"].value_counts().reindex(CODES, fill_value=0),
            "exported": exported.value_counts().reindex(CODES, fill_value=0),
            "cypher": pd.Series(cypher, dtype="Int64").reindex(CODES),
        }
    ).rename_axis("finding")
    same_cypher = table["cypher"].fillna(table["rules"]).eq(table["rules"])
    table["agree"] = table["rules"].eq(table["exported"]) & same_cypher
    return table
