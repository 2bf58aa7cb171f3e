"""What the notebooks (notebooks/*.py) need beyond `graph.api`: tables, charts and small helpers.

Every function takes an `IdentityGraph` (from `graph.api.load_run`) and/or its findings frame
(`IdentityGraph.findings_df()`) and returns a DataFrame or a matplotlib `Figure`, so notebook cells stay
one line each and the same calls work in a script:

    ig = load_run(locate_snapshot("idgraph-demo/idgraph.db"))
    findings = ig.findings_df()
    findings_chart(findings, ig.sources.portals).savefig("findings.png")

Figures are built with the object API (`matplotlib.figure.Figure`, no pyplot state), so they are shown
once when a cell returns them (after `%matplotlib inline`) and never leak between cells. matplotlib is
imported only by the chart functions: the tables need pandas alone.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import pandas as pd

from graph import history
from graph.api import EXPOSURE_COLUMNS, IdentityGraph
from graph.model import SEVERITY_ORDER, Code, Severity
from graph.reports.csv_report import neutralise
from graph.reports.input import CODE_MEANING, CONTRACT_COLUMNS, NO_PORTAL
from graph.reports.safe_files import write_private
from graph.resolve import person_node

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from neo4j import Driver

    from graph.neo4j_export import ExportStats

DEMO_DB = "idgraph-demo/idgraph.db"
REPO_ROOT = Path(__file__).resolve().parent.parent
CODES = [c.value for c in Code]
SEVERITIES = [s.value for s in sorted(Severity, key=SEVERITY_ORDER.__getitem__)]
CHANGES = ("new", "still_open", "resolved", "not_rechecked")
ORPHAN = Code.IDP_DISABLED_ACTIVE.value
CODE_COLOURS = dict(zip(CODES, ("#b2182b", "#ef8a62", "#8073ac", "#67a9cf", "#878787"), strict=True))
SEVERITY_COLOURS = dict(zip(SEVERITIES, ("#67001f", "#d6604d", "#f4a582", "#92c5de"), strict=True))
KIND_COLOURS = {
    "person": "#4d4d4d",
    "account": "#d6604d",
    "identity": "#4393c3",
    "idp": "#2166ac",
    "portal": "#b2182b",
    "group": "#5aae61",
    "course": "#c2a5cf",
}


# --- opening a snapshot ----------------------------------------------------------------------------------
def locate_snapshot(db: str | Path, *, build_demo: bool = True) -> Path:
    """The snapshot file `db` names: as given, else relative to the repository (Jupyter runs notebooks
    from notebooks/). Only the demo's default path is built when missing (`idgraph demo`, a few seconds)."""
    path = Path(db).expanduser()
    root = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, root / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    if build_demo and path == Path(DEMO_DB):
        out = root / path.parent
        command = [sys.executable, "-m", "idgraph.cli", "demo", "--out", str(out), "--quiet"]
        subprocess.run(command, check=False, timeout=600)  # exit 3 (incomplete) still writes a snapshot
        if (out / path.name).exists():
            return (out / path.name).resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no snapshot at {db} (tried {tried}); run `idgraph demo` or set DB")


# --- headline and findings ---------------------------------------------------------------------------------
def headline(ig: IdentityGraph, findings: pd.DataFrame | None = None) -> pd.DataFrame:
    """The numbers a reviewer reads first, one per row."""
    findings = ig.findings_df() if findings is None else findings
    portals, idps = ig.sources.portals, ig.sources.idps
    accounts = ig.resolution.accounts
    rows = {
        "run": f"{ig.run.id} ({ig.run.status}, started {ig.run.started_at})",
        "portals complete": f"{sum(r is None for r in portals.values())} of {len(portals)}",
        "IdPs complete": f"{sum(r is None for r in idps.values())} of {len(idps)}",
        "accounts": len(accounts),
        "enabled accounts": sum(a.enabled for a in accounts),
        "people": len(ig.resolution.persons),
        "people in several portals": len(ig.multi_portal_people()),
        "findings": len(findings),
        "people with findings": findings["person"].fillna(findings["email"]).nunique(),
        "critical or high findings": int(findings["severity"].isin(["critical", "high"]).sum()),
        "orphans (disabled in the IdPs, enabled here)": findings.loc[
            findings["finding"] == ORPHAN, "person"
        ].nunique(),
        "verdicts withheld": len(ig.findings().unavailable),
        "colliding addresses": len({c.address for c in ig.collisions}),
        "unmatchable accounts (no email)": len(ig.unmatchable),
    }
    return pd.DataFrame({"value": pd.Series(rows, dtype=object)}).rename_axis("metric")


