"""Export one run of the snapshot into Neo4j: constraints, nodes, relationships, findings, then cleanup.

Loads are `UNWIND $rows ... MERGE` in batches, each batch its own managed transaction
(`session.execute_write`, which the driver retries on transient errors and lost connections), always with
the database named. Every node and relationship is stamped with `last_seen_run` (and `first_seen_run`
when created), so exporting the same run twice changes nothing.

Cleanup is where a partial crawl could destroy good data, so it is scoped per source and runs only for the
sources whose crawl completed in the exported run: the accounts, groups, courses, memberships and
enrollments of a complete portal that this run no longer has are deleted; those of a failed portal are
left as last seen. Identities likewise per IdP. Findings are replaced per (code, portal) only where the
run gave a verdict (no `Unavailable` for that code and scope). A run older than one already exported is
refused: it would roll the graph back.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from neo4j import Driver, ManagedTransaction, NotificationDisabledClassification

from crawler.store import SnapshotStore
from graph.api import IdentityGraph, load_run
from graph.model import Code, FindingSet
from graph.neo4j_connect import open_driver
from graph.neo4j_cypher import (
    FINDING_CLEANUP,
    GONE_ACCOUNT_FINDINGS,
    LATEST_RUN,
    NODE_CLEANUP,
    PERSON,
    PERSON_CLEANUP,
    REL_CLEANUP,
    RUN_NODE,
    STALE_SOURCES,
    node_query,
    rel_query,
    schema_statements,
)
from graph.neo4j_model import FINDING, LABELS, Rows, add_findings, graph_rows

log = logging.getLogger("idgraph.neo4j")

DEFAULT_BATCH_SIZE = 1000  # chosen by the sweep in BENCHMARKS.md, section neo4j
DEFAULT_DATABASE = "neo4j"
# "property key does not exist" on a fresh graph is expected, not news
_QUIET = [NotificationDisabledClassification.UNRECOGNIZED]


class ExportError(RuntimeError):
    """The export cannot go ahead (e.g. it would roll a newer run back); nothing was written."""


@dataclass
class ExportStats:
    """What one export did: rows written per label / relationship type, and what it created and deleted."""

    run_id: int
    nodes_written: Counter[str] = field(default_factory=Counter)
    rels_written: Counter[str] = field(default_factory=Counter)
    nodes_created: Counter[str] = field(default_factory=Counter)
    rels_created: Counter[str] = field(default_factory=Counter)
    nodes_deleted: Counter[str] = field(default_factory=Counter)
    rels_deleted: Counter[str] = field(default_factory=Counter)
    transactions: int = 0
    seconds: float = 0.0
    complete_portals: tuple[str, ...] = ()
    complete_idps: tuple[str, ...] = ()

    @property
    def rows_written(self) -> int:
        return sum(self.nodes_written.values()) + sum(self.rels_written.values())

    @property
    def changed(self) -> bool:
        """Whether the export created or deleted anything."""
        return any((+self.nodes_created, +self.rels_created, +self.nodes_deleted, +self.rels_deleted))

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            **{
                name: dict(sorted(getattr(self, name).items()))
                for name in (
                    "nodes_written",
                    "rels_written",
                    "nodes_created",
                    "rels_created",
                    "nodes_deleted",
                    "rels_deleted",
                )
            },
            "rows_written": self.rows_written,
            "transactions": self.transactions,
            "seconds": round(self.seconds, 3),
            "complete_portals": list(self.complete_portals),
            "complete_idps": list(self.complete_idps),
        }


@dataclass(frozen=True)
class RunExport:
    """Everything the export needs from one run, as `graph.api` computes it."""

    run_id: int
    started_at: datetime | None
    status: str
    rows: Rows
    findings: FindingSet
    portals: Mapping[str, str | None]  # None = crawl complete, else why not
    idps: Mapping[str, str | None]
    managed_domains: tuple[str, ...]
    dormant_days: int

    @property
    def complete_portals(self) -> list[str]:
        return sorted(p for p, reason in self.portals.items() if reason is None)

    @property
    def complete_idps(self) -> list[str]:
        return sorted(i for i, reason in self.idps.items() if reason is None)


# --- transactions -----------------------------------------------------------------------------------------
def _write(tx: ManagedTransaction, query: str, params: dict[str, Any]) -> tuple[Counter[str], int]:
    """One statement in a managed transaction: its counters, and its `n` column when it returns one."""
    result = tx.run(query, params)
    record = result.single()
    counters = result.consume().counters
    counts = Counter(
        nodes_created=counters.nodes_created,
        rels_created=counters.relationships_created,
        nodes_deleted=counters.nodes_deleted,
        rels_deleted=counters.relationships_deleted,
    )
    return counts, int(record["n"]) if record is not None else 0


def _batches(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class _Writer:
    """One session; each batch its own managed transaction; counters summed into the stats."""

    def __init__(self, driver: Driver, database: str, run_id: int, batch_size: int, stats: ExportStats):
        self.session = driver.session(database=database, notifications_disabled_classifications=_QUIET)
        self.run_id, self.batch_size, self.stats = run_id, batch_size, stats

    def close(self) -> None:
        self.session.close()

    def execute(self, query: str, **params: Any) -> tuple[Counter[str], int]:
        self.stats.transactions += 1
        return self.session.execute_write(_write, query, {"run": self.run_id, **params})

    def _count(self, name: str, key: str, value: int) -> None:
        if value:
            getattr(self.stats, name)[key] += value

    def load_nodes(self, label: str, rows: Sequence[dict[str, Any]]) -> None:
        keys = sorted(rows[0].keys() - {"uid"})
        query = node_query(label, keys)
        for batch in _batches(rows, self.batch_size):
            values = [[row["uid"], *[row[k] for k in keys]] for row in batch]
            counts, _ = self.execute(query, rows=values)
            self._count("nodes_created", label, counts["nodes_created"])
        self.stats.nodes_written[label] += len(rows)

    def load_rels(self, rel_type: str, start: str, end: str, rows: Sequence[dict[str, Any]]) -> None:
        keys = sorted(rows[0]["props"])
        query = rel_query(rel_type, start, end, keys)
        for batch in _batches(rows, self.batch_size):
            values = [[row["start"], row["end"], *[row["props"][k] for k in keys]] for row in batch]
            counts, _ = self.execute(query, rows=values)
            self._count("rels_created", rel_type, counts["rels_created"])
        self.stats.rels_written[rel_type] += len(rows)

    def delete_until_done(self, query: str, label: str, detached: str = "(detached)", **params: Any) -> None:
        """Delete in bounded transactions until nothing matches (a big cleanup never holds one huge tx).

        `label` names what the query deletes (a node label, or a relationship type); relationships that go
        with deleted nodes are counted under `detached`.
        """
        while True:
            counts, matched = self.execute(query, limit=self.batch_size, **params)
            if counts["nodes_deleted"]:
                self._count("nodes_deleted", label, counts["nodes_deleted"])
                self._count("rels_deleted", detached, counts["rels_deleted"])
            else:
                self._count("rels_deleted", label, counts["rels_deleted"])
            if matched < self.batch_size:
                return


def ensure_schema(driver: Driver, database: str = DEFAULT_DATABASE) -> None:
    """Constraints and indexes, idempotent; schema commands run in auto-commit transactions."""
    with driver.session(database=database) as session:
        for statement in schema_statements():
            session.run(statement).consume()
        session.run("CALL db.awaitIndexes(300)").consume()


def latest_exported_run(driver: Driver, database: str = DEFAULT_DATABASE) -> int | None:
    """The newest run this graph holds, or None for a graph never exported to."""
    with driver.session(database=database, notifications_disabled_classifications=_QUIET) as session:
        record = session.execute_read(lambda tx: tx.run(LATEST_RUN).single())
    return record["run"] if record else None


def _finding_scopes(export: RunExport) -> tuple[list[str], list[str]]:
    """(`code|portal` pairs this run judged, `code|account uid` whose verdict was unavailable)."""
    blocked: set[tuple[str, str]] = set()
    kept: list[str] = []
    for item in export.findings.unavailable:
        if item.scope.startswith("account:"):
            kept.append(f"{item.code.value}|{item.scope.removeprefix('account:')}")
        else:
            blocked.add((item.code.value, item.scope))
    judged = [
        f"{code.value}|{portal}"
        for code in Code
        if (code.value, "all") not in blocked
        for portal in export.complete_portals
        if (code.value, portal) not in blocked
    ]
    return judged, kept


def write_run(
    driver: Driver,
    export: RunExport,
    *,
    database: str = DEFAULT_DATABASE,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ExportStats:
    """Load one run's rows into Neo4j and clean up what the completed sources no longer have."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    newest = latest_exported_run(driver, database)
    if newest is not None and newest > export.run_id:
        raise ExportError(
            f"the graph already holds run {newest}; exporting the older run {export.run_id} would roll it "
            "back (export into an empty database, or export the newest run)"
        )
    started = time.perf_counter()
    stats = ExportStats(
        export.run_id,
        complete_portals=tuple(export.complete_portals),
        complete_idps=tuple(export.complete_idps),
    )
    ensure_schema(driver, database)
    rows = export.rows
    writer = _Writer(driver, database, export.run_id, batch_size, stats)
    try:
        for label in (*LABELS.values(), FINDING):  # endpoints before relationships
            if rows.nodes.get(label):
                writer.load_nodes(label, rows.nodes[label])
        for (rel_type, start, end), rel_rows in rows.rels.items():
            writer.load_rels(rel_type, start, end, rel_rows)
        _cleanup(writer, export)
        writer.execute(
            RUN_NODE,
            uid=str(export.run_id),
            props={
                "run_id": export.run_id,
                "started_at": export.started_at,
                "status": export.status,
                "managed_domains": list(export.managed_domains),
                "dormant_days": export.dormant_days,
                "portals": sorted(export.portals),
                "idps": sorted(export.idps),
                "complete_portals": export.complete_portals,
                "complete_idps": export.complete_idps,
            },
        )
    finally:
        writer.close()
    stats.seconds = time.perf_counter() - started
    log.debug("exported run %s: %s", export.run_id, stats.as_dict())  # the result: stdout, summary
    return stats


