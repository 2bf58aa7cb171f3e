"""Rate adaptation at LearnUpon's real time scale (issue 16): 60 s windows, pages of 500, nothing compressed.

Run: .venv/bin/python -m benchmarks.realtime            (about 25 minutes)
     .venv/bin/python -m benchmarks.realtime --quick    (short crawls only, no compressed re-run)

Every scenario is a simulated portal of its own, with its own server limit, and runs twice at once on
twin portals: idgraph (`crawl()`, the orchestrator behind `idgraph crawl`, every idgraph portal of a phase
in one call) and the rate control idgraph had before issue 16 (`benchmarks/baselines/window_epochs.py`,
the same plan and HTTP client). Portals never share a limit, so the scenarios run side by side, in two
phases (without rate headers, then with) so that fewer portals share the crawler's event loop. The
simulator runs in a spawned process (`benchmarks/sim_process.py`) that records when every request reached
a portal's limiter and whether it was admitted: the sending rate and the 429s below are the server's view.

After the real-time part, the compressed scenarios 1–3 of `benchmarks.crawl` run again (imported, not
changed) to show that the header-paced path and the compressed numbers did not regress.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import crawl as compressed
from benchmarks._results import publish, write_section
from benchmarks.baselines.fixed_rate import crawl_with_controller
from benchmarks.baselines.window_epochs import WindowEpochController
from benchmarks.sim_process import PortalInfo, SimProcess, SimSpec
from crawler.config import Config
from crawler.orchestrator import crawl
from crawler.simulator.pace import Arrivals
from crawler.store import SnapshotStore

WINDOW = 60.0  # LearnUpon's rate window, not compressed
CEILING = 300  # the config's requests_per_minute (LearnUpon's measured limit, and the default)
BURST = 5  # what the token buckets hold
SHORT_USERS, LONG_USERS = 5_000, 20_000  # ~330 and ~1,070 requests at pages of 500
SPAN = 10  # the sending rate is measured over this many consecutive requests, 429s included
TOLERANCE = 0.10  # "settled": from then on every such rate is within 10% of the allowed rate


@dataclass(frozen=True)
class Scenario:
    key: str
    limiter: str  # "token_bucket" or "fixed_window"
    limit: int  # the server's real limit per window
    headers: bool
    users: int = SHORT_USERS
    share: float = 0.8  # the config's budget_share

    @property
    def allowed_rate(self) -> float:
        """budget_share × min(the server's real limit, the ceiling) ÷ the window."""
        return self.share * min(self.limit, CEILING) / WINDOW

    @property
    def where(self) -> str:
        return "below" if self.limit < CEILING else "at" if self.limit == CEILING else "above"

    @property
    def title(self) -> str:
        kind = "token bucket (burst 5)" if self.limiter == "token_bucket" else "fixed window"
        share = "" if self.share == 0.8 else f", budget_share {self.share:g}"
        length = "short" if self.users == SHORT_USERS else "long"
        return (
            f"{kind}, limit {self.limit} ({self.where} the ceiling){share}, {self.users:,} users ({length})"
        )


SHORT = [
    Scenario("tb-below", "token_bucket", 150, False),
    Scenario("tb-at", "token_bucket", 300, False),
    Scenario("tb-above", "token_bucket", 450, False),
    Scenario("tb-at-full", "token_bucket", 300, False, share=1.0),
    Scenario("fw-below", "fixed_window", 150, False),
    Scenario("fw-at", "fixed_window", 300, False),
    Scenario("fw-above", "fixed_window", 450, False),
    Scenario("fw-at-full", "fixed_window", 300, False, share=1.0),
    Scenario("hd-at", "fixed_window", 300, True),
    Scenario("hd-below", "fixed_window", 150, True),
]
LONG = [
    Scenario("tb-below-long", "token_bucket", 150, False, LONG_USERS),
    Scenario("fw-below-long", "fixed_window", 150, False, LONG_USERS),
    Scenario("hd-at-long", "fixed_window", 300, True, LONG_USERS),
]
CRAWLERS = ("idgraph", "before")  # the twin portals: `{key}_new` and `{key}_old`


def portal_name(scenario: Scenario, crawler: str) -> str:
    return f"{scenario.key.replace('-', '_')}_{'new' if crawler == 'idgraph' else 'old'}"  # env var names


# --- measuring ----------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Result(Arrivals):
    """One crawler on one scenario's portal; `sends` is the server's view (arrival time, admitted)."""

    scenario: Scenario
    crawler: str
    minimal: int
    seconds: float  # idgraph: its coverage timestamps; the baseline: wall time of its crawl
    complete: bool

    @property
    def ideal(self) -> float:
        return self.minimal / self.scenario.allowed_rate

    @property
    def eta(self) -> float:
        return self.ideal / self.seconds

    @property
    def ratio_429(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    def first_429(self) -> float | None:
        """Seconds from the first request to the first refused one."""
        return next((t - self.sends[0][0] for t, ok in self.sends if not ok), None)

    def settled_after(self) -> float | None:
        """Seconds from the first request until the sending rate stays within `TOLERANCE` of the allowed
        rate (`crawler.simulator.pace`); None if it never does."""
        index = self.settled_at(self.scenario.allowed_rate, SPAN, TOLERANCE)
        return self.sends[index][0] - self.sends[0][0] if index < self.requests - SPAN else None

    def last_excursion(self) -> str:
        """The last `SPAN` requests whose rate was outside `TOLERANCE`: when, how fast, any 429 among them."""
        index = self.settled_at(self.scenario.allowed_rate, SPAN, TOLERANCE) - 1
        if index < 0:
            return "none"
        span = self.sends[index : index + SPAN + 1]
        rate = SPAN / (span[-1][0] - span[0][0]) / self.scenario.allowed_rate
        refused = sum(1 for _, ok in span if not ok)
        return (
            f"requests {index + 1}–{index + SPAN + 1}, {span[0][0] - self.sends[0][0]:.1f} s in, at "
            f"{rate:.2f}× the allowed rate, {refused} of them 429s"
        )


def config_for(scenarios: Sequence[Scenario], portals: dict[str, PortalInfo]) -> Config:
    """The benchmark's usual config (`benchmarks.crawl.config_for`: ceiling 300, 60 s) with each
    scenario's budget share."""
    twins = [portals[portal_name(s, "idgraph")] for s in scenarios]
    config = compressed.config_for(twins, WINDOW)
    shares = {portal_name(s, "idgraph"): s.share for s in scenarios}
    portals_cfg = [p.model_copy(update={"budget_share": shares[p.name]}) for p in config.portals]
    return config.model_copy(update={"portals": portals_cfg})


def _seconds(start: str | None, end: str | None) -> float:
    assert start and end
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def run_idgraph(
    scenarios: Sequence[Scenario], portals: dict[str, PortalInfo], tmp: Path
) -> dict[str, tuple[float, bool]]:
    """Every scenario's idgraph twin in one `crawl()`: seconds and completeness per portal."""
    config = config_for(scenarios, portals)
    with SnapshotStore(tmp / "idgraph.db") as store:
        result = await crawl(config, store)
        return {
            c.source: (
                _seconds(c.started_at, c.finished_at),
                c.complete and compressed._matches_truth(store, result.run_id, portals[c.source]),
            )
            for c in result.coverage
        }


async def run_before(scenario: Scenario, portals: dict[str, PortalInfo], tmp: Path) -> tuple[float, bool]:
    """The scenario's other twin, with the rate control from before issue 16."""
    p = portals[portal_name(scenario, "before")]
    config = compressed.config_for([p], WINDOW)
    portal = config.portals[0].model_copy(update={"budget_share": scenario.share})
    controller = WindowEpochController(CEILING, WINDOW, scenario.share)
    with SnapshotStore(tmp / f"{p.name}.db") as store:
        started = time.perf_counter()
        run_id, _ = await crawl_with_controller(portal, config.crawl, store, controller)
        seconds = time.perf_counter() - started
        return seconds, compressed._matches_truth(store, run_id, p)


def simulator(scenarios: Sequence[Scenario]) -> SimProcess:
    """One simulator process for a phase's scenarios (all with rate headers, or none), both twins of each."""
    per_portal: dict[str, dict[str, Any]] = {}
    for s in scenarios:
        for crawler in CRAWLERS:
            per_portal[portal_name(s, crawler)] = {
                **compressed.shape(s.users),
                "users": s.users,
                "rate_limit_per_window": s.limit,
                "rate_limiter": s.limiter,
                "rate_burst": BURST,
            }
    faults = None if scenarios[0].headers else {"rate_headers": False}
    spec = SimSpec(list(per_portal), SHORT_USERS, WINDOW, faults=faults, per_portal=per_portal, trace=True)
    return SimProcess(spec)


@dataclass
class Phase:
    """Scenarios crawled at once, and how late the crawler's event loop woke meanwhile (seconds)."""

    label: str
    portals: int
    wall: float
    lag: list[float]

    def lag_line(self) -> str:
        ordered = sorted(self.lag) or [0.0]
        p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99))
        return (
            f"{self.label}: {self.portals} portals at once for {self.wall / 60:.1f} minutes; the crawler's "
            f"event loop woke {1000 * p50:.0f} / {1000 * p99:.0f} / {1000 * ordered[-1]:.0f} ms late "
            f"(p50 / p99 / max of a {1000 * compressed.LAG_TICK:.0f} ms sleep)"
        )


