"""`idgraph crawl --workers N`: sources split across worker processes, into one run of one snapshot.

The simulator and a fake Okta serve from this test's event loop; the workers are real processes that
reach them over loopback and write the snapshot file themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lu_helpers import WINDOW, assert_snapshot_equals_truth, make_portal

from crawler.config import Config, parse_config
from crawler.idp.fakes import serve
from crawler.idp.fakes.okta import OktaFake, okta_users_from_people
from crawler.orchestrator import LiveSource
from crawler.simulator.app import SimulatedPortal
from crawler.simulator.faults import FaultConfig
from crawler.simulator.population import generate_population
from crawler.simulator.server import run_simulator
from crawler.store import SnapshotStore
from crawler.workers import crawl_with_workers, split_sources, usable_cores, worker_job

POPULATION = generate_population(seed=16, size=400)
OKTA_TOKEN = "okta-token-for-workers-7c1d9e"
TABLES = ("lu_users", "lu_groups", "lu_courses", "lu_enrollments", "lu_memberships", "idp_identities",
          "idp_addresses", "collections")  # fmt: skip


def portals(count: int, **spec: Any) -> list[SimulatedPortal]:
    return [
        make_portal(
            f"p{i}", POPULATION, seed=i + 1, users=120 + 40 * i, groups=4, courses=5, page_size=25, **spec
        )
        for i in range(count)
    ]


def okta_fake() -> OktaFake:
    users = okta_users_from_people(POPULATION)
    odd = {**users[0], "id": "00uodd0000000000000", "status": "HIBERNATING"}  # quarantined, with its reason
    odd["profile"] = {**users[0]["profile"], "login": "odd@acme.com", "email": "odd@acme.com"}
    return OktaFake([*users, odd], token=OKTA_TOKEN)


@dataclass
class Estate:
    config: Config
    env: dict[str, str]
    portals: list[SimulatedPortal]


@asynccontextmanager
async def estate(sims: list[SimulatedPortal], *, okta: bool = True) -> AsyncIterator[Estate]:
    """The simulated portals (and a fake Okta) served on loopback, with a config and the env it names."""
    fake = await serve(okta_fake().app()) if okta else None
    try:
        async with run_simulator(sims, window_seconds=WINDOW) as sim:
            env = {"OKTA_TOKEN": OKTA_TOKEN}
            entries = []
            for portal in sims:
                name = portal.spec.name
                env[f"{name}_U"], env[f"{name}_P"] = portal.spec.username, portal.spec.password
                entries.append(
                    {"name": name, "base_url": sim.base_url(name), "username_env": f"{name}_U",
                     "password_env": f"{name}_P", "requests_per_minute": portal.spec.rate_limit_per_window,
                     "rate_window_seconds": WINDOW}
                )  # fmt: skip
            raw: dict[str, Any] = {"portals": entries}
            if fake is not None:
                raw["idps"] = [
                    {"name": "okta", "type": "okta", "base_url": fake.url, "token_env": "OKTA_TOKEN"}
                ]
            yield Estate(parse_config(raw, env=env), env, sims)
    finally:
        if fake is not None:
            await fake.close()


def contents(store: SnapshotStore, run_id: int) -> dict[str, Any]:
    """Every record of a run, table by table, without the run id; quarantine and coverage too."""
    out: dict[str, Any] = {}
    for table in TABLES:
        out[table] = sorted(
            tuple(v for k, v in dict(row).items() if k != "run_id") for row in store.rows(table, run_id)
        )
    out["quarantine"] = sorted(
        json.dumps({k: v for k, v in row.items() if k != "run_id"}, sort_keys=True)
        for row in store.quarantined(run_id)
    )
    out["coverage"] = {
        c.source: (c.kind, c.complete, c.error, c.records, c.quarantined,
                   [(x.name, x.state, x.reason, x.pages, x.records, x.via) for x in c.collections])
        for c in store.coverage(run_id)
    }  # fmt: skip
    return out


async def test_two_workers_give_the_same_snapshot_as_one(tmp_path: Path) -> None:
    async with estate(portals(4)) as e:
        with SnapshotStore(tmp_path / "one.db") as one:
            single = await crawl_with_workers(e.config, one, workers=1)
            expected = contents(one, single.run_id)
        with SnapshotStore(tmp_path / "two.db") as two:
            split = await crawl_with_workers(e.config, two, workers=2, env=e.env)
            got = contents(two, split.run_id)
            for portal in e.portals:
                assert_snapshot_equals_truth(two, split.run_id, portal)
            assert two.run(split.run_id).status == "complete"
    assert single.workers == []  # --workers 1: in this process
    assert len(split.workers) == 2 and all(w.returncode == 0 and w.error is None for w in split.workers)
    assert os.getpid() not in {w.pid for w in split.workers}
    assert sorted(s for w in split.workers for s in w.sources) == sorted(["p0", "p1", "p2", "p3", "okta"])
    assert split.complete and single.complete
    assert got == expected
    assert len(got["quarantine"]) == 1 and "HIBERNATING" in got["quarantine"][0]
    assert all(got[table] for table in TABLES)


async def _wait_until(condition: Any, what: str, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


async def test_a_worker_killed_mid_crawl_leaves_its_sources_incomplete_and_resume_completes(
    tmp_path: Path,
) -> None:
    sims = portals(4)
    for portal in sims[0::2]:  # the first worker's portals (round robin): slow enough to be killed mid-way
        portal.faults = FaultConfig(latency=0.05)
    async with estate(sims, okta=False) as e:
        with SnapshotStore(tmp_path / "s.db") as store:
            live: dict[str, LiveSource] = {}
            crawl = asyncio.create_task(crawl_with_workers(e.config, store, workers=2, live=live, env=e.env))
            await _wait_until(
                lambda: "p0" in live and live["p0"].counters()[0] >= 5, "p0 has committed pages"
            )
            victim = live["p0"].worker
            assert victim is not None and live["p2"].worker == victim and live["p1"].worker != victim
            os.kill(victim, signal.SIGKILL)
            result = await asyncio.wait_for(crawl, timeout=120)

            coverage = {c.source: c for c in result.coverage}
            assert not result.complete and store.run(result.run_id).status == "incomplete"
            assert coverage["p1"].complete and coverage["p3"].complete  # the other worker carried on
            for name in ("p0", "p2"):
                assert not coverage[name].complete
                assert f"(pid {victim}) was killed by SIGKILL before {name} finished" in (
                    coverage[name].error or ""
                )
                assert "resume the run" in (coverage[name].error or "")
            assert coverage["p0"].requests > 0  # what it had sent before it died is still counted
            [killed] = [w for w in result.workers if w.pid == victim]
            assert killed.returncode == -signal.SIGKILL

            resumed = await crawl_with_workers(
                e.config, store, workers=2, resume_run=result.run_id, env=e.env
            )
            assert resumed.complete, [c.error for c in resumed.coverage]
            assert resumed.run_id == result.run_id and [r.id for r in store.runs()] == [result.run_id]
            assert sorted(s for w in resumed.workers for s in w.sources) == [
                "p0",
                "p2",
            ]  # only the unfinished
            for portal in sims:
                assert_snapshot_equals_truth(store, result.run_id, portal)


async def test_a_failing_portal_and_a_crashing_worker_leave_the_other_workers_complete(
    tmp_path: Path,
) -> None:
    sims = portals(5)
    async with estate(sims) as e:
        with SnapshotStore(tmp_path / "s.db") as store:
            env = dict(e.env)
            env["p1_P"] = "WRONG-password-4f7a"  # p1 answers 401
            # p3's worker cannot read its config: its password variable is missing from its environment.
            assert "p3_P" not in os.environ
            del env["p3_P"]
            result = await crawl_with_workers(e.config, store, workers=3, env=env)
            coverage = {c.source: c for c in result.coverage}
    shares = {s: w for w in result.workers for s in w.sources}
    assert shares["p1"] is not shares["p3"]  # round robin over 3 workers: p0 p3 | p1 p4 | p2 okta
    assert not coverage["p1"].complete and "401" in (coverage["p1"].error or "")
    assert "WRONG-password" not in (coverage["p1"].error or "")
    failed = shares["p3"]
    assert failed.returncode == 1 and "p3_P is not set" in (failed.error or "")
    for name in failed.sources:
        assert not coverage[name].complete
        assert "could not read its config" in (coverage[name].error or "")
        assert "resume the run to finish it" in (coverage[name].error or "")
    others = set(coverage) - {"p1", *failed.sources}
    assert others and all(coverage[name].complete for name in others)


def test_sources_are_split_by_last_runs_cost_else_round_robin() -> None:
    names = ["a", "b", "c", "d", "e"]
    assert split_sources(names, {}, 2) == [["a", "c", "e"], ["b", "d"]]
    assert split_sources(names, {}, 9) == [["a"], ["b"], ["c"], ["d"], ["e"]]
    # Costliest first, each to the lighter share: a (100) | d (60), e (no history: the median, 35),
    # b (10) | c (10): loads 110 and 105. Each share keeps config order.
    assert split_sources(names, {"a": 100, "b": 10, "c": 10, "d": 60}, 2) == [["a", "c"], ["b", "d", "e"]]
    assert split_sources(names, {"a": 400, "b": 10, "c": 10, "d": 60, "e": 0}, 2) == [
        ["a"],
        ["b", "c", "d", "e"],
    ]


def test_a_relayed_worker_record_keeps_its_extra_fields_and_not_the_channels_own() -> None:
    """`--log-format json` prints every `extra=` field: a worker's record must read as the parent's would."""
    import io
    import logging

    from crawler.logs import JsonFormatter
    from crawler.worker import Channel, ForwardingHandler
    from crawler.workers import _relay

    sent = io.StringIO()
    record = logging.makeLogRecord(
        {"name": "idgraph.crawl", "levelno": logging.WARNING, "levelname": "WARNING", "msg": "slow",
         "source": "emea", "event": "coverage", "collection": "users"}
    )  # fmt: skip
    ForwardingHandler(Channel(sent)).emit(record)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("idgraph.crawl")
    logger.addHandler(handler)
    try:
        _relay(json.loads(sent.getvalue()))
    finally:
        logger.removeHandler(handler)
    entry = json.loads(out.getvalue())
    assert "t" not in entry
    assert (entry["source"], entry["event"], entry["collection"]) == ("emea", "coverage", "users")


def test_the_default_worker_count_keeps_to_the_cpu_quota_not_the_visible_cores(tmp_path: Path) -> None:
    """A pod limited to 1.5 CPUs on a 16-core node sees 16 cores; 16 workers would share 1.5 cores' time."""
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert usable_cores(16, v2) == 2
    (v2 / "cpu.max").write_text("max 100000\n")
    assert usable_cores(16, v2) == 16
    (v2 / "cpu.max").write_text("20000 100000\n")  # a fifth of a core: still one worker
    assert usable_cores(16, v2) == 1

    v1 = tmp_path / "v1" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(16, v1.parent) == 3
    assert usable_cores(2, v1.parent) == 2  # the CPU set is the smaller bound
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert usable_cores(16, v1.parent) == 16

    assert usable_cores(4, tmp_path / "nothing-here") == 4  # no cgroup files: the CPU set alone


