"""What the live crawl table costs the crawl: CPU of drawing it, by number of sources, against a baseline.

Run: .venv/bin/python -m benchmarks.progress_view          (about half a minute)

The display runs in the crawler's process and competes with the crawl for the one thread the GIL allows,
so its CPU is the crawl's loss. Each display is drawn for a few seconds of a stand-in crawl (an
`asyncio.sleep`) to a terminal-sized console (120 × 40) writing to memory, with every source running and
non-zero counters. CPU is `time.process_time()`, every thread of the process (rich's refresh thread too).

- *idgraph*: `crawler.progress.with_live_progress` (at most `MAX_ROWS` named rows, drawn from the event
  loop every `REFRESH_SECONDS`);
- *baseline*: the display idgraph had before — one row per source, rebuilt every 0.25 s and drawn by rich's
  own refresh thread at 8 frames a second.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from types import SimpleNamespace

from rich.console import Console
from rich.live import Live
from rich.table import Table

from benchmarks._results import write_section
from crawler.http import RequestStats
from crawler.orchestrator import LiveSource
from crawler.progress import MAX_ROWS, REFRESH_SECONDS, with_live_progress
from crawler.source import SourceProgress

SOURCE_COUNTS = (20, 100, 500)
SECONDS = 3.0


def sources(count: int) -> dict[str, LiveSource]:
    live = {}
    for i in range(count):
        ctx = SimpleNamespace(
            progress=SourceProgress(pages=40 + i, records=1900 + 37 * i),
            http=SimpleNamespace(stats=RequestStats(requests=120 + i, throttled=i % 3, retries=i % 2)),
        )
        live[f"portal-{i:03d}"] = LiveSource(f"portal-{i:03d}", "learnupon", ctx, "running")  # type: ignore[arg-type]
    return live


def baseline_table(live: dict[str, LiveSource], started: float) -> Table:
    """The table before: every source a row."""
    table = Table(title=f"crawling… {time.monotonic() - started:5.1f}s", expand=False)
    for column in ("source", "kind", "state", "pages", "records", "requests", "429s", "retries"):
        table.add_column(column)
    for item in live.values():
        ctx: SimpleNamespace = item.ctx  # type: ignore[assignment]
        stats = ctx.http.stats
        table.add_row(
            item.name, item.kind, f"[cyan]{item.state}[/]",
            str(ctx.progress.pages), str(ctx.progress.records),
            str(stats.requests), str(stats.throttled), str(stats.retries),
        )  # fmt: skip
    return table


async def baseline_display(console: Console, live: dict[str, LiveSource], seconds: float) -> None:
    started = time.monotonic()
    task = asyncio.ensure_future(asyncio.sleep(seconds))
    with Live(baseline_table(live, started), console=console, refresh_per_second=8, transient=True) as view:
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            view.update(baseline_table(live, started))


async def cores(display: str, count: int, seconds: float) -> float:
    console = Console(file=io.StringIO(), width=120, height=40, force_terminal=True)
    live = sources(count)
    started = time.process_time()
    if display == "idgraph":
        await with_live_progress(console, live, asyncio.sleep(seconds))
    else:
        await baseline_display(console, live, seconds)
    return (time.process_time() - started) / seconds


def render(results: dict[tuple[str, int], float], command: str, took: float) -> str:
    rows = [
        f"| {count} | {results['baseline', count]:.3f} | {results['idgraph', count]:.3f} | "
        f"{results['baseline', count] / max(results['idgraph', count], 1e-6):.0f}× |"
        for count in SOURCE_COUNTS
    ]
    return f"""## Live progress display: what drawing it costs the crawl

Command: `{command}` ({took:.0f} s). Each display drawn for {SECONDS:.0f} s of a stand-in crawl to a 120 × 40
terminal in memory, every source running; CPU of every thread of the process ÷ wall time (cores). The crawl
shares that one GIL. *idgraph*: at most {MAX_ROWS} named rows, drawn from the event loop every
{REFRESH_SECONDS} s. *Baseline*: the display before, one row per source, drawn by rich's refresh thread at
8 frames/s.

| sources | baseline (cores) | idgraph (cores) | baseline ÷ idgraph |
|---:|---:|---:|---:|
{chr(10).join(rows)}

The crawl benchmark's scenarios call `crawl()` without a display; `idgraph crawl` adds this one's cost
(the *idgraph* column) unless run with `--quiet` or `--log-format json`.
"""


async def measure(seconds: float) -> dict[tuple[str, int], float]:
    results = {}
    for count in SOURCE_COUNTS:
        for display in ("baseline", "idgraph"):
            results[display, count] = await cores(display, count, seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = time.perf_counter()
    results = asyncio.run(measure(SECONDS))
    text = render(results, ".venv/bin/python -m benchmarks.progress_view", time.perf_counter() - started)
    if not args.no_write:
        write_section("progress-view", text)
    print(text)


if __name__ == "__main__":
    main()
