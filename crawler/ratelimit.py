"""Per-source rate control: a hard ceiling (aiolimiter) plus pacing adapted to what the server says.

A portal's budget is shared with its other integrations and its limit is undocumented, so:

* **With `X-LU-Rate-Limit-Remaining-Minute`** the server tells us where we stand: requests are spaced
  evenly at our share of the limit it reports (`budget_share` × the largest remaining count seen, per
  window), never bunched at a window's start, and when only the others' share (1 − `budget_share`) of
  the window is left — because the others used theirs — the whole source waits for the next window.
  Even spacing costs nothing in throughput (the share per window is the same) and keeps many portals'
  windows from opening as one burst on the crawler and on the API.
* **Without it**, 429 is the only signal. Requests are paced evenly at `budget_share` × the rate the
  server was seen to accept — measured from the successes between 429s, over a few seconds, in requests
  rather than fractions of the window (`crawler/blind_rate.py` says why that settles as fast at a 60 s
  window as at a 5 s one); until a 429, at the learned rate or `budget_share` × the ceiling.
* **On 429** the whole source pauses — for `Retry-After` (seconds or HTTP-date) when sent; otherwise one
  probe request goes out after one request's slot, doubling the pause while probes keep failing (never
  past the moment a fixed window that ran out must reopen), so a fixed window costs a handful of 429s and
  a token bucket almost no idle time. The throttled request is requeued through this gate, never slept in
  place while others keep firing.
* **Weekly reserve**: when `X-LU-Rate-Limit-Remaining-Week` drops to the reserve, the source stops cleanly.

Where a window starts is not documented, so it is read from the server: a window opened when the
remaining count rose. Our own clock would run ahead of the server's by latency and event-loop lag.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from aiolimiter import AsyncLimiter

from crawler.blind_rate import BlindRate
from crawler.errors import BudgetReserveReached

REMAINING_MINUTE = "X-LU-Rate-Limit-Remaining-Minute"
REMAINING_WEEK = "X-LU-Rate-Limit-Remaining-Week"
PACED_BURST = 4  # requests that may go back to back after a quiet spell, while pacing by the headers


MAX_RETRY_AFTER = 300.0  # the longest Retry-After we honour: `inf`, `1e300` or a far date would idle forever


def parse_retry_after(
    value: str | None, now: float | None = None, *, cap: float = MAX_RETRY_AFTER
) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), at most `cap`; None when
    absent or bad. `inf` and huge values are clamped to `cap`; `nan` is no value at all."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        now = time.time() if now is None else now
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), cap)


def parse_int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class Ticket:
    """Handed out by `acquire`: when the request left, how long after the one before it, and whether it
    is the probe after a 429."""

    sent_at: float
    probe: bool = False
    gap: float = math.inf


class RateController:
    """Gate every request of one source.

    `ceiling` requests per `window_seconds` is never exceeded (60 s on LearnUpon, shorter for the
    time-compressed simulator). `initial_rate` (requests/s) is what a previous run learned.
    """

    def __init__(
        self,
        ceiling: int,
        window_seconds: float = 60.0,
        budget_share: float = 0.8,
        *,
        weekly_reserve: int = 0,
        initial_rate: float | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.ceiling = ceiling
        self.window_seconds = window_seconds
        self.budget_share = budget_share
        self.weekly_reserve = weekly_reserve
        self.max_retry_after = MAX_RETRY_AFTER  # Retry-After is clamped to this (CrawlConfig sets it)
        self.max_rate = ceiling / window_seconds
        self._limiter = AsyncLimiter(ceiling, window_seconds)
        self._clock = wall_clock
        # pauses and windows
        self._resume_at = 0.0
        self._server_window_start: float | None = None  # from the headers: when the remaining count rose
        self._last_remaining: int | None = None
        self.largest_remaining_seen = 0
        self.headers_seen = False
        self.remaining_week: int | None = None
        # pacing while the server sends no rate headers
        self.blind = BlindRate(self.max_rate, window_seconds, budget_share, initial_rate)
        self._next_slot = 0.0
        self._slots_reset = 0  # bumped when the pace changes under requests waiting for their slots
        self._last_sent = -math.inf
        # probing after a 429 without Retry-After
        self._probing = False
        self._probe_out = False
        self._probe_released = asyncio.Event()
        self._probe_pause: float | None = None
        self.in_flight = 0  # sent and not answered yet: the server will count them against the window too
        # counters for coverage and benchmarks
        self.throttled = 0
        self.pauses = 0

    @property
    def rate(self) -> float:
        """The pace without rate headers, in requests per second."""
        return self.blind.rate

    # --- the gate --------------------------------------------------------------------------------
    async def acquire(self) -> Ticket:
        """Wait for pauses, the probe, the adaptive pacing and the ceiling; then the request may go.

        Every wait is followed by a fresh look at the pause: a 429 that arrived meanwhile holds this
        request back too, so no request leaves after a cut until the source may send again.
        """
        while True:
            self._check_weekly_reserve()
            delay = self._resume_at - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if self._probe_out:
                self._probe_released.clear()
                await self._probe_released.wait()
                continue
            if not self.headers_seen:
                wait = self._take_slot()
            elif self.largest_remaining_seen:  # LearnUpon's remaining count: pace at our share of it
                wait = self._take_paced_slot()
            else:  # a subclass reads other headers (Okta) and paces itself
                wait = 0.0
            if wait > 0:
                slots = self._slots_reset
                await asyncio.sleep(wait)
                if self._held_back() or slots != self._slots_reset:
                    continue
            await self._limiter.acquire()
            if self._held_back():
                continue
            break
        now = self._clock()
        gap, self._last_sent = now - self._last_sent, now
        probe = self._probing
        self._probe_out = probe
        self.in_flight += 1
        return Ticket(now, probe, gap)

    def _held_back(self) -> bool:
        return self._resume_at > self._clock() or self._probe_out

    def _take_slot(self) -> float:
        """Reserve the next evenly paced send time; returns how long to wait for it."""
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            self.blind.demand = True
        return slot - now

    def header_rate(self) -> float:
        """Our share of the limit the server reports, per second (once a remaining count was seen)."""
        return self.budget_share * self.largest_remaining_seen / self.window_seconds

    def _take_paced_slot(self) -> float:
        """Reserve the next send time at `header_rate`; a few may go at once after a quiet spell.

        Each gap is jittered (±50%, the same rate on average): portals that started together would
        otherwise send in lockstep, every portal's request in the same instant, once per interval.
        """
        now = self._clock()
        interval = 1.0 / max(self.header_rate(), 1e-9)
        slot = max(now - PACED_BURST * interval, self._next_slot)
        self._next_slot = slot + interval * random.uniform(0.5, 1.5)
        return max(0.0, slot - now)

    def _respace(self) -> None:
        """The pace slowed: requests waiting for slots reserved at the old one take new ones."""
        self._next_slot, self._slots_reset = self._last_sent + 1.0 / self.rate, self._slots_reset + 1

    def _check_weekly_reserve(self) -> None:
        if self.remaining_week is not None and self.remaining_week <= self.weekly_reserve:
            raise BudgetReserveReached(
                f"stopped: the portal's weekly API budget is down to {self.remaining_week} requests, "
                f"at or under the reserve of {self.weekly_reserve} kept for its other integrations"
            )

    def pause_until(self, resume_at: float) -> None:
        """Hold every new request of this source until `resume_at` (wall clock)."""
        if resume_at > self._resume_at:
            self._resume_at = resume_at
            self.pauses += 1

    # --- what the server said ----------------------------------------------------------------------
    def _answered(self, ticket: Ticket | None) -> None:
        if ticket is not None:
            self.in_flight = max(0, self.in_flight - 1)

    def on_success(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> None:
        self._answered(ticket)
        now = self._clock()
        if not self.headers_seen:
            before = self.blind.rate
            self.blind.succeeded(ticket.sent_at if ticket is not None else now, now)
            if self.blind.rate < before:
                self._respace()
        if ticket is not None and ticket.probe:
            self._end_probe(succeeded=True)
        week = parse_int_header(headers, REMAINING_WEEK)
        if week is not None:
            self.remaining_week = week
        remaining = parse_int_header(headers, REMAINING_MINUTE)
        if remaining is None:
            return
        self.headers_seen = True
        sent = ticket.sent_at if ticket is not None else now
        # A rise larger than what reordered answers can explain means the server opened a new window
        # while this request was on its way.
        if self._last_remaining is None or remaining > self._last_remaining + self.in_flight + 1:
            self._server_window_start = (sent + now) / 2
        self._last_remaining = remaining
        self.largest_remaining_seen = max(self.largest_remaining_seen, remaining + 1)
        reserve = math.ceil(self.largest_remaining_seen * (1.0 - self.budget_share))
        if remaining - self.in_flight <= reserve:  # what is already on the wire will be counted too
            self._pause_for_next_window(now)

    def _pause_for_next_window(self, now: float) -> None:
        """Wait for the server's window to roll over.

        The window's start is anchored to the server (the moment its remaining count rose), not to our
        own sends: our clock can run ahead of the server's by a request's latency plus event-loop lag,
        and resuming early would spend the first request of the next window in the old one. If the
        server still reports the old window after the time it should have rolled, look again shortly
        rather than waiting a whole window.
        """
        start = self._server_window_start
        if start is not None and start + self.window_seconds > now:
            self.pause_until(start + self.window_seconds + self.window_seconds / 100)
        else:
            self.pause_until(now + self.window_seconds / 32)

    def on_throttled(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> float:
        """A 429: pause the whole source (and adapt); returns the pause length in seconds."""
        self._answered(ticket)
        self.throttled += 1
        now = self._clock()
        hold = self._learn_from_429(ticket, now) if not self.headers_seen else True
        wait = parse_retry_after(headers.get("Retry-After"), now, cap=self.max_retry_after)
        if ticket is not None and ticket.probe:
            self._end_probe(succeeded=False)
        if wait is not None:
            self.blind.held()
            self.pause_until(now + wait)
        elif self.headers_seen:
            self._pause_for_next_window(now)
        elif hold or self._probing:
            if not self._probing:
                self._probing, self._probe_pause = True, self._first_probe_pause(now)
            assert self._probe_pause is not None
            self.pause_until(now + self._probe_pause)
        return max(0.0, self._resume_at - now)

    def _learn_from_429(self, ticket: Ticket | None, now: float) -> bool:
        """Without rate headers: adapt the pace to a 429; whether to hold the source for a probe."""
        before = self.blind.rate
        sent_at, gap, probe = (ticket.sent_at, ticket.gap, ticket.probe) if ticket else (now, math.inf, False)
        hold = self.blind.throttled(sent_at, gap, now, probe=probe)
        if hold:  # the pause that follows spaces the next request: slots reserved before it are void
            self._next_slot, self._slots_reset = now, self._slots_reset + 1
            self.blind.held()
        elif self.blind.rate < before:
            self._respace()
        return hold

    def _first_probe_pause(self, now: float) -> float:
        return self.blind.probe_pause(now, None)

    def on_other_outcome(self, ticket: Ticket) -> None:
        """The request failed for another reason (5xx, reset): it was not throttled, so a probe is over."""
        self._answered(ticket)
        if ticket.probe:
            self._end_probe(succeeded=True)

    def _end_probe(self, *, succeeded: bool) -> None:
        self._probe_out = False
        if succeeded:
            self._probing, self._probe_pause = False, None
        else:
            self._probe_pause = self.blind.probe_pause(self._clock(), self._probe_pause)
        self._probe_released.set()

    def learned_rate(self) -> float | None:
        """The sustainable rate this run found (requests/s), to start the next run from; None if unknown."""
        if self.headers_seen and self.largest_remaining_seen:
            return self.budget_share * self.largest_remaining_seen / self.window_seconds
        return self.blind.learned()
