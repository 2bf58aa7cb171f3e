"""Per-source rate control: a hard ceiling (aiolimiter) plus pacing from what the server tells us.

LearnUpon limits each portal with a fixed per-minute window and shares that budget with the portal's
other integrations. We keep to a share of it: when `X-LU-Rate-Limit-Remaining-Minute` says only the
others' share is left, the whole portal waits for the next window. A 429 pauses the whole portal until
`Retry-After` (seconds or HTTP-date) or, without one, the end of the current window; the throttled
request is then sent again through the same gate, never slept in place while others keep firing.

Where a window starts is not documented. We assume it opens with the first request after the previous
one closed; if the server's windows are aligned differently, the worst case is one more 429 per window.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from aiolimiter import AsyncLimiter

REMAINING_MINUTE = "X-LU-Rate-Limit-Remaining-Minute"
REMAINING_WEEK = "X-LU-Rate-Limit-Remaining-Week"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def parse_int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


class RateController:
    """Gate every request of one source.

    `window_seconds` is the length of the server's rate window (60 on real portals; shorter for the
    time-compressed simulator). `ceiling` is the most requests we ever send in one window.
    """

    def __init__(
        self,
        ceiling: int,
        window_seconds: float = 60.0,
        budget_share: float = 0.8,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.ceiling = ceiling
        self.window_seconds = window_seconds
        self.budget_share = budget_share
        self._limiter = AsyncLimiter(ceiling, window_seconds)
        self._wall_clock = wall_clock
        self._resume_at = 0.0  # wall-clock time before which no request may start
        self._window_start: float | None = None
        self.largest_remaining_seen = 0
        self.throttled = 0
        self.pauses = 0
        self.remaining_week: int | None = None

    def _next_window_boundary(self) -> float:
        now = self._wall_clock()
        if self._window_start is None or now >= self._window_start + self.window_seconds:
            return now + 0.01
        return self._window_start + self.window_seconds + 0.01

    def _note_request_sent(self) -> None:
        now = self._wall_clock()
        if self._window_start is None or now >= self._window_start + self.window_seconds:
            self._window_start = now

    def pause_until(self, resume_at: float) -> None:
        """Hold every new request of this source until `resume_at` (wall clock)."""
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self.pauses += 1

    async def acquire(self) -> None:
        """Wait for the pause (if any) and a slot under the ceiling."""
        while True:
            delay = self._resume_at - self._wall_clock()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        await self._limiter.acquire()
        self._note_request_sent()

    def on_success(self, headers: Mapping[str, str]) -> None:
        """Pace from the remaining-minute header: leave the other integrations their share."""
        remaining = parse_int_header(headers, REMAINING_MINUTE)
        week = parse_int_header(headers, REMAINING_WEEK)
        if week is not None:
            self.remaining_week = week
        if remaining is None:
            return
        self.largest_remaining_seen = max(self.largest_remaining_seen, remaining + 1)
        reserve = math.ceil(self.largest_remaining_seen * (1.0 - self.budget_share))
        if remaining <= reserve:
            self.pause_until(self._next_window_boundary())

    def on_throttled(self, headers: Mapping[str, str]) -> float:
        """A 429: pause the whole source; returns the pause length in seconds."""
        self.throttled += 1
        wait = parse_retry_after(headers.get("Retry-After"), self._wall_clock())
        resume_at = self._wall_clock() + wait if wait is not None else self._next_window_boundary()
        self.pause_until(resume_at)
        return max(0.0, resume_at - self._wall_clock())
