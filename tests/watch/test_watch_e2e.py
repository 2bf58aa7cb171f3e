"""`idgraph watch` end to end on loopback: the LearnUpon simulator, the fake Okta's System Log, the real feed
client and `/users/search` lookups, a JSON-lines file and a signed webhook; and a crawl afterwards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import SecretStr

from crawler.config import Config, JsonLinesAlert, WebhookAlert
from crawler.idp.fakes import serve
from crawler.simulator.faults import FaultConfig
from crawler.snapshot_reader import SnapshotReader
from crawler.store import SnapshotStore
from crawler.watch import tables
from crawler.watch.receiver import WebhookReceiver
from graph.api import load_run
from graph.model import Code
from graph.resolve import load_resolution
from idgraph.demo_watch import SimulatedEstate, offboarding_candidates, simulated_estate
from idgraph.watch import watch

SECRET = "e2e-webhook-secret-0123456789"
PORTALS = ["emea", "apac", "amer"]


def with_sinks(estate: SimulatedEstate, tmp_path: Path, hook_url: str) -> Config:
    alerts = [
        JsonLinesAlert(name="siem", type="jsonl", path=str(tmp_path / "alerts.jsonl")),
        WebhookAlert(name="hook", type="webhook", url=hook_url, secret_env="HOOK", secret=SecretStr(SECRET)),
    ]
    return estate.config.model_copy(update={"alerts": alerts})


Watched = tuple[SimulatedEstate, Config, WebhookReceiver, str, str, int]


@asynccontextmanager
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    """A crawled estate, a config with both sinks, and the person to offboard (Okta id, address, accounts)."""
    receiver = WebhookReceiver(SECRET.encode())
    hook = await serve(receiver.app())
    try:
        async with simulated_estate(tmp_path / "s.db", PORTALS, users=120, seed=11) as estate:
            config = with_sinks(estate, tmp_path, f"{hook.url}/alerts")
            okta_id, address, enabled = offboarding_candidates(estate.db, estate.run_id, "okta")[0]
            assert (
                await watch(config, estate.db, interval=1, once=True, summary=False) == 0
            )  # the feed starts
            yield estate, config, receiver, okta_id, address, enabled
    finally:
        await hook.close()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def searches(estate: SimulatedEstate) -> int:
    return sum(p.stats.by_endpoint.get("GET /users/search", 0) for p in estate.sims)


async def test_offboarding_in_okta_alerts_each_still_enabled_account_in_every_sink_and_a_crawl_agrees(
    tmp_path: Path,
) -> None:
    async with watched(tmp_path) as (estate, config, receiver, okta_id, address, enabled):
        expected = estate.enabled_accounts(okta_id)
        assert enabled == sum(len(ids) for ids in expected.values()) >= 1
        logs_before = len([e for e in estate.okta.exchanges if e.path == "/api/v1/logs"])
        searched_before = searches(estate)

        estate.okta.deactivate(okta_id)
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0
        logs = len([e for e in estate.okta.exchanges if e.path == "/api/v1/logs"]) - logs_before
        lookups = searches(estate) - searched_before

        opened = lines(tmp_path / "alerts.jsonl")
        got = {(a["portal"], a["learnupon_user_id"]) for a in opened}
        assert got == {(p, i) for p, ids in expected.items() for i in ids}
        assert [a["type"] for a in opened] == ["finding_opened"] * enabled
        assert sorted(receiver.alerts) == sorted(a["alert_id"] for a in opened)
        assert receiver.refused == receiver.repeats == 0
        assert logs == 1 and lookups == len(PORTALS)  # (portals + 1) requests for one offboarding

        # A full crawl afterwards gives every finding the watcher raised, with the same ids.
        with SnapshotStore(estate.db) as store:
            from crawler.orchestrator import crawl

            later = (await crawl(estate.config, store)).run_id
            with load_run(store, later) as graph:
                crawl_ids = {
                    f.id for f in graph.findings().findings
                    if f.code is Code.IDP_DISABLED_ACTIVE and f.person == address
                }  # fmt: skip
        assert crawl_ids == {a["finding_id"] for a in opened}

        estate.okta.activate(okta_id)
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0
        closed = lines(tmp_path / "alerts.jsonl")[len(opened) :]
        assert [a["type"] for a in closed] == ["finding_closed"] * enabled
        assert {a["finding_id"] for a in closed} == crawl_ids
        assert all("user.lifecycle.activate" in a["reason"] for a in closed)


async def test_a_portal_whose_search_fails_is_reported_incomplete_and_retried_never_read_as_no_account(
    tmp_path: Path,
) -> None:
    async with watched(tmp_path) as (estate, config, receiver, okta_id, address, enabled):
        expected = estate.enabled_accounts(okta_id)
        broken = sorted(expected)[0]
        portal = next(p for p in estate.sims if p.spec.name == broken)
        portal.faults = FaultConfig(broken_listings=frozenset({("users/search", "email", address)}))

        estate.okta.deactivate(okta_id)
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 3
        assert broken not in {a["portal"] for a in lines(tmp_path / "alerts.jsonl")}
        with SnapshotStore(estate.db) as store:
            [owed] = {(o.portal, o.address) for o in tables.owed_lookups(store)}
            latest = store.runs()[-1]
            coverage = {c.source: c for c in store.coverage(latest.id)}
        assert owed == (broken, address)
        assert latest.kind == "incremental" and not coverage[broken].complete
        assert "answered 500" in (coverage[broken].error or "")

        portal.faults = FaultConfig()
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0
        got = {(a["portal"], a["learnupon_user_id"]) for a in lines(tmp_path / "alerts.jsonl")}
        assert got == {(p, i) for p, ids in expected.items() for i in ids}
        assert len(receiver.alerts) == enabled


async def test_a_portal_without_a_working_search_never_reads_404_as_no_account(tmp_path: Path) -> None:
    """A 404 from /users/search means "no such user" and also "no such endpoint": on a portal whose
    search is missing, the watcher's one check for an account the crawl read fails, so the person's
    lookups there are owed, never "no account"; once the search works, the alerts come."""
    async with watched(tmp_path) as (estate, config, _receiver, okta_id, address, _enabled):
        expected = estate.enabled_accounts(okta_id)
        broken = sorted(expected)[0]
        portal = next(p for p in estate.sims if p.spec.name == broken)
        portal.faults = FaultConfig(missing_endpoints=frozenset({"users/search"}))

        estate.okta.deactivate(okta_id)
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 3
        assert broken not in {a["portal"] for a in lines(tmp_path / "alerts.jsonl")}
        with SnapshotStore(estate.db) as store:
            owed = {(o.portal, o.address, o.reason) for o in tables.owed_lookups(store)}
        assert {(p, a) for p, a, _ in owed} == {(broken, address)}
        assert all("cannot prove an absence" in reason for _, _, reason in owed)

        portal.faults = FaultConfig()
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0
        got = {(a["portal"], a["learnupon_user_id"]) for a in lines(tmp_path / "alerts.jsonl")}
        assert got == {(p, i) for p, ids in expected.items() for i in ids}


async def test_someone_still_enabled_in_entra_is_not_offboarded_until_entra_says_so(tmp_path: Path) -> None:
    """Okta's System Log and Graph's users delta, both real clients against their fakes: disabled in Okta
    alone is not "disabled in all IdPs"; once Entra's delta says so too, the accounts alert."""
    async with simulated_estate(tmp_path / "s.db", PORTALS, users=120, seed=11, entra=True) as estate:
        assert estate.entra is not None
        alerts = [JsonLinesAlert(name="siem", type="jsonl", path=str(tmp_path / "alerts.jsonl"))]
        config = estate.config.model_copy(update={"alerts": alerts})
        with SnapshotReader.open(estate.db) as reader:
            resolution = load_resolution(reader, estate.run_id)
        person = max(
            (p for p in resolution.persons.values()
             if sorted(i.source for i in p.identities) == ["entra", "okta"]
             and all(i.status == "active" for i in p.identities)),
            key=lambda p: sum(a.enabled for a in p.accounts),
        )  # fmt: skip
        ids = {i.source: i.idp_id for i in person.identities}
        enabled = sum(a.enabled for a in person.accounts)
        assert enabled >= 1
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0  # both feeds start

        estate.okta.deactivate(ids["okta"])
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0
        assert lines(tmp_path / "alerts.jsonl") == []  # still enabled in Entra: no finding

        estate.entra.disable(ids["entra"])
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0
        opened = lines(tmp_path / "alerts.jsonl")
        assert len(opened) == enabled and {a["person"] for a in opened} == {person.key}
        assert {a["idp"] for a in opened} == {"entra;okta"} and {a["idp_status"] for a in opened} == {
            "disabled;disabled"
        }
        sources = opened[0]["evidence"]["watch"]["status_from"]
        assert sources[f"okta:{ids['okta']}"].startswith("change feed") and sources[
            f"entra:{ids['entra']}"
        ].startswith("change feed")


async def test_verdict_commands_refuse_a_watch_round_and_keep_to_crawls(tmp_path: Path) -> None:
    """A watch round read only the people it looked up: a report, a diff or a plan over it would read
    every other account as absent, so each refuses it by name; without --run they take the newest crawl."""
    import pytest

    from graph.review import diff_runs, review_run

    async with watched(tmp_path) as (estate, config, _receiver, okta_id, _address, _enabled):
        estate.okta.deactivate(okta_id)
        assert await watch(config, estate.db, interval=1, once=True, summary=False) == 0
        with SnapshotStore(estate.db) as store:
            rounds = [r.id for r in store.runs() if r.kind == "incremental"]
        assert rounds
        for verdicts in (
            lambda: review_run(estate.db, None, run_id=rounds[-1]),
            lambda: diff_runs(estate.db, rounds[-1]),
            lambda: diff_runs(estate.db, None, rounds[-1]),
        ):
            with pytest.raises(LookupError, match="incremental run of `idgraph watch`"):
                verdicts()
        assert review_run(estate.db, None).run_id == estate.run_id  # the newest crawl
