"""Where a listing page's CPU goes: the crawler's cost per request, stage by stage, against a core's budget.

Run: .venv/bin/python -m benchmarks.page_cost          (under a minute)

The crawl benchmark (`benchmarks/crawl.py`, scenarios 4 and 5) measures CPU per request for whole crawls;
this one splits a listing page's cost into the stages every page of a listing goes through, so the budget
arithmetic behind issue 3's scale target can be checked: 500 portals × 4.8 req/s is 2,400 req/s, which
leaves one thread 417 µs of CPU per request. The same real-dialect pages of 50 records (scenario 4's
portals: users, each course's enrollments, each group's members) are fetched from a simulator in a process
of its own, through four pipelines, each doing what the one before does plus one stage:

1. the bare client: plain aiohttp (`session.get`, `read()`, eight at a time per portal) and `json.loads`;
2. aiohttp and idgraph's validation instead of `json.loads` (`PageReader`, then the per-record pass
   `SourceContext.normalise` makes);
3. idgraph's request path, `SourceHttp.get_json` with the page reader as decoder (rate gate with its
   ceiling lifted, retries, counters);
4. the same, and each page written to a snapshot as it arrives (`SnapshotStore.write_page`, group commit).

The pipelines are interleaved over several rounds, under the crawl's GC settings (`fewer_gc_passes`). CPU is
`time.process_time()` of this process; the simulator's CPU is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from benchmarks._results import write_section
from benchmarks.sim_process import PortalInfo, SimProcess, SimSpec
from crawler.http import SourceHttp, make_session
from crawler.learnupon.dialect import (
    ENROLLMENTS,
    MEMBERS,
    USERS,
    PageReader,
    parse_enrollment,
    parse_member,
    parse_user,
)
from crawler.orchestrator import fewer_gc_passes
from crawler.ratelimit import RateController
from crawler.store import SnapshotStore

PORTALS = 20
USERS_PER_PORTAL = 300
PORTAL_SHAPE = {"groups": 6, "courses": 8, "page_size": 50, "rate_limit_per_window": 10**9}
WINDOW = 5.0
ROUNDS = 10
PER_PORTAL = 8  # concurrent requests per portal: idgraph's default max_concurrency_per_source
BUDGET_RPS = 500 * 4.8  # issue 3: 500 portals at our 80% share of 6 req/s


@dataclass(frozen=True)
class ListingPage:
    """One page of a listing: its portal, kind, address, and how to read it."""

    portal: PortalInfo
    kind: str  # users | enrollments | members
    url: str
    reader: PageReader
    parse: Callable[[Any], Any]


async def _walk(session: aiohttp.ClientSession, url: str) -> int:
    """The number of pages of one listing (setup, not timed)."""
    number = 0
    while True:
        async with session.get(f"{url}&page={number + 1}") as response:
            more = response.headers.get("LU-Has-Next-Page") == "true"
            await response.read()
        number += 1
        if not more:
            return number


async def discover(portal: PortalInfo) -> list[ListingPage]:
    """Every page of the three big listings of one portal (setup, not timed)."""
    api = f"{portal.base_url}/api/v1"
    auth = aiohttp.encode_basic_auth(portal.username, portal.password)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        async with session.get(f"{api}/courses?include_draft=true") as response:
            courses = [c["id"] for c in (await response.json())["courses"]]
        async with session.get(f"{api}/groups") as response:
            groups = [g["id"] for g in (await response.json())["groups"]]
        listings: list[tuple[str, str, PageReader, Callable[[Any], Any]]] = [
            ("users", f"{api}/users?version_id=1.1", USERS, parse_user)
        ]
        listings += [
            ("enrollments", f"{api}/enrollments/search?course_id={c}", ENROLLMENTS, parse_enrollment)
            for c in courses
        ]
        listings += [
            ("members", f"{api}/group_memberships?group_id={g}&version_id=1.1", MEMBERS, _member_parser(g))
            for g in groups
        ]
        pages = []
        for kind, url, reader, parse in listings:
            for number in range(1, await _walk(session, url) + 1):
                pages.append(ListingPage(portal, kind, f"{url}&page={number}", reader, parse))
    return pages


def _member_parser(group_id: int) -> Callable[[Any], Any]:
    return lambda raw: parse_member(group_id, raw)


# --- pipelines ------------------------------------------------------------------------------------
# Each pipeline does everything the one before it does, page by page as the answers arrive, plus one
# more stage; the difference between two neighbours is that stage's cost. (Timing stages apart, over a
# batch of bodies fetched earlier, reads them from cold caches and overstates them.)
Handle = Callable[[ListingPage, Any], None]


def _by_portal(pages: list[ListingPage]) -> dict[str, list[ListingPage]]:
    out: dict[str, list[ListingPage]] = {}
    for page in pages:
        out.setdefault(page.portal.name, []).append(page)
    return out


async def plain_aiohttp(pages: list[ListingPage], connector: aiohttp.BaseConnector, handle: Handle) -> None:
    """One plain aiohttp session per portal, eight requests at a time each; `handle` gets the bytes."""

    async def portal_pages(portal: PortalInfo, own: list[ListingPage]) -> None:
        slots = asyncio.Semaphore(PER_PORTAL)
        auth = aiohttp.encode_basic_auth(portal.username, portal.password)
        async with aiohttp.ClientSession(
            connector=connector, connector_owner=False, headers={"Authorization": auth}
        ) as session:

            async def one(page: ListingPage) -> None:
                async with slots, session.get(URL(page.url, encoded=True)) as response:
                    body = await response.read()
                handle(page, body)

            await asyncio.gather(*(one(p) for p in own))

    await asyncio.gather(*(portal_pages(own[0].portal, own) for own in _by_portal(pages).values()))


async def idgraph_http(pages: list[ListingPage], connector: aiohttp.BaseConnector, handle: Handle) -> None:
    """idgraph's request path, `SourceHttp.get_json` decoding with the page reader (ceiling lifted);
    `handle` gets the validated records."""

    async def portal_pages(portal: PortalInfo, own: list[ListingPage]) -> None:
        auth = aiohttp.encode_basic_auth(portal.username, portal.password)
        async with make_session(connector, headers={"Authorization": auth}) as session:
            controller = RateController(ceiling=10**9, window_seconds=WINDOW)
            http = SourceHttp(portal.name, session, controller, max_concurrency=PER_PORTAL)

            async def one(page: ListingPage) -> None:
                url = URL(page.url, encoded=True)
                response = await http.get_json(url, purpose=page.kind, decode=page.reader.decode)
                handle(page, [page.parse(r) for r in page.reader.records(response.body, page.url)])

            await asyncio.gather(*(one(p) for p in own))

    await asyncio.gather(*(portal_pages(own[0].portal, own) for own in _by_portal(pages).values()))


def validate(page: ListingPage, body: bytes) -> list[Any]:
    """The page reader, then the per-record pass `SourceContext.normalise` makes."""
    return [page.parse(r) for r in page.reader.records(page.reader.decode(body), page.url)]


def ignore(page: ListingPage, body: Any) -> None:
    pass


async def run_pipeline(
    name: str, pages: list[ListingPage], connector: aiohttp.BaseConnector, folder: Path
) -> float:
    """CPU seconds of one pipeline over every page."""
    started = time.process_time()
    if name == "bare client: aiohttp + json.loads":
        await plain_aiohttp(pages, connector, lambda page, body: json.loads(body))
    elif name == "aiohttp + validation":
        await plain_aiohttp(pages, connector, validate)
    elif name == "idgraph request (SourceHttp + validation)":
        await idgraph_http(pages, connector, ignore)
    else:  # "+ snapshot": every page written as it arrives, with the group commit; close() commits the rest
        store = SnapshotStore(folder / f"{time.monotonic_ns()}.db")
        run_id = store.start_run([(n, "learnupon") for n in {p.portal.name for p in pages}])

        def write(page: ListingPage, records: list[Any]) -> None:
            store.write_page(run_id, page.portal.name, page.url, records)

        await idgraph_http(pages, connector, write)
        store.close()
    return time.process_time() - started


PIPELINES = (
    "bare client: aiohttp + json.loads",
    "aiohttp + validation",
    "idgraph request (SourceHttp + validation)",
    "idgraph request + snapshot",
)
ADDED = ("", "validation instead of json.loads", "idgraph's own request work", "the snapshot write")


# --- measuring ------------------------------------------------------------------------------------
async def measure(rounds: int) -> tuple[dict[str, list[float]], dict[str, tuple[int, int]]]:
    """µs of CPU per page of every pipeline, every round; and per kind of page: (pages, records)."""
    names = [f"p{i:02d}" for i in range(PORTALS)]
    sim = SimProcess(SimSpec(names, USERS_PER_PORTAL, WINDOW, overrides=PORTAL_SHAPE))
    costs: dict[str, list[float]] = {name: [] for name in PIPELINES}
    shape: dict[str, tuple[int, int]] = {}
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    try:
        portals = await asyncio.to_thread(sim.ready)
        pages = [page for portal in portals for page in await discover(portal)]

        def count(page: ListingPage, body: bytes) -> None:
            pages_, records = shape.get(page.kind, (0, 0))
            shape[page.kind] = (pages_ + 1, records + len(validate(page, body)))

        await plain_aiohttp(pages, connector, count)
        with tempfile.TemporaryDirectory() as folder, fewer_gc_passes():
            for _ in range(rounds):  # interleaved, so the machine's other load shifts evenly over them
                for name in PIPELINES:
                    cpu = await run_pipeline(name, pages, connector, Path(folder))
                    costs[name].append(1e6 * cpu / len(pages))
    finally:
        await connector.close()
        sim.close()
    return costs, shape


# --- report ---------------------------------------------------------------------------------------
def render(
    costs: dict[str, list[float]], shape: dict[str, tuple[int, int]], command: str, took: float
) -> str:
    us = {name: statistics.median(rounds) for name, rounds in costs.items()}
    pages = sum(count for count, _ in shape.values())
    records = sum(total for _, total in shape.values())
    budget = 1e6 / BUDGET_RPS
    rows = []
    for i, name in enumerate(PIPELINES):
        added = "" if i == 0 else f"{ADDED[i]}: {us[name] - us[PIPELINES[i - 1]]:+.0f}"
        rows.append(
            f"| {name} | {us[name]:.0f} | {min(costs[name]):.0f}–{max(costs[name]):.0f} | {added} | "
            f"{us[name] / budget:.2f} |"
        )
    kinds = ", ".join(
        f"{kind}: {n} pages, {total / n:.0f} records each" for kind, (n, total) in shape.items()
    )
    full = us[PIPELINES[-1]]
    bare = us[PIPELINES[0]]
    per_record = (full - bare) * pages / records
    return f"""## Listing page cost, stage by stage (issue 3's scale budget)

