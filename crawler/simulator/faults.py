"""Fault knobs for one simulated portal, and the seeded dice that decide when they fire.

Every request draws the same number of random numbers whatever the knobs, so a given seed and request order
always produce the same faults — a failing test can be replayed exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .dataset import PortalData

Mutator = Callable[["PortalData", int], None]
FaultAction = Literal["reset", "error", "throttle", "fail"]


@dataclass
class FaultConfig:
    """What can go wrong on one portal. The defaults inject nothing."""

    error_rate: float = 0.0  # probability of a 5xx instead of the answer
    error_statuses: tuple[int, ...] = (500, 502, 503)
    reset_rate: float = 0.0  # probability of closing the connection without any response
    truncate_rate: float = 0.0  # probability of a 200 whose JSON body is cut in half
    throttle_rate: float = 0.0  # probability of a 429 even under the rate limit (a shared-budget burst)
    latency: float | tuple[float, float] = 0.0  # seconds added to every request, fixed or (min, max)
    retry_after: Literal["seconds", "http-date"] | None = None  # the real API sends no Retry-After
    rate_headers: bool | None = None  # X-LU-Rate-Limit-Remaining-* on 2xx; None: yes in the real dialect only
    ignored_filters: frozenset[str] = frozenset()  # query filters the portal silently ignores
    # Request numbers below count from 1 since this config was set on the portal.
    mutate: Mutator | None = None  # called with (data, request number) before each request is served
    silent_noop_writes: bool = False  # writes answer 200 and change nothing
    fail_after: int | None = None  # serve this many requests, then 500 for good
    # Route templates ("courses", "enrollments/search") this portal lacks: they answer 404, as an older or
    # restricted API does (the seed guide lists neither groups nor courses).
    missing_endpoints: frozenset[str] = frozenset()
    # (route template, query parameter, value) listings that answer 500 for good, e.g. one course's
    # enrollments: ("enrollments/search", "course_id", "12").
    broken_listings: frozenset[tuple[str, str, str]] = frozenset()
    seed: int = 0

    def __post_init__(self) -> None:
        self.ignored_filters = frozenset(self.ignored_filters)
        self.missing_endpoints = frozenset(self.missing_endpoints)
        self.broken_listings = frozenset(self.broken_listings)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What happens to one request, decided before it is served."""

    action: FaultAction | None = None
    status: int = 200  # for "error"
    truncate: bool = False
    latency: float = 0.0


NO_FAULT = FaultDecision()


@dataclass
class FaultInjector:
    """Turns a FaultConfig into per-request decisions, deterministically in request order."""

    config: FaultConfig
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"faults:{self.config.seed}")

    def decide(self, request_number: int) -> FaultDecision:
        """The fate of the `request_number`-th request (1-based) this portal receives."""
        c = self.config
        r_reset, r_error, r_status, r_truncate, r_throttle, r_latency = (self.rng.random() for _ in range(6))
        if isinstance(c.latency, tuple):
            latency = c.latency[0] + (c.latency[1] - c.latency[0]) * r_latency
        else:
            latency = c.latency
        if c.fail_after is not None and request_number > c.fail_after:
            return FaultDecision("fail", 500, latency=latency)
        if r_reset < c.reset_rate:
            return FaultDecision("reset", latency=latency)
        if r_error < c.error_rate:
            status = c.error_statuses[int(r_status * len(c.error_statuses))]
            return FaultDecision("error", status, latency=latency)
        if r_throttle < c.throttle_rate:
            return FaultDecision("throttle", 429, latency=latency)
        truncate = r_truncate < c.truncate_rate
        if not truncate and not latency:
            return NO_FAULT
        return FaultDecision(truncate=truncate, latency=latency)
