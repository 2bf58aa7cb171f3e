"""The watcher against issue 19's targets: detection latency, API cost, SIGKILL restarts, a crawl agreeing.

Run: .venv/bin/python -m benchmarks.watch --portals 20 --interval 10 --offboardings 6 --kills 20

Everything runs on loopback: the LearnUpon simulator (`--portals` portals), the fake Okta with its System
Log, a signed-webhook receiver and a JSON-lines file, after one crawl.
1. Latency: `idgraph watch` runs in-process every `--interval` seconds; people are deactivated in Okta at
   random moments; latency is the time from the deactivation to the alert's arrival at the webhook.
2. Cost: `/users/search` requests per offboarded person (the simulator counts them) and System Log requests
   per round (the fake counts them); the weekly share of LearnUpon's 500,000-request budget per portal.
3. Restarts: `idgraph watch` as a subprocess, SIGKILLed `--kills` times at random moments while a stream
   of offboardings arrives; every alert must reach the file once and the webhook (by idempotency key) once.
4. Agreement: a crawl afterwards must give every finding the watcher raised, with the same ids.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from benchmarks._results import write_section
from crawler.config import JsonLinesAlert, WebhookAlert
from crawler.idp.fakes import serve
from crawler.orchestrator import crawl
from crawler.simulator.faults import FaultConfig
from crawler.store import INCREMENTAL, SnapshotStore
from crawler.watch import tables
from crawler.watch.receiver import WebhookReceiver
from graph.api import load_run
from graph.model import Code
from idgraph.demo_watch import SimulatedEstate, offboarding_candidates, simulated_estate
from idgraph.watch import watch

SECRET = "bench-webhook-secret-0123456789"
WEEKLY_BUDGET = 500_000  # LearnUpon's measured week budget per portal (learnupon-api.md)
USERS = 150


def _searches(estate: SimulatedEstate) -> int:
    return sum(p.stats.by_endpoint.get("GET /users/search", 0) for p in estate.sims)


def _searched_addresses(estate: SimulatedEstate, marks: list[int]) -> list[str]:
    """The addresses `/users/search` was asked for since `marks` (each portal's log length then)."""
    return [
        query.get("email", "").casefold()
        for sim, mark in zip(estate.sims, marks, strict=True)
        for _, path, query, _ in itertools.islice(sim.stats.log, mark, None)
        if path == "/users/search"
    ]


def _log_requests(estate: SimulatedEstate) -> int:
    return sum(1 for e in estate.okta.exchanges if e.path == "/api/v1/logs")


@asynccontextmanager
async def _estate(
    portals: int, seed: int, **okta: Any
) -> AsyncIterator[tuple[SimulatedEstate, WebhookReceiver, str]]:
    """A crawled estate of `portals` portals in a temporary directory, and a webhook receiver."""
    receiver = WebhookReceiver(SECRET.encode())
    hook = await serve(receiver.app())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            names = [f"p{i:02d}" for i in range(portals)]
            async with simulated_estate(Path(tmp) / "w.db", names, users=USERS, seed=seed, **okta) as estate:
                yield estate, receiver, f"{hook.url}/alerts"
    finally:
        await hook.close()


async def latency_and_cost(portals: int, interval: float, offboardings: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    async with _estate(portals, seed) as (estate, receiver, hook_url):
        tmp = estate.db.parent
        secret = SecretStr(SECRET)
        alerts = [
            JsonLinesAlert(name="siem", type="jsonl", path=str(tmp / "alerts.jsonl")),
            WebhookAlert(name="hook", type="webhook", url=hook_url, secret_env="H", secret=secret),
        ]
        config = estate.config.model_copy(update={"alerts": alerts})
        people = offboarding_candidates(estate.db, estate.run_id, "okta")[:offboardings]
        their_addresses = {a for okta_id, _, _ in people for a in estate.addresses(okta_id)}
        addresses = sum(len(estate.addresses(okta_id)) for okta_id, _, _ in people)
        marks = [len(sim.stats.log) for sim in estate.sims]
        searches0, logs0, started = _searches(estate), _log_requests(estate), time.time()
        task = asyncio.create_task(watch(config, estate.db, interval=interval, once=False, summary=False))
        await asyncio.sleep(interval * 1.5)  # the feed starts (its baseline) before anyone leaves
        deactivated: dict[str, float] = {}
        for okta_id, address, _ in people:
            await asyncio.sleep(rng.uniform(0, interval * 1.2))
            estate.okta.deactivate(okta_id)
            deactivated[address] = time.time()
        expected = sum(n for _, _, n in people)
        for _ in range(int((interval + 30) * 10)):
            if len(receiver.alerts) >= expected:
                break
            await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        elapsed = time.time() - started
        arrivals: dict[str, float] = {}
        for key, alert in receiver.alerts.items():
            person = alert["person"]
            arrivals[person] = max(arrivals.get(person, 0.0), receiver.received_at[key])
        latencies = [arrivals[a] - deactivated[a] for a in deactivated if a in arrivals]
        searches = _searches(estate) - searches0
        searched = _searched_addresses(estate, marks)
        proofs = sum(1 for a in searched if a not in their_addresses)
        logs = _log_requests(estate) - logs0
    rounds = elapsed / interval
    return {
        "portals": portals,
        "interval": interval,
        "offboarded": len(people),
        "alerts": len(receiver.alerts),
        "expected": expected,
        "latencies": latencies,
        "searches": searches,
        "person_searches": searches - proofs,
        "proofs": proofs,
        "searches_per_person": searches / max(1, len(people)),
        "addresses": addresses,
        "log_requests": logs,
        "log_per_round": logs / max(1.0, rounds),
    }


def _alert_tables(path: Path, hook_url: str) -> str:
    return (
        f'[[alerts]]\nname = "siem"\ntype = "jsonl"\npath = "{path}"\n\n'
        f'[[alerts]]\nname = "hook"\ntype = "webhook"\nurl = "{hook_url}"\nsecret_env = "HOOK"\n'
    )


class WatchProcess:
    """`idgraph watch` as a subprocess that can be killed and started again."""

    def __init__(self, config: Path, db: Path, env: dict[str, str], log: Path) -> None:
        self.args = [sys.executable, "-m", "idgraph.cli", "watch", "--config", str(config), "--db", str(db),
                     "--interval", "1", "--log-format", "json"]  # fmt: skip
        self.env, self.log = {**os.environ, **env}, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=err
            )

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.proc.wait()


async def restarts(portals: int, offboardings: int, kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    async with _estate(portals, seed, logs_rate_limit=600) as (estate, receiver, hook_url):
        root = estate.db.parent
        config = root / "idgraph.toml"
        config.write_text(estate.toml(_alert_tables(root / "alerts.jsonl", hook_url)))
        people = offboarding_candidates(estate.db, estate.run_id, "okta")[:offboardings]
        for portal in estate.sims:  # lookups take a while: kills land mid-batch
            portal.faults = FaultConfig(latency=(0.1, 0.5))
        process = WatchProcess(config, estate.db, {**estate.env, "HOOK": SECRET}, root / "watch.log")
        await process.start()
        for _ in range(300):
            with SnapshotStore(estate.db) as store:
                if tables.load_cursor(store, "idp:okta") is not None:
                    break
            await asyncio.sleep(0.1)
        kill_times = sorted(rng.uniform(0, offboardings * 0.5) for _ in range(kills))
        leave_times = sorted(rng.uniform(0, offboardings * 0.5) for _ in range(offboardings))
        events = sorted([(t, "kill") for t in kill_times] + [(t, "leave") for t in leave_times])
        clock, left = 0.0, 0
        for moment, what in events:
            await asyncio.sleep(moment - clock)
            clock = moment
            if what == "kill":
                await process.kill()
                await process.start()
            else:
                estate.okta.deactivate(people[left][0])
                left += 1
        okta_ids = [okta_id for okta_id, _, _ in people]
        expected = {
            (p, i) for okta_id in okta_ids for p, ids in estate.enabled_accounts(okta_id).items() for i in ids
        }
        for _ in range(1200):
            if estate.processed(okta_ids):
                break
            await asyncio.sleep(0.1)
        code = await process.stop()
        lines = _lines(root / "alerts.jsonl")
        with SnapshotStore(estate.db) as store:
            pending = sum(1 for row in tables.outbox(store) if not row["delivered_at"])
            # a round the kill cut short never saved its coverage: the next process closed its run
            cut_short = sum(1 for run in store.runs(INCREMENTAL) if not store.coverage(run.id))
            later = (await crawl(estate.config, store)).run_id
            with load_run(store, later) as graph:
                offboarded = {address for _, address, _ in people}
                crawl_ids = {
                    f.id for f in graph.findings().findings
                    if f.code is Code.IDP_DISABLED_ACTIVE and f.person in offboarded
                }  # fmt: skip
    ids = [a["alert_id"] for a in lines]
    got = {(a["portal"], a["learnupon_user_id"]) for a in lines}
    watch_ids = {a["finding_id"] for a in lines}
    return {
        "portals": portals,
        "offboarded": len(people),
        "kills": kills,
        "expected": len(expected),
        "file_alerts": len(ids),
        "file_duplicates": len(ids) - len(set(ids)),
        "lost": len(expected - got),
        "unexpected": len(got - expected),
        "webhook_keys": len(receiver.alerts),
        "webhook_redeliveries": receiver.repeats,
        "webhook_lost": len(set(ids) - set(receiver.alerts)),
        "pending_after": pending,
        "cut_short": cut_short,
        "exit_code": code,
        "crawl_agrees": watch_ids == crawl_ids,
        "crawl_findings": len(crawl_ids),
    }


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def report(
    command: str, cost: dict[str, Any], kill: dict[str, Any], per_week: int, week_interval: float
) -> str:
    lat = cost["latencies"]
    bound = cost["interval"] + 5
    rounds_per_week = 7 * 24 * 3600 / week_interval
    per_portal_week = per_week * cost["searches_per_person"] / cost["portals"]
    audit_per_week = rounds_per_week  # only with [watch] remediation_log: one audit-trail request per round
    lookups = cost["portals"] * cost["addresses"]
    per_address = cost["person_searches"] == lookups
    equation = f"{cost['person_searches']} = {cost['portals']} × {cost['addresses']}"
    target = "target met" if per_address else "NOT shown: the searches were not one per address per portal"
    per_address_text = (
        f"one request per address per portal ({equation})"
        if per_address
        else f"{cost['person_searches']} requests for {cost['portals']} × {cost['addresses']} = {lookups} "
        "address lookups, NOT one per address per portal"
    )
    proofs_text = (
        "at most once per portal per watcher process"
        if cost["proofs"] <= cost["portals"]
        else f"MORE than once per portal: {cost['proofs']} for {cost['portals']} portals"
    )
    return f"""## Watch: detection latency, API cost, SIGKILL restarts (issue 19)

Command: `{command}`

**Latency** ({cost["portals"]} portals, `--interval {cost["interval"]:g}`, {cost["offboarded"]} people
deactivated in Okta at random moments; from the deactivation to the alert at the signed webhook): median
{statistics.median(lat):.2f} s, max {max(lat):.2f} s, against the target interval + 5 s = {bound:g} s
({"met" if max(lat) <= bound else "MISSED"}); {cost["alerts"]} of {cost["expected"]} expected alerts arrived.

**API cost**: {cost["searches"]} `/users/search` requests for {cost["offboarded"]} offboarded people with
{cost["addresses"]} addresses between them: {per_address_text}, plus {cost["proofs"]} proof searches —
before a portal's first "no account" is believed, the watcher searches once for an account the last crawl
read, to show that the portal's search works ({proofs_text}) — {cost["searches_per_person"]:.1f} per person in
all. With the System Log
request of the round that saw the event, a person with one address costs {cost["portals"] + 1} requests =
portals + 1 ({target}); each further address the IdP knows for the person costs one more request per
portal, because an account may use it (completeness first: the watcher looks up every address a crawl would
match). The feed costs {cost["log_per_round"]:.2f} System Log requests per round ({cost["log_requests"]} in
all), none on LearnUpon. A week of watching with {per_week} offboardings costs each portal
{per_portal_week:.0f} requests ({per_portal_week / WEEKLY_BUDGET:.4%} of its 500,000-request week); with
`[watch] remediation_log` the audit trail adds one request per portal per round: {audit_per_week:,.0f} a week
at a {week_interval:g} s interval ({(per_portal_week + audit_per_week) / WEEKLY_BUDGET:.2%} in all).

**Restarts** ({kill["portals"]} portals, `idgraph watch` in a subprocess with `--interval 1`, SIGKILLed
{kill["kills"]} times at random moments while {kill["offboarded"]} people left, lookups slowed to 100–500 ms;
{kill["cut_short"]} kills cut a round short after it had recorded something):
{kill["expected"]} alerts expected (the simulator's enabled accounts on those people's addresses); the
JSON-lines file holds {kill["file_alerts"]}: **{kill["lost"]} lost, {kill["file_duplicates"]} duplicated**
({kill["unexpected"]} not expected).
The webhook took {kill["webhook_keys"]} distinct idempotency keys ({kill["webhook_lost"]} missing) and
absorbed {kill["webhook_redeliveries"]} redeliveries (a kill between the POST and recording it);
{kill["pending_after"]} alerts left undelivered; exit after SIGTERM {kill["exit_code"]}.

**Agreement**: a crawl afterwards gives {kill["crawl_findings"]} `idp_disabled_active` findings for the people
who left; {"every one is" if kill["crawl_agrees"] else "NOT every one is"} a finding the watcher raised, with
the same id, and the watcher raised no other.
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portals", type=int, default=20)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--offboardings", type=int, default=6)
    parser.add_argument("--kill-portals", type=int, default=5)
    parser.add_argument("--stream", type=int, default=30, help="people leaving during the restarts")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--per-week", type=int, default=200, help="offboardings a week, for the budget share")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    logging.getLogger("idgraph").setLevel(logging.ERROR)  # the in-process watcher's per-finding warnings
    command = (
        f".venv/bin/python -m benchmarks.watch --portals {args.portals} --interval {args.interval:g} "
        f"--offboardings {args.offboardings} --kill-portals {args.kill_portals} --stream {args.stream} "
        f"--kills {args.kills}"
    )
    cost = await latency_and_cost(args.portals, args.interval, args.offboardings, args.seed)
    kill = await restarts(args.kill_portals, args.stream, args.kills, args.seed)
    markdown = report(command, cost, kill, args.per_week, 60.0)
    print(markdown)
    write_section("watch", markdown)


if __name__ == "__main__":
    asyncio.run(main())