async def test_previous_requests_come_from_each_sources_last_complete_run(tmp_path: Path) -> None:
    async with estate(portals(2), okta=False) as e:
        with SnapshotStore(tmp_path / "s.db") as store:
            first = await crawl_with_workers(e.config, store, workers=1)
            second = await crawl_with_workers(e.config, store, workers=1)
            by_source = {c.source: c.requests for c in store.coverage(second.run_id)}
            assert store.previous_requests(second.run_id + 1) == by_source
            assert store.previous_requests(second.run_id) == {c.source: c.requests for c in first.coverage}
            assert store.previous_requests(first.run_id) == {}


def test_a_workers_job_carries_no_secret(tmp_path: Path) -> None:
    env = {
        "U": "user-name-xyz",
        "P": "password-0123456789",
        "T": "okta-token-abcdef",
        "K": "remediation-key-99",
    }
    config = parse_config(
        {"portals": [{"name": "a", "base_url": "https://a.example.com", "username_env": "U",
                      "password_env": "P"}],
         "idps": [{"name": "o", "type": "okta", "base_url": "https://o.example.com", "token_env": "T"}],
         "remediation": {"key_env": "K"}},
        env=env,
    )  # fmt: skip
    with SnapshotStore(tmp_path / "s.db") as store:
        job = json.dumps(worker_job(config, ["a", "o"], store, 1, None))
    for value in env.values():
        assert value not in job
    assert '"password_env": "P"' in job and '"token_env": "T"' in job
    assert set(json.loads(job)["config"]) == {"crawl", "portals", "idps"}  # no remediation key, no sinks