def findings_by_portal(findings: pd.DataFrame, portals: Iterable[str] = ()) -> pd.DataFrame:
    """Portal x finding code counts, every portal listed (zeros included), a total column."""
    portal = findings["portal"].fillna(NO_PORTAL)
    table = pd.crosstab(portal, findings["finding"])
    index = sorted(set(portals) | set(table.index))
    table = table.reindex(index=index, columns=CODES, fill_value=0).rename_axis(index="portal", columns=None)
    table["total"] = table.sum(axis=1)
    return table.astype(int)


def findings_by_code(findings: pd.DataFrame) -> pd.DataFrame:
    """Finding code x severity counts, with the total and the number of distinct people."""
    table = pd.crosstab(findings["finding"], findings["severity"])
    table = table.reindex(index=CODES, columns=SEVERITIES, fill_value=0).rename_axis(
        index="finding", columns=None
    )
    table["total"] = table.sum(axis=1)
    people = findings.groupby("finding")["person"].nunique()
    table["people"] = people.reindex(CODES, fill_value=0)
    table["meaning"] = [CODE_MEANING[Code(c)] for c in table.index]
    return table


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _stacked(ax: Axes, table: pd.DataFrame, colours: Mapping[str, str], title: str, legend: str) -> None:
    """One horizontal stacked bar per row, its total at the end, the legend under the axes."""
    table.plot.barh(stacked=True, ax=ax, color=[colours[c] for c in table.columns], width=0.7, legend=False)
    ax.bar_label(ax.containers[-1], labels=[f"{t:,}" for t in table.sum(axis=1)], padding=3, fontsize="small")
    ax.set(title=title, xlabel="findings", ylabel="")
    ax.invert_yaxis()
    ax.margins(x=0.12)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        title=legend,
        fontsize="small",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncols=len(table.columns) if len(table.columns) <= 4 else 3,
        frameon=False,
    )


def findings_chart(findings: pd.DataFrame, portals: Iterable[str] = ()) -> Figure:
    """Two stacked bar charts: findings per portal by code, and findings per code by severity."""
    by_portal = findings_by_portal(findings, portals).drop(columns="total")
    by_code = findings_by_code(findings)[SEVERITIES]
    fig, (left, right) = _figure(12, 0.4 * max(len(by_portal), len(by_code)) + 3.2, ncols=2)
    _stacked(left, by_portal, CODE_COLOURS, "Findings by portal", "finding")
    _stacked(right, by_code, SEVERITY_COLOURS, "Findings by code and severity", "severity")
    return fig


# --- evidence -----------------------------------------------------------------------------------------------
def _item(value: Any) -> str:
    if isinstance(value, Mapping):
        if "idp" in value and "status" in value:
            since = f" since {value['status_changed_at']}" if value.get("status_changed_at") else ""
            return f"{value['idp']}:{value['status']}{since}"
        if "portal" in value and "learnupon_user_id" in value:
            state = "enabled" if value.get("enabled") else "disabled"
            return f"{value['portal']}:{value['learnupon_user_id']} ({state})"
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def summarise(value: Any) -> Any:
    """An evidence value as one readable cell: lists joined by "; ", counts as "status=n"."""
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={summarise(v)}" for k, v in sorted(value.items())) or None
    if isinstance(value, list | tuple):
        return "; ".join(_item(v) for v in value) or None
    return value


