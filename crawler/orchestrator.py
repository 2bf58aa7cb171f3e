"""The crawl: every portal and every IdP at once, each in its own auth context, into one snapshot run.

A source that fails (bad credentials, dead host, a listing that broke part-way) is recorded as
incomplete with its reason; the others carry on. Nothing here knows about graphs.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp

from crawler.config import Config, CrawlConfig, PortalConfig
from crawler.coverage import COMPLETE, IDENTITIES, INCOMPLETE, CollectionCoverage, summarise
from crawler.errors import SourceError
from crawler.http import SourceHttp, make_session
from crawler.idp import IDP_SOURCES
from crawler.learnupon.crawl import PortalCrawl
from crawler.ratelimit import RateController
from crawler.source import SourceContext, apply_limits
from crawler.store import FLUSH_SECONDS, SnapshotStore, SourceCoverage, utcnow

log = logging.getLogger("idgraph.crawl")

CrawlFn = Callable[[SourceContext], Awaitable[None]]


Counters = tuple[int, int, int, int, int]  # pages, records, requests, 429s, retries


@dataclass
class LiveSource:
    """What the progress display shows for one source while the crawl runs."""

    name: str
    kind: str
    ctx: SourceContext | None = None
    state: str = "waiting"  # waiting | running | complete | failed | skipped
    error: str | None = None
    worker: int | None = None  # pid of the worker process crawling it (`--workers`); None: this one
    reported: Counters = (0, 0, 0, 0, 0)  # the counters its worker process last reported

    def counters(self) -> Counters:
        """Pages, records, requests, 429s and retries so far, read live or as last reported."""
        ctx = self.ctx
        if ctx is None:
            return self.reported
        stats = ctx.http.stats
        return (ctx.progress.pages, ctx.progress.records, stats.requests, stats.throttled, stats.retries)


class CrawlInterrupted(Exception):
    """The crawl was interrupted (Ctrl-C, SIGINT): every source stopped, what was read is committed."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} interrupted")
        self.run_id = run_id


@dataclass
class CrawlResult:
    run_id: int
    coverage: list[SourceCoverage]

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.coverage)


def config_fingerprint(config: Config) -> str:
    """A hash of the non-secret config: a resumed run must crawl the same sources."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def _first_error(exc: BaseException) -> BaseException:
    """TaskGroups raise groups; a coverage row wants the first real cause."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def portal_source(
    portal: PortalConfig,
    connector: aiohttp.BaseConnector,
    crawl: CrawlConfig,
    learned_rate: float | None = None,
) -> tuple[SourceHttp, CrawlFn]:
    """The auth context and crawl plan of one LearnUpon portal; `learned_rate` comes from the last run."""
    assert portal.username is not None and portal.password is not None
    session = make_session(
        connector,
        headers={
            "Authorization": aiohttp.encode_basic_auth(
                portal.username.get_secret_value(), portal.password.get_secret_value()
            )
        },
        total_timeout=crawl.request_timeout_seconds,
        connect_timeout=crawl.connect_timeout_seconds,
    )
    controller = RateController(
        ceiling=portal.requests_per_minute,
        window_seconds=portal.rate_window_seconds,
        budget_share=portal.budget_share,
        weekly_reserve=portal.weekly_reserve,
        initial_rate=learned_rate,
    )
    http = SourceHttp(portal.name, session, controller, max_concurrency=crawl.max_concurrency_per_source)

    async def run(ctx: SourceContext) -> None:
        await PortalCrawl(ctx, portal.base_url).run()

    return http, run


def source_kinds(config: Config) -> list[tuple[str, str]]:
    """Every source of the config, in config order, with its kind (`learnupon` or the IdP type)."""
    return [(p.name, "learnupon") for p in config.portals] + [(i.name, i.type) for i in config.idps]


def open_run(config: Config, store: SnapshotStore, resume_run: int | None = None) -> tuple[int, set[str]]:
    """Start a run, or reopen `resume_run`; its id and the sources an earlier attempt already completed."""
    fingerprint = config_fingerprint(config)
    if resume_run is None:
        return store.start_run(source_kinds(config), fingerprint), set()
    if store.config_fingerprint(resume_run) != fingerprint:
        raise SourceError(f"run {resume_run} was crawled with a different config; start a new run instead")
    store.reopen_run(resume_run)
    return resume_run, {c.source for c in store.coverage(resume_run) if c.complete}


