"""Live crawl progress and the closing per-source summary, drawn with rich.

The crawl never calls into the display: the display polls the live counters the orchestrator exposes,
so a quiet or JSON-logging run costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

from rich.console import Console
from rich.live import Live
from rich.table import Table

from crawler.orchestrator import LiveSource
from crawler.store import SourceCoverage

T = TypeVar("T")

_STATE_STYLE = {
    "waiting": "dim",
    "running": "cyan",
    "complete": "green",
    "failed": "bold red",
    "skipped": "dim",
}


def _live_table(live: dict[str, LiveSource], started: float) -> Table:
    table = Table(title=f"crawling… {time.monotonic() - started:5.1f}s", expand=False)
    for column in ("source", "kind", "state", "pages", "records", "requests", "429s", "retries"):
        table.add_column(column, justify="right" if column not in ("source", "kind", "state") else "left")
    for item in live.values():
        ctx = item.ctx
        pages = records = requests = throttled = retries = 0
        if ctx is not None:
            pages, records = ctx.progress.pages, ctx.progress.records
            stats = ctx.http.stats
            requests, throttled, retries = stats.requests, stats.throttled, stats.retries
        style = _STATE_STYLE.get(item.state, "")
        table.add_row(
            item.name, item.kind, f"[{style}]{item.state}[/]", str(pages), str(records),
            str(requests), str(throttled), str(retries),
        )  # fmt: skip
    return table


async def with_live_progress(
    console: Console, live_sources: dict[str, LiveSource], work: Awaitable[T], refresh: float = 0.25
) -> T:
    """Run `work` while redrawing the per-source table."""
    started = time.monotonic()
    task = asyncio.ensure_future(work)
    with Live(
        _live_table(live_sources, started), console=console, refresh_per_second=8, transient=True
    ) as view:
        while not task.done():
            await asyncio.wait({task}, timeout=refresh)
            view.update(_live_table(live_sources, started))
    return task.result()


def summary_table(coverage: list[SourceCoverage]) -> Table:
    """The per-source outcome a person reads after a crawl."""
    table = Table(title="coverage")
    for column in ("source", "kind", "complete", "records", "requests", "429s", "retries", "time", "error"):
        table.add_column(
            column, justify="right" if column in ("records", "requests", "429s", "retries") else "left"
        )
    for cov in coverage:
        seconds = elapsed_seconds(cov.started_at, cov.finished_at)
        table.add_row(
            cov.source, cov.kind,
            "[green]yes[/]" if cov.complete else "[bold red]NO[/]",
            str(cov.records), str(cov.requests), str(cov.throttled), str(cov.retries),
            f"{seconds:.1f}s" if seconds is not None else "-",
            cov.error or "",
        )  # fmt: skip
    return table


def elapsed_seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two coverage timestamps (ISO-8601), None when either is missing."""
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
