"""The networkx identity graph of one run: whole (`build_graph`) or around a node (`LocalGraph`).

Node ids are stable strings (`person:ana@acme.com`, `account:emea:1234`, `identity:okta:00u1`, `idp:okta`,
`portal:emea`, `group:emea:77`, `course:emea:5`), each node has a `kind`, each edge a `type`:

    Person -HAS_ACCOUNT-> LearnUponAccount -IN_PORTAL-> Portal      (groups and courses are IN_PORTAL too)
    LearnUponAccount -MEMBER_OF-> Group
    LearnUponAccount -ENROLLED_IN {status, dates, score}-> Course
    Person -HAS_IDENTITY-> IdPIdentity -FROM-> IdP

A DiGraph, not a MultiDiGraph: between two nodes there is one relation, except an account enrolled twice
in one course, whose edge keeps the latest enrollment and counts them all (`enrollments`). The whole graph
of a million accounts costs about a minute and 6 GB (BENCHMARKS.md), so rules never need it and
`LocalGraph` builds the same nodes and edges around one node from the resolution and per-portal queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from crawler.snapshot_reader import SnapshotReader
from graph.resolve import Account, IdentityRecord, Resolution, account_node

Edge = tuple[str, str, dict[str, Any]]


def portal_node(portal: str) -> str:
    return f"portal:{portal}"


def idp_node(source: str) -> str:
    return f"idp:{source}"


def group_node(portal: str, group_id: int) -> str:
    return f"group:{portal}:{group_id}"


def course_node(portal: str, course_id: int) -> str:
    return f"course:{portal}:{course_id}"


# --- attributes, shared by the whole and the local graph --------------------------------------------------
_ACCOUNT_FIELDS = ("portal", "id", "email", "username", "user_type", "enabled", "last_sign_in_at",
                   "created_at", "person")  # fmt: skip
_IDENTITY_FIELDS = ("idp_id", "status", "raw_status", "status_changed_at", "last_login", "user_type",
                    "display_name")  # fmt: skip


def account_attrs(a: Account) -> dict[str, Any]:
    return {"kind": "account", **{name: getattr(a, name) for name in _ACCOUNT_FIELDS}, "match": a.match.value}


def identity_attrs(i: IdentityRecord) -> dict[str, Any]:
    return {
        "kind": "identity",
        "idp": i.source,
        **{name: getattr(i, name) for name in _IDENTITY_FIELDS},
        "primary_address": i.primary,
        "addresses": [a.display for a in i.addresses],
        "person": i.person,
    }


def source_attrs(kind: str, name: str, reason: str | None) -> dict[str, Any]:
    return {"kind": kind, "name": name, "complete": reason is None, "error": reason}


def enrollment_attrs(row: tuple[Any, ...], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Edge data for one enrollment row; None when an earlier-listed, later-dated one already holds it."""
    _, _, _, eid, status, score, complete, enrolled, done, accessed, unenrolled = row
    count = 1 if previous is None else previous["enrollments"] + 1
    if previous is not None and (enrolled or "") < (previous["date_enrolled"] or ""):
        previous["enrollments"] = count
        return None
    return {
        "type": "ENROLLED_IN",
        "enrollment_id": eid,
        "status": status,
        "score": score,
        "percentage_complete": complete,
        "date_enrolled": enrolled,
        "date_completed": done,
        "date_lastaccessed": accessed,
        "unenrolled": bool(unenrolled),
        "enrollments": count,
    }