def live_sources(config: Config, live: dict[str, LiveSource], skipped: set[str]) -> dict[str, LiveSource]:
    """Fill `live` with a row per source; the ones an earlier attempt completed are `skipped`."""
    for name, kind in source_kinds(config):
        live[name] = LiveSource(name, kind, state="skipped" if name in skipped else "waiting")
    return live


def deadline_at(config: Config) -> float | None:
    """When, on this event loop's clock, `crawl_deadline_seconds` from now ends."""
    deadline = config.crawl.crawl_deadline_seconds
    return None if deadline is None else asyncio.get_running_loop().time() + deadline


async def crawl(
    config: Config,
    store: SnapshotStore,
    *,
    resume_run: int | None = None,
    live: dict[str, LiveSource] | None = None,
) -> CrawlResult:
    """Crawl every source concurrently into one run; returns the run id and its coverage.

    `live`, when given, is filled with per-source state a progress display can poll.
    """
    run_id, already_complete = open_run(config, store, resume_run)
    return await crawl_opened(config, store, run_id, already_complete, live)


async def crawl_opened(
    config: Config,
    store: SnapshotStore,
    run_id: int,
    already_complete: set[str],
    live: dict[str, LiveSource] | None = None,
) -> CrawlResult:
    """Crawl, in this process, every source of an opened run that is not complete yet; close the run."""
    live = live_sources(config, {} if live is None else live, already_complete)
    names = [name for name, _ in source_kinds(config) if name not in already_complete]
    try:
        await crawl_sources(config, store, run_id, names, live, deadline_at(config))
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
    else:
        interrupted = False
    store.finish_run(run_id)  # an interrupted run is incomplete, never left "running"
    if interrupted:
        raise CrawlInterrupted(run_id)
    return CrawlResult(run_id, store.coverage(run_id))


async def crawl_sources(
    config: Config,
    store: SnapshotStore,
    run_id: int,
    names: Collection[str],
    live: dict[str, LiveSource],
    deadline: float | None,
) -> None:
    """Crawl the sources named, concurrently, into an opened run; each saves its coverage row.

    The one event loop of a crawl in this process, and of each worker process (`crawler.worker`). On an
    interruption every source is cancelled and awaited (its coverage row saved) before this re-raises.
    """
    wanted = set(names)
    earlier = {c.source: c for c in store.coverage(run_id)}
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
    try:
        jobs = []
        for portal in config.portals:
            if portal.name in wanted:
                http, run = portal_source(portal, connector, config.crawl, store.learned_rate(portal.name))
                run = _bounded(http, run, config.crawl, deadline)
                jobs.append(
                    _run_source(store, run_id, live[portal.name], http, run, earlier.get(portal.name))
                )
        for idp in config.idps:
            if idp.name in wanted:
                http, run = IDP_SOURCES[idp.type](idp, connector, config.crawl)
                run = _bounded(http, run, config.crawl, deadline)
                jobs.append(_run_source(store, run_id, live[idp.name], http, run, earlier.get(idp.name)))
        tasks = [asyncio.ensure_future(job) for job in jobs]
        flusher = asyncio.create_task(_flush_while_crawling(store))
        try:
            with fewer_gc_passes():
                await asyncio.gather(*tasks)
        except BaseException:
            # Interrupted, or the snapshot failed under one source: no source may write on once the
            # caller closes the store, so every one is cancelled and awaited (its coverage row saved).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            flusher.cancel()
    finally:
        await connector.close()


def _bounded(http: SourceHttp, run: CrawlFn, crawl: CrawlConfig, deadline_at: float | None) -> CrawlFn:
    """The source's limits against a hostile server (body size, pages, Retry-After), and the deadline:
    at `deadline_at` an unfinished source stops, incomplete, with the deadline as its reason."""
    apply_limits(http, crawl)
    if deadline_at is None:
        return run

    async def bounded(ctx: SourceContext) -> None:
        try:
            async with asyncio.timeout_at(deadline_at):
                await run(ctx)
        except TimeoutError:
            if asyncio.get_running_loop().time() < deadline_at:
                raise
            raise SourceError(
                f"{ctx.name}: crawl deadline of {crawl.crawl_deadline_seconds:g} s reached; incomplete"
            ) from None

    return bounded


