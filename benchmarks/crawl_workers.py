"""Scenario 4 of the crawl benchmark with a `--workers` dimension (issue 16, item 3): the report's part.

`benchmarks.crawl` runs scenario 4 at each portal count with `--workers 1` (the crawl in the benchmark's
process) and then `--workers 2` (two worker processes), on the same simulated portals; this module hashes
each run's snapshot and writes the comparison: per worker count, the largest portal count at which every
portal holds η ≥ 0.9, the CPU of each worker process, and whether the snapshots are identical.

Run alone: .venv/bin/python -m benchmarks.crawl --workers-only 100,200,300,400,500
"""

from __future__ import annotations

import hashlib
import statistics
from typing import TYPE_CHECKING

from crawler.store import SnapshotStore

if TYPE_CHECKING:
    from benchmarks.crawl import Run

WORKER_COUNTS = (1, 2)
DEFAULT_COUNTS = [100, 200, 300, 400, 500]
SNAPSHOT_TABLES = ("lu_users", "lu_groups", "lu_courses", "lu_enrollments", "lu_memberships", "collections")


def digest(store: SnapshotStore, run_id: int) -> str:
    """A hash of what a run holds: every record of every table (run id aside) and every source's coverage
    state, collection by collection. Two crawls of the same portals are the same snapshot when equal."""
    hasher = hashlib.sha256()
    for table in SNAPSHOT_TABLES:
        rows = sorted(
            repr([v for k, v in dict(row).items() if k != "run_id"]) for row in store.rows(table, run_id)
        )
        hasher.update(f"{table}:{len(rows)}\n{''.join(rows)}".encode())
    for cov in store.coverage(run_id):
        states = [(c.name, c.state, c.reason, c.pages, c.records) for c in cov.collections]
        hasher.update(repr((cov.source, cov.complete, cov.error, cov.records, states)).encode())
    return hasher.hexdigest()


def _cores(seconds: float, wall: float) -> str:
    return f"{seconds / wall:.2f}"


def crawl_cpu(run: Run) -> float:
    """CPU seconds of the whole crawl: the benchmark's process, and each worker process when there are."""
    return run.timing.cpu + sum(w.cpu_seconds or 0.0 for w in run.workers)


def workers_of(run: Run) -> int:
    return max(1, len(run.workers))


COLUMNS = (
    "portals", "workers", "wall s", "requests", "429s", "answered req/s: achieved / allowed",
    "η median / **min**", "crawling process(es): on CPU / waiting for a CPU (cores)",
    "write-lock wait s", "parent (cores)", "crawl CPU ms / request, all processes", "simulators (cores)",
    "other processes (cores)", "snapshot = truth", "same snapshot as 1 worker",
)  # fmt: skip
HEADER = f"| {' | '.join(COLUMNS)} |\n|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|---:|---|---|"


def same_as_one_worker(run: Run, runs: list[Run]) -> bool:
    """Whether `run` holds the same snapshot as the 1-worker run at its portal count."""
    baseline = [r.digest for r in runs if workers_of(r) == 1 and len(r.measures) == len(run.measures)]
    return run.digest is not None and baseline == [run.digest]


def rows(runs: list[Run]) -> list[str]:
    out = []
    for run in runs:
        t, count, etas = run.timing, len(run.measures), sorted(m.eta for m in run.measures)
        allowed = sum(m.allowed_rate for m in run.measures)
        separate = bool(run.workers)
        if separate:  # each worker process
            each = " + ".join(
                f"{_cores(w.cpu_seconds or 0.0, t.wall)} / {_cores(w.cpu_wait_seconds or 0.0, t.wall)}"
                for w in run.workers
            )
            locks = " + ".join(f"{w.lock_wait_seconds or 0.0:.1f}" for w in run.workers)
        else:  # the benchmark's own process
            each, locks = f"{_cores(t.cpu, t.wall)} / {_cores(t.cpu_wait, t.wall)}", "–"
        same = "–" if not separate else "yes" if same_as_one_worker(run, runs) else "**NO**"
        cells = [
            str(count), str(workers_of(run)), f"{t.wall:.1f}", f"{run.requests:,}", f"{run.throttled:,}",
            f"{(run.requests - run.throttled) / t.wall:,.0f} / {allowed:,.0f}",
            f"{statistics.median(etas):.2f} / **{etas[0]:.2f}**", each, locks,
            _cores(t.cpu, t.wall) if separate else "–",
            f"{1000 * crawl_cpu(run) / run.requests:.2f}", " + ".join(_cores(c, t.wall) for c in t.sim_cpu),
            _cores(t.others_cpu, t.wall), f"{sum(m.complete for m in run.measures)}/{count}", same,
        ]  # fmt: skip
        out.append(f"| {' | '.join(cells)} |")
    return out


