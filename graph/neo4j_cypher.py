"""Every Cypher statement the Neo4j export runs: schema, batched loads, scoped cleanup, the run node.

Loads take positional rows (`[uid, *values]`, `[start, end, *values]`): the driver packs a list much faster
than a map with the same values (see BENCHMARKS.md, section neo4j). Cleanup statements delete at most
`$limit` rows and return how many matched, so the exporter repeats them in bounded transactions, and each
is scoped to `$scope`, the sources whose crawl completed in the exported run.
"""

from __future__ import annotations

from collections.abc import Sequence

from crawler.vocabulary import NODE_LABELS, REL_TYPES
from graph.neo4j_model import FINDING, LABELS, RUN, TEMPORAL

ACCOUNT, PERSON, IDENTITY = LABELS["account"], LABELS["person"], LABELS["identity"]


def schema_statements() -> list[str]:
    """Uniqueness constraints (Community edition has no node keys), then `last_seen_run` range indexes for
    the cleanup's stale-row lookups."""
    statements = [
        f"CREATE CONSTRAINT idgraph_{label.lower()}_uid IF NOT EXISTS FOR (n:{label}) REQUIRE n.uid IS UNIQUE"
        for label in NODE_LABELS
    ]
    statements += [
        f"CREATE INDEX idgraph_{label.lower()}_seen IF NOT EXISTS FOR (n:{label}) ON (n.last_seen_run)"
        for label in NODE_LABELS
    ]
    statements += [
        f"CREATE INDEX idgraph_{rel.lower()}_seen IF NOT EXISTS FOR ()-[r:{rel}]-() ON (r.last_seen_run)"
        for rel in REL_TYPES
    ]
    statements.append(f"CREATE INDEX idgraph_finding_code IF NOT EXISTS FOR (f:{FINDING}) ON (f.code)")
    return statements


def _assignments(var: str, keys: Sequence[str], first: int) -> str:
    """`n.key = row[i], ...`; timestamps arrive as ISO strings and become DateTimes (`datetime(row[i])`)."""
    return "".join(
        f"{var}.`{key}` = " + (f"datetime(row[{i}]), " if key in TEMPORAL else f"row[{i}], ")
        for i, key in enumerate(keys, start=first)
    )


def node_query(label: str, keys: Sequence[str]) -> str:
    """MERGE a batch of nodes on their uid; rows are `[uid, *values of keys]`."""
    return (
        f"UNWIND $rows AS row MERGE (n:{label} {{uid: row[0]}}) ON CREATE SET n.first_seen_run = $run "
        f"SET {_assignments('n', keys, 1)}n.last_seen_run = $run"
    )


def rel_query(rel_type: str, start: str, end: str, keys: Sequence[str]) -> str:
    """MERGE a batch of relationships between nodes matched on uid; rows are `[start, end, *values]`."""
    return (
        f"UNWIND $rows AS row MATCH (a:{start} {{uid: row[0]}}) MATCH (b:{end} {{uid: row[1]}}) "
        f"MERGE (a)-[r:{rel_type}]->(b) ON CREATE SET r.first_seen_run = $run "
        f"SET {_assignments('r', keys, 2)}r.last_seen_run = $run"
    )


def _stale_rels(pattern: str, prop: str) -> str:
    return (
        f"MATCH {pattern} WHERE r.last_seen_run < $run AND n.{prop} IN $scope "
        "WITH r LIMIT $limit DELETE r RETURN count(*) AS n"
    )


def _stale_nodes(label: str, prop: str) -> str:
    return (
        f"MATCH (n:{label}) WHERE n.last_seen_run < $run AND n.{prop} IN $scope "
        "WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n"
    )


# Stale relationships and nodes, by type / label -> (the scope they are judged by, the statement). A
# "portal" scope is the portals that completed, a "source" scope the IdPs that completed.
REL_CLEANUP: dict[str, tuple[str, str]] = {
    "HAS_ACCOUNT": ("portal", _stale_rels(f"(:{PERSON})-[r:HAS_ACCOUNT]->(n:{ACCOUNT})", "portal")),
    "IN_PORTAL": ("portal", _stale_rels("(n)-[r:IN_PORTAL]->(:Portal)", "portal")),
    "MEMBER_OF": ("portal", _stale_rels(f"(n:{ACCOUNT})-[r:MEMBER_OF]->()", "portal")),
    "ENROLLED_IN": ("portal", _stale_rels(f"(n:{ACCOUNT})-[r:ENROLLED_IN]->()", "portal")),
    "HAS_IDENTITY": ("source", _stale_rels(f"(:{PERSON})-[r:HAS_IDENTITY]->(n:{IDENTITY})", "source")),
    "FROM": ("source", _stale_rels(f"(n:{IDENTITY})-[r:FROM]->(:IdP)", "source")),
}
NODE_CLEANUP: dict[str, tuple[str, str]] = {
    label: (prop, _stale_nodes(label, prop))
    for label, prop in ((ACCOUNT, "portal"), ("Group", "portal"), ("Course", "portal"), (IDENTITY, "source"))
}
# Findings of a judged `code|portal` scope that this export did not write, except the `code|account` whose
# verdict was unavailable this time (their last verdict stands).
FINDING_CLEANUP = (
    f"MATCH (n:{FINDING}) WHERE (n.code + '|' + n.portal) IN $judged AND NOT n.uid IN $current "
    "AND NOT coalesce(n.code + '|' + n.account_uid, '') IN $kept "
    "WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n"
)
# Findings about an account that a complete portal no longer has, whatever their code.
GONE_ACCOUNT_FINDINGS = (
    f"MATCH (a:{ACCOUNT})-[:HAS_FINDING]->(n:{FINDING}) WHERE a.last_seen_run < $run AND a.portal IN $scope "
    "WITH DISTINCT n LIMIT $limit DETACH DELETE n RETURN count(*) AS n"
)
# A person is derived from accounts and identities: it goes once nothing of it is left.
PERSON_CLEANUP = (
    f"MATCH (n:{PERSON}) WHERE n.last_seen_run < $run AND NOT (n)-[:HAS_ACCOUNT|HAS_IDENTITY]->() "
    "WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n"
)
# Portals and IdPs the exported run did not crawl at all keep their data but leave the latest run.
STALE_SOURCES = [
    f"MATCH (n:{label}) WHERE n.last_seen_run < $run SET n.in_latest_run = false"
    for label in ("Portal", "IdP")
]
RUN_NODE = (
    f"MERGE (n:{RUN} {{uid: $uid}}) ON CREATE SET n.first_seen_run = $run "
    "SET n += $props, n.last_seen_run = $run"
)
LATEST_RUN = f"MATCH (r:{RUN}) RETURN max(r.run_id) AS run"