async def run_phase(label: str, scenarios: Sequence[Scenario]) -> tuple[list[Result], Phase]:
    """Both twins of every scenario at once: idgraph's in one `crawl()`, the others beside it."""
    sim = simulator(scenarios)
    try:
        portals = {p.name: p for p in await asyncio.to_thread(sim.ready)}
        sim.reset()
        log(f"{label}: {len(scenarios)} scenarios × 2 crawlers, {len(portals)} portals at once")
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp, compressed.LoopLag() as lag:
            jobs = [run_idgraph(scenarios, portals, Path(tmp))]
            jobs += [run_before(s, portals, Path(tmp)) for s in scenarios]
            idgraph, *before = await asyncio.gather(*jobs)
        phase = Phase(label, len(portals), time.perf_counter() - started, lag.samples)
        traces = sim.trace()
    finally:
        sim.close()
    results = []
    for s, (before_seconds, before_complete) in zip(scenarios, before, strict=True):
        for crawler, (seconds, complete) in (
            ("idgraph", idgraph[portal_name(s, "idgraph")]),
            ("before", (before_seconds, before_complete)),
        ):
            name = portal_name(s, crawler)
            minimal = sum(portals[name].minimal.values())
            results.append(
                Result(
                    sends=traces[name],
                    scenario=s,
                    crawler=crawler,
                    minimal=minimal,
                    seconds=seconds,
                    complete=complete,
                )
            )
    return results, phase


