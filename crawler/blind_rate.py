"""The pace for a server that sends no rate headers: our share of the rate it was seen to accept.

A 429 is the only signal, and one 429 says only that we were too fast. The rate r the server accepts
shows in what happens *around* 429s, and is pinned between two bounds that need no window:

* **below**: a server that refused a request at t₀ had under one request's credit left then, so every
  success sent since was paid for by what it refilled: r ≥ (successes − 1) ÷ (t − t₀);
* **above**: a request refused `gap` seconds after the one before it means the server refills less than
  one request per `gap` (r < 1 ÷ gap); and between two refusals t₀ < t₁, with no pause of ours between,
  the server refilled about what it accepted, plus one: r < (successes + 1) ÷ (t₁ − t₀). That one fails
  for a server that threw refills away (a bucket too small to hold them), which shows as it falling
  under the lower bound: then it is dropped.

From the first 429 the pace is the upper bound (capped at `MEASURE_GAIN` × what the last `RECENT`
requests got through), so the server stays the bottleneck and every answer narrows the bounds; fewer
than `SHUT_AFTER` 429s in a row cost no pause, since a pause is when a bucket overflows. Once the
bounds are within `SETTLE_SPREAD` the pace settles at `budget_share` × their middle. All of it counts
requests and their spacing, never fractions of the window, so it settles in the same number of requests
— seconds, at LearnUpon's rates — whether the window lasts 5 s or 60 s.

A server that stays shut for `EXHAUSTED_FRACTION` of its window counts per window (LearnUpon's fixed
window): its rate is what it accepted in the window that ran out, ÷ the window, known once it reopens.
That case cannot settle before the first window ends: until it runs out, a window says nothing.

Without a 429 the pace never moves, except that it creeps back up by `CREEP` per answered request (never
past `budget_share` × the ceiling) in case the limit was raised. It starts at the rate a previous run
learned, else at `budget_share` × the ceiling: a slow start would cost the first seconds of every crawl,
and most crawls are a few hundred requests.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

SETTLE_SPREAD = 1.15  # bounds this close: their middle is within 7% of the rate between them
MEASURE_GAIN = 1.3  # while measuring, at most this far above what recently got through
RECENT = 8  # the requests "recently" means, while measuring
SHUT_AFTER = 3  # 429s in a row that hold the source for a probe (the first 429 always does)
EXHAUSTED_FRACTION = 1 / 16  # shut for this share of its window: the server counts per window
CREEP = 2e-5  # per answered request that waited for its slot: +10% in about 5,000
FLOOR_SHARE = 1e-3  # the slowest pace, as a share of the ceiling's rate
MAX_ORIGINS = 16  # the latest 429s of a measurement that bounds are counted from


class BlindRate:
    """The pace, in requests per second, of one source whose server never says where it stands.

    Times are the send times of requests (`Ticket.sent_at`): the server decides when a request arrives,
    and send times keep the order it saw them in. `now` is when the answer came.
    """

    def __init__(
        self, ceiling_rate: float, window_seconds: float, budget_share: float, initial_rate: float | None
    ) -> None:
        self.window_seconds = window_seconds
        self.budget_share = budget_share
        self.share_cap = budget_share * ceiling_rate  # never faster than our share of the ceiling
        self.floor = ceiling_rate * FLOOR_SHARE
        learned = min(initial_rate, self.share_cap) if initial_rate else None
        self.rate = learned or self.share_cap
        self.cap = self.rate  # the settled pace; `rate` leaves it only while measuring
        self.estimate: float | None = None  # the server's own rate, last measured (requests/s)
        self.measurements = 0
        self.demand = False  # a request waited for its slot since the last success
        self._decided_at = -math.inf  # answers to requests sent before this were taken into account
        # the measurement: from a first 429 until the bounds meet
        self._measuring = False
        self._lower, self._upper = 0.0, math.inf
        self._refill_bounds = True  # False once the server was seen throwing refills away
        self._origins: list[float] = []  # its 429s
        self._paced_since = math.inf  # its first 429 with no pause of ours since
        self._sent_ok: list[float] = []  # its successes, sorted
        self._recent: deque[tuple[float, bool]] = deque(maxlen=RECENT)  # its latest requests, accepted?
        # 429s in a row, and a server shut for a while
        self._refused_in_row = 0
        self._last_refused = -math.inf
        self._shut_since: float | None = None  # the first 429 of an unbroken run of them
        self._shut_window_start = 0.0  # the oldest success of the window that ran out
        self._shut_window_count = 0  # the successes of that window
        self._successes: deque[float] = deque()  # over the last window

    @property
    def measuring(self) -> bool:
        return self._measuring

    def succeeded(self, sent_at: float, now: float) -> None:
        self._successes.append(sent_at)
        while self._successes[0] < sent_at - self.window_seconds:
            self._successes.popleft()
        if sent_at > self._last_refused:
            self._refused_in_row = 0
        if self._shut_since is not None and sent_at > self._shut_since:
            shut_for, self._shut_since = sent_at - self._shut_since, None
            if self._measuring and shut_for >= self.window_seconds * EXHAUSTED_FRACTION:
                self._settle(self._shut_window_count / self.window_seconds, now)
                return
        if self._measuring and self._origins and sent_at > self._origins[0]:
            self._recent.append((sent_at, True))
            bisect.insort(self._sent_ok, sent_at)
            for origin in self._origins:
                if origin < sent_at:
                    refilled = self._count_ok(origin, sent_at)  # this success included
                    self._lower = max(self._lower, (refilled - 1) / (sent_at - origin))
            self._steer(now)
        elif not self._measuring and self.demand:
            self.cap = min(self.share_cap, self.cap * (1 + CREEP))
            self.rate = self.cap
        self.demand = False

    def throttled(self, sent_at: float, gap: float, now: float, *, probe: bool = False) -> bool:
        """A 429 for a request sent `gap` seconds after the one before it; whether to hold the source for a
        probe. A probe's gap is our pause, and a fixed window still shut says nothing of the pace: it
        bounds nothing."""
        self._refused_in_row += 1
        self._last_refused = max(self._last_refused, sent_at)
        hold = self._refused_in_row >= SHUT_AFTER
        if self._shut_since is None:
            self._shut_since = sent_at
            in_window = [t for t in self._successes if t > sent_at - self.window_seconds]
            self._shut_window_count = len(in_window)
            self._shut_window_start = in_window[0] if in_window else sent_at
        if not self._measuring:
            if sent_at <= self._decided_at:
                return True  # sent before the pace was last set: the congestion that set it
            hold = True
            self._measuring, self._lower, self._upper, self._refill_bounds = True, 0.0, self.rate, True
            self._origins, self._paced_since, self._sent_ok = [], math.inf, []
            self._recent.clear()
            self.measurements += 1
        self._recent.append((sent_at, False))
        if gap > 0 and not probe:
            self._upper = min(self._upper, 1.0 / gap)
        for origin in self._origins:
            if self._refill_bounds and self._paced_since <= origin < sent_at:
                bound = (self._count_ok(origin, sent_at) + 1) / (sent_at - origin)
                if bound < self._lower:
                    self._refill_bounds = False  # it threw refills away: no such bound holds
                else:
                    self._upper = min(self._upper, bound)
        self._origins = [*self._origins, sent_at][-MAX_ORIGINS:]
        del self._sent_ok[: bisect.bisect_right(self._sent_ok, self._origins[0])]  # counted from no origin
        self._paced_since = min(self._paced_since, sent_at)
        self._steer(now)
        return hold

    def held(self) -> None:
        """The source pauses for a probe: a bucket may fill to its brim meanwhile and throw refills away,
        so no count of refills spans the pause."""
        self._paced_since = math.inf

    def _count_ok(self, after: float, before: float) -> int:
        """Successes sent in (after, before]."""
        return bisect.bisect_right(self._sent_ok, before) - bisect.bisect_right(self._sent_ok, after)

    def _steer(self, now: float) -> None:
        """Settle once the bounds meet; until then pace at the upper one, or not far above what recently
        got through."""
        if self._lower > 0 and self._upper <= self._lower * SETTLE_SPREAD:
            self._settle(math.sqrt(self._lower * self._upper), now)
        elif self._lower >= self._upper:  # the bounds crossed (latency jitter): trust what got through
            self._settle(self._lower, now)
        else:
            pace = self._upper
            span = self._recent[-1][0] - self._recent[0][0] if len(self._recent) == RECENT else 0.0
            accepted = sum(ok for _, ok in self._recent)
            if span > 0 and accepted:
                pace = min(pace, MEASURE_GAIN * accepted / span)
            self.rate = max(self.floor, pace)

    def _settle(self, server_rate: float, now: float) -> None:
        self.estimate = server_rate
        self.cap = self.rate = max(self.floor, min(self.share_cap, self.budget_share * server_rate))
        self._measuring = False
        self._decided_at = now

    def probe_pause(self, now: float, previous: float | None) -> float:
        """How long to hold the source after a 429 before one probe: a request's slot at first, then
        twice the last pause; once shut for a window's share, until the window that ran out must have
        reopened (our first success in it + the window)."""
        first = 1.0 / self.rate
        if previous is None or self._shut_since is None:
            return first
        pause = min(previous * 2, self.window_seconds)
        reopens = self._shut_window_start + self.window_seconds * 1.01
        if reopens > now and (
            reopens < now + pause or now - self._shut_since >= self.window_seconds * EXHAUSTED_FRACTION
        ):
            pause = max(first, reopens - now)
        return pause

    def learned(self) -> float | None:
        """The settled pace, once a 429 taught us something; None while the server never refused."""
        return self.cap if self.estimate is not None else None