Command: `{command}` ({took / 60:.1f} min; {len(costs[PIPELINES[0]])} rounds, the pipelines interleaved;
median and range over rounds). {PORTALS} simulated portals of {USERS_PER_PORTAL} users (scenario 4's shape,
no rate limit) in a process of their own; every round reads the same {pages} listing pages, {records:,}
records ({kinds}). CPU is this process's `time.process_time()`, under the crawl's GC settings. Each
pipeline does what the one above it does, page by page as the answers arrive, plus one stage; the
difference is that stage's cost. *÷ budget*: divided by {budget:.0f} µs, one thread's CPU per request at
{BUDGET_RPS:,.0f} req/s (500 portals × 4.8 req/s).

| pipeline | CPU µs per page (median) | range | stage added: µs | ÷ budget |
|---|---:|---:|---|---:|
{chr(10).join(rows)}

A listing page through idgraph, request to snapshot, costs **{full:.0f} µs = {full / budget:.2f}× the
budget** of a thread at 2,400 req/s; the bare client's {bare:.0f} µs is {bare / budget:.2f}× of it. What
idgraph adds to the bare client ({full - bare:.0f} µs per page, {per_record:.1f} µs per record)
is validation, its own request handling and the snapshot.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = time.perf_counter()
    costs, shape = asyncio.run(measure(args.rounds))
    command = ".venv/bin/python -m benchmarks.page_cost"
    if args.rounds != ROUNDS:
        command += f" --rounds {args.rounds}"
    text = render(costs, shape, command, time.perf_counter() - started)
    if not args.no_write:
        write_section("page-cost", text)
    print(text)


if __name__ == "__main__":
    main()