async def run_realtime(scenarios: Sequence[Scenario]) -> tuple[list[Result], list[Phase]]:
    """The scenarios without rate headers at once, then those with: fewer portals share the crawler's
    event loop, whose lateness would otherwise show in every portal's sending rate."""
    results: list[Result] = []
    phases: list[Phase] = []
    for label, headers in (("without rate headers", False), ("with rate headers", True)):
        chosen = [s for s in scenarios if s.headers == headers]
        if chosen:
            found, phase = await run_phase(label, chosen)
            results += found
            phases.append(phase)
    return results, phases


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- report -------------------------------------------------------------------------------------------
HEADER = (
    "| scenario | crawler | requests sent | minimal | seconds | ideal s | η | 429s (ratio) "
    "| settled within 10% after | snapshot = truth |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
)


def _settled(r: Result) -> str:
    if r.scenario.headers:
        return "–"  # header pacing jitters every gap by ±50% on purpose: no 10-request span is steady
    after = r.settled_after()
    return "never" if after is None else f"{after:.1f} s"


def rows(results: Sequence[Result]) -> list[str]:
    out = []
    for r in results:
        crawler = "**idgraph**" if r.crawler == "idgraph" else "before (window epochs)"
        out.append(
            f"| {'with' if r.scenario.headers else 'no'} headers, {r.scenario.title} | {crawler} | "
            f"{r.requests:,} | {r.minimal:,} | {r.seconds:.1f} | {r.ideal:.1f} | **{r.eta:.2f}** | "
            f"{r.throttled} ({100 * r.ratio_429:.1f}%) | {_settled(r)} | "
            f"{'yes' if r.complete else '**NO**'} |"
        )
    return out


