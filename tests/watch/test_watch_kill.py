"""`idgraph watch` in a subprocess, killed with SIGKILL again and again while it works through a batch of
offboardings: after each restart nothing is lost and nothing is written twice."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path

from crawler.idp.fakes import serve
from crawler.simulator.faults import FaultConfig
from crawler.store import SnapshotStore
from crawler.watch import tables
from crawler.watch.receiver import WebhookReceiver
from idgraph.demo_watch import SimulatedEstate, offboarding_candidates, simulated_estate

SECRET = "kill-webhook-secret-0123456789"
PORTALS = ["emea", "apac", "amer"]


def alert_tables(estate: SimulatedEstate, tmp_path: Path, hook_url: str) -> str:
    return (
        f'[[alerts]]\nname = "siem"\ntype = "jsonl"\npath = "{tmp_path / "alerts.jsonl"}"\n\n'
        f'[[alerts]]\nname = "hook"\ntype = "webhook"\nurl = "{hook_url}"\nsecret_env = "HOOK"\n'
    )


async def start(config: Path, db: Path, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.cli", "watch", "--config", str(config), "--db", str(db),
        "--interval", "1", "--log-format", "json",
        env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL, stderr=log.open("ab"),
    )  # fmt: skip


async def wait_for(predicate, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def written(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_sigkill_mid_batch_loses_no_alert_and_writes_none_twice(tmp_path: Path) -> None:
    rng = random.Random(19)
    receiver = WebhookReceiver(SECRET.encode())
    hook = await serve(receiver.app())
    try:
        async with simulated_estate(tmp_path / "s.db", PORTALS, users=150, seed=13) as estate:
            config = tmp_path / "idgraph.toml"
            config.write_text(estate.toml(alert_tables(estate, tmp_path, f"{hook.url}/alerts")))
            env = {**estate.env, "HOOK": SECRET}
            log = tmp_path / "watch.log"
            people = offboarding_candidates(estate.db, estate.run_id, "okta")[:6]
            expected = {
                (portal, user_id)
                for okta_id, _, _ in people
                for portal, ids in estate.enabled_accounts(okta_id).items()
                for user_id in ids
            }
            for portal in estate.sims:  # slow lookups: a kill lands in the middle of a batch
                portal.faults = FaultConfig(latency=(0.02, 0.1))

            proc = await start(config, estate.db, env, log)

            def started() -> bool:
                with SnapshotStore(estate.db) as store:
                    return tables.load_cursor(store, "idp:okta") is not None

            assert await wait_for(started, 30), log.read_text()
            for okta_id, _, _ in people:
                estate.okta.deactivate(okta_id)
            kills = 0
            for _ in range(6):
                await asyncio.sleep(rng.uniform(0.2, 1.2))
                proc.kill()
                await proc.wait()
                kills += 1
                proc = await start(config, estate.db, env, log)
            done = await wait_for(lambda: estate.processed([p[0] for p in people]), 60)
            proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
            assert done, log.read_text()[-3000:]
    finally:
        await hook.close()
    alerts = written(tmp_path / "alerts.jsonl")
    ids = [a["alert_id"] for a in alerts]
    assert kills == 6 and code == 130
    assert len(ids) == len(set(ids))  # none written twice
    assert {(a["portal"], a["learnupon_user_id"]) for a in alerts} == expected  # none lost
    assert set(receiver.alerts) == set(ids) and receiver.refused == 0
    with SnapshotStore(tmp_path / "s.db") as store:
        assert all(row["delivered_at"] for row in tables.outbox(store))
        runs = store.runs()
        assert all(run.status != "running" for run in runs)
        assert all(
            run.status == "incomplete"
            for run in runs
            if run.kind == "incremental" and not store.coverage(run.id)
        )
