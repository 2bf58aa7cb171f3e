"""How many requests the crawl plan spends, against one enrollments request per user, on one portal.

Run: .venv/bin/python -m benchmarks.crawl_plan --users 5000

Crawls a simulated portal (real dialect, 500-record pages, LearnUpon's 300-request limit in a window
compressed to 2 s) and counts the requests by purpose. The per-user alternative is counted on the same
ground truth: the same listings, except enrollments fetched with `/enrollments/search?user_id=` for
every user (one page each at least) instead of per course plus the mismatch fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path

from benchmarks._results import write_section
from crawler.orchestrator import crawl
from crawler.simulator.server import make_portals, run_simulator
from crawler.store import SnapshotStore
from idgraph.demo import demo_config

WINDOW = 2.0


async def measure(users: int) -> dict[str, object]:
    portals = make_portals(
        ["bench"], users=users, seed=42, groups=max(8, users // 50), courses=max(12, users // 40)
    )
    portal = portals[0]
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        config, _ = demo_config(sim)
        with tempfile.TemporaryDirectory() as tmp, SnapshotStore(Path(tmp) / "b.db") as store:
            started = time.perf_counter()
            result = await crawl(config, store)
            seconds = time.perf_counter() - started
    coverage = result.coverage[0]
    assert coverage.complete, coverage.error
    size = portal.spec.page_size
    per_user_enrollments = sum(
        max(1, math.ceil(len(portal.data.enrollments_of_user(uid)) / size)) for uid in portal.data.users
    )
    plan_enrollments = sum(
        coverage.requests_by_purpose.get(p, 0) for p in ("courses", "course_enrollments", "user_enrollments")
    )
    others = sum(coverage.requests_by_purpose.values()) - plan_enrollments
    return {
        "users": users,
        "records": coverage.records,
        "requests": coverage.requests,
        "throttled": coverage.throttled,
        "by_purpose": coverage.requests_by_purpose,
        "plan_enrollment_requests": plan_enrollments,
        "per_user_enrollment_requests": per_user_enrollments,
        "plan_total": sum(coverage.requests_by_purpose.values()),
        "per_user_total": others + per_user_enrollments,
        "seconds": seconds,
    }


def render(m: dict[str, object], command: str) -> str:
    purposes = ", ".join(f"{k} {v}" for k, v in sorted(m["by_purpose"].items()))  # type: ignore[union-attr]
    ratio = m["per_user_total"] / m["plan_total"]  # type: ignore[operator]
    return f"""## Crawl plan: requests on one {m["users"]:,}-user portal

Command: `{command}`

| approach | enrollment requests | all requests |
|---|---:|---:|
| idgraph plan (per course; per user on mismatch) | {m["plan_enrollment_requests"]:,} | {m["plan_total"]:,} |
| one enrollments request per user | {m["per_user_enrollment_requests"]:,} | {m["per_user_total"]:,} |

The per-user approach needs **{ratio:.1f}×** the requests. Requests by purpose: {purposes}.
{m["records"]:,} records in {m["seconds"]:.1f} s ({m["throttled"]} answered 429) with LearnUpon's 300-request
limit in a window compressed to {WINDOW:g} s.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    args = parser.parse_args()
    measured = asyncio.run(measure(args.users))
    text = render(measured, f".venv/bin/python -m benchmarks.crawl_plan --users {args.users}")
    write_section("crawl-plan", text)
    print(text)


if __name__ == "__main__":
    main()