CRAWL_GC_THRESHOLD = (50_000, 20, 100)


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Run the cyclic garbage collector far less often while crawling; restore the thresholds after.

    By default a young collection runs every 700 allocations. A request's objects live as long as it is
    in flight — seconds when thousands are — so they survive young collections, reach the old generation
    and trigger full collections over a heap that grows with the number of portals. Measured with no rate
    limit (benchmark scenario 5): 500 portals cost 0.71 ms of CPU per request with the default thresholds,
    0.45 ms with these; at 50 portals the difference is small. Memory stays bounded: a young collection
    still runs every 50,000 allocations.
    """
    before = gc.get_threshold()
    gc.set_threshold(*CRAWL_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def _flush_while_crawling(store: SnapshotStore) -> None:
    """Commit written pages even while every source waits (e.g. for its next rate window)."""
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        store.flush()


async def _run_source(
    store: SnapshotStore,
    run_id: int,
    live: LiveSource,
    http: SourceHttp,
    run: CrawlFn,
    earlier: SourceCoverage | None = None,
) -> None:
    """Crawl one source; whatever happens, its coverage row tells the truth.

    On a resumed run, `earlier` is what previous attempts recorded: counters add up across attempts.
    """
    ctx = SourceContext(
        name=live.name,
        kind=live.kind,
        run_id=run_id,
        store=store,
        http=http,
        done=store.done_collections(run_id, live.name),
    )
    live.ctx = ctx
    live.state = "running"
    coverage = SourceCoverage(source=live.name, kind=live.kind, started_at=utcnow())
    try:
        await run(ctx)
        coverage.complete = True
    except asyncio.CancelledError:
        coverage.error = "interrupted before it finished; resume the run to finish it"
        raise
    except Exception as exc:  # one source's failure never stops the others
        cause = _first_error(exc)
        if isinstance(cause, sqlite3.Error):
            raise cause from None  # the snapshot itself failed: every source stops (cli: exit 4)
        if isinstance(cause, SourceError):
            coverage.error = str(cause)
        else:
            coverage.error = f"internal error while crawling {live.name}: {type(cause).__name__}"
            log.error("internal error while crawling %s", live.name, exc_info=cause)
    finally:
        _summarise_collections(coverage, ctx, http)
        if coverage.complete:
            live.state = "complete"
        else:
            live.state, live.error = "failed", coverage.error
            log.warning("source %s incomplete: %s", live.name, coverage.error)
        await http.close()
        learned = http.controller.learned_rate()
        if learned is not None:
            store.save_learned_rate(live.name, learned)
        coverage.finished_at = utcnow()
        coverage.requests = http.stats.requests
        coverage.requests_by_purpose = dict(http.stats.by_purpose)
        coverage.throttled = http.stats.throttled
        coverage.retries = http.stats.retries
        coverage.records = ctx.progress.records
        coverage.quarantined = ctx.progress.quarantined
        coverage.drift_events = ctx.progress.drift_events
        coverage.notes = list(ctx.progress.notes)
        if ctx.done_at_start:
            coverage.notes.insert(0, f"resumed: {len(ctx.done_at_start)} collections were already committed")
        if earlier is not None:
            _add_earlier_attempts(coverage, earlier)
        store.save_coverage(run_id, coverage)


def _summarise_collections(coverage: SourceCoverage, ctx: SourceContext, http: SourceHttp) -> None:
    """Fill the coverage row's collections; the row is complete only when every collection is.

    A source that reports no collections (an IdP) has one, its identities: complete exactly when its
    crawl returned.
    """
    if ctx.collections is not None:
        coverage.collections = list(ctx.collections)
    else:
        coverage.collections = [
            CollectionCoverage(
                IDENTITIES,
                COMPLETE if coverage.complete else INCOMPLETE,
                None if coverage.complete else coverage.error,
                requests=http.stats.requests,
                pages=ctx.progress.pages,
                records=ctx.progress.records,
            )
        ]
    if coverage.complete and not all(c.complete for c in coverage.collections):
        coverage.complete = False
        coverage.error = summarise(coverage.collections)


def _add_earlier_attempts(coverage: SourceCoverage, earlier: SourceCoverage) -> None:
    for name in ("requests", "throttled", "retries", "records", "quarantined", "drift_events"):
        setattr(coverage, name, getattr(coverage, name) + getattr(earlier, name))
    for purpose, count in earlier.requests_by_purpose.items():
        coverage.requests_by_purpose[purpose] = coverage.requests_by_purpose.get(purpose, 0) + count
    coverage.started_at = earlier.started_at or coverage.started_at