def _cleanup(writer: _Writer, export: RunExport) -> None:
    """Stale relationships, then findings, then nodes, each only within the scopes that completed."""
    scopes = {"portal": export.complete_portals, "source": export.complete_idps}
    for rel_type, (scope, query) in REL_CLEANUP.items():
        if scopes[scope]:
            writer.delete_until_done(query, rel_type, scope=scopes[scope])
    judged, kept = _finding_scopes(export)
    current = [row["uid"] for row in export.rows.nodes.get(FINDING, ())]
    if judged:
        writer.delete_until_done(
            FINDING_CLEANUP, FINDING, "HAS_FINDING", judged=judged, kept=kept, current=current
        )
    if scopes["portal"]:
        writer.delete_until_done(GONE_ACCOUNT_FINDINGS, FINDING, "HAS_FINDING", scope=scopes["portal"])
    for label, (scope, query) in NODE_CLEANUP.items():
        if scopes[scope]:
            writer.delete_until_done(query, label, scope=scopes[scope])
    writer.delete_until_done(PERSON_CLEANUP, PERSON)
    for query in STALE_SOURCES:
        writer.execute(query)


# --- from a snapshot ----------------------------------------------------------------------------------------
def prepare(
    store_or_db_path: SnapshotStore | Path | str,
    run_id: int | None = None,
    *,
    managed_domains: Iterable[str] | None = None,
    dormant_days: int | None = None,
) -> RunExport:
    """Read one run (the newest by default): its networkx graph and findings, as export rows.

    Review settings left as None fall back to those saved with the run, as in `graph.api.load_run`.
    """
    with load_run(
        store_or_db_path, run_id, managed_domains=managed_domains, dormant_days=dormant_days
    ) as loaded:
        return from_identity_graph(loaded)