# --- the whole graph ---------------------------------------------------------------------------------------
def build_graph(
    snapshot: SnapshotReader,
    run_id: int,
    resolution: Resolution,
    portals: Mapping[str, str | None] | None = None,
    idps: Mapping[str, str | None] | None = None,
) -> nx.DiGraph:
    """The identity graph of one run. `portals`/`idps` map names to None (complete) or why not."""
    portals = portals if portals is not None else {p: None for p in resolution.portals}
    idps = idps if idps is not None else {i: None for i in resolution.idps}
    graph = nx.DiGraph(run_id=run_id)
    graph.add_nodes_from((portal_node(n), source_attrs("portal", n, r)) for n, r in portals.items())
    graph.add_nodes_from((idp_node(n), source_attrs("idp", n, r)) for n, r in idps.items())
    for i in resolution.identities.values():
        graph.add_node(i.node_id, **identity_attrs(i))
        graph.add_edge(i.node_id, idp_node(i.source), type="FROM")
    for person in resolution.persons.values():
        graph.add_node(person.node_id, kind="person", key=person.key)
        graph.add_edges_from((person.node_id, i.node_id, {"type": "HAS_IDENTITY"}) for i in person.identities)
        graph.add_edges_from((person.node_id, a.node_id, {"type": "HAS_ACCOUNT"}) for a in person.accounts)
    accounts = resolution.accounts
    graph.add_nodes_from((a.node_id, account_attrs(a)) for a in accounts)
    graph.add_edges_from((a.node_id, portal_node(a.portal), {"type": "IN_PORTAL"}) for a in accounts)

    def holder(portal: str, node: str, attrs: dict[str, Any]) -> None:
        if node not in graph:  # referenced by a membership/enrollment but not listed itself
            graph.add_node(node, **attrs)
            graph.add_edge(node, portal_node(portal), type="IN_PORTAL")

    for portal, group_id, title in snapshot.groups(run_id):
        holder(
            portal,
            group_node(portal, group_id),
            {"kind": "group", "portal": portal, "id": group_id, "title": title},
        )
    for portal, course_id, name, status in snapshot.courses(run_id):
        holder(
            portal,
            course_node(portal, course_id),
            {"kind": "course", "portal": portal, "id": course_id, "name": name, "status": status},
        )
    for portal, group_id, user_id in snapshot.memberships(run_id):
        node = account_node(portal, user_id)
        if node in graph:  # a membership of an account we never saw is no edge
            target = group_node(portal, group_id)
            holder(portal, target, {"kind": "group", "portal": portal, "id": group_id, "title": None})
            graph.add_edge(node, target, type="MEMBER_OF")
    succ = graph.succ
    for row in snapshot.enrollments(run_id):
        node = account_node(row[0], row[1])
        if node in graph:
            target = course_node(row[0], row[2])
            holder(
                row[0],
                target,
                {"kind": "course", "portal": row[0], "id": row[2], "name": None, "status": None},
            )
            attrs = enrollment_attrs(row, succ[node].get(target))
            if attrs is not None:
                graph.add_edge(node, target, **attrs)
    for node in [n for n, kind in graph.nodes(data="kind") if kind is None]:  # an edge to an unknown portal
        graph.nodes[node].update(source_attrs("portal", node.partition(":")[2], "no coverage recorded"))
    return graph


# --- the graph around one node ------------------------------------------------------------------------------
@dataclass
class _PortalCollections:
    """One portal's groups, courses, memberships and enrollments, indexed both ways (loaded on demand)."""

    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    courses: dict[int, dict[str, Any]] = field(default_factory=dict)
    member_of: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    members: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    enrolled_in: dict[int, dict[int, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    enrolled: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))


