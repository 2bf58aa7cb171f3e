"""`idgraph watch`: follow the IdPs' change feeds, look up whoever was disabled, alert on live accounts.

Long-running by default (a round every `--interval` seconds, measured start to start; Ctrl-C or SIGTERM
stop it between two steps, exit 130), or one round with `--once` for cron: exit 0 when every feed was read,
every lookup answered, every verdict given and every alert delivered; 3 when something was not (it is
retried next round); 2 for a bad config or usage, nothing written; 4 when the snapshot fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import aiohttp
import typer

from crawler.config import Config, ConfigError, load_config
from crawler.learnupon.lookup import find_accounts
from crawler.orchestrator import config_fingerprint
from crawler.private import FILE_MODE
from crawler.remediation.audit import AuditError
from crawler.remediation.keys import KeyMissing
from crawler.store import INCREMENTAL, SnapshotStore
from crawler.watch.feeds import close_feeds, open_audit_trails, open_idp_feeds, without_feed
from crawler.watch.lookups import PortalLookups
from crawler.watch.outbox import Outbox
from crawler.watch.sinks import open_sinks
from crawler.watch.watched import watched_accounts
from idgraph.run_log import LogFormat, LogFormatOpt, QuietOpt, command_log, fail
from idgraph.snapshot_arg import DEFAULT_DB, SNAPSHOT_ERRORS, fail_snapshot, require_snapshot

if TYPE_CHECKING:  # the rules load when a watch runs, not for every `idgraph` command
    from idgraph.watch_round import RoundReport

EXIT_OK, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_SNAPSHOT, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
log = logging.getLogger("idgraph.watch")


class UsageError(Exception):
    """A config the watcher cannot run with: one line naming the field."""


def check_config(cfg: Config, db: Path) -> None:
    """What `watch` needs beyond a valid config; UsageError naming the field, before anything is written."""
    if not cfg.portals:
        raise UsageError("portals: watch needs at least one portal to look people up in")
    without = without_feed(cfg)
    if len(without) == len(cfg.idps):
        reasons = "; ".join(without.values()) or "the config names no IdP"
        raise UsageError(f"idps: no IdP in the config has a change feed ({reasons})")
    if not db.exists():
        raise UsageError(
            f"--db: no snapshot at {db}; run `idgraph crawl` first: the watcher stands on a crawl"
        )
    log = cfg.watch.remediation_log
    if log is not None:
        if cfg.remediation.key is None:
            raise UsageError("watch.remediation_log: needs [remediation] key_env, to verify the log it reads")
        try:
            watched_accounts(cfg)
        except (AuditError, KeyMissing) as exc:
            raise UsageError(f"watch.remediation_log: {exc}") from None


async def watch(
    cfg: Config, db: Path, *, interval: float, once: bool, summary: bool = True, stdout: TextIO | None = None
) -> int:
    """Rounds until cancelled (or one, with `once`); the exit code. UsageError when another watcher
    already follows this snapshot: two would race each other's cursors and sinks."""
    from idgraph.watch_round import Watcher

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
    loop = asyncio.get_running_loop()
    with _only_watcher(db), SnapshotStore(db) as store:
        for run in store.runs(INCREMENTAL):
            if run.status == "running":  # a round killed before it finished: what it wrote stays
                store.finish_run(run.id, cut_short=True)
        feeds = open_idp_feeds(cfg, connector)
        lookups = PortalLookups(cfg.portals, connector, cfg.crawl, store, find_accounts)
        outbox = Outbox(store, open_sinks(cfg.alerts, connector, stdout))
        try:
            for name, reason in without_feed(cfg).items():
                log.warning("%s: %s", name, reason, extra={"source": name, "event": "no_feed"})
            audits = open_audit_trails(cfg, lookups)  # read only while some account is watched
            watcher = Watcher(cfg, store, outbox, lookups, feeds, audits, config_fingerprint(cfg))
            while True:
                started = loop.time()
                try:
                    report = await watcher.round()
                except SNAPSHOT_ERRORS:
                    raise  # the snapshot failed: exit 4
                except Exception as exc:  # a bug must not end a watch: what was committed stands
                    kind = type(exc).__name__
                    log.error(
                        "watch round failed: internal error (%s); next round as usual", kind, exc_info=exc
                    )
                    if once:
                        return EXIT_INCOMPLETE
                else:
                    if summary:  # a caller's own rounds (the demo's first) can go unsaid
                        _print_round(report, always=once)
                    if once:
                        return EXIT_OK if report.complete else EXIT_INCOMPLETE
                await asyncio.sleep(max(0.0, started + interval - loop.time()))
        finally:
            await close_feeds(feeds)
            await lookups.close()
            await outbox.close()
            await connector.close()


