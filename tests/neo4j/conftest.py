"""Shared helpers for the Neo4j export tests: a snapshot of the hand-made estate, an export, a graph dump."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from neo4j_estate import MANAGED_DOMAINS, write_estate

from crawler.store import SnapshotStore
from graph.neo4j_export import ExportStats, prepare
from graph.neo4j_export import write_run as export_run_rows

if TYPE_CHECKING:
    from pathlib import Path

    from neo4j import Driver
    from neo4j_fixture import Neo4jServer

TEST_BATCH_SIZE = 4  # small, so every label and cleanup spans several transactions


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SnapshotStore]:
    with SnapshotStore(tmp_path / "snapshot.db") as snapshot:
        yield snapshot


@pytest.fixture
def first_run(store: SnapshotStore) -> int:
    return write_estate(store)


class Exporter:
    """Exports runs of one snapshot into the test database and reads the result back."""

    def __init__(self, driver: Driver, server: Neo4jServer, store: SnapshotStore) -> None:
        self.driver, self.database, self.store = driver, server.database, store

    def __call__(self, run_id: int | None = None, **settings: Any) -> ExportStats:
        settings.setdefault("managed_domains", MANAGED_DOMAINS)
        export = prepare(self.store, run_id, **settings)
        return export_run_rows(self.driver, export, database=self.database, batch_size=TEST_BATCH_SIZE)

    def rows(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        records, _, _ = self.driver.execute_query(cypher, params, database_=self.database)
        return [r.data() for r in records]

    def dump(self) -> dict[str, Any]:
        """Every node and relationship with all its properties, in a comparable form."""
        nodes = self.rows("MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
        rels = self.rows(
            "MATCH (a)-[r]->(b) RETURN type(r) AS type, a.uid AS start, b.uid AS end, properties(r) AS props"
        )
        return {
            "nodes": sorted((sorted(n["labels"]), repr(sorted(n["props"].items()))) for n in nodes),
            "rels": sorted((r["type"], r["start"], r["end"], repr(sorted(r["props"].items()))) for r in rels),
        }

    def counts(self) -> dict[str, int]:
        nodes = self.rows("MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n")
        rels = self.rows("MATCH ()-[r]->() RETURN type(r) AS label, count(*) AS n")
        return {row["label"]: row["n"] for row in nodes + rels}

    def uids(self, label: str, where: str = "true", **params: Any) -> set[str]:
        return {r["uid"] for r in self.rows(f"MATCH (n:{label}) WHERE {where} RETURN n.uid AS uid", **params)}


@pytest.fixture
def exporter(neo4j_driver: Driver, neo4j_server: Neo4jServer, store: SnapshotStore) -> Exporter:
    return Exporter(neo4j_driver, neo4j_server, store)