def summary(runs: list[Run], per_portal: float) -> str:
    """Per worker count: the largest count holding η ≥ 0.9; the CPU cost per request; portals a core holds."""
    # Scenario 4's own test; imported here because `benchmarks.crawl` imports this module.
    from benchmarks.crawl import largest_holding

    lines = []
    for n in sorted({workers_of(r) for r in runs}):
        mine = [r for r in runs if workers_of(r) == n]
        busiest = max(mine, key=lambda r: len(r.measures))
        ms = 1000 * crawl_cpu(busiest) / busiest.requests
        lines.append(
            f"- **--workers {n}**: every portal holds η ≥ 0.9 up to {largest_holding(mine, min)} "
            f"portals. At {len(busiest.measures)} portals the crawl spent {ms:.2f} ms of CPU per request "
            f"across its processes: one core at that cost carries {1000 / ms:,.0f} requests/s, about "
            f"**{1000 / ms / per_portal:,.0f} portals** at {per_portal:g} req/s."
        )
    waits = [(w.cpu_wait_seconds or 0.0) / (w.cpu_seconds or 1.0) for r in runs for w in r.workers]
    waits += [r.timing.cpu_wait / r.timing.cpu for r in runs if not r.workers and r.timing.cpu]
    locks = [(w.lock_wait_seconds or 0.0) / r.timing.wall for r in runs for w in r.workers]
    others = statistics.median(r.timing.others_cpu / r.timing.wall for r in runs)
    lines.append(
        f"- What held the crawl back: its processes waited for a CPU {statistics.median(waits):.0%} as long "
        f"as they ran (median over runs and processes) while other processes used a median of {others:.2f} "
        f"cores of this machine's 2; a worker waited for the other's snapshot commit at most "
        f"{max(locks, default=0.0):.1%} of a run's wall time."
    )
    identical = all(same_as_one_worker(r, runs) for r in runs)
    lines.append(
        "- Snapshots: every run with 2 workers holds "
        + (
            "**the same records and coverage states** as the run with 1 worker at its portal count."
            if identical
            else "**not** the same snapshot as 1 worker at some portal count (see the table)."
        )
    )
    return "\n".join(lines)


def section(runs: list[Run], *, users: int, limit: int, window: float, per_portal: float) -> str:
    return f"""### Scenario 4 with `--workers`: one process against two

The same portals and crawl as scenario 4 ({users} users, a fixed window of {limit} requests per {window:g} s,
rate headers; allowed {per_portal:g} req/s each), crawled at each portal count first with `--workers 1`
(the crawl in the benchmark's process) and then with `--workers 2` (`crawl_with_workers`: two
worker processes, the sources split by cost — round robin here, as no earlier run exists — each worker
writing the snapshot itself), with an idle window in between. *Crawling process(es)*: the benchmark's own
process with 1 worker, each worker process with 2: CPU seconds ÷ wall seconds, and the time its main
thread was ready to run but had no CPU (`/proc/self/schedstat`) ÷ wall seconds. *Write-lock wait*: the
seconds each worker spent in `SnapshotStore._begin` waiting for the other's commit, its event loop
standing still. *Parent*: the benchmark's process with 2 workers, which only supervises (live counters,
logs) and waits. *Crawl CPU per request*:
the benchmark's process and the workers together ÷ requests sent. *Same snapshot*: every record of every
LearnUpon table (run id aside) and every source's coverage state, collection by collection, hashed and
compared with the 1-worker run at the same portal count. *Other processes*: the machine's busy CPU
(`/proc/stat`) minus the crawl's and the simulators'; this 2-core machine is shared with other engineers'
tests and benchmarks, so compare rows measured close together.

{HEADER}
{chr(10).join(rows(runs))}

{summary(runs, per_portal)}
"""
