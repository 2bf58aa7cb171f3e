"""Rate control for APIs that say when to come back (Graph, Google, SCIM servers)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from crawler.errors import SourceError
from crawler.ratelimit import RateController, Ticket, parse_retry_after


class ServerPacedController(RateController):
    """For APIs that say when to come back: honour `Retry-After` exactly, back off exponentially (with
    jitter, Google's advice) when a 429 has none, and fail once throttling never ends (a daily quota).

    The base class's blind rate cut is for servers that never say; after a 429 with `Retry-After: 1` it
    would slow a fresh crawl to one request a minute.
    """

    backoff_base: float = 1.0  # first wait, doubled per consecutive throttle, plus jitter
    backoff_cap: float = 64.0
    max_backoffs: int = 10  # consecutive throttles before the source gives up (a spent daily quota)

    def __init__(
        self, source: str, *args: Any, wall_clock: Callable[[], float] = time.time, **kwargs: Any
    ) -> None:
        super().__init__(*args, wall_clock=wall_clock, **kwargs)
        self.source = source
        self._now = wall_clock
        self._streak = 0

    def on_success(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> None:
        super().on_success(headers, ticket)
        self._streak = 0

    def on_throttled(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> float:
        self._answered(ticket)
        if self._streak >= self.max_backoffs:
            raise SourceError(f"{self.source}: still throttled after {self._streak} back-offs; giving up")
        self._streak += 1
        self.throttled += 1
        now = self._now()
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        wait = parse_retry_after(retry_after, now, cap=self.max_retry_after)
        if wait is None:
            wait = min(self.backoff_cap, self.backoff_base * 2.0 ** (self._streak - 1))
            wait += random.uniform(0, self.backoff_base)
        self.pause_until(now + wait)
        return wait
