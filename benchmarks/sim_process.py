"""The simulator in a process of its own, so the crawler's CPU time can be measured alone.

`SimProcess` starts a spawned child that builds simulated portals with `make_portals`, serves them on
loopback with `run_simulator`, and answers a few commands over a pipe: `reset` (zero the traffic counters
and the child's CPU clock), `stats` (per-portal status counts, the most requests a fixed window admitted,
the 429s at a window's very end, and the child's CPU seconds since the last reset), `trace` (with
`SimSpec.trace`: every request each portal's limiter judged since the last reset, as (`time.monotonic()`,
admitted)) and `stop`. The child
also computes each portal's minimal plan and ground-truth counts, which need the data the parent never
sees. Nothing in the simulator is changed: the window observations wrap each portal's `limits.admit`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from crawler.simulator.plan import minimal_plan


@dataclass(frozen=True)
class PortalInfo:
    """What the parent needs to crawl one simulated portal and to judge the crawl."""

    name: str
    base_url: str
    username: str
    password: str
    limit: int  # the server's real limit per window
    limiter: str
    page_size: int
    minimal: dict[str, int]
    truth: dict[str, int]  # record counts the snapshot must hold


@dataclass
class SimSpec:
    """How to build the portals of one simulator process (arguments of `make_portals`)."""

    names: list[str]
    users: int
    window_seconds: float
    seed: int = 42
    faults: dict[str, Any] | None = None  # FaultConfig fields, e.g. {"rate_headers": False}
    overrides: dict[str, Any] = field(default_factory=dict)  # PortalSpec fields for every portal
    per_portal: dict[str, dict[str, Any]] = field(default_factory=dict)  # PortalSpec fields for one
    trace: bool = False  # record every request's time and verdict (the `trace` command)


def _truth(portal: Any) -> dict[str, int]:
    data = portal.data
    return {
        "users": len(data.users),
        "groups": len(data.groups),
        "courses": len(data.visible_course_ids()),
        "memberships": len(data.memberships),
        "enrollments": len(data.enrollments),
    }


def _watch_windows(portal: Any, peaks: dict[str, int], late: dict[str, int], window: float) -> None:
    """Record, per fixed window: the most requests one window admitted (the crawler's share, observed), and
    the 429s that arrived in the window's last 5% (a crawler that believed the window had already ended)."""
    limits = portal.limits
    if not hasattr(limits, "count"):  # a token bucket has no windows
        return
    admit, name = limits.admit, portal.name

    def admit_and_watch() -> str | None:
        verdict = admit()
        if verdict is None:
            peaks[name] = max(peaks[name], limits.count)
        elif limits.window_end - time.monotonic() < window / 20:
            late[name] += 1
        return verdict

    limits.admit = admit_and_watch


def _trace(portal: Any, log: list[tuple[float, bool]]) -> None:
    """Record when each request reached the limiter and whether it was admitted."""
    limits = portal.limits
    admit = limits.admit

    def admit_and_log() -> str | None:
        verdict = admit()
        log.append((time.monotonic(), verdict is None))
        return verdict

    limits.admit = admit_and_log


async def _serve(conn: Connection, spec: SimSpec) -> None:
    from crawler.simulator import FaultConfig, make_portals, run_simulator

    faults = FaultConfig(**spec.faults) if spec.faults else None
    portals = make_portals(
        spec.names,
        users=spec.users,
        seed=spec.seed,
        faults=faults,
        per_portal=spec.per_portal,
        **spec.overrides,
    )
    loop = asyncio.get_running_loop()
    async with run_simulator(portals, window_seconds=spec.window_seconds) as sim:
        info = [
            PortalInfo(
                name=p.name,
                base_url=sim.base_url(p.name),
                username=p.spec.username,
                password=p.spec.password,
                limit=p.spec.rate_limit_per_window,
                limiter=p.spec.rate_limiter,
                page_size=p.spec.page_size,
                minimal=minimal_plan(p.spec, p.data),
                truth=_truth(p),
            )
            for p in portals
        ]
        peaks, late = dict.fromkeys(spec.names, 0), dict.fromkeys(spec.names, 0)
        traces: dict[str, list[tuple[float, bool]]] = {p.name: [] for p in portals}
        for portal in portals:
            _watch_windows(portal, peaks, late, spec.window_seconds)
            if spec.trace:
                _trace(portal, traces[portal.name])
        conn.send(info)
        cpu_mark = time.process_time()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "reset":
                for portal in portals:
                    portal.reset_stats()
                peaks.update(dict.fromkeys(peaks, 0))
                late.update(dict.fromkeys(late, 0))
                for log in traces.values():
                    log.clear()
                cpu_mark = time.process_time()
                conn.send(None)
            elif command == "stats":
                stats = {p.name: dict(p.stats.status_counts) for p in portals}
                cpu = time.process_time() - cpu_mark
                conn.send(
                    {"portals": stats, "peak_window": dict(peaks), "late_429": dict(late), "cpu_seconds": cpu}
                )
            elif command == "trace":
                conn.send(traces)
            else:  # "stop"
                conn.send(None)
                return


def _child(conn: Connection, spec: SimSpec) -> None:
    asyncio.run(_serve(conn, spec))


class SimProcess:
    """A simulator child process. Blocking calls: use them outside the timed part of a measurement."""

    def __init__(self, spec: SimSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_child, args=(child_conn, spec), daemon=True)
        self._process.start()
        child_conn.close()
        self.portals: list[PortalInfo] = []

    def ready(self) -> list[PortalInfo]:
        """Wait until the child serves; its portals."""
        if not self.portals:
            self.portals = self._conn.recv()
        return self.portals

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return self._conn.recv()

    def trace(self) -> dict[str, list[tuple[float, bool]]]:
        self._conn.send("trace")
        return self._conn.recv()

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send("stop")
                self._conn.recv()
            except (EOFError, OSError):
                pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
