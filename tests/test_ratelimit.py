"""The rate controller's decisions, driven by a fake clock: pauses, measurements, growth, probes, reserves.

These check what the controller decides (deadlines, rates, counts), never how long anything took. The
dynamics without rate headers run the real controller against modelled servers in virtual time
(`tests/rate_sim.py`): a crawl of hundreds of requests at a 60 s window takes milliseconds, and is
judged in requests and 429s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from rate_sim import FixedWindow, TokenBucket, Trace, drive

from crawler.blind_rate import CREEP, BlindRate
from crawler.errors import BudgetReserveReached
from crawler.ratelimit import MAX_RETRY_AFTER, RateController, Ticket, parse_retry_after

HEADERS = {"X-LU-Rate-Limit-Remaining-Minute": "299", "X-LU-Rate-Limit-Remaining-Week": "359920"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def controller(clock: Clock, **kwargs: object) -> RateController:
    return RateController(ceiling=300, window_seconds=60, budget_share=0.8, wall_clock=clock, **kwargs)


def test_retry_after_in_both_forms() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("7", now) == 7.0
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert parse_retry_after(date, now) == 30.0
    assert parse_retry_after("garbage", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) == 0.0


async def test_with_rate_headers_a_429_waits_for_the_end_of_the_servers_window() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    ticket = await gate.acquire()  # the server's window opens with this request
    gate.on_success(HEADERS, ticket)
    clock.now = 1040.0
    wait = gate.on_throttled({}, Ticket(1039.0))
    assert gate.throttled == 1
    assert wait == pytest.approx(20.6)  # the window that opened at 1000 closes at 1060 (+1% margin)


def test_the_window_is_anchored_where_the_servers_remaining_count_rose() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    gate.on_success(HEADERS, None)  # window 1 seen at 1000
    clock.now = 1061.0
    gate.on_success({"X-LU-Rate-Limit-Remaining-Minute": "100"}, None)  # still falling: same window
    gate.on_success({"X-LU-Rate-Limit-Remaining-Minute": "299"}, Ticket(1061.5))  # rose: a new window
    clock.now = 1062.0
    gate.on_success({"X-LU-Rate-Limit-Remaining-Minute": "60"}, None)  # only the others' share left
    assert gate._resume_at == pytest.approx((1061.5 + 1061.0) / 2 + 60 + 0.6, abs=0.3)


def test_an_old_window_reported_after_it_should_have_rolled_costs_a_short_wait_not_a_window() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    gate.on_success(HEADERS, None)
    clock.now = 1065.0  # past the window that opened at 1000, but the server still counts it down
    gate.on_success({"X-LU-Rate-Limit-Remaining-Minute": "5"}, None)
    assert gate._resume_at == pytest.approx(1065.0 + 60 / 32)


def test_retry_after_is_honoured_for_the_whole_source() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    assert gate.on_throttled({"Retry-After": "5"}, Ticket(999.0)) == 5.0
    http_date = format_datetime(datetime.fromtimestamp(1000 + 12, UTC), usegmt=True)
    assert gate.on_throttled({"Retry-After": http_date}, Ticket(999.5)) == 12.0


def test_remaining_minute_header_keeps_the_others_share() -> None:
    gate = controller(Clock(1000.0))
    gate.on_success(HEADERS)
    assert gate.pauses == 0 and gate.remaining_week == 359920 and gate.headers_seen
    gate.on_success({"X-LU-Rate-Limit-Remaining-Minute": "61"})
    assert gate.pauses == 0
    gate.on_success({"X-LU-Rate-Limit-Remaining-Minute": "60"})  # 20% of 300 left: the others' share
    assert gate.pauses == 1


def test_with_rate_headers_requests_are_spaced_at_our_share_not_bunched() -> None:
    """300 per 60 s reported, share 0.8: 4 requests/s on average, after a short burst."""
    clock = Clock(1000.0)
    gate = controller(clock)
    gate.on_success(HEADERS)  # remaining 299: the server's limit is 300
    assert gate.header_rate() == pytest.approx(4.0)
    waits = [gate._take_paced_slot() for _ in range(201)]  # all asked for at the same instant
    burst = waits.count(0.0)  # four gaps' worth, jittered: never fewer than 3 nor more than 9 at once
    assert 3 <= burst <= 9 and waits[:burst] == [0.0] * burst
    assert waits == sorted(waits)
    assert waits[-1] == pytest.approx((200 - 4) / 4.0, rel=0.1)  # the same rate on average, jitter or not


async def test_other_rate_headers_never_stall_the_header_pacing() -> None:
    """A subclass that reads other headers (Okta's) sets `headers_seen` without a remaining count."""
    gate = controller(Clock(1000.0))
    gate.headers_seen = True
    for _ in range(3):
        gate._answered(await asyncio.wait_for(gate.acquire(), timeout=5))


# --- without rate headers: the dynamics, in virtual time (tests/rate_sim.py) ---------------------------
def blind(window: float = 60.0, **kwargs: Any) -> Callable[[Callable[[], float]], RateController]:
    """A controller as `idgraph crawl` builds one for a portal: ceiling 300 per window, budget share 0.8."""
    return lambda clock: RateController(300, window, 0.8, wall_clock=clock, **kwargs)


@pytest.mark.parametrize("limit", [100, 150, 200])
def test_below_the_ceiling_a_token_bucket_is_measured_in_a_few_dozen_requests(limit: int) -> None:
    """The server's real limit is under the configured ceiling and it sends no rate headers: the pace
    starts at our share of the ceiling, meets 429s and settles within 10% of our share of the real limit
    after a bounded number of requests, and stays there."""
    trace = drive(blind(), TokenBucket(limit, 60, burst=5), answered=330)
    assert trace.settled_at() <= 45  # requests, 429s included: seconds at these rates (≤ 19 s at 100/min)
    assert trace.throttled <= 0.03 * trace.requests
    assert trace.eta >= 0.9


@pytest.mark.parametrize("server", ["token_bucket", "fixed_window"])
@pytest.mark.parametrize("limit", [100, 150, 200])
def test_settling_takes_the_same_requests_at_a_5_s_and_a_60_s_window(server: str, limit: int) -> None:
    """Nothing in the controller counts in fractions of the window except a fixed window's own reset:
    time-compress everything (window and latency) by 12 and it settles after the same number of
    requests, with the same 429s — the compressed benchmark no longer flatters it. (Request for request
    the two runs can differ where a token bucket holds exactly one token, by float rounding.)"""

    def run(window: float) -> Trace:
        limiter = TokenBucket(limit, window) if server == "token_bucket" else FixedWindow(limit, window)
        return drive(blind(window), limiter, answered=400, latency=0.05 * window / 60)

    slow, fast = run(60.0), run(5.0)
    assert slow.settled_at() == fast.settled_at() < slow.requests
    assert slow.throttled == fast.throttled


@pytest.mark.parametrize(
    ("server", "limit"), [("token_bucket", 300), ("fixed_window", 300), ("token_bucket", 450)]
)
def test_at_or_above_the_ceiling_our_share_of_it_from_the_first_request(server: str, limit: int) -> None:
    """No slow start: a 5,000-user portal is ~330 requests, and its first seconds decide η."""
    limiter = TokenBucket(limit, 60) if server == "token_bucket" else FixedWindow(limit, 60)
    trace = drive(blind(), limiter, answered=330)
    assert trace.throttled == 0 and trace.settled_at() == 0
    assert trace.eta == pytest.approx(1.0, abs=0.01)


def test_a_fixed_window_below_the_ceiling_is_learned_when_it_reopens() -> None:
    """A window says nothing until it runs out (150 requests at 4/s: 37.5 s), so this one cannot settle
    sooner; then a handful of probes find it shut, the source waits for it to reopen, and paces at our
    share of what the window held: 0.8 × 150 / 60 s."""
    trace = drive(blind(), FixedWindow(150, 60), answered=330)
    assert trace.controller is not None
    assert trace.controller.blind.estimate == pytest.approx(150 / 60)
    assert trace.controller.rate == pytest.approx(2.0, rel=0.01)  # and creeping back up, slowly
    assert trace.throttled <= 6
    assert 150 <= trace.settled_at() <= 160


def test_the_learned_rate_is_where_the_next_run_starts() -> None:
    first = drive(blind(), TokenBucket(150, 60), answered=200).controller
    assert first is not None
    learned = first.learned_rate()
    assert learned == pytest.approx(0.8 * 150 / 60, rel=0.075)
    again = drive(blind(initial_rate=learned), TokenBucket(150, 60), answered=200)
    assert again.throttled == 0 and again.settled_at() == 0


@pytest.mark.parametrize("burst", [2, 3, 5])
@pytest.mark.parametrize("latency", [0.002, 0.2])
@pytest.mark.parametrize("limit", [90, 170])
def test_the_measured_rate_is_within_the_settling_spread(burst: int, latency: float, limit: int) -> None:
    """Whatever the burst and the latency, the bounds hold: the estimate sits between them."""
    trace = drive(
        blind(), TokenBucket(limit, 60, burst=burst), answered=120, latency=latency, jitter=latency / 10
    )
    assert trace.controller is not None
    assert trace.controller.blind.estimate == pytest.approx(limit / 60, rel=0.075)


def test_a_limiter_without_burst_is_underestimated_but_never_hammered() -> None:
    """A bucket that holds a single request throws away the refills it cannot hold, so a paced client is
    accepted less often than the bucket refills: the controller settles low (a known limit: it cannot
    tell those refills from a lower rate), but stays within the 429 budget."""
    trace = drive(blind(), TokenBucket(150, 60, burst=1), answered=330)
    assert trace.throttled <= 0.03 * trace.requests
    assert 0.7 <= trace.eta <= 1.1


def test_no_growth_past_our_share_of_the_ceiling() -> None:
    """The pace creeps back up after a measurement, in case the limit was raised — per request, slowly,
    and never past budget_share × the ceiling."""
    pace = BlindRate(ceiling_rate=5.0, window_seconds=60, budget_share=0.8, initial_rate=2.0)
    for i in range(10_000):
        pace.demand = True
        pace.succeeded(i * 0.5, i * 0.5 + 0.05)
    assert pace.rate == pytest.approx(2.0 * (1 + CREEP) ** 10_000)  # +22% over 10,000 requests
    for i in range(10_000, 100_000):
        pace.demand = True
        pace.succeeded(i * 0.5, i * 0.5 + 0.05)
    assert pace.rate == 0.8 * 5.0


# --- without rate headers: single decisions, on a fake clock ------------------------------------------
def test_a_first_429_bounds_the_pace_and_holds_the_source_for_one_probe() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    assert gate.rate == pytest.approx(0.8 * 300 / 60)  # our share of the ceiling, from the start
    clock.now = 1010.0
    pause = gate.on_throttled({}, Ticket(1009.9, gap=0.5))  # refused half a second after the one before
    assert gate.blind.measuring
    assert gate.rate == pytest.approx(2.0)  # the server refills slower than one request per 0.5 s
    assert pause == pytest.approx(1 / gate.rate)  # one request's slot, then a probe
    assert gate._probing


def test_a_lone_429_while_measuring_costs_no_pause() -> None:
    """A pause is when a small bucket overflows and hides its rate: a 429 among successes is the
    measurement itself, and the request is only requeued."""
    clock = Clock(1000.0)
    gate = controller(clock)
    gate.on_throttled({}, Ticket(999.9, gap=0.25))
    gate.on_success({}, Ticket(1000.3, probe=True, gap=0.4))
    for i in range(3):
        gate.on_success({}, Ticket(1000.6 + 0.25 * i, gap=0.25))
    clock.now = 1001.6
    resume_before = gate._resume_at
    assert gate.on_throttled({}, Ticket(1001.5, gap=0.25)) == 0.0
    assert gate._resume_at == resume_before and not gate._probing


def test_three_429s_in_a_row_hold_the_source_again() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    gate.on_throttled({}, Ticket(999.9, gap=0.25))
    gate.on_success({}, Ticket(1000.3, probe=True, gap=0.4))
    clock.now = 1001.0
    assert gate.on_throttled({}, Ticket(1000.5, gap=0.25)) == 0.0
    assert gate.on_throttled({}, Ticket(1000.75, gap=0.25)) == 0.0
    assert gate.on_throttled({}, Ticket(1000.9, gap=0.25)) > 0  # shut, perhaps for the window: probe


def test_probe_pauses_double_then_wait_for_a_shut_window_to_reopen() -> None:
    """The first pause is one request's slot (a bucket refills that fast); while probes keep failing it
    doubles, and once the server has been shut for a sixteenth of the window it is a window that ran out:
    the next probe goes when that window must have reopened — our first success in it + the window."""
    clock = Clock(1000.0)
    gate = controller(clock)
    for i in range(150):  # the window opened with our first success at 1000
        gate.on_success({}, Ticket(1000.0 + 0.25 * i, gap=0.25))
    clock.now = 1037.6
    pauses = [gate.on_throttled({}, Ticket(1037.5, gap=0.25))]
    while gate._resume_at < 1060:
        clock.now = gate._resume_at + 0.05
        pauses.append(gate.on_throttled({}, Ticket(gate._resume_at, probe=True, gap=pauses[-1])))
    assert pauses[0] == pytest.approx(0.25)
    assert pauses[1:4] == pytest.approx([0.5, 1.0, 2.0])
    assert gate._resume_at == pytest.approx(1000.0 + 60 * 1.01)  # the window that opened at 1000
    assert len(pauses) <= 6


def test_a_429_for_a_request_sent_before_the_pace_settled_is_not_a_new_measurement() -> None:
    pace = BlindRate(ceiling_rate=5.0, window_seconds=60, budget_share=0.8, initial_rate=None)
    pace.throttled(1000.0, 0.25, 1000.05)
    pace._settle(2.5, now=1010.0)
    pace.throttled(1009.99, 0.4, 1010.05)  # in flight when the pace settled
    assert not pace.measuring and pace.measurements == 1
    pace.throttled(1010.5, 0.5, 1010.55)
    assert pace.measuring and pace.measurements == 2


def test_retry_after_is_clamped() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    assert gate.on_throttled({"Retry-After": "inf"}, Ticket(999.0)) == MAX_RETRY_AFTER
    gate.max_retry_after = 30.0  # CrawlConfig.max_retry_after_seconds
    clock.now = 1400.0
    assert gate.on_throttled({"Retry-After": "86400"}, Ticket(1399.0)) == 30.0
    assert parse_retry_after("nan", 1.0) is None and parse_retry_after("1e300", 1.0) == MAX_RETRY_AFTER


async def test_only_one_probe_goes_out_while_probing() -> None:
    clock = Clock(1000.0)
    gate = RateController(ceiling=10**6, window_seconds=60, wall_clock=clock)  # no pacing delay here
    gate.on_throttled({}, Ticket(999.0))
    clock.now = 1010.0  # past the pause
    probe = await gate.acquire()
    assert probe.probe
    waiter = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # held back until the probe answers
    gate.on_success({}, probe)
    follower = await asyncio.wait_for(waiter, 1)
    assert not follower.probe


async def test_weekly_reserve_stops_the_source_cleanly() -> None:
    gate = controller(Clock(1000.0), weekly_reserve=1000)
    gate.on_success({"X-LU-Rate-Limit-Remaining-Week": "1001"})
    await gate.acquire()
    gate.on_success({"X-LU-Rate-Limit-Remaining-Week": "1000"})
    with pytest.raises(BudgetReserveReached, match="reserve of 1000"):
        await gate.acquire()


def test_learned_rate() -> None:
    gate = controller(Clock(1000.0))
    assert gate.learned_rate() is None  # never refused: nothing learned, the next run starts at the share
    gate.on_success(HEADERS)
    assert gate.learned_rate() == pytest.approx(0.8 * 300 / 60)
    resumed = controller(Clock(1000.0), initial_rate=2.5)
    assert resumed.rate == 2.5
    assert controller(Clock(1000.0), initial_rate=50.0).rate == 0.8 * 5.0  # never past the share


async def test_requests_in_flight_count_against_the_remaining_budget() -> None:
    gate = controller(Clock(1000.0))
    gate.on_success(HEADERS)  # learns the window holds 300
    tickets = [await gate.acquire() for _ in range(5)]
    assert gate.in_flight == 5
    gate.on_success({"X-LU-Rate-Limit-Remaining-Minute": "64"}, tickets[0])  # 64 left, 4 still on the wire
    assert gate.pauses == 1  # 64 - 4 = 60: only the others' share is left
    for ticket in tickets[1:]:
        gate.on_other_outcome(ticket)
    assert gate.in_flight == 0
