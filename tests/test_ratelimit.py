"""The rate controller's decisions, driven by a fake clock: pauses, cuts, growth, probes, reserves.

These check what the controller decides (deadlines, rates, counts), never how long anything took.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from crawler.errors import BudgetReserveReached
from crawler.ratelimit import RateController, Ticket, parse_retry_after

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


def test_one_cut_per_congestion_epoch_to_a_share_of_what_the_server_allowed() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    gate.rate = 8.0
    for i in range(120):  # the server let 120 requests through in the last minute: 2/s
        clock.now = 1000.0 + i * 0.5
        gate.on_success({})
    clock.now = 1060.0
    gate.on_throttled({}, Ticket(1059.9))
    assert gate.cuts == 1
    assert gate.rate == pytest.approx(0.8 * 120 / 60)
    for sent_at in (1059.95, 1059.99):  # in flight before the cut: the same congestion
        gate.on_throttled({}, Ticket(sent_at))
    assert gate.cuts == 1 and gate.throttled == 3
    clock.now = 1080.0
    gate.on_throttled({}, Ticket(1079.0))  # sent after the cut: a new epoch
    assert gate.cuts == 2


def test_without_headers_429_pauses_for_one_probe_and_doubles_while_probes_fail() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    first = gate.on_throttled({}, Ticket(999.0))
    assert first == pytest.approx(60 / 16)
    clock.now = 1004.0
    again = gate.on_throttled({}, Ticket(1003.9, probe=True))
    assert again == pytest.approx(60 / 8)
    gate.on_success({}, Ticket(1012.0, probe=True))
    assert not gate._probing


async def test_only_one_probe_goes_out_while_probing() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    gate.rate = 1000.0  # no pacing delay in this test
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


def test_slow_start_doubles_only_while_demand_exceeds_the_rate() -> None:
    clock = Clock(1000.0)
    gate = controller(clock)
    start = gate.rate
    clock.now += 6.0
    gate._maybe_grow(clock.now)  # no request waited: no growth
    assert gate.rate == start
    gate._demand = True
    clock.now += 6.0
    gate._maybe_grow(clock.now)
    assert gate.rate == 2 * start
    gate._demand = True
    clock.now += 60.0
    for _ in range(10):
        gate._demand = True
        clock.now += 6.0
        gate._maybe_grow(clock.now)
    assert gate.rate == pytest.approx(0.8 * 5.0)  # never past our share of the ceiling (300/min)


async def test_weekly_reserve_stops_the_source_cleanly() -> None:
    gate = controller(Clock(1000.0), weekly_reserve=1000)
    gate.on_success({"X-LU-Rate-Limit-Remaining-Week": "1001"})
    await gate.acquire()
    gate.on_success({"X-LU-Rate-Limit-Remaining-Week": "1000"})
    with pytest.raises(BudgetReserveReached, match="reserve of 1000"):
        await gate.acquire()


def test_learned_rate() -> None:
    gate = controller(Clock(1000.0))
    assert gate.learned_rate() is None
    gate.on_success(HEADERS)
    assert gate.learned_rate() == pytest.approx(0.8 * 300 / 60)
    resumed = controller(Clock(1000.0), initial_rate=2.5)
    assert resumed.rate == 2.5 and resumed.ssthresh == 2.5


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