def evidence_table(findings: pd.DataFrame, code: str | None = None) -> pd.DataFrame:
    """One row per finding (of one code), its evidence spread into readable columns."""
    rows = findings if code is None else findings[findings["finding"] == code]
    base = rows[["finding", "severity", "email", "portal", "learnupon_user_id", "idp_status"]]
    spread = pd.DataFrame(
        [{k: summarise(v) for k, v in (e or {}).items() if k != "user_type"} for e in rows["evidence"]],
        index=rows.index,
    )
    return base.join(spread.dropna(axis=1, how="all"))


# --- orphans: people disabled in the IdPs with accounts still enabled -------------------------------------
def orphan_exposure(
    ig: IdentityGraph, findings: pd.DataFrame | None = None, code: str = ORPHAN
) -> pd.DataFrame:
    """Every group and course the enabled accounts of every orphan still hold, across all portals."""
    findings = ig.findings_df() if findings is None else findings
    people = sorted(findings.loc[findings["finding"] == code, "person"].dropna().unique())
    frames = [ig.exposure(person) for person in people]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(EXPOSURE_COLUMNS))


def orphan_summary(findings: pd.DataFrame, exposure: pd.DataFrame, code: str = ORPHAN) -> pd.DataFrame:
    """Per orphan: the portals where they are still enabled and how much they still hold there."""
    rows = findings[findings["finding"] == code].dropna(subset=["person"])
    per_person = rows.groupby("person").agg(
        portals=("portal", lambda p: ", ".join(sorted(set(p)))),
        enabled_accounts=("learnupon_user_id", "size"),
        severity=("severity", lambda s: min(s, key=lambda v: SEVERITY_ORDER[Severity(v)])),
    )
    held = exposure.pivot_table(index="person", columns="kind", values="id", aggfunc="size", fill_value=0)
    held = held.reindex(columns=["group", "course"], fill_value=0).rename(
        columns={"group": "groups", "course": "courses"}
    )
    out = per_person.join(held).fillna({"groups": 0, "courses": 0}).astype({"groups": int, "courses": int})
    out["portal_count"] = out["portals"].str.count(",") + 1
    out = out.sort_values(["portal_count", "groups", "courses"], ascending=False, kind="stable")
    return out.drop(columns="portal_count")


def held_items(exposure: pd.DataFrame) -> pd.DataFrame:
    """The groups and courses orphans still hold, the most widely held first."""
    columns = ["portal", "kind", "id", "title", "orphans", "not_finished"]
    if exposure.empty:
        return pd.DataFrame(columns=columns)
    open_course = (exposure["kind"] == "course") & ~exposure["status"].isin(["completed", "passed"])
    out = (
        exposure.assign(not_finished=open_course)
        .groupby(["portal", "kind", "id"], as_index=False)
        .agg(title=("title", "first"), orphans=("person", "nunique"), not_finished=("not_finished", "sum"))
    )
    return out.sort_values(["orphans", "portal", "kind", "id"], ascending=[False, True, True, True])[columns]


def held_items_chart(exposure: pd.DataFrame, top: int = 15) -> Figure:
    """What orphans can still reach: the `top` groups and courses by number of orphans holding them."""
    items = held_items(exposure).head(top)
    fig, (ax,) = _figure(9, 0.32 * max(len(items), 1) + 1.5)
    rows = zip(items["portal"], items["kind"], items["title"], items["id"], strict=True)
    labels = [f"{portal} · {kind}: {title or item}" for portal, kind, title, item in rows]
    colours = [KIND_COLOURS[k] for k in items["kind"]]
    ax.barh(labels, items["orphans"], color=colours)
    ax.invert_yaxis()
    ax.set(title=f"Groups and courses orphans still hold (top {len(items)})", xlabel="orphans")
    return fig


