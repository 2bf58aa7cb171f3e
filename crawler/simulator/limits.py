"""How a simulated portal limits requests: LearnUpon's fixed window, or a token bucket for comparison.

Both count the weekly budget too, and expose the same small interface the server reads its rate headers
and `Retry-After` from. The token bucket exists so the crawler's adaptation can be measured against a
limiter it was not tuned for.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .dataset import PortalSpec

MINUTE_LIMIT_TEXT = "Number of requests has exceeded the 1 minute limit"
WEEK_LIMIT_TEXT = "Number of requests has exceeded the 1 week limit"


class Limits(Protocol):
    def admit(self) -> str | None: ...

    @property
    def remaining_minute(self) -> int: ...

    @property
    def remaining_week(self) -> int: ...

    def seconds_to_reset(self) -> float: ...


class RateWindow:
    """Per-portal request limits as LearnUpon enforces them: a fixed window and a weekly budget.

    The window opens at the first request after the previous one closed, so a test's burst never straddles
    two windows by accident.
    """

    def __init__(self, limit: int, window_seconds: float, week_budget: int) -> None:
        self.limit, self.window_seconds, self.week_budget = limit, window_seconds, week_budget
        self.window_end, self.count, self.week_used = 0.0, 0, 0

    def admit(self) -> str | None:
        """Count one request; the 429 text when it is over a limit, else None."""
        now = time.monotonic()
        if now >= self.window_end:
            self.window_end, self.count = now + self.window_seconds, 0
        self.count += 1
        if self.count > self.limit:
            return MINUTE_LIMIT_TEXT
        if self.week_used >= self.week_budget:
            return WEEK_LIMIT_TEXT
        self.week_used += 1
        return None

    @property
    def remaining_minute(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def remaining_week(self) -> int:
        return self.week_budget - self.week_used

    def seconds_to_reset(self) -> float:
        return max(0.0, self.window_end - time.monotonic())


class TokenBucket:
    """`limit` tokens per window, refilled continuously; it holds `burst` at most (0: a tenth of `limit`)."""

    def __init__(self, limit: int, window_seconds: float, week_budget: int, burst: int = 0) -> None:
        self.rate = limit / window_seconds
        self.capacity = float(burst) if burst else max(1.0, limit / 10)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.week_budget, self.week_used = week_budget, 0

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def admit(self) -> str | None:
        self._refill()
        if self.tokens < 1.0:
            return MINUTE_LIMIT_TEXT
        if self.week_used >= self.week_budget:
            return WEEK_LIMIT_TEXT
        self.tokens -= 1.0
        self.week_used += 1
        return None

    @property
    def remaining_minute(self) -> int:
        return int(self.tokens)

    @property
    def remaining_week(self) -> int:
        return self.week_budget - self.week_used

    def seconds_to_reset(self) -> float:
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.rate)


def make_limits(spec: PortalSpec, window_seconds: float) -> Limits:
    if spec.rate_limiter == "token_bucket":
        return TokenBucket(spec.rate_limit_per_window, window_seconds, spec.week_budget, spec.rate_burst)
    return RateWindow(spec.rate_limit_per_window, window_seconds, spec.week_budget)
