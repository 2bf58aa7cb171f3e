"""A client's sending rate as a server saw it: how many requests, how many refused, when it settled.

Used by the rate controller's tests (modelled servers in virtual time) and by the real-time benchmark
(the simulator's own record of arrivals), so both judge "settled" the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


def settled_at(arrivals: Sequence[float], target: float, span: int = 10, tolerance: float = 0.10) -> int:
    """The index of the first request from which the sending rate — over every `span` consecutive
    requests, to the end — stays within `tolerance` of `target` (requests/s); `len(arrivals)` if the
    rate was still outside over the last `span` requests (or there are too few to tell)."""
    settled = len(arrivals)
    for i in range(len(arrivals) - span - 1, -1, -1):
        rate = span / max(arrivals[i + span] - arrivals[i], 1e-9)
        if abs(rate / target - 1.0) > tolerance:
            break
        settled = i
    return settled


@dataclass
class Arrivals:
    """Every request a server's limiter judged, in arrival order: (time, admitted)."""

    sends: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.sends)

    @property
    def throttled(self) -> int:
        return sum(1 for _, ok in self.sends if not ok)

    def settled_at(self, target: float, span: int = 10, tolerance: float = 0.10) -> int:
        return settled_at([t for t, _ in self.sends], target, span, tolerance)
