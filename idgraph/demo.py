"""`idgraph demo`: the whole path on simulated portals, with nothing to set up.

The simulated portals run in-process on loopback with a time-compressed rate window (2 s instead of
60 s, same 300-request limit), so the demo finishes in seconds while still exercising pacing and 429s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from crawler.config import Config, parse_config
from crawler.idp.fakes import serve
from crawler.idp.fakes.okta import OktaFake, okta_users_from_people
from crawler.orchestrator import CrawlResult, LiveSource, crawl
from crawler.private import make_private_dirs
from crawler.progress import elapsed_seconds, print_summary, with_live_progress
from crawler.simulator.server import RunningSimulator, make_portals, run_simulator
from crawler.store import SnapshotStore
from crawler.terminal import escaped, readable
from graph.review import Review, review_run
from graph.rules import ReviewSettings

DEMO_WINDOW_SECONDS = 2.0
DEMO_PORTAL_NAMES = ("emea", "amer", "apac", "anz", "dach", "nordics", "latam", "uk")


DEMO_OKTA_TOKEN = "demo-okta-token-not-a-secret"


def demo_config(sim: RunningSimulator, okta_url: str | None = None) -> tuple[Config, dict[str, str]]:
    """A config for the running simulator (and fake Okta), with their synthetic credentials in a private
    env mapping rather than the process environment."""
    env: dict[str, str] = {}
    portals: list[dict[str, Any]] = []
    for portal in sim.portals:
        name = portal.spec.name
        var = name.upper().replace("-", "_").replace(".", "_")
        env[f"LU_{var}_USERNAME"] = portal.spec.username
        env[f"LU_{var}_PASSWORD"] = portal.spec.password
        portals.append(
            {
                "name": name,
                "base_url": sim.base_url(name),
                "username_env": f"LU_{var}_USERNAME",
                "password_env": f"LU_{var}_PASSWORD",
                "requests_per_minute": portal.spec.rate_limit_per_window,
                "rate_window_seconds": DEMO_WINDOW_SECONDS,
            }
        )
    raw: dict[str, Any] = {
        "review": {"managed_domains": ["acme.com", "acme.co.uk"], "dormant_days": 90},
        "portals": portals,
    }
    if okta_url is not None:
        env["OKTA_API_TOKEN"] = DEMO_OKTA_TOKEN
        raw["idps"] = [{"name": "okta", "type": "okta", "base_url": okta_url, "token_env": "OKTA_API_TOKEN"}]
    return parse_config(raw, env=env), env


def _names(count: int) -> list[str]:
    return [DEMO_PORTAL_NAMES[i] if i < len(DEMO_PORTAL_NAMES) else f"portal{i}" for i in range(count)]


@dataclass
class Demo:
    code: int  # the process exit code
    result: CrawlResult
    review: Review


async def run_demo(
    out: Path,
    *,
    portals: int,
    users: int,
    console: Console | None,
    results: Console | None,
    watch: bool = False,
) -> Demo:
    """Serve, crawl, summarise (and with `watch`, offboard someone and show the alert): progress on
    `console` (stderr), the tables, paths and alerts on `results` (stdout); None shows nothing there."""
    make_private_dirs(out)
    db = out / "idgraph.db"
    # Dates in the synthetic directory are relative to today, so "dormant" means what it says.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sims = make_portals(
        _names(portals), users=users, seed=7, reference_time=today, username_only_fraction=0.01
    )
    people = sims[0].population or []
    okta_fake = OktaFake(okta_users_from_people(people), token=DEMO_OKTA_TOKEN)
    okta = await serve(okta_fake.app())
    code = 0
    try:
        async with run_simulator(sims, window_seconds=DEMO_WINDOW_SECONDS) as sim:
            config, _ = demo_config(sim, okta.url)
            if console is not None:
                console.print(
                    f"simulating {portals} LearnUpon portals × {users} users on {sim.url} "
                    f"(rate window compressed to {DEMO_WINDOW_SECONDS:g} s) and an Okta org of "
                    f"{len(people)} people on {okta.url}",
                    highlight=False,
                )
            with SnapshotStore(db) as store:
                live: dict[str, LiveSource] = {}
                work = crawl(config, store, live=live)
                result = await (work if console is None else with_live_progress(console, live, work))
            review = review_run(
                db, out, run_id=result.run_id, settings=ReviewSettings.from_config(config.review)
            )
            if results is not None:
                print_summary(results, result.coverage)
                results.print(_throughput_table(result))
                results.print(_headline(review))
                for line in (
                    f"snapshot: {escaped(db)} (run {result.run_id})",
                    f"report:   {escaped(review.paths.get('html'))}",
                ):
                    results.print(line, highlight=False, soft_wrap=True)
            if watch:
                from idgraph.demo_watch import watch_demo

                shown = results or Console(stderr=True, quiet=True)
                code = await watch_demo(config, db, result.run_id, okta_fake, out, shown, results is None)
    finally:
        await okta.close()
    return Demo(code or (0 if result.complete else 3), result, review)


def _headline(review: Review) -> Table:
    """The numbers a reviewer looks at first."""
    by_code: dict[str, int] = {}
    people: dict[str, set[str]] = {}
    for finding in review.findings.findings:
        by_code[finding.code.value] = by_code.get(finding.code.value, 0) + 1
        people.setdefault(finding.code.value, set()).add(finding.person or finding.email or "")
    table = Table(title="findings")
    for column in ("finding", "accounts", "people"):
        table.add_column(column, justify="left" if column == "finding" else "right")
    for code in sorted(by_code):
        table.add_row(code, str(by_code[code]), str(len(people[code])))
    return readable(table)


def _throughput_table(result: CrawlResult) -> Table:
    table = Table(title="throughput")
    for column in ("source", "records", "requests", "429s", "seconds", "records/s"):
        table.add_column(column, justify="left" if column == "source" else "right")
    total_records = total_requests = 0
    longest = 0.0
    for cov in result.coverage:
        seconds = elapsed_seconds(cov.started_at, cov.finished_at) or 0.0
        longest = max(longest, seconds)
        total_records += cov.records
        total_requests += cov.requests
        rate = cov.records / seconds if seconds else 0.0
        table.add_row(
            cov.source,
            str(cov.records),
            str(cov.requests),
            str(cov.throttled),
            f"{seconds:.2f}",
            f"{rate:,.0f}",
        )
    overall = total_records / longest if longest else 0.0
    table.add_row(
        "all (wall)", str(total_records), str(total_requests), "", f"{longest:.2f}", f"{overall:,.0f}"
    )
    return readable(table)
