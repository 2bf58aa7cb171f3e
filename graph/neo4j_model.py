"""The Neo4j shape of one run: labels, `uid`s and the rows the exporter loads, from the networkx graph.

The model is the networkx graph's (graph/build.py): one label per node kind, the same relationship types,
so a Cypher user and a notebook user see one graph:

    (:Person {key})-[:HAS_ACCOUNT]->(:LearnUponAccount {portal, id, email, enabled, user_type, ...})
    (:LearnUponAccount|Group|Course)-[:IN_PORTAL]->(:Portal {name, complete, error, in_latest_run})
    (:LearnUponAccount)-[:MEMBER_OF]->(:Group)
    (:LearnUponAccount)-[:ENROLLED_IN {status, score, date_enrolled, ...}]->(:Course)
    (:Person)-[:HAS_IDENTITY]->(:IdPIdentity {source, idp_id, status, raw_status, ...})-[:FROM]->(:IdP {name})
    (:LearnUponAccount)-[:HAS_FINDING]->(:Finding {finding_id, code, severity, evidence})
    (:Person)-[:HAS_FINDING]->(:Finding)

Every node has a `uid` unique within its label: the networkx node id without its kind prefix (`emea:1234`
for `account:emea:1234`, the person key for a person). Timestamps become Neo4j DateTimes so Cypher can
compare them (`a.last_sign_in_at < datetime() - duration('P90D')`); a garbled one becomes null, as the
rules read it (`parse_time`). Accounts also get `email_key` (the casefolded address the rules match on)
and `privileged`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from crawler.vocabulary import (
    FINDING_LABEL,
    NODE_LABELS_BY_KIND,
    RUN_LABEL,
    is_privileged,
)
from graph.model import Finding
from graph.resolve import fold
from graph.rules import parse_time

# The labels and relationship types are shared words (crawler.vocabulary): the Cypher library is checked
# against the same definitions.
LABELS = NODE_LABELS_BY_KIND
FINDING = FINDING_LABEL
RUN = RUN_LABEL
TEMPORAL = frozenset(
    {
        "last_sign_in_at",
        "created_at",
        "status_changed_at",
        "last_login",
        "date_enrolled",
        "date_completed",
        "date_lastaccessed",
    }
)
# Bookkeeping the exporter writes itself; graph attributes never override it.
RESERVED = frozenset({"uid", "first_seen_run", "last_seen_run"})

RelKey = tuple[str, str, str]  # (type, start label, end label)


@dataclass
class Rows:
    """What one export loads: node rows per label (each with its `uid`) and relationship rows per
    (type, start label, end label) as `{"start": uid, "end": uid, "props": {...}}`."""

    nodes: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    rels: dict[RelKey, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def count(self) -> int:
        return sum(map(len, self.nodes.values())) + sum(map(len, self.rels.values()))


def uid(node_id: str) -> str:
    """`account:emea:12` -> `emea:12`; `person:ana@acme.com` -> `ana@acme.com`."""
    return node_id.split(":", 1)[1]


def _value(name: str, value: Any) -> Any:
    """Timestamps travel as normalised ISO strings that the load query turns into DateTimes: the pure-Python
    driver packs a datetime many times slower than a string (see BENCHMARKS.md, section neo4j)."""
    if name in TEMPORAL and isinstance(value, str):
        moment = parse_time(value)
        return moment.isoformat() if moment is not None else None
    return value


def _props(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: _value(k, v) for k, v in attrs.items() if k not in ("kind", "type") and k not in RESERVED}


def _node_props(kind: str, attrs: dict[str, Any]) -> dict[str, Any]:
    props = _props(attrs)
    if kind == "identity":
        props["source"] = props.pop("idp")
    elif kind == "account":
        email = props.get("email")
        props["email_key"] = (fold(email) or None) if email else None
        props["privileged"] = is_privileged(props.get("user_type"))
    elif kind in ("portal", "idp"):
        props["in_latest_run"] = True
    return props


def _same_keys(rows: list[dict[str, Any]]) -> None:
    """Give every row of a label the same keys (missing -> null) so `SET n += row` also clears old values."""
    keys = set().union(*rows) if rows else set()
    for row in rows:
        for key in keys - row.keys():
            row[key] = None


def graph_rows(graph: nx.DiGraph) -> Rows:
    """Node and relationship rows of the networkx graph, grouped for UNWIND loads."""
    rows = Rows()
    labels: dict[str, str] = {}
    for node_id, attrs in graph.nodes(data=True):
        label = LABELS[attrs["kind"]]
        labels[node_id] = label
        rows.nodes[label].append({**_node_props(attrs["kind"], attrs), "uid": uid(node_id)})
    for start, end, attrs in graph.edges(data=True):
        key = (attrs["type"], labels[start], labels[end])
        rows.rels[key].append({"start": uid(start), "end": uid(end), "props": _props(attrs)})
    for node_rows in rows.nodes.values():
        _same_keys(node_rows)
    for rel_rows in rows.rels.values():
        _same_keys([r["props"] for r in rel_rows])
    return rows


def finding_props(finding: Finding) -> dict[str, Any]:
    return {
        "uid": finding.id,
        "finding_id": finding.id,
        "code": finding.code.value,
        "severity": finding.severity.value,
        "email": finding.email,
        "person": finding.person,
        "portal": finding.portal,
        "learnupon_user_id": finding.learnupon_user_id,
        "account_uid": account_uid(finding),
        "user_type": finding.user_type,
        "idp": finding.idp,
        "idp_status": finding.idp_status,
        "evidence": json.dumps(finding.evidence, sort_keys=True, default=str),
    }


def account_uid(finding: Finding) -> str | None:
    if finding.portal is None or finding.learnupon_user_id is None:
        return None
    return f"{finding.portal}:{finding.learnupon_user_id}"


def add_findings(rows: Rows, findings: Iterable[Finding]) -> None:
    """`:Finding` nodes, linked from their account and their person."""
    for finding in findings:
        props = finding_props(finding)
        rows.nodes[FINDING].append(props)
        if props["account_uid"] is not None:
            rows.rels[("HAS_FINDING", LABELS["account"], FINDING)].append(
                {"start": props["account_uid"], "end": finding.id, "props": {}}
            )
        if finding.person is not None:
            rows.rels[("HAS_FINDING", LABELS["person"], FINDING)].append(
                {"start": finding.person, "end": finding.id, "props": {}}
            )