@contextlib.contextmanager
def _only_watcher(db: Path) -> Iterator[None]:
    """An exclusive lock beside the snapshot for as long as this watcher runs (released by the OS even on
    SIGKILL)."""
    path = Path(f"{db}.watch-lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(
                f"--db: another `idgraph watch` is following {db}; one watcher per snapshot"
            ) from None
        yield
    finally:
        os.close(fd)


def _print_round(report: RoundReport, *, always: bool) -> None:
    """The round in one line (info: hidden by --quiet), and what it left undone (warnings), through the
    log: text for people, one JSON object per line with --log-format json. Withheld verdicts and feeds
    that failed were logged as they happened."""
    busy = report.changes or report.opened or report.closed or report.reenabled or not report.complete
    if not (busy or always):
        return
    parts = [
        f"{report.changes} changes",
        f"{report.checked} people looked up",
        f"{len(report.opened)} findings opened",
        f"{len(report.closed)} closed",
    ]
    if report.reenabled:
        parts.append(f"{report.reenabled} remediated accounts re-enabled")
    if report.run_id is not None:
        parts.append(f"incremental run {report.run_id}")
    extra = {"event": "round", "run_id": report.run_id}
    log.info("watch round: %s", ", ".join(parts), extra=extra)
    for line in report.owed:
        log.warning(
            "lookup incomplete, retried next round: %s", line, extra={**extra, "event": "lookup_owed"}
        )
    pending = {sink: n for sink, n in report.pending_alerts.items() if n}
    for sink, count in sorted(pending.items()):
        log.warning(
            "%d alerts wait for sink %s (retried with back-off)", count, sink, extra={**extra, "source": sink}
        )


def watch_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="TOML config naming portals, IdPs and alerts.")
    ],
    db: Annotated[Path, typer.Option("--db", help="Snapshot file (SQLite) a crawl wrote.")] = DEFAULT_DB,
    interval: Annotated[
        float | None,
        typer.Option("--interval", help="Seconds between rounds (default: [watch] interval_seconds)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (for cron).")] = False,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Follow the IdPs' change feeds; alert on LearnUpon accounts still enabled for people just disabled.

    Each person an IdP newly disables is looked up in every portal (`/users/search`, one request per
    address), judged by the crawl's own rule against the newest crawl in --db, and every account still
    enabled raises `idp_disabled_active` (the finding id a crawl would give) to every alert sink in the
    config (JSON lines on stdout when none is configured). Re-enabled in the IdP closes it. Alerts are
    at least once, de-duplicated by alert_id, and survive restarts. Exit: --once 0 complete, 3 something
    incomplete (retried next round); 2 bad config or a --db that is not a snapshot; 4 snapshot error;
    130 stopped (Ctrl-C, SIGTERM).

    Example: idgraph watch --config idgraph.toml --db snapshots.db --interval 60
    """
    with command_log("watch", log_format, quiet) as run:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            raise fail(f"config error: {exc}", EXIT_USAGE, problems=list(exc.problems)) from None
        every = cfg.watch.interval_seconds if interval is None else interval
        if every < 1:
            raise fail(f"--interval: at least 1 second, got {every:g}", EXIT_USAGE)
        run.record(db=str(db), once=once, interval_seconds=every)
        try:
            check_config(cfg, db)
            require_snapshot(db)
            code = asyncio.run(_until_stopped(cfg, db, every, once))
        except UsageError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except SNAPSHOT_ERRORS as exc:
            raise fail_snapshot(db, exc) from None
        run.record(complete=code == EXIT_OK)
        if code == EXIT_INTERRUPTED:
            run.info("watch stopped")
        raise typer.Exit(code)


async def _until_stopped(cfg: Config, db: Path, interval: float, once: bool) -> int:
    """`watch`, cancelled cleanly by SIGINT or SIGTERM (what was committed stays committed)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await watch(cfg, db, interval=interval, once=once, stdout=sys.stdout)
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