def _when(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def verdicts(results: Sequence[Result]) -> list[str]:
    """Each idgraph row against the targets, beside its twin from before issue 16."""
    before = {r.scenario.key: r for r in results if r.crawler == "before"}
    out = []
    for r in results:
        if r.crawler != "idgraph":
            continue
        s, old = r.scenario, before[r.scenario.key]
        change = (
            f"η {old.eta:.2f} → **{r.eta:.2f}**, 429s {100 * old.ratio_429:.1f}% → {100 * r.ratio_429:.1f}%"
        )
        if s.headers:
            ok = r.eta >= 0.90 and r.ratio_429 <= 0.01
            out.append(f"- {s.key} (η ≥ 0.90, ≤ 1% 429s): {'met' if ok else '**not met**'}; {change}")
            continue
        after = r.settled_after()
        ok = r.eta >= 0.90 and r.ratio_429 <= 0.03 and after is not None and after <= 10
        line = (
            f"- {s.key} (η ≥ 0.90, ≤ 3% 429s, settled in ≤ 10 s): {'met' if ok else '**not met**'}; "
            f"{change}, settled {_when(old.settled_after())} → {_when(after)}"
        )
        first = r.first_429()
        if after is None or after > 10:
            line += f". Last excursion: {r.last_excursion()}"
        if not ok and s.limiter == "fixed_window" and s.limit < CEILING * s.share and first is not None:
            line += (
                f". The first 429 came {first:.1f} s in: until the window runs out (its {s.limit} requests "
                f"at our share of the ceiling, {0.8 * CEILING / WINDOW:g}/s) it says nothing, so nothing "
                "can settle before it reopens"
            )
        out.append(line)
    return out


def compressed_rows(runs: dict[str, list[Any]], sizes: compressed.Sizes) -> list[str]:
    s1, s2a, s2b, s3 = (runs[k] for k in ("s1", "s2a", "s2b", "s3"))
    return [
        *compressed.single_rows(f"1. headers, fixed window ({sizes.s1_users:,} users)", s1[:1]),
        *compressed.single_rows(f"2a. no headers, fixed window ({sizes.s2_users:,} users)", s2a[:1]),
        *compressed.single_rows(f"2b. no headers, token bucket ({sizes.s2_users:,} users)", s2b[:1]),
        *compressed.single_rows(f"3. headers, fixed window ({sizes.s3_users:,} users)", s3[:1]),
    ]


def render(
    results: Sequence[Result],
    phases: Sequence[Phase],
    runs: dict[str, list[Any]] | None,
    command: str,
    elapsed: float,
) -> str:
    compressed_part = ""
    if runs is not None:
        compressed_part = f"""
### The compressed scenarios 1–3 again (`benchmarks.crawl`, same invocation, after the real-time part)

The same scenarios and definitions as in the crawl section above (5 s windows, 2 s in scenario 3), idgraph
rows only, measured by this command with this branch's controller; compare with the idgraph rows there.

{compressed.SINGLE_HEADER}
{chr(10).join(compressed_rows(runs, compressed.FULL))}
"""
    return f"""## Rate adaptation at LearnUpon's real time scale (issue 16)

Command: `{command}` ({elapsed / 60:.1f} minutes on this 2-core machine, shared with other work).

**Setup.** LearnUpon's 60 s window and pages of 500, nothing time-compressed; the config's ceiling is
{CEILING} requests per window (`requests_per_minute`), `budget_share` 0.8 unless a row says otherwise.
Every row is its own simulated portal with its own limit; each scenario has twin portals, one crawled by
idgraph (`crawl()`, all idgraph portals of a phase in one call), the other by *before*: the
rate control idgraph had before issue 16 (`benchmarks/baselines/window_epochs.py`: slow start from a
quarter of the ceiling in window/20 epochs, a cut to 0.8 × the last window's successes, first probe after
window/16), with the same crawl plan and HTTP client. *No headers*: the portal sends no
`X-LU-Rate-Limit-*` headers and no `Retry-After`, so a 429 is the only signal. Token buckets hold
{BURST} requests.

**Definitions.**
- *Allowed rate* = `budget_share` × min(the server's real limit, the ceiling) ÷ 60 s. A server limit
  above the ceiling allows no more than the ceiling: the config says so.
- *Minimal*: the portal's minimal plan (`crawler/simulator/plan.py`); *ideal s* = minimal ÷ allowed rate;
  *η* = ideal s ÷ seconds. *Seconds*: idgraph's coverage timestamps (start to finish of the portal's
  crawl), the baseline's wall time. A crawl that takes the others' share scores η > 1.
- *429 ratio* = 429 answers ÷ requests sent, counted by the simulator.
- *Settled within 10% after*: the sending rate is measured over every {SPAN} consecutive requests (429s
  included) as they reached the server; the time from the portal's first request to the first request
  from which every such rate, to the end of the crawl, is within 10% of the allowed rate. *never*: it was
  still outside at the end.

Phases, one after the other (the portals of a phase are crawled at once, both twins side by side):
{chr(10).join(f"- {phase.lag_line()}" for phase in phases)}

{HEADER}
{chr(10).join(rows(results))}

Against the targets (idgraph rows; before → after, the twins of one scenario):
{chr(10).join(verdicts(results))}

**What cannot be met, and the closest right thing.** A fixed window whose limit is below our share of the
ceiling answers every request until it runs out; the first 429 comes when the window is spent, and from
then to its reset every request is refused. No pacing can learn the limit sooner without slowing down on
every portal whose limit is the ceiling (most of them). idgraph spends that window, probes a handful of
times, waits for it to reopen (read from its own first success in the window, + 60 s) and paces at our
share of what the window held: it settles as the window reopens (the fixed-window rows above). Likewise a
server whose limit lies between our share of the ceiling and the ceiling never refuses our share of the
ceiling, so nothing says the share should be lower (not in the table: such a row reads η up to
1 ÷ 0.8 = 1.25, with no 429). And a token bucket that holds a single request (no burst) throws away the
refills it cannot hold while we pace, so it accepts less than it refills: idgraph settles low, about
η 0.8 in virtual time, within the 429 budget
(`tests/test_ratelimit.py::test_a_limiter_without_burst_is_underestimated_but_never_hammered`).
{compressed_part}"""


async def run_compressed() -> dict[str, list[Any]]:
    sizes = compressed.FULL
    return {
        "s1": await compressed.scenario_headers(sizes),
        "s2a": await compressed.scenario_no_headers(sizes, "fixed_window"),
        "s2b": await compressed.scenario_no_headers(sizes, "token_bucket"),
        "s3": await compressed.scenario_seed_guide(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short crawls only, no compressed re-run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument(
        "--only", metavar="KEYS", help="comma-separated scenario keys (a trial: implies --no-write)"
    )
    args = parser.parse_args()
    scenarios = SHORT if args.quick else SHORT + LONG
    if args.only:
        keys = args.only.split(",")
        scenarios = [s for s in SHORT + LONG if s.key in keys]
        args.no_write = True
    started = time.perf_counter()
    command = ".venv/bin/python -m benchmarks.realtime" + (" --quick" if args.quick else "")
    results, phases = asyncio.run(run_realtime(scenarios))
    text = render(results, phases, None, command, time.perf_counter() - started)
    if args.quick or args.only:
        publish("realtime", text, write=not args.no_write)
        return
    log(text)  # the real-time part took many minutes: keep it even if the rest fails
    if not args.no_write:
        write_section("realtime", text)
    runs = asyncio.run(run_compressed())
    publish(
        "realtime",
        render(results, phases, runs, command, time.perf_counter() - started),
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
