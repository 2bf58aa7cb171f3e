"""Rate-limit header parsing and the controller's pauses (counts and deadlines, never wall-clock waits)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from crawler.ratelimit import RateController, parse_retry_after


def test_retry_after_in_both_forms() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("7", now) == 7.0
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert parse_retry_after(date, now) == 30.0
    assert parse_retry_after("garbage", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) == 0.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_429_without_retry_after_waits_for_the_end_of_the_window() -> None:
    clock = Clock(1000.0)
    controller = RateController(ceiling=300, window_seconds=60, wall_clock=clock)
    await controller.acquire()  # the window opens with this request
    clock.now = 1040.0
    wait = controller.on_throttled({})
    assert controller.throttled == 1
    assert 20.0 < wait <= 20.02  # the window that opened at 1000 closes at 1060


def test_429_with_retry_after_pauses_that_long() -> None:
    clock = Clock(1000.0)
    controller = RateController(ceiling=300, window_seconds=60, wall_clock=clock)
    assert controller.on_throttled({"Retry-After": "5"}) == 5.0


def test_remaining_minute_header_keeps_the_others_share() -> None:
    clock = Clock(1000.0)
    controller = RateController(ceiling=300, window_seconds=60, budget_share=0.8, wall_clock=clock)
    controller.on_success(
        {"X-LU-Rate-Limit-Remaining-Minute": "299", "X-LU-Rate-Limit-Remaining-Week": "359920"}
    )
    assert controller.pauses == 0 and controller.remaining_week == 359920
    controller.on_success({"X-LU-Rate-Limit-Remaining-Minute": "61"})
    assert controller.pauses == 0
    controller.on_success({"X-LU-Rate-Limit-Remaining-Minute": "60"})  # 20% of 300 left: the others' share
    assert controller.pauses == 1
