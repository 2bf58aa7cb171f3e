"""One worker process of `idgraph crawl --workers N`: some sources of an opened run, on its own event loop.

Started by `crawler.workers` as `python -m crawler.worker`, in a process group of its own (a Ctrl-C at
the terminal reaches the parent alone, which stops the workers in order). Its stdin carries one line, the
job: the config of its sources without secrets, the snapshot's path, the run id. The secrets come the way
the parent got them, from environment variables the config names, which the worker inherits; they never
travel on a command line or through a pipe. Its stdin closing — the parent stopping the crawl, or dying —
stops it the way Ctrl-C stops an in-process crawl: every source cancelled, its coverage row saved. On
Linux it also dies with the parent (`PR_SET_PDEATHSIG`), so a SIGKILLed crawl stays one that `--resume`
finishes.

It writes the snapshot itself, through its own `SnapshotStore` connection (design (a) in
`benchmarks/snapshot_writers.py`). On its stdout it sends the parent JSON lines: its sources' live
counters twice a second, its log records (redacted here, shown by the parent's handlers) and, last, how
it ended. Anything else printed goes to stderr, which the parent logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from crawler.config import ConfigError, parse_config
from crawler.logs import record_extras
from crawler.orchestrator import LiveSource, crawl_sources, source_kinds
from crawler.private import PermissionsError
from crawler.redact import RedactingFilter
from crawler.store import SnapshotStore

REPORT_SECONDS = 0.5
PR_SET_PDEATHSIG = 1

# Messages, one JSON object per line: {"t": "live", "sources": {name: [state, error, *counters]}},
# {"t": "log", ...record fields}, {"t": "end", "cpu": seconds, "cpu_wait": seconds | None, "lock_wait":
# seconds, "interrupted": bool, "error": str | None, "snapshot": bool}.


class Channel:
    """The worker's line of JSON messages to the parent; thread-safe (a library may log from a thread)."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, default=str) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()


class ForwardingHandler(logging.Handler):
    """Log records to the parent, already redacted and formatted (the parent's handlers print them)."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel
        self.addFilter(RedactingFilter())
        self._format = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc_text = record.exc_text
            if record.exc_info and not exc_text:
                exc_text = self._format.formatException(record.exc_info)
            message = {
                "t": "log",
                "name": record.name,
                "levelno": record.levelno,
                "levelname": record.levelname,
                "msg": record.getMessage(),
                "created": record.created,
                "exc_text": exc_text,
                **record_extras(record),  # every `extra=` field, as the JSON log format prints them
            }
            self.channel.send(message)
        except Exception:  # a log line must never stop the crawl
            self.handleError(record)


def live_message(live: dict[str, LiveSource], last: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The sources whose state or counters changed since `last` (which is updated)."""
    changed = {}
    for name, item in live.items():
        entry = [item.state, item.error, *item.counters()]
        if last.get(name) != entry:
            changed[name] = last[name] = entry
    return changed


async def _report(channel: Channel, live: dict[str, LiveSource], last: dict[str, list[Any]]) -> None:
    while True:
        await asyncio.sleep(REPORT_SECONDS)
        changed = live_message(live, last)
        if changed:
            channel.send({"t": "live", "sources": changed})


def _stop_on_eof(task: asyncio.Task[Any]) -> Callable[[], None]:
    """A reader of stdin: end of file (the parent stopping the crawl, or gone) cancels the crawl."""

    def on_readable() -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            task.cancel()

    return on_readable


async def run_job(job: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """Crawl the job's sources into its run; what to say in the `end` message."""
    try:
        config = parse_config(job["config"])  # secrets from this process's environment
    except ConfigError as exc:
        return {"error": f"could not read its config: {exc}"}
    names = [name for name, _ in source_kinds(config)]
    live = {name: LiveSource(name, kind) for name, kind in source_kinds(config)}
    last: dict[str, list[Any]] = {}
    loop = asyncio.get_running_loop()
    remaining = None if job.get("deadline") is None else job["deadline"] - time.time()
    deadline = None if remaining is None else loop.time() + remaining
    with SnapshotStore(job["db"]) as store:
        crawl = asyncio.ensure_future(crawl_sources(config, store, job["run_id"], names, live, deadline))
        loop.add_reader(sys.stdin.fileno(), _stop_on_eof(crawl))
        reporter = asyncio.create_task(_report(channel, live, last))
        try:
            await crawl
            outcome: dict[str, Any] = {"interrupted": False}
        except asyncio.CancelledError:
            outcome = {"interrupted": True}
        finally:
            reporter.cancel()
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(sys.stdin.fileno())
            channel.send({"t": "live", "sources": live_message(live, last)})
        outcome["lock_wait"] = store.lock_wait_seconds
    return outcome


def cpu_wait_seconds() -> float | None:
    """How long this process's main thread was runnable but had no CPU (Linux: /proc/self/schedstat)."""
    try:
        with open("/proc/self/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this worker when its parent dies, however it dies (SIGKILL included)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _read_job() -> dict[str, Any]:
    """The first line of stdin, read without buffering past it (stdin's end is the stop signal)."""
    chunks = []
    while True:
        chunk = os.read(sys.stdin.fileno(), 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    job: dict[str, Any] = json.loads(b"".join(chunks))
    return job


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot break the message line
    channel = Channel(out)
    job = _read_job()
    _die_with_parent(int(job["parent"]))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(ForwardingHandler(channel))
    root.setLevel(logging.WARNING)
    logging.getLogger("idgraph").setLevel(int(job.get("log_level", logging.INFO)))
    cpu, waited = time.process_time(), cpu_wait_seconds()
    end: dict[str, Any] = {"t": "end", "interrupted": False, "error": None, "snapshot": False}
    try:
        end.update(asyncio.run(run_job(job, channel)))
    except (sqlite3.Error, PermissionsError) as exc:  # the snapshot itself failed (cli: exit 4)
        end.update(error=f"snapshot error: {exc}", snapshot=True)
    except KeyboardInterrupt:
        end.update(interrupted=True)
    except Exception as exc:
        logging.getLogger("idgraph.crawl").error("worker process failed", exc_info=exc)
        end.update(error=f"internal error: {type(exc).__name__}")
    end["cpu"] = time.process_time() - cpu
    now_waited = cpu_wait_seconds()
    end["cpu_wait"] = None if waited is None or now_waited is None else now_waited - waited
    channel.send(end)
    out.close()
    sys.exit(1 if end["error"] else 0)


if __name__ == "__main__":
    main()
