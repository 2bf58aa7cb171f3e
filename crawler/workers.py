"""`idgraph crawl --workers N`: the config's sources split across N processes, into one run of one snapshot.

Why: one CPython thread validates and stores some 1,200–1,500 requests a second (BENCHMARKS.md, crawl
scenarios 4 and 5) — 250–300 portals at 4.8 requests a second each — and a process is how Python uses
another core.

This parent opens the run, splits the sources that are not complete yet by their cost in the last complete
run (`split_sources`), starts one `crawler.worker` process per share and supervises them: it keeps their
live counters for the one progress display, passes their log records to its own handlers, and stops them
in order when interrupted. Each worker writes the snapshot itself (design (a) of
`benchmarks/snapshot_writers.py`, kept over one writer process there). When a worker ends without saving a
source's coverage row — killed, crashed, its config unreadable — the parent saves the row, incomplete, with
the reason; the other workers carry on. `--workers 1`, or a single source left, crawls in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sqlite3
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.config import Config
from crawler.coverage import SourceCoverage
from crawler.orchestrator import (
    CrawlInterrupted,
    CrawlResult,
    LiveSource,
    crawl_opened,
    live_sources,
    open_run,
    source_kinds,
)
from crawler.store import SnapshotStore, utcnow

log = logging.getLogger("idgraph.crawl")

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The cores the CPU controller's quota allows this process (cgroup v2 `cpu.max`, v1
    `cpu.cfs_quota_us` ÷ `cpu.cfs_period_us`), or None when there is none or it cannot be read.

    Why: a Kubernetes pod limited to one CPU still sees every core of its node in its affinity mask;
    a worker per visible core would then share one core's time, each one slower than a single crawl.
    """
    try:
        quota, _, period = (root / "cpu.max").read_text().partition(" ")
        if quota.strip() == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        try:
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None


