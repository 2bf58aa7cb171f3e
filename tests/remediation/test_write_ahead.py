"""Issue 14, item 3: writes are logged before they are sent; a torn tail is recovered; lost answers read back.

The full disk is real (RLIMIT_FSIZE in the CLI's own process, so a write stops part-way exactly as on a
full disk); the lost answer comes from a hostile proxy in front of the simulator that forwards a PUT and
then never answers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp import ClientSession, web

from crawler.idp.fakes import serve
from crawler.remediation.apply import DONE, run_targets, targets_from_plan
from crawler.remediation.audit import AuditLog, open_intents, read_entries, verify_log

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY
ACTOR = {"user": "tester", "host": "ci"}


def test_a_torn_tail_is_cut_off_on_open_and_the_recovery_is_logged(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key=KEY, actor=ACTOR) as log:
        for i in range(10):
            log.append({"action": "disable", "portal": "emea", "user_id": i, "result": "done"})
    torn = b'{"action":"disable","portal":"emea","user_id":10,"res'
    with path.open("ab") as handle:
        handle.write(torn)

    assert [e["user_id"] for e in read_entries(path, KEY)] == list(range(10)), "the ten good entries count"
    assert (
        open_intents([{"seq": 1, "phase": "intent"}, {"seq": 2, "phase": "outcome", "intent_seq": 1}]) == []
    )
    assert open_intents(
        [{"seq": 1, "phase": "outcome", "intent_seq": None}, {"seq": 2, "phase": "intent"}]
    ) == [2]
    with AuditLog(path, key=KEY, actor=ACTOR) as log:
        log.append({"action": "enable", "portal": "emea", "user_id": 3, "result": "done"})

    entries = read_entries(path, KEY)
    assert [e["seq"] for e in entries] == list(range(1, 13))
    recovery = entries[10]
    assert recovery["phase"] == "recovery" and recovery["torn_line"] == torn.decode()
    assert verify_log(path, KEY).ok and not verify_log(path, KEY).torn_tail


async def cli_on_a_full_disk(estate, limit: int, *args: str) -> tuple[int, str, str]:
    """The CLI in a process that cannot grow any file past `limit` bytes (writes stop part-way: EFBIG)."""
    boot = (
        "import resource, runpy, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
        "sys.argv = ['remediate', *sys.argv[1:]]\n"
        "runpy.run_module('idgraph.remediate', run_name='__main__', alter_sys=True)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", boot, *args,
        env={**os.environ, **estate.env, "COLUMNS": "250", "PYTHONDONTWRITEBYTECODE": "1"}, cwd=estate.tmp,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_on_a_full_disk_no_account_is_disabled_without_an_entry_and_undo_still_works(estate) -> None:
    plan, plan_path = estate.make_plan()
    log = estate.tmp / "audit.jsonl"
    limit = 9000  # a few accounts' intent and outcome entries fit; then the disk is full mid-line

    code, _, err = await cli_on_a_full_disk(
        estate, limit, "apply", str(plan_path), "--config", str(estate.config_path), "--yes",
        "--plan-hash", plan.plan_hash, "--log", str(log),
    )  # fmt: skip

    assert code == 3 and "cannot append" in err, err
    assert log.stat().st_size == limit and not log.read_bytes().endswith(b"\n"), "the log ends in a torn line"
    entries = read_entries(log, KEY)  # every complete entry before the torn tail
    intents = {(e["portal"], e["user_id"]) for e in entries if e["phase"] == "intent"}
    disabled = {
        (a.portal, a.user_id) for a in plan.actions if estate.user(a.portal, a.user_id)["enabled"] is False
    }
    assert disabled, "some accounts were disabled before the disk filled: the test proves something"
    assert disabled <= intents, "an account was disabled with no entry written before the write"
    assert len(disabled) < len(plan.actions), "the run stopped when the log could not be written"
    config = ["--config", str(estate.config_path)]
    code, _, err = await estate.cli("verify", str(log), *config)
    assert code == 0 and "torn" in err, err
    settled = {e["intent_seq"] for e in entries if e["phase"] == "outcome"}
    if any(e["seq"] not in settled for e in entries if e["phase"] == "intent"):  # the disk filled after a PUT
        assert "without an outcome" in err, err

    done = [e for e in entries if e["phase"] == "outcome" and e["result"] == DONE]
    code, _, err = await estate.cli(
        "undo", str(log), "--entry", str(done[0]["seq"]), *config, "--yes", "--force"
    )

    assert code == 0, err
    assert estate.user(done[0]["portal"], done[0]["user_id"])["enabled"] is True
    after = read_entries(log, KEY)
    assert after[len(entries)]["phase"] == "recovery", "the torn tail was cut off and that is on record"
    assert verify_log(log, KEY).ok and not verify_log(log, KEY).torn_tail


class HangingPutProxy:
    """In front of the simulator: forwards every request, but after forwarding a PUT it never answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.release = asyncio.Event()
        self.puts_forwarded = 0
        self.session: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.session is None:
            self.session = ClientSession()
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
        async with self.session.request(
            request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers
        ) as upstream:
            body, status = await upstream.read(), upstream.status
            reply_headers = {
                k: v for k, v in upstream.headers.items() if k.lower().startswith(("content-type", "x-lu"))
            }
        if request.method == "PUT":
            self.puts_forwarded += 1
            await self.release.wait()  # the write is done upstream; its answer is lost
        return web.Response(status=status, body=body, headers=reply_headers)

    async def close(self) -> None:
        self.release.set()
        if self.session is not None:
            await self.session.close()


async def test_a_put_that_times_out_is_outcome_unknown_and_settled_by_read_back(estate) -> None:
    proxy = HangingPutProxy(estate.sim.url)
    served = await serve(proxy.app())
    try:
        urls = {"emea": f"{served.url}/emea"}
        path = estate.write_config(
            estate.tmp / "proxied.toml", urls=urls, crawl="request_timeout_seconds = 0.3\n"
        )
        plan, _ = estate.make_plan(estate.tmp / "proxied.json", config=path, portals=["emea"])
        assert plan.actions
        log = estate.tmp / "audit.jsonl"
        # In-process (the engine `apply` runs), so the retries of each timed-out PUT skip their backoff.
        with AuditLog(log, key=KEY) as audit:
            outcomes = await run_targets(targets_from_plan(plan), estate.config(path), audit, command="apply")
    finally:
        await proxy.close()
        await served.close()

    assert [o.result for o in outcomes] == [DONE] * len(plan.actions)
    assert proxy.puts_forwarded >= len(plan.actions)
    entries = read_entries(log, KEY)
    for action in plan.actions:
        mine = [e for e in entries if (e["portal"], e["user_id"]) == ("emea", action.user_id)]
        assert [e["phase"] for e in mine] == ["intent", "outcome"]
        outcome = mine[1]
        assert outcome["result"] == DONE and outcome["after"]["enabled"] is False
        assert "write outcome unknown" in outcome["reason"] and "refused" not in outcome["reason"]
        assert estate.user("emea", action.user_id)["enabled"] is False
