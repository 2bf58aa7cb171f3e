"""The notebooks' charts, built with matplotlib's object API (no pyplot state): a figure is shown once
when a cell returns it (after `%matplotlib inline`) and never leaks between cells. matplotlib is imported
only when a chart is drawn."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, cast

import pandas as pd

from graph.notebook.common import CODE_COLOURS, KIND_COLOURS, SEVERITIES, SEVERITY_COLOURS
from graph.notebook.tables import findings_by_code, findings_by_portal, held_items

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.container import BarContainer
    from matplotlib.figure import Figure


def new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _stacked(ax: Axes, table: pd.DataFrame, colours: Mapping[str, str], title: str, legend: str) -> None:
    """One horizontal stacked bar per row, its total at the end, the legend under the axes."""
    table.plot.barh(stacked=True, ax=ax, color=[colours[c] for c in table.columns], width=0.7, legend=False)
    bars = cast("BarContainer", ax.containers[-1])  # barh's last container is the last stack's bars
    ax.bar_label(bars, labels=[f"{t:,}" for t in table.sum(axis=1)], padding=3, fontsize="small")
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
    fig, (left, right) = new_figure(12, 0.4 * max(len(by_portal), len(by_code)) + 3.2, ncols=2)
    _stacked(left, by_portal, CODE_COLOURS, "Findings by portal", "finding")
    _stacked(right, by_code, SEVERITY_COLOURS, "Findings by code and severity", "severity")
    return fig


def held_items_chart(exposure: pd.DataFrame, top: int = 15) -> Figure:
    """What orphans can still reach: the `top` groups and courses by number of orphans holding them."""
    items = held_items(exposure).head(top)
    fig, (ax,) = new_figure(9, 0.32 * max(len(items), 1) + 1.5)
    rows = zip(items["portal"], items["kind"], items["title"], items["id"], strict=True)
    labels = [f"{portal} · {kind}: {title or item}" for portal, kind, title, item in rows]
    colours = [KIND_COLOURS[k] for k in items["kind"]]
    ax.barh(labels, items["orphans"], color=colours)
    ax.invert_yaxis()
    ax.set(title=f"Groups and courses orphans still hold (top {len(items)})", xlabel="orphans")
    return fig
