"""The live crawl table stays readable (and cheap) at any number of sources."""

from __future__ import annotations

import asyncio
import io
import time
from types import SimpleNamespace

from rich.console import Console

from crawler.http import RequestStats
from crawler.orchestrator import LiveSource
from crawler.progress import MAX_ROWS, live_view, print_summary, summary_table, with_live_progress
from crawler.source import SourceProgress
from crawler.store import SourceCoverage


def source(name: str, state: str, n: int) -> LiveSource:
    """A source with counters from `n`: pages n, records 10n, requests 2n, one 429, no retries."""
    ctx = SimpleNamespace(
        progress=SourceProgress(pages=n, records=10 * n),
        http=SimpleNamespace(stats=RequestStats(requests=2 * n, throttled=1, retries=0)),
    )
    return LiveSource(name, "learnupon", ctx, state)  # type: ignore[arg-type]


def rows(table) -> list[list[str]]:
    cells = [list(column.cells) for column in table.columns]
    return [list(row) for row in zip(*cells, strict=True)]


def test_a_few_sources_each_get_a_row_in_config_order_and_a_total() -> None:
    live = {s.name: s for s in (source("emea", "complete", 3), source("apac", "running", 2))}
    live["okta"] = LiveSource("okta", "okta")  # not started: no counters yet
    table = live_view(live, time.monotonic())
    got = rows(table)
    assert [r[0] for r in got] == ["emea", "apac", "okta", "total"]
    assert got[-1][3:] == ["5", "50", "10", "2", "0"]
    assert "3 sources: 1 running, 1 waiting, 1 complete" in str(table.title)


def test_a_source_crawled_in_a_worker_process_shows_the_counters_its_worker_reported() -> None:
    live = {"emea": source("emea", "complete", 3)}
    live["apac"] = LiveSource("apac", "learnupon", state="running", worker=4242, reported=(4, 40, 9, 1, 2))
    got = rows(live_view(live, time.monotonic()))
    assert got[1][0] == "apac" and got[1][3:] == ["4", "40", "9", "1", "2"]
    assert got[-1][3:] == ["7", "70", "15", "2", "2"]


def test_hundreds_of_sources_show_failed_ones_first_and_count_the_rest() -> None:
    states = ["complete"] * 200 + ["running"] * 290 + ["waiting"] * 7 + ["failed"] * 3
    live = {f"p{i:03d}": source(f"p{i:03d}", state, 1) for i, state in enumerate(states)}
    got = rows(live_view(live, time.monotonic()))
    assert len(got) == MAX_ROWS + 2  # named sources, "… N more", totals
    named = got[:MAX_ROWS]
    assert [r[0] for r in named[:3]] == ["p497", "p498", "p499"]  # the failed ones
    assert all("running" in r[2] for r in named[3:])
    more = got[MAX_ROWS]
    assert more[0] == f"… {500 - MAX_ROWS} more"
    assert more[2] == f"{290 - (MAX_ROWS - 3)} running, 7 waiting, 200 complete"
    assert got[-1][0] == "total"
    assert got[-1][3:] == ["500", "5,000", "1,000", "500", "0"]


async def test_the_live_display_returns_the_crawls_result() -> None:
    live = {"emea": source("emea", "running", 1)}
    console = Console(file=io.StringIO(), width=100, force_terminal=True)

    async def work() -> str:
        await asyncio.sleep(0.05)
        live["emea"].state = "complete"
        return "done"

    assert await with_live_progress(console, live, work(), refresh=0.01) == "done"
    assert "crawling" in console.file.getvalue()


def test_the_closing_summary_puts_incomplete_sources_first_and_totals_them_all() -> None:
    coverage = [
        SourceCoverage("emea", "learnupon", complete=True, records=1200, requests=30, throttled=1),
        SourceCoverage("apac", "learnupon", complete=False, error="401 from /users", requests=1),
        SourceCoverage("okta", "okta", complete=True, records=800, requests=9, retries=2),
    ]
    got = rows(summary_table(coverage))
    assert [r[0] for r in got] == ["apac", "emea", "okta", "total"]
    assert got[-1][2:7] == ["2/3", "2,000", "40", "1", "2"]


def test_the_closing_summary_stays_whole_at_80_columns() -> None:
    coverage = [
        SourceCoverage("acme-emea-production", "learnupon", complete=True, records=123_456, requests=4_567),
        SourceCoverage("okta", "okta", complete=False, error="401 from /api/v1/users: " + "x" * 90),
    ]
    console = Console(file=io.StringIO(), width=80)
    print_summary(console, coverage)
    text = console.file.getvalue()
    assert "…" not in text and max(map(len, text.splitlines()[:-1])) <= 80
    for header in ("source", "kind", "complete", "records", "requests", "429s", "retries", "time"):
        assert header in text
    assert "acme-emea-product" in text  # folded onto a second line when it must, never cut
    assert "123,456" in text
    assert "okta: 401 from /api/v1/users: " + "x" * 90 + "\n" in text  # the error: one whole line
