"""Drive the real `RateController` against a modelled server in virtual time, for the dynamics tests.

`run_virtual` runs a coroutine on an event loop whose clock only moves when every task waits: a sleep of a
minute returns at once, and the controller (given `wall_clock=loop.time`), aiolimiter and the modelled
servers all read that clock. So a crawl of a thousand requests at a 60 s window runs in well under a
second, deterministically, and the tests can assert on what the controller decided — counts of requests
and 429s, and when (in virtual seconds) it settled — never on how long the test took.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from crawler.ratelimit import RateController
from crawler.simulator.pace import Arrivals

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: a wait for `timeout` seconds moves the loop's clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("virtual time: every task waits on something that never comes")
        self.now += max(0.0, timeout)
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


class Server(Protocol):
    limit: int
    window: float

    def admit(self, now: float) -> bool: ...


class TokenBucket:
    """`limit` per `window`, refilled continuously, at most `burst` at once (starts full)."""

    def __init__(self, limit: int, window: float, burst: float = 5.0) -> None:
        self.limit, self.window, self.burst = limit, window, burst
        self.rate = limit / window
        self.tokens, self.updated = burst, 0.0

    def admit(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class FixedWindow:
    """`limit` per window; a window opens at the first request after the last one closed (as LearnUpon's)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.end, self.count = -math.inf, 0

    def admit(self, now: float) -> bool:
        if now >= self.end:
            self.end, self.count = now + self.window, 0
        self.count += 1
        return self.count <= self.limit


@dataclass(kw_only=True)
class Trace(Arrivals):
    """What the server saw, and what the crawl should have kept to."""

    allowed_rate: float  # budget_share × min(the server's limit, the ceiling) ÷ window
    finished: float = 0.0
    controller: RateController | None = None  # the one that paced it, as it ended

    @property
    def eta(self) -> float:
        """Ideal time (the answered requests at the allowed rate) ÷ the time the crawl took."""
        return (self.requests - self.throttled) / self.allowed_rate / self.finished

    def settled_at(self, target: float | None = None, span: int = 10, tolerance: float = 0.10) -> int:
        """The first request from which the sending rate stays within 10% of the allowed rate."""
        return super().settled_at(target or self.allowed_rate, span, tolerance)

    def settled_seconds(self) -> float:
        index = self.settled_at()
        return self.sends[index][0] if index < len(self.sends) else math.inf


def drive(
    make: Callable[[Callable[[], float]], RateController],
    server: Server,
    *,
    answered: int,
    ceiling: int = 300,
    budget_share: float = 0.8,
    concurrency: int = 8,
    latency: float = 0.05,
    jitter: float = 0.0,
    seed: int = 0,
) -> Trace:
    """`answered` requests (each retried on 429, as `SourceHttp` does) through the controller `make`
    builds, by `concurrency` workers with demand always above the rate; `latency` is the round trip,
    each half of it stretched by up to `jitter` seconds at random (seeded)."""
    rng = random.Random(seed)
    allowed = budget_share * min(server.limit, ceiling) / server.window
    trace = Trace(allowed_rate=allowed)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = trace.controller = make(loop.time)
        todo = answered

        async def worker() -> None:
            nonlocal todo
            while todo > 0:
                todo -= 1
                while True:
                    ticket = await gate.acquire()
                    await asyncio.sleep(latency / 2 + rng.uniform(0, jitter))
                    ok = server.admit(loop.time())
                    trace.sends.append((loop.time(), ok))
                    await asyncio.sleep(latency / 2 + rng.uniform(0, jitter))
                    if ok:
                        gate.on_success({}, ticket)
                        break
                    gate.on_throttled({}, ticket)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        trace.finished = loop.time()

    run_virtual(main)
    return trace
