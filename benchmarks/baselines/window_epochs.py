"""Baseline: the no-header rate control idgraph had before issue 16, frozen, for a before → after table.

Without rate headers it paced by AIMD in epochs scaled to the window: slow start from a quarter of the
ceiling, doubling every window/20 while requests waited; on a 429 one multiplicative cut per congestion
epoch, to `budget_share` × the successes of the last window; the first probe after window/16, doubling.
At a 60 s window those are 3 s epochs and a 3.75 s first pause, which the time-compressed benchmark hid.

Only that part is frozen, as overrides of today's `RateController` (main at 0e89d3b: `_take_slot`,
`_maybe_grow`, `_cut`, what a 429 teaches, the probe pauses, `learned_rate`): the
header-paced path, the ceiling, pauses and the weekly reserve are the same in both.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from crawler.ratelimit import RateController, Ticket

EPOCHS_PER_WINDOW = 20  # how often (per window) the adaptive rate may grow
FIRST_PROBE_FRACTION = 1 / 16  # first pause after a 429 without Retry-After, as a share of the window


class WindowEpochController(RateController):
    """`RateController` as it paced without headers before issue 16."""

    def __init__(self, *args: Any, initial_rate: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, initial_rate=initial_rate, **kwargs)
        learned = min(initial_rate, self.max_rate) if initial_rate else None
        self._old_rate = learned or self.max_rate / 4
        self.ssthresh = learned or self.budget_share * self.max_rate
        self.cap = learned or self.budget_share * self.max_rate
        self._epoch_started = -math.inf
        self._tick_started = self._clock()
        self._demand = False
        self._successes: deque[float] = deque()
        self._first_success = math.inf
        self.cuts = 0

    @property
    def rate(self) -> float:
        return self._old_rate

    def _take_slot(self) -> float:
        now = self._clock()
        self._maybe_grow(now)
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            self._demand = True
        return slot - now

    def _maybe_grow(self, now: float) -> None:
        if now - self._tick_started < self.window_seconds / EPOCHS_PER_WINDOW:
            return
        if self._demand and self._epoch_started < self._tick_started:
            if self._old_rate < self.ssthresh:
                self._old_rate = min(self._old_rate * 2, self.ssthresh, self.cap)
            else:
                self._old_rate = min(self._old_rate + self.max_rate / 50, self.cap)
            self.cap = min(self.budget_share * self.max_rate, self.cap * (1 + 0.01 / EPOCHS_PER_WINDOW))
        self._tick_started, self._demand = now, False

    def on_success(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> None:
        now = self._clock()
        self._first_success = min(self._first_success, now)
        self._successes.append(now)
        while self._successes and self._successes[0] < now - self.window_seconds:
            self._successes.popleft()
        super().on_success(headers, ticket)

    def _learn_from_429(self, ticket: Ticket | None, now: float) -> bool:
        sent_at = ticket.sent_at if ticket is not None else now
        if sent_at >= self._epoch_started:
            self._cut(now)
        return True

    def _first_probe_pause(self, now: float) -> float:
        return self.window_seconds * FIRST_PROBE_FRACTION

    def _cut(self, now: float) -> None:
        span = min(self.window_seconds, now - self._first_success) if self._successes else 0.0
        allowed = len(self._successes) / span if span > 0.5 * self.window_seconds / EPOCHS_PER_WINDOW else 0.0
        target = self.budget_share * allowed if allowed > 0 else self._old_rate / 2
        floor = self.max_rate / 1000
        self._old_rate = max(floor, min(self._old_rate * 0.7, target))
        self.ssthresh = self._old_rate
        self.cap = max(self._old_rate, min(self.cap, target)) if allowed > 0 else self.cap
        self._epoch_started = now
        self._next_slot = now + 1.0 / self._old_rate
        self.cuts += 1

    def _end_probe(self, *, succeeded: bool) -> None:
        self._probe_out = False
        if succeeded:
            self._probing = False
        else:
            self._probe_pause = min((self._probe_pause or 0.0) * 2, self.window_seconds)
        self._probe_released.set()

    def learned_rate(self) -> float | None:
        if self.headers_seen and self.largest_remaining_seen:
            return self.budget_share * self.largest_remaining_seen / self.window_seconds
        if self.cuts:
            return self.cap
        return None