def usable_cores(affinity: int | None = None, root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on (its cpuset), capped by its CPU quota rounded up; at least 1."""
    cores = len(os.sched_getaffinity(0)) if affinity is None else affinity
    quota = cpu_quota(root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


STOP_GRACE_SECONDS = 30.0  # after an interruption, how long a worker may take to save its rows
MESSAGE_LIMIT = 64 * 1024 * 1024  # the longest line a worker may send (live counters of every source)
STDERR_LINES = 20
RESUME_HINT = "resume the run to finish it"


@dataclass
class WorkerOutcome:
    """How one worker process ended."""

    index: int
    pid: int
    sources: list[str]
    returncode: int | None = None
    cpu_seconds: float | None = None  # its own CPU time, as it reported at the end
    cpu_wait_seconds: float | None = None  # how long it was ready to run with no CPU free (Linux)
    lock_wait_seconds: float | None = None  # how long it waited for another worker's snapshot commit
    interrupted: bool = False
    error: str | None = None  # what it said went wrong
    snapshot_error: bool = False
    stderr: list[str] = field(default_factory=list)  # its last lines on stderr

    def how_it_ended(self) -> str:
        if self.error:
            return f"failed ({self.error})"
        if self.returncode is not None and self.returncode < 0:
            return f"was killed by {signal.Signals(-self.returncode).name}"
        if self.returncode:
            last = f": {self.stderr[-1]}" if self.stderr else ""
            return f"exited with code {self.returncode}{last}"
        return "ended"


@dataclass
class WorkersResult(CrawlResult):
    """A crawl's result, with how each worker process ended (empty for an in-process crawl)."""

    workers: list[WorkerOutcome] = field(default_factory=list)


def split_sources(names: Sequence[str], costs: Mapping[str, float], workers: int) -> list[list[str]]:
    """Share `names` among at most `workers`, each source to the least loaded so far, costliest first.

    A source without a known cost counts as the median of the known ones; with none known, shares are
    round robin in config order. Each share keeps config order.
    """
    known = [cost for name, cost in costs.items() if name in names and cost > 0]
    default = statistics.median(known) if known else 1.0
    cost = {name: costs[name] if costs.get(name, 0) > 0 else default for name in names}
    loads = [0.0] * workers
    shares: list[list[str]] = [[] for _ in range(workers)]
    for name in sorted(names, key=lambda n: -cost[n]):  # stable: config order among equal costs
        least = min(range(workers), key=lambda i: (loads[i], i))
        shares[least].append(name)
        loads[least] += cost[name]
    order = {name: i for i, name in enumerate(names)}
    return [sorted(share, key=order.__getitem__) for share in shares if share]


def worker_job(
    config: Config, share: Sequence[str], store: SnapshotStore, run_id: int, deadline: float | None
) -> dict[str, Any]:
    """What a worker is told: its sources' config without secrets (it reads them from its environment)."""
    full = json.loads(config.model_dump_json())  # secret fields are excluded from the dump
    dump = {  # its own sources and the crawl's tuning, nothing else (no remediation key, no alert sinks)
        "crawl": full["crawl"],
        "portals": [p for p in full["portals"] if p["name"] in share],
        "idps": [i for i in full["idps"] if i["name"] in share],
    }
    return {
        "config": dump,
        "db": str(store.path.resolve()),
        "run_id": run_id,
        "parent": os.getpid(),
        "deadline": deadline,
        "log_level": logging.getLogger("idgraph").getEffectiveLevel(),
    }


class _Worker:
    """One worker process, as the parent sees it."""

    def __init__(self, index: int, sources: list[str], process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.outcome = WorkerOutcome(index, process.pid, sources)
        self.following: asyncio.Task[WorkerOutcome] | None = None

    def follow_in_background(self, live: dict[str, LiveSource]) -> asyncio.Task[WorkerOutcome]:
        if self.following is None:
            self.following = asyncio.create_task(self.follow(live))
        return self.following

    @classmethod
    async def start(
        cls, index: int, sources: list[str], job: dict[str, Any], env: Mapping[str, str] | None
    ) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=None if env is None else {**os.environ, **env},
            process_group=0,  # a Ctrl-C at the terminal reaches the parent only; it stops the workers
            limit=MESSAGE_LIMIT,
        )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(json.dumps(job).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        return cls(index, sources, process)

    async def follow(self, live: dict[str, LiveSource]) -> WorkerOutcome:
        """Read the worker's messages and stderr until it exits."""
        assert self.process.stdout is not None and self.process.stderr is not None
        await asyncio.gather(self._messages(self.process.stdout, live), self._stderr(self.process.stderr))
        self.outcome.returncode = await self.process.wait()
        return self.outcome

    async def _messages(self, stream: asyncio.StreamReader, live: dict[str, LiveSource]) -> None:
        while line := await stream.readline():
            try:
                self._handle(json.loads(line), live)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):
                log.warning("worker process %d sent a message it should not have", self.outcome.index)

    def _handle(self, message: dict[str, Any], live: dict[str, LiveSource]) -> None:
        """One message of the worker (`crawler.worker` says which there are)."""
        kind = message.get("t")
        if kind == "live":
            for name, entry in message["sources"].items():
                item = live.get(name)
                if item is not None:
                    pages, records, requests, throttled, retries = (int(x) for x in entry[2:7])
                    item.state, item.error = str(entry[0]), entry[1]
                    item.reported = (pages, records, requests, throttled, retries)
        elif kind == "log":
            _relay(message)
        elif kind == "end":
            self.outcome.cpu_seconds = float(message.get("cpu") or 0.0)
            self.outcome.cpu_wait_seconds = _seconds(message.get("cpu_wait"))
            self.outcome.lock_wait_seconds = _seconds(message.get("lock_wait"))
            self.outcome.interrupted = bool(message.get("interrupted"))
            self.outcome.error = message.get("error")
            self.outcome.snapshot_error = bool(message.get("snapshot"))

    async def _stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.outcome.stderr = [*self.outcome.stderr[-(STDERR_LINES - 1) :], text]
                log.warning("worker process %d: %s", self.outcome.index, text)

    def stop(self) -> None:
        """Ask the worker to stop (its stdin ends): it cancels its sources and saves their rows."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _relay(message: dict[str, Any]) -> None:
    """A worker's log record, through this process's handlers (text or JSON, redacted, on stderr)."""
    logger = logging.getLogger(str(message.get("name") or "idgraph"))
    level = int(message.get("levelno") or logging.WARNING)
    if logger.isEnabledFor(level):
        fields = {key: value for key, value in message.items() if key != "t"}  # "t" is the channel's
        logger.handle(logging.makeLogRecord({**fields, "levelno": level, "args": None}))


async def crawl_with_workers(
    config: Config,
    store: SnapshotStore,
    *,
    workers: int | None = None,
    resume_run: int | None = None,
    live: dict[str, LiveSource] | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkersResult:
    """Crawl every source not complete yet into one run, in `workers` processes (this one for 1; None:
    `usable_cores()`).

    `env` adds to the workers' environment (the secrets' variables, for a config not read from this
    process's own environment). `live` is filled as `orchestrator.crawl` fills it.
    """
    if workers is None:
        workers = usable_cores()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    run_id, already_complete = open_run(config, store, resume_run)
    names = [name for name, _ in source_kinds(config) if name not in already_complete]
    if min(workers, len(names)) <= 1 or str(store.path) == ":memory:":
        result = await crawl_opened(config, store, run_id, already_complete, live)
        return WorkersResult(result.run_id, result.coverage)
    live = live_sources(config, {} if live is None else live, already_complete)
    shares = split_sources(names, store.previous_requests(run_id), workers)
    log.info("crawling %d sources in %d worker processes", len(names), len(shares))
    deadline = config.crawl.crawl_deadline_seconds
    deadline_at = None if deadline is None else time.time() + deadline
    store.flush()
    since = utcnow()
    started: list[_Worker] = []
    interrupted = False
    try:
        try:
            for index, share in enumerate(shares, start=1):
                job = worker_job(config, share, store, run_id, deadline_at)
                worker = await _Worker.start(index, share, job, env)
                started.append(worker)
                for name in share:
                    live[name].worker = worker.process.pid
                log.info("worker process %d (pid %d): %d sources", index, worker.process.pid, len(share))
                worker.follow_in_background(live)
            await asyncio.wait([w.follow_in_background(live) for w in started])
        except (asyncio.CancelledError, KeyboardInterrupt):
            interrupted = True
            await _stop(started, live)
    finally:
        for worker in started:  # none outlives the crawl, whatever happened above
            worker.kill()
    outcomes = [worker.outcome for worker in started]
    kinds = dict(source_kinds(config))
    for outcome in outcomes:
        _save_unfinished(store, run_id, outcome, kinds, live, since)
    for share in shares[len(started) :]:  # never started (interrupted while starting the others)
        _save_unfinished(store, run_id, WorkerOutcome(0, 0, share, interrupted=True), kinds, live, since)
    store.finish_run(run_id)  # an interrupted run is incomplete, never left "running"
    if interrupted:
        raise CrawlInterrupted(run_id)
    failed = next((o for o in outcomes if o.snapshot_error), None)
    if failed is not None:
        raise sqlite3.OperationalError(str(failed.error).removeprefix("snapshot error: "))
    return WorkersResult(run_id, store.coverage(run_id), outcomes)


async def _stop(workers: list[_Worker], live: dict[str, LiveSource]) -> None:
    """Interrupted: every worker stops its sources and saves their rows; one that takes too long is killed."""
    for worker in workers:
        worker.stop()
    followers = [w.follow_in_background(live) for w in workers]
    if followers:
        _, late = await asyncio.wait(followers, timeout=STOP_GRACE_SECONDS)
        for worker in workers:
            worker.kill()
        if late:
            await asyncio.wait(late)


def _save_unfinished(
    store: SnapshotStore,
    run_id: int,
    outcome: WorkerOutcome,
    kinds: Mapping[str, str],
    live: dict[str, LiveSource],
    since: str,
) -> None:
    """The coverage row of every source of `outcome` that its worker did not save in this attempt:
    incomplete, with why, and the counters it last reported added to the earlier attempts'."""
    rows = {c.source: c for c in store.coverage(run_id)}
    for name in outcome.sources:
        row = rows.get(name)
        if row is not None and row.finished_at is not None and row.finished_at >= since:
            continue  # saved by its worker in this attempt
        if outcome.interrupted and not outcome.error:
            reason = f"interrupted before it finished; {RESUME_HINT}"
        else:
            reason = (
                f"worker process {outcome.index} (pid {outcome.pid}) {outcome.how_it_ended()} before "
                f"{name} finished; {RESUME_HINT}"
            )
        _pages, records, requests, throttled, retries = live[name].counters()
        earlier = row or SourceCoverage(source=name, kind=kinds[name])
        coverage = SourceCoverage(
            source=name,
            kind=kinds[name],
            error=reason,
            requests=earlier.requests + requests,
            requests_by_purpose=dict(earlier.requests_by_purpose),
            throttled=earlier.throttled + throttled,
            retries=earlier.retries + retries,
            drift_events=earlier.drift_events,
            records=earlier.records + records,
            quarantined=earlier.quarantined,
            started_at=earlier.started_at or since,
            finished_at=utcnow(),
            notes=list(earlier.notes),
        )
        store.save_coverage(run_id, coverage)
        live[name].state, live[name].error = "failed", reason
        log.warning("source %s incomplete: %s", name, reason)
