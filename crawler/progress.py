"""Live crawl progress and the closing per-source summary, drawn with rich.

The crawl never calls into the display: the display polls the live counters the orchestrator exposes,
so a quiet or JSON-logging run costs nothing. The display shares the crawl's one thread (the GIL), so it
is kept cheap at any number of sources: at most `MAX_ROWS` sources get a row of their own (failed ones
first), the rest are counted in one row, a totals row sums them all, and it is drawn from the event loop
twice a second rather than by rich's refresh thread (a row per source at 8 frames/s took more than a
whole core at 500 portals: `benchmarks/progress_view.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import TypeVar

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from crawler.coverage import SourceCoverage
from crawler.orchestrator import LiveSource
from crawler.terminal import escaped, plain, readable, visible

T = TypeVar("T")

MAX_ROWS = 12  # sources shown by name; beyond that they are counted
REFRESH_SECONDS = 0.5

_STATE_STYLE = {
    "waiting": "dim",
    "running": "cyan",
    "complete": "green",
    "failed": "bold red",
    "skipped": "dim",
}
_STATE_ORDER = {"failed": 0, "running": 1, "waiting": 2, "complete": 3, "skipped": 4}
_COUNTERS = ("pages", "records", "requests", "429s", "retries")


def _counters(item: LiveSource) -> tuple[int, ...]:
    return item.counters()


def _sums(items: Iterable[LiveSource]) -> list[str]:
    totals = [0] * len(_COUNTERS)
    for item in items:
        for i, value in enumerate(_counters(item)):
            totals[i] += value
    return [f"{value:,}" for value in totals]


def _states(items: Iterable[LiveSource]) -> str:
    counts = Counter(item.state for item in items)
    return ", ".join(f"{counts[state]} {state}" for state in _STATE_ORDER if counts[state])


def live_view(live: dict[str, LiveSource], started: float, max_rows: int = MAX_ROWS) -> Table:
    """The live table: up to `max_rows` sources by name (in config order when they all fit; failed, then
    running ones first when not), one row counting the others, and the totals."""
    items = list(live.values())
    shown = items if len(items) <= max_rows else sorted(items, key=lambda i: _STATE_ORDER.get(i.state, 9))
    shown, hidden = shown[:max_rows], shown[max_rows:]
    title = f"crawling… {time.monotonic() - started:5.1f}s · {len(items)} sources: {_states(items)}"
    table = Table(title=title, expand=False)
    for column in ("source", "kind", "state", *_COUNTERS):
        table.add_column(column, justify="left" if column in ("source", "kind", "state") else "right")
    for item in shown:
        style = _STATE_STYLE.get(item.state, "")
        table.add_row(item.name, item.kind, f"[{style}]{item.state}[/]", *(f"{v:,}" for v in _counters(item)))
    if hidden:
        table.add_row(f"… {len(hidden)} more", "", _states(hidden), *_sums(hidden), style="dim")
    if len(items) > 1:
        table.add_section()
        table.add_row("total", "", "", *_sums(items), style="bold")
    return table


async def with_live_progress(
    console: Console,
    live_sources: dict[str, LiveSource],
    work: Awaitable[T],
    refresh: float = REFRESH_SECONDS,
) -> T:
    """Run `work` while redrawing the live table every `refresh` seconds, from this event loop."""
    started = time.monotonic()
    task = asyncio.ensure_future(work)
    with Live(live_view(live_sources, started), console=console, auto_refresh=False, transient=True) as view:
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=refresh)
                view.update(live_view(live_sources, started), refresh=True)
        except asyncio.CancelledError:  # interrupted: the work stops before its caller closes anything
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise
    return task.result()


def summary_table(coverage: list[SourceCoverage]) -> Table:
    """The per-source outcome a person reads after a crawl: incomplete sources first (among hundreds they
    would be lost otherwise), then the rest in config order, and the totals. The errors are not in it:
    `print_summary` puts each on a line of its own, where a column would cut it to "…"."""
    table = Table(title="coverage")
    for column in ("source", "kind", "complete", "records", "requests", "429s", "retries", "time"):
        table.add_column(
            column,
            justify="right" if column in ("records", "requests", "429s", "retries") else "left",
            no_wrap=column != "source",  # only a long source name folds; counts stay whole
        )
    for cov in sorted(coverage, key=lambda c: c.complete):
        seconds = elapsed_seconds(cov.started_at, cov.finished_at)
        table.add_row(
            escaped(cov.source), cov.kind,
            "[green]yes[/]" if cov.complete else "[bold red]NO[/]",
            f"{cov.records:,}", f"{cov.requests:,}", f"{cov.throttled:,}", f"{cov.retries:,}",
            f"{seconds:.1f}s" if seconds is not None else "-",
        )  # fmt: skip
    if len(coverage) > 1:
        complete = sum(c.complete for c in coverage)
        fields = ("records", "requests", "throttled", "retries")
        table.add_section()
        table.add_row(
            "total", "", f"{complete}/{len(coverage)}",
            *(f"{sum(getattr(c, field) for c in coverage):,}" for field in fields),
            "",
            style="bold",
        )  # fmt: skip
    return readable(table)


def print_summary(console: Console, coverage: list[SourceCoverage]) -> None:
    """The summary table, then one whole line per source error (`source: error`, easy to grep)."""
    console.print(summary_table(coverage))
    for cov in sorted(coverage, key=lambda c: c.complete):
        if cov.error:
            line = Text.assemble((f"{visible(cov.source)}: ", "bold red"), plain(cov.error))
            console.print(line, highlight=False, soft_wrap=True)


def elapsed_seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two coverage timestamps (ISO-8601), None when either is missing."""
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