async def test_cli_workers_below_one_is_a_usage_error_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(
        '[[portals]]\nname = "a"\nbase_url = "https://a.example.com"\n'
        'username_env = "U"\npassword_env = "P"\n'
    )
    for value in ("0", "-2"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "idgraph.cli", "crawl", "--config", str(config),
            "--db", str(tmp_path / "s.db"), "--workers", value,
            env={**os.environ, "U": "u", "P": "p"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        lines = [line for line in err.decode().splitlines() if line.strip()]
        assert proc.returncode == 2, err.decode()
        assert lines == [f"idgraph: --workers: expected a number of processes of at least 1, got {value}"]
        assert out == b"" and not (tmp_path / "s.db").exists()


async def test_the_crawl_deadline_holds_in_every_worker(tmp_path: Path) -> None:
    sims = portals(2)
    for portal in sims:
        portal.faults = FaultConfig(latency=0.3)  # far slower than the deadline allows
    async with estate(sims, okta=False) as e:
        crawl_config = e.config.crawl.model_copy(update={"crawl_deadline_seconds": 2.0})
        config = e.config.model_copy(update={"crawl": crawl_config})
        with SnapshotStore(tmp_path / "s.db") as store:
            result = await crawl_with_workers(config, store, workers=2, env=e.env)
    assert len(result.workers) == 2
    for cov in result.coverage:
        assert not cov.complete and "crawl deadline of 2 s reached" in (cov.error or ""), cov.error


class Stderr:
    """A CLI's JSON log lines, read as they come (so its stderr pipe never fills)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        self.lines: list[str] = []
        self.task = asyncio.create_task(self._read(proc.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode())

    def worker_pids(self) -> list[int]:
        found = []
        for line in self.lines:
            message = json.loads(line).get("message", "") if line.startswith("{") else ""
            if message.startswith("worker process ") and "(pid " in message:
                found.append(int(message.split("(pid ")[1].split(")")[0]))
        return found

    async def text(self) -> str:
        await self.task
        return "".join(self.lines)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_cli_ctrl_c_stops_every_worker_with_exit_130_and_sigkill_of_the_crawl_kills_its_workers(
    tmp_path: Path,
) -> None:
    from test_resume import done_collections, write_config

    sims = portals(4)
    for portal in sims:
        portal.faults = FaultConfig(latency=0.03)
    db = tmp_path / "snap.db"
    async with run_simulator(sims, window_seconds=WINDOW) as sim:
        config = tmp_path / "idgraph.toml"
        env = {**os.environ, **write_config(config, sim, sims)}
        args = (
            "-m",
            "idgraph.cli",
            "crawl",
            "--config",
            str(config),
            "--db",
            str(db),
            "--log-format",
            "json",
        )

        async def start(*extra: str) -> tuple[asyncio.subprocess.Process, Stderr]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, "--workers", "2", *extra, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            return proc, Stderr(proc)

        first, log = await start()
        await _wait_until(lambda: len(log.worker_pids()) == 2 and len(done_collections(db)) >= 6, "crawling")
        first.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C reaches the crawl (workers: own group)
        await asyncio.wait_for(first.wait(), timeout=60)
        stderr = await log.text()
        assert first.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert "interrupted — resume with `idgraph crawl --resume 1`" in stderr
        assert not any(alive(pid) for pid in log.worker_pids())
        with SnapshotStore(db) as store:
            assert store.run(1).status == "incomplete"
            interrupted = [c for c in store.coverage(1) if not c.complete]
            assert interrupted and all(
                "interrupted before it finished" in (c.error or "") for c in interrupted
            )

        second, log = await start("--resume", "1")
        await _wait_until(lambda: len(log.worker_pids()) >= 1, "workers started")
        second.kill()  # SIGKILL: nothing runs on; its workers die with it
        await second.wait()
        await _wait_until(lambda: not any(alive(pid) for pid in log.worker_pids()), "the workers died")

        third, log = await start("--resume", "1")
        await asyncio.wait_for(third.wait(), timeout=180)
        assert third.returncode == 0, await log.text()
    with SnapshotStore(db) as store:
        assert [run.id for run in store.runs()] == [1]
        for portal in sims:
            assert_snapshot_equals_truth(store, 1, portal)