# --- one neighbourhood, drawn -------------------------------------------------------------------------------
def node_label(node: str, attrs: Mapping[str, Any]) -> str:
    kind = attrs.get("kind")
    if kind == "person":
        return str(attrs.get("key", node))
    if kind == "account":
        return f"{attrs['portal']}:{attrs['id']}\n{'enabled' if attrs.get('enabled') else 'disabled'}"
    if kind == "identity":
        return f"{attrs['idp']}\n{attrs.get('status')}"
    if kind in ("portal", "idp"):
        return f"{kind} {attrs.get('name')}" + ("" if attrs.get("complete", True) else " (incomplete)")
    title = attrs.get("title") if kind == "group" else attrs.get("name")
    text = str(title or f"{kind} {attrs.get('id', node)}")
    return text if len(text) <= 22 else text[:21] + "…"


def ring_layout(graph: nx.DiGraph, center: str) -> dict[str, tuple[float, float]]:
    """Positions in rings by distance from `center`; each node is placed next to its parent in the ring
    before (an account's groups and courses around the account), so few edges cross."""
    undirected = graph.to_undirected(as_view=True)
    distance = nx.single_source_shortest_path_length(undirected, center)
    angles: dict[str, float] = {center: 0.0}
    positions: dict[str, tuple[float, float]] = {center: (0.0, 0.0)}
    rings = [[n for n, d in distance.items() if d == r] for r in range(1, max(distance.values()) + 1)]
    if leftover := [n for n in graph if n not in distance]:  # unreachable from center: outermost
        rings.append(leftover)
    order = [center]
    for radius, ring in enumerate(rings, start=1):
        rank = {node: i for i, node in enumerate(order)}
        parent = {n: min((m for m in undirected[n] if m in rank), key=rank.get, default=None) for n in ring}
        ring.sort(key=lambda n: (rank.get(parent[n], len(rank)), graph.nodes[n].get("kind", ""), n))
        slots = [2 * math.pi * k / len(ring) for k in range(len(ring))]
        pulls = [
            angles[parent[n]] - slot for n, slot in zip(ring, slots, strict=True) if parent[n] is not None
        ]
        turn = math.atan2(sum(map(math.sin, pulls)), sum(map(math.cos, pulls))) if pulls else 0.0
        for node, slot in zip(ring, slots, strict=True):
            angles[node] = slot + turn
            positions[node] = (radius * math.cos(slot + turn), radius * math.sin(slot + turn))
        order = ring
    return positions


def draw_neighbourhood(graph: nx.DiGraph, ax: Axes | None = None, *, center: str | None = None) -> Figure:
    """Draw a small graph (e.g. `ig.neighbourhood(...)`) in rings around `center`, coloured by kind.

    The IN_PORTAL edges of groups and courses are left out (the account's own IN_PORTAL says where
    they are); every other edge is drawn.
    """
    from matplotlib.lines import Line2D

    if ax is None:
        fig, (ax,) = _figure(10, 7.5)
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    ax.set_axis_off()
    center = center if center in graph else next(iter(graph), None)
    if center is None:
        return fig
    positions = ring_layout(graph, center)
    kinds = {n: a.get("kind", "?") for n, a in graph.nodes(data=True)}
    edges = [
        (u, v)
        for u, v, a in graph.edges(data=True)
        if not (a.get("type") == "IN_PORTAL" and kinds[u] in ("group", "course"))
    ]
    nx.draw_networkx_edges(graph, positions, edgelist=edges, ax=ax, edge_color="#aaaaaa", arrowsize=8)
    colours = [KIND_COLOURS.get(kinds[n], "#bbbbbb") for n in graph]
    nx.draw_networkx_nodes(graph, positions, ax=ax, node_color=colours, node_size=220)
    labels = {n: node_label(n, a) for n, a in graph.nodes(data=True)}
    above = {n: (x, y + 0.08) for n, (x, y) in positions.items()}
    nx.draw_networkx_labels(graph, above, labels, ax=ax, font_size=7, verticalalignment="bottom")
    handles = [
        Line2D([], [], marker="o", ls="", color=colour, label=kind)
        for kind, colour in KIND_COLOURS.items()
        if kind in kinds.values()
    ]
    ax.legend(handles=handles, loc="lower right", fontsize="small", frameon=False)
    name = labels[center].replace("\n", ", ")
    ax.set_title(f"Neighbourhood of {name} ({len(graph)} nodes)", fontsize="medium")
    ax.margins(0.1)
    return fig


