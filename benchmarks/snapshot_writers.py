"""Snapshot write designs for `idgraph crawl --workers N` (issue 16, item 3): which one to keep.

Run: .venv/bin/python -m benchmarks.snapshot_writers            (about 1 minute)

Several worker processes store pages into one run of one snapshot, as the crawl does, with nothing else
to do (no network, no validation): the write path under the most pressure a crawl can put on it.

(a) *every worker writes*: each worker opens the snapshot itself (WAL, a busy timeout, retries on
    SQLITE_BUSY) and calls `SnapshotStore.write_page`, exactly what a crawl's `SourceContext` does;
(b) *one writer*: each worker turns a page into rows (`store.page_rows`, the part of `write_page` that
    needs no lock) and sends them over a pipe; the parent receives every worker's pages and stores them
    with `SnapshotStore.write_rows`, group-committed the same way.

Pages follow scenario 4's mix (one user page of 50 records, three enrollment pages of 41, two membership
pages of 33). Reported per design and worker count: pages stored per second (all workers, first page
sent to last page committed), CPU per page of the workers and of the parent, the longest a worker's
`write_page` (a) or `send` (b) blocked — time its event loop would stand still in a crawl — and the
machine's other load.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from benchmarks._results import write_section
from benchmarks.crawl import machine_busy_seconds
from crawler.records import LUEnrollment, LUMembership, LUUser
from crawler.store import SnapshotStore, page_rows

PAGES_PER_WORKER = 6_000
DESIGNS = {
    "a": "(a) every worker writes",
    "a0": "(a) with SQLite's busy handler",
    "b": "(b) one writer, pipes",
}
WORKER_COUNTS = (1, 2, 4)
ROUNDS = 2
STAMP = "2024-05-01T10:00:00Z"


def make_pages(worker: int, pages: int) -> list[tuple[str, list[Any]]]:
    """Scenario 4's page mix, with ids unique within the worker's source."""
    out: list[tuple[str, list[Any]]] = []
    next_id = 1
    for index in range(pages):
        kind = ("users", "enrollments", "enrollments", "enrollments", "members", "members")[index % 6]
        if kind == "users":
            records: list[Any] = [
                LUUser(id=next_id + i, email=f"person{next_id + i}.w{worker}@acme.com", username=None,
                       first_name="Ada", last_name="Lovelace", user_type="learner", enabled=True,
                       last_sign_in_at=STAMP, created_at=STAMP, updated_at=STAMP, sign_in_count=12,
                       number_of_enrollments=3)
                for i in range(50)
            ]  # fmt: skip
        elif kind == "enrollments":
            records = [
                LUEnrollment(id=next_id + i, course_id=index, user_id=next_id + i, course_name="Safety 101",
                             status="in_progress", percentage=40.0, percentage_complete=40.0,
                             date_enrolled=STAMP, date_completed=None, date_lastaccessed=STAMP)
                for i in range(41)
            ]  # fmt: skip
        else:
            records = [
                LUMembership(group_id=index, user_id=next_id + i, membership_id=next_id + i)
                for i in range(33)
            ]
        next_id += len(records)
        out.append((f"{kind}:{index // 6}", records))
    return out


@dataclass
class WorkerReport:
    cpu: float
    longest_block: float
    blocks: list[float]


def _write_all(
    conn: Connection, work: list[tuple[str, list[Any]]], rate: float | None, store_page: Any
) -> WorkerReport:
    """Wait for "go", then hand every page to `store_page`, at `rate` pages/s (None: at once), timing
    each call; what this worker spent."""
    conn.send("ready")
    conn.recv()  # go
    cpu, start = time.process_time(), time.perf_counter()
    blocks = []
    for index, (collection, records) in enumerate(work):
        delay = start + index / rate - time.perf_counter() if rate is not None else 0.0
        if delay > 0:
            time.sleep(delay)
        started = time.perf_counter()
        store_page(collection, records)
        blocks.append(time.perf_counter() - started)
    return WorkerReport(time.process_time() - cpu, max(blocks), sorted(blocks)[-len(blocks) // 100 :])


def _plain_begin(store: SnapshotStore) -> None:
    """Design (a0): BEGIN IMMEDIATE under SQLite's own busy handler (the store's connection timeout)."""
    store._db.execute("BEGIN IMMEDIATE")  # the benchmark's baseline reaches into the store on purpose


def _own_writer(conn: Connection, db: str, run_id: int, worker: int, pages: int, rate: float | None) -> None:
    """Design (a): this worker writes the snapshot itself."""
    work = make_pages(worker, pages)
    store = SnapshotStore(db)
    report = _write_all(
        conn,
        work,
        rate,
        lambda collection, records: store.write_page(run_id, f"w{worker}", collection, records),
    )
    store.close()
    conn.send(report)


def _plain_writer(
    conn: Connection, db: str, run_id: int, worker: int, pages: int, rate: float | None
) -> None:
    """Design (a) with SQLite's busy handler instead of the store's polling `_begin`."""
    SnapshotStore._begin = _plain_begin  # type: ignore[method-assign]  # this worker process only
    _own_writer(conn, db, run_id, worker, pages, rate)


def _piped_writer(
    conn: Connection, db: str, run_id: int, worker: int, pages: int, rate: float | None
) -> None:
    """Design (b): this worker sends rows to the parent, which writes."""

    def send(collection: str, records: list[Any]) -> None:
        rows, count = page_rows(run_id, f"w{worker}", records)
        conn.send((collection, rows, count))

    report = _write_all(conn, make_pages(worker, pages), rate, send)
    conn.send(None)
    conn.send(report)


@dataclass
class Result:
    design: str
    rate: float | None  # pages/s each worker offered; None: as fast as it could
    workers: int
    pages: int
    wall: float
    worker_cpu: list[float]
    parent_cpu: float
    longest_block: float
    p99_block: float
    others: float  # other processes' CPU, cores
    rows: int

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.wall


def run(design: str, workers: int, pages: int, rate: float | None) -> Result:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "snap.db")
        with SnapshotStore(db) as store:
            run_id = store.start_run([(f"w{i}", "learnupon") for i in range(workers)])
        target = _piped_writer if design == "b" else _plain_writer if design == "a0" else _own_writer
        conns, procs = [], []
        for worker in range(workers):
            mine, theirs = context.Pipe()
            proc = context.Process(target=target, args=(theirs, db, run_id, worker, pages, rate))
            proc.start()
            theirs.close()
            conns.append(mine)
            procs.append(proc)
        for conn in conns:
            assert conn.recv() == "ready"
        parent = SnapshotStore(db) if design == "b" else None
        busy, cpu, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
        for conn in conns:
            conn.send("go")
        reports: list[WorkerReport] = []
        if parent is not None:
            open_conns = list(conns)
            while open_conns:
                for ready in wait(open_conns):
                    assert isinstance(ready, Connection)
                    message = ready.recv()
                    if message is None:
                        open_conns.remove(ready)
                        reports.append(ready.recv())
                    else:
                        collection, rows, count = message
                        parent.write_rows(
                            run_id, f"w{conns.index(ready)}", collection, rows, count, done=False
                        )
            parent.close()
        else:
            reports = [conn.recv() for conn in conns]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        busy = machine_busy_seconds() - busy
        for proc in procs:
            proc.join()
        with SnapshotStore(db) as store:
            rows = sum(store.count(t, run_id) for t in ("lu_users", "lu_enrollments", "lu_memberships"))
    worker_cpu = [r.cpu for r in reports]
    tail = sorted(b for r in reports for b in r.blocks)
    return Result(
        design, rate, workers, workers * pages, wall, worker_cpu, cpu, max(r.longest_block for r in reports),
        tail[len(tail) // 2] if tail else 0.0,
        max(0.0, busy - cpu - sum(worker_cpu)) / wall, rows,
    )  # fmt: skip


@functools.cache
def expected_rows(pages: int) -> int:
    return sum(len(records) for _, records in make_pages(0, pages))


def _row(r: Result) -> str:
    per_page = _cpu_per_page(r)
    offered = "as fast as it can" if r.rate is None else f"{r.rate * r.workers:,.0f} in all"
    complete = r.rows == r.workers * expected_rows(r.pages // r.workers)
    return (
        f"| {DESIGNS[r.design]} | {r.workers} | "
        f"{offered} | {r.pages_per_second:,.0f} | {1e6 * sum(r.worker_cpu) / r.pages:.0f} | "
        f"{1e6 * r.parent_cpu / r.pages:.0f} | {per_page:.0f} | "
        f"{' + '.join(f'{c / r.wall:.2f}' for c in r.worker_cpu)} | {r.parent_cpu / r.wall:.2f} | "
        f"{1000 * r.p99_block:.1f} / {1000 * r.longest_block:.0f} | {r.others:.2f} | "
        f"{'yes' if complete else '**NO**'} |"
    )


def _median(results: list[Result], design: str, workers: int, rate: bool, value: Any) -> float | None:
    chosen = [
        value(r)
        for r in results
        if r.design == design and r.workers == workers and (r.rate is not None) == rate
    ]
    return statistics.median(chosen) if chosen else None


def _medians(results: list[Result], rate: bool, value: Any) -> str:
    parts = []
    for n in WORKER_COUNTS:
        values = [_median(results, design, n, rate, value) for design in DESIGNS]
        shown = " / ".join("–" if v is None else f"{v:,.0f}" for v in values)
        parts.append(f"{n} worker{'s' if n > 1 else ''} {shown}")
    return "; ".join(parts)


def _comparisons(results: list[Result]) -> dict[str, str]:
    """The sentences of the conclusion that compare designs, each as these results have it."""

    def at(design: str, n: int, value: Any) -> float:
        return _median(results, design, n, True, value) or 0.0

    several = [n for n in WORKER_COUNTS if n > 1]
    most = max(WORKER_COUNTS)
    b_costs_more = all(at("b", n, _cpu_per_page) > at("a", n, _cpu_per_page) for n in WORKER_COUNTS)
    cuts = [
        f"{1 - at('a', n, _longest_ms) / at('a0', n, _longest_ms):.0%} with {n}"
        for n in several
        if at("a0", n, _longest_ms)
    ]
    return {
        "cpu": "spends more CPU per page in all"
        if b_costs_more
        else "did not spend more CPU per page than (a) at every worker count in this run, though it",
        "cut": ", ".join(cuts) + " workers",
        "most": "still longer" if at("a", most, _longest_ms) > at("b", most, _longest_ms) else "no longer",
    }


HEADER = (
    "| design | workers | pages/s offered | pages/s stored | workers' CPU µs / page | parent CPU µs / page "
    "| total CPU µs / page | workers (cores) | parent (cores) | blocked ms: slowest 1% / longest "
    "| other processes (cores) | every row stored |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def _stored(r: Result) -> float:
    return r.pages_per_second


def _cpu_per_page(r: Result) -> float:
    return 1e6 * (sum(r.worker_cpu) + r.parent_cpu) / r.pages


def _longest_ms(r: Result) -> float:
    return 1000 * r.longest_block


def render(results: list[Result], command: str, elapsed: float, pages: int) -> str:
    said = _comparisons(results)
    return f"""## Snapshot writes from several processes: every worker writes, or one writer (issue 16)