def from_identity_graph(loaded: IdentityGraph) -> RunExport:
    """Export rows of an opened run: the same graph and findings the reports and notebooks see."""
    findings = loaded.findings()
    rows = graph_rows(loaded.graph)
    add_findings(rows, findings.findings)
    return RunExport(
        run_id=loaded.run.id,
        started_at=loaded.rule_input().run_started_at,
        status=loaded.run.status,
        rows=rows,
        findings=findings,
        portals=dict(loaded.sources.portals),
        idps=dict(loaded.sources.idps),
        managed_domains=tuple(loaded.settings.managed_domains),
        dormant_days=loaded.settings.dormant_days,
    )


def export_run(
    store_or_db_path: SnapshotStore | Path | str,
    uri: str,
    *,
    run_id: int | None = None,
    auth: tuple[str, str] | None = None,
    database: str = DEFAULT_DATABASE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    managed_domains: Iterable[str] | None = None,
    dormant_days: int | None = None,
) -> ExportStats:
    """Export one run of a snapshot (the newest by default) to the Neo4j at `uri`.

    `managed_domains` / `dormant_days` left as None use the review settings saved with the run (then none
    and 90 days), as the reports do.
    """
    with open_driver(uri, auth) as driver:  # fails within 10 s, before reading a large snapshot
        export = prepare(store_or_db_path, run_id, managed_domains=managed_domains, dormant_days=dormant_days)
        return write_run(driver, export, database=database, batch_size=batch_size)