def orphan_neighbourhood(ig: IdentityGraph, person: str, radius: int = 2) -> Figure:
    """One orphan's accounts, identities and what those accounts hold, drawn."""
    node = person_node(person)
    return draw_neighbourhood(ig.neighbourhood(node, radius), center=node)


# --- the access review: coverage, withheld verdicts, changes, the ticket ----------------------------------
def coverage_table(ig: IdentityGraph) -> pd.DataFrame:
    """Every source of the run: did its crawl complete, why not, and what it cost."""
    columns = ["complete", "error", "records", "quarantined", "requests", "throttled", "retries", "notes"]
    rows = {
        (c.kind, c.source): {**{k: getattr(c, k) for k in columns[:-1]}, "notes": "; ".join(c.notes) or None}
        for c in ig.coverage
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    return table.rename_axis(["kind", "source"]).sort_values("complete", kind="stable")


def not_covered(ig: IdentityGraph) -> pd.DataFrame:
    """What this run could not judge: incomplete sources, quarantined records, collisions, no-email
    accounts."""
    rows: list[dict[str, Any]] = []
    for kind, sources in (("portal", ig.sources.portals), ("IdP", ig.sources.idps)):
        rows += [
            {"gap": f"{kind} crawl incomplete", "scope": name, "count": None, "why": reason}
            for name, reason in sorted(sources.items())
            if reason is not None
        ]
    rows += [
        {
            "gap": "quarantined records",
            "scope": c.source,
            "count": c.quarantined,
            "why": "malformed; see quarantine",
        }
        for c in ig.coverage
        if c.quarantined
    ]
    collided = {a for c in ig.collisions for a in c.accounts}
    if collided:
        why = "address claimed by several identities of one IdP: no IdP verdict"
        rows.append({"gap": "colliding addresses", "scope": "accounts", "count": len(collided), "why": why})
    for portal, count in pd.Series([a.portal for a in ig.unmatchable], dtype=object).value_counts().items():
        why = "username only: no IdP can be asked about it"
        rows.append({"gap": "accounts without email", "scope": portal, "count": int(count), "why": why})
    return pd.DataFrame(rows, columns=["gap", "scope", "count", "why"]).astype({"count": "Int64"})


def withheld(ig: IdentityGraph) -> pd.DataFrame:
    """The verdicts the rules refused to give because a fact they need was not read."""
    rows = [
        {"finding": u.code.value, "scope": u.scope, "reason": u.reason} for u in ig.findings().unavailable
    ]
    return pd.DataFrame(rows, columns=["finding", "scope", "reason"])


def may_be_missing(ig: IdentityGraph) -> pd.DataFrame:
    """Where findings may be missing: a users listing that did not finish (every record read was judged)."""
    rows = [
        {"finding": g.code.value, "portal": g.portal, "reason": g.reason} for g in ig.findings().recall_gaps
    ]
    return pd.DataFrame(rows, columns=["finding", "portal", "reason"])


def run_changes(ig: IdentityGraph) -> history.Diff:
    """What changed since the previous recorded run. A run whose findings were never recorded (crawled,
    never reported) is recorded first, exactly as `idgraph report` would."""
    try:
        history.run_findings(ig.store, ig.run.id)
    except LookupError:
        history.record(ig.store, ig.findings(), ig.settings)
    return history.diff(ig.store, ig.run.id)


def changes_table(diff: history.Diff) -> pd.DataFrame:
    """Every finding of this run or the previous one, with how it changed (`change`)."""
    rows = [{"change": name, **e.as_dict()} for name in CHANGES for e in getattr(diff, name)]
    columns = ["change", "code", "severity", "email", "portal", "learnupon_user_id", "first_seen_run"]
    frame = pd.DataFrame(rows)
    return frame[[*columns, "finding_id"]] if rows else pd.DataFrame(columns=[*columns, "finding_id"])


def changes_summary(diff: history.Diff) -> pd.DataFrame:
    """Finding code x change (new, still open, resolved, not re-checked) counts; zeros included."""
    table = changes_table(diff)
    counts = pd.crosstab(table["code"], table["change"]) if len(table) else pd.DataFrame()
    return counts.reindex(index=CODES, columns=list(CHANGES), fill_value=0).rename_axis(
        index="finding", columns=None
    )


def ticket_table(ig: IdentityGraph, findings: pd.DataFrame, diff: history.Diff | None = None) -> pd.DataFrame:
    """The findings to act on, worst first: the contract columns, then what a ticket needs to decide.

    With `diff`, `change` says new or still open, and the findings this run could not re-check (their
    portal's crawl failed) are kept as `not_rechecked` rows from the run that last saw them: a failed
    crawl must not quietly drop an open finding from the ticket.
    """
    new = {e.finding_id for e in diff.new} if diff is not None else set()
    seen = history.first_seen(ig.store, set(findings["finding_id"]))
    evidence = findings["evidence"].map(lambda e: e or {})
    details = ("other_accounts", "disabled_in", "domain", "never_signed_in", "cutoff")
    table = findings[list(CONTRACT_COLUMNS)].assign(
        finding_id=findings["finding_id"],
        person=findings["person"],
        change=None
        if diff is None
        else ["new" if f in new else "still_open" for f in findings["finding_id"]],
        first_seen=findings["finding_id"].map(seen),
        last_seen_run=ig.run.id,
        last_sign_in_at=evidence.map(lambda e: e.get("last_sign_in_at")),
        idp_status_since=evidence.map(lambda e: summarise(e.get("identities"))),
        groups=evidence.map(lambda e: summarise(e.get("groups"))),
        enrollments=evidence.map(lambda e: summarise(e.get("enrollments"))),
        details=evidence.map(lambda e: summarise({k: e[k] for k in details if e.get(k) is not None})),
    )
    carried = [
        {
            **{c: getattr(e, c) for c in CONTRACT_COLUMNS[1:]},
            "finding": e.code.value,
            "finding_id": e.finding_id,
            "person": e.person,
            "change": "not_rechecked",
            "first_seen": e.first_seen_at,
            "last_seen_run": e.last_seen_run,
        }
        for e in (diff.not_rechecked if diff is not None else ())
    ]
    if carried:
        table = pd.concat([table, pd.DataFrame(carried)], ignore_index=True)
    table = table.astype({"learnupon_user_id": "Int64", "last_seen_run": "Int64"})
    order = table.assign(
        _severity=table["severity"].map(lambda s: SEVERITY_ORDER[Severity(s)]),
        _code=table["finding"].map(CODES.index),
        _portal=table["portal"].fillna(""),
    ).sort_values(["_severity", "_code", "_portal", "learnupon_user_id"], kind="stable")
    return order.drop(columns=["_severity", "_code", "_portal"]).reset_index(drop=True)


def default_ticket_path(db: str | Path, run_id: int) -> Path:
    return Path(db).resolve().parent / f"access-review-run{run_id}.csv"


def export_ticket(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the ticket CSV: owner-only (0o600), formula-looking cells neutralised for spreadsheets."""
    return write_private(path, table.map(neutralise).to_csv(index=False, lineterminator="\r\n"))


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
        from neo4j import GraphDatabase

        return GraphDatabase.driver(self.uri, auth=self.auth)


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