Command: `{command}` ({elapsed / 60:.1f} minutes on this 2-core machine, shared with other work: the *other
processes* column says how much). Nothing but the write path, in worker processes that do nothing else.
Pages follow scenario 4's mix (users 50, enrollments 41, memberships 33 records a page). *As fast as it
can*: {pages:,} pages per worker, the most pressure a crawl could put on the snapshot. *In all*: the
workers together offer {PACED_TOTAL:,} pages/s (scenario 4's 500 portals × 4.8 req/s), split evenly, for
{PACED_SECONDS:g} s: the load of a real crawl. {ROUNDS} rounds of each, the designs alternating.

- *(a) every worker writes*: each worker opens the snapshot (WAL) and calls `write_page`, as the crawl's
  `SourceContext` does; `SnapshotStore._begin` tries the write lock every 2 ms at most, for up to 5 s.
- *(a) with SQLite's busy handler*: the same, but BEGIN IMMEDIATE waits in SQLite's busy handler (5 s
  timeout; it sleeps in steps of up to 100 ms), as the store did before `--workers`.
- *(b) one writer*: each worker turns a page into rows (`page_rows`) and sends them over a pipe; the
  parent stores every worker's pages (`write_rows`, the same group commit).
- *Blocked*: how long one `write_page` (a), or one `page_rows` + `send` (b), took in a worker: the time
  its event loop would stand still in a crawl. Median of the slowest 1% of pages / the longest.

{HEADER}
{chr(10).join(_row(r) for r in results)}

Medians, (a) / (a) with the busy handler / (b).
Pages/s stored as fast as they can: {_medians(results, False, _stored)}.
Total CPU µs per page at the crawl's load: {_medians(results, True, _cpu_per_page)}.
Longest block (ms) at the crawl's load: {_medians(results, True, _longest_ms)}.

**Kept: (a), every worker writes** (`crawler/worker.py`). SQLite takes one writer at a time either way, so
neither design stores more pages than one writer can; (b) {said["cpu"]} (the rows are
pickled, sent and unpickled on top of being stored) and puts every page through one process, the parent,
which also draws the progress display. And a crawl reads its own pages back — a portal's cross-checks
count the users, groups and enrollments it stored — which under (b) would wait for the parent to have
committed them. (a)'s cost is a worker waiting while another commits. Under SQLite's own busy handler
that wait ran to seconds with four workers; the store now polls the write lock itself
(`SnapshotStore._begin`), which cut the longest wait by {said["cut"]} (medians at the crawl's load).
With {max(WORKER_COUNTS)}, on this 2-core machine and its other load, it is {said["most"]} than (b)'s: four
writers on two cores is past `--workers`' default, one per core.
"""


PACED_TOTAL = 2_400.0
PACED_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=PAGES_PER_WORKER, help="pages per worker, unpaced")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = time.perf_counter()
    results = []
    for paced in (False, True):
        for workers in WORKER_COUNTS:
            rate = PACED_TOTAL / workers if paced else None
            pages = int(PACED_SECONDS * rate) if rate is not None else args.pages
            for _ in range(ROUNDS):
                for design in DESIGNS:
                    result = run(design, workers, pages, rate)
                    print(
                        f"{design} workers={workers} rate={rate}: {result.pages_per_second:,.0f} pages/s, "
                        f"longest block {1000 * result.longest_block:.0f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
                    results.append(result)
    command = ".venv/bin/python -m benchmarks.snapshot_writers" + (
        f" --pages {args.pages}" if args.pages != PAGES_PER_WORKER else ""
    )
    text = render(results, command, time.perf_counter() - started, args.pages)
    if not args.no_write:
        write_section("snapshot-writers", text)
    print(text)


if __name__ == "__main__":
    main()