class LocalGraph:
    """Builds the nodes and edges around one node, identical to the same part of `build_graph`'s graph."""

    def __init__(self, snapshot: SnapshotReader, run_id: int, resolution: Resolution, sources: Any) -> None:
        self.snapshot, self.run_id, self.resolution = snapshot, run_id, resolution
        self.portals: Mapping[str, str | None] = sources.portals
        self.idps: Mapping[str, str | None] = sources.idps
        self._collections: dict[str, _PortalCollections] = {}
        self._by_portal: dict[str, list[Account]] | None = None
        self._identities: dict[str, IdentityRecord] | None = None
        self._by_idp: dict[str, list[IdentityRecord]] | None = None

    def ego(self, node_id: str, radius: int = 1) -> nx.DiGraph:
        """Nodes within `radius` hops (either direction) and every edge among them."""
        graph = nx.DiGraph(run_id=self.run_id)
        graph.add_node(node_id, **self._attrs(node_id))
        frontier = [node_id]
        for _ in range(radius):
            ring = []
            for node in frontier:
                for u, v, attrs in self._edges(node):
                    other = v if u == node else u
                    if other not in graph:
                        graph.add_node(other, **self._attrs(other))
                        ring.append(other)
                    graph.add_edge(u, v, **attrs)
            frontier = ring
        for node in frontier:  # edges between two nodes of the outer ring
            graph.add_edges_from((u, v, a) for u, v, a in self._edges(node) if u in graph and v in graph)
        return graph

    def holdings(self, account: Account) -> Iterator[tuple[str, int, str | None, str | None]]:
        """(kind, id, title, status) of every group and course an account is in."""
        c = self._portal(account.portal)
        for group_id in c.member_of.get(account.id, ()):
            yield "group", group_id, c.groups[group_id]["title"], None
        for course_id, attrs in c.enrolled_in.get(account.id, {}).items():
            yield "course", course_id, c.courses[course_id]["name"], attrs["status"]

    # --- lookups -------------------------------------------------------------------------------------------
    def _parse(self, node_id: str) -> tuple[str, str]:
        kind, _, rest = node_id.partition(":")
        return kind, rest

    def _account(self, rest: str) -> Account | None:
        portal, _, user_id = rest.rpartition(":")
        return self.resolution.account(portal, int(user_id)) if user_id.lstrip("-").isdigit() else None

    def _identity(self, node_id: str) -> IdentityRecord | None:
        if self._identities is None:
            self._identities = {i.node_id: i for i in self.resolution.identities.values()}
        return self._identities.get(node_id)

    def _portal(self, portal: str) -> _PortalCollections:
        if portal not in self._collections:
            self._collections[portal] = self._load(portal)
        return self._collections[portal]

    def _load(self, portal: str) -> _PortalCollections:
        c = _PortalCollections()
        for _, gid, title in self.snapshot.groups(self.run_id, portal):
            c.groups[gid] = {"kind": "group", "portal": portal, "id": gid, "title": title}
        for _, cid, name, status in self.snapshot.courses(self.run_id, portal):
            c.courses[cid] = {"kind": "course", "portal": portal, "id": cid, "name": name, "status": status}
        for _, gid, uid in self.snapshot.memberships(self.run_id, portal):
            if self.resolution.account(portal, uid) is not None:
                c.groups.setdefault(gid, {"kind": "group", "portal": portal, "id": gid, "title": None})
                c.member_of[uid].append(gid)
                c.members[gid].append(uid)
        for row in self.snapshot.enrollments(self.run_id, portal):
            uid, cid = row[1], row[2]
            if self.resolution.account(portal, uid) is not None:
                c.courses.setdefault(
                    cid, {"kind": "course", "portal": portal, "id": cid, "name": None, "status": None}
                )
                previous = c.enrolled_in[uid].get(cid)
                if previous is None:
                    c.enrolled[cid].append(uid)
                attrs = enrollment_attrs(row, previous)
                if attrs is not None:
                    c.enrolled_in[uid][cid] = attrs
        return c

    def _attrs(self, node_id: str) -> dict[str, Any]:
        kind, rest = self._parse(node_id)
        if kind == "account" and (account := self._account(rest)) is not None:
            return account_attrs(account)
        if kind == "person" and rest in self.resolution.persons:
            return {"kind": "person", "key": rest}
        if kind == "identity" and (identity := self._identity(node_id)) is not None:
            return identity_attrs(identity)
        if kind == "portal" and rest in self.portals:
            return source_attrs("portal", rest, self.portals[rest])
        if kind == "idp" and rest in self.idps:
            return source_attrs("idp", rest, self.idps[rest])
        if kind in ("group", "course"):
            portal, _, item = rest.rpartition(":")
            c = self._portal(portal)
            items = c.groups if kind == "group" else c.courses
            if item.lstrip("-").isdigit() and int(item) in items:
                return dict(items[int(item)])
        raise nx.NodeNotFound(f"node {node_id!r} is not in run {self.run_id}")

    def _edges(self, node_id: str) -> list[Edge]:
        """Every edge touching a node, as (source, target, data)."""
        kind, rest = self._parse(node_id)
        if kind == "person":
            person = self.resolution.persons[rest]
            return [(node_id, i.node_id, {"type": "HAS_IDENTITY"}) for i in person.identities] + [
                (node_id, a.node_id, {"type": "HAS_ACCOUNT"}) for a in person.accounts
            ]
        if kind == "account":
            account = self._account(rest)
            assert account is not None
            c = self._portal(account.portal)
            edges: list[Edge] = [(node_id, portal_node(account.portal), {"type": "IN_PORTAL"})]
            if account.person:
                edges.append((f"person:{account.person}", node_id, {"type": "HAS_ACCOUNT"}))
            edges += [
                (node_id, group_node(account.portal, g), {"type": "MEMBER_OF"})
                for g in c.member_of.get(account.id, ())
            ]
            edges += [
                (node_id, course_node(account.portal, cid), dict(attrs))
                for cid, attrs in c.enrolled_in.get(account.id, {}).items()
            ]
            return edges
        if kind == "identity":
            identity = self._identity(node_id)
            assert identity is not None
            edges = [(node_id, idp_node(identity.source), {"type": "FROM"})]
            if identity.person:
                edges.append((f"person:{identity.person}", node_id, {"type": "HAS_IDENTITY"}))
            return edges
        if kind == "idp":
            if self._by_idp is None:
                self._by_idp = defaultdict(list)
                for i in self.resolution.identities.values():
                    self._by_idp[i.source].append(i)
            return [(i.node_id, node_id, {"type": "FROM"}) for i in self._by_idp.get(rest, ())]
        if kind == "portal":
            if self._by_portal is None:
                self._by_portal = defaultdict(list)
                for a in self.resolution.accounts:
                    self._by_portal[a.portal].append(a)
            c = self._portal(rest)
            sources = [a.node_id for a in self._by_portal.get(rest, ())]
            sources += [group_node(rest, g) for g in c.groups] + [course_node(rest, cid) for cid in c.courses]
            return [(s, node_id, {"type": "IN_PORTAL"}) for s in sources]
        portal, _, item = rest.rpartition(":")
        c, item_id = self._portal(portal), int(item)
        if kind == "group":
            return [(node_id, portal_node(portal), {"type": "IN_PORTAL"})] + [
                (account_node(portal, uid), node_id, {"type": "MEMBER_OF"})
                for uid in c.members.get(item_id, ())
            ]
        return [(node_id, portal_node(portal), {"type": "IN_PORTAL"})] + [
            (account_node(portal, uid), node_id, dict(c.enrolled_in[uid][item_id]))
            for uid in c.enrolled.get(item_id, ())
        ]
