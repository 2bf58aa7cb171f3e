"""One neighbourhood of the identity graph, laid out in rings around its centre and drawn."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from graph.api import IdentityGraph
from graph.notebook.charts import new_figure
from graph.notebook.common import KIND_COLOURS
from graph.resolve import person_node

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
        parent: dict[str, str | None] = {
            n: min((m for m in undirected[n] if m in rank), key=rank.__getitem__, default=None) for n in ring
        }
        ring.sort(key=lambda n: (rank.get(parent[n] or "", len(rank)), graph.nodes[n].get("kind", ""), n))
        slots = [2 * math.pi * k / len(ring) for k in range(len(ring))]
        pulls = [
            angles[p] - slot for n, slot in zip(ring, slots, strict=True) if (p := parent[n]) is not None
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
        fig, (ax,) = new_figure(10, 7.5)
    else:
        fig = ax.get_figure()  # type: ignore[assignment]  # typed Figure | SubFigure | None; a caller's axes sit in a Figure
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
