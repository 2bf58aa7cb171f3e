"""`remediate apply` against the simulator and a fake Okta on loopback: real aiohttp, real files, no mocks."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from pathlib import Path

from crawler.remediation.apply import DONE, FAILED, SKIPPED, run_targets, targets_from_plan
from crawler.remediation.audit import AuditLog, read_entries, verify_log
from crawler.remediation.plan import load_plan
from crawler.simulator.faults import FaultConfig

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY


def outcomes(log: Path) -> list[dict]:
    """The log's outcome entries (each write also has its write-ahead intent entry before it)."""
    return [e for e in read_entries(log, KEY) if e["phase"] == "outcome"]


def outcomes_by_account(log: Path) -> dict[tuple[str, int], dict]:
    return {(e["portal"], e["user_id"]): e for e in outcomes(log) if e["action"] in ("disable", "enable")}


def assert_nothing_deleted(estate, *, memberships: bool = False) -> None:
    for portal in estate.sim.portals:
        assert portal.stats.by_endpoint["DELETE /users/{id}"] == 0
        if not memberships:
            assert portal.stats.deletes == 0
        assert not [
            entry for entry in portal.stats.log if entry[0] == "DELETE" and entry[1].startswith("/users")
        ]


def assert_no_secret(estate, *texts: str) -> None:
    for secret in estate.secrets:
        for text in texts:
            assert secret not in text


async def test_a_plan_applied_end_to_end_disables_verifies_and_logs(estate) -> None:
    plan, plan_path = estate.make_plan()
    assert len(plan.actions) >= 6, "the estate should yield a handful of idp_disabled_active accounts"
    before = estate.enabled_states()
    log = estate.tmp / "audit.jsonl"

    code, out, err = await estate.cli(
        "apply",
        str(plan_path),
        "--config",
        str(estate.config_path),
        "--yes",
        "--plan-hash",
        plan.plan_hash,
        "--log",
        str(log),
    )

    assert code == 0, err
    planned = {(a.portal, a.user_id) for a in plan.actions}
    after = estate.enabled_states()
    assert all(after[key] is False for key in planned)
    assert {k: v for k, v in after.items() if k not in planned} == {
        k: v for k, v in before.items() if k not in planned
    }, "only planned accounts may change"
    # Each account: read, write, read back — and the write is the real wrapped body.
    for name in ("emea", "amer"):
        mine = [a for a in plan.actions if a.portal == name]
        stats = estate.portal(name).stats
        assert stats.by_endpoint["PUT /users/{id}"] == len(mine)
        # one read for the confirmation table (live values), one before the write, one after
        assert stats.by_endpoint["GET /users/{id}"] == 3 * len(mine)
    entries = outcomes(log)
    assert len(entries) == len(plan.actions)
    intents = {e["seq"]: e for e in read_entries(log, KEY) if e["phase"] == "intent"}
    assert len(intents) == len(plan.actions)
    assert {(e["portal"], e["user_id"]) for e in entries} == planned
    for entry in entries:
        assert entry["result"] == DONE and entry["plan_hash"] == plan.plan_hash
        assert entry["before"]["enabled"] is True and entry["after"]["enabled"] is False
        assert entry["actor"]["user"] and entry["actor"]["host"]
        assert entry["idp_recheck"] == {"okta": entry["idp_recheck"]["okta"]}
        assert entry["idp_recheck"]["okta"] in ("DEPROVISIONED", "SUSPENDED")
        intent = intents[entry["intent_seq"]]
        assert intent["seq"] < entry["seq"] and (intent["portal"], intent["user_id"]) == (
            entry["portal"],
            entry["user_id"],
        )
    assert verify_log(log, KEY).ok
    assert f"head {verify_log(log, KEY).head}" in out, "apply prints the new head for the reviewer"
    code, verdict, verify_err = await estate.cli("verify", str(log), "--config", str(estate.config_path))
    assert code == 0 and "chain intact" in verdict  # the verdict is the result: stdout
    assert_nothing_deleted(estate)
    assert_no_secret(estate, out, err, log.read_text(), plan_path.read_text(), verdict, verify_err)
    assert f"{len(plan.actions)} done, 0 skipped, 0 failed" in out  # results on stdout
    assert "record it and pass it as --expect-head" in err and "done, 0 skipped" not in err


async def test_without_confirmation_and_without_a_terminal_nothing_is_sent(estate) -> None:
    _, plan_path = estate.make_plan()
    log = estate.tmp / "audit.jsonl"

    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--log", str(log)
    )

    assert code == 2 and "refusing" in err and "nothing was changed" in err
    assert estate.requests() == [], "not even a read before confirmation"
    assert all(p.stats.writes == 0 for p in estate.sim.portals)
    assert not log.exists()
    assert estate.okta.exchanges == []


async def test_accounts_changed_since_the_plan_are_skipped_with_the_reason(estate) -> None:
    plan, plan_path = estate.make_plan()
    emails = [a.email.casefold() for a in plan.actions]
    single = [a for a in plan.actions if emails.count(a.email.casefold()) == 1]
    disabled, renamed, deleted, rehired = single[:4]
    estate.portal(disabled.portal).data.set_enabled(disabled.user_id, False)
    estate.user(renamed.portal, renamed.user_id)["email"] = "someone.else@acme.com"
    estate.portal(renamed.portal).data.touch()
    estate.portal(deleted.portal).data.remove_user(deleted.user_id)
    for user in estate.okta.users:
        if user["profile"]["email"].casefold() == rehired.email.casefold():
            user["status"] = "ACTIVE"
    log = estate.tmp / "audit.jsonl"

    code, _, err = await estate.cli(
        "apply",
        str(plan_path),
        "--config",
        str(estate.config_path),
        "--yes",
        "--plan-hash",
        plan.plan_hash,
        "--log",
        str(log),
    )

    assert code == 0, err  # legitimately skipped is not a failure
    results = outcomes_by_account(log)
    key = lambda a: (a.portal, a.user_id)  # noqa: E731
    assert (
        results[key(disabled)]["result"] == SKIPPED and results[key(disabled)]["reason"] == "already disabled"
    )
    assert results[key(renamed)]["result"] == SKIPPED
    assert (
        "email changed" in results[key(renamed)]["reason"]
        and "someone.else@acme.com" in results[key(renamed)]["reason"]
    )
    assert results[key(deleted)]["result"] == SKIPPED and "not found" in results[key(deleted)]["reason"]
    assert results[key(rehired)]["result"] == SKIPPED and "okta (ACTIVE)" in results[key(rehired)]["reason"]
    assert estate.user(renamed.portal, renamed.user_id)["enabled"] is True
    assert estate.user(rehired.portal, rehired.user_id)["enabled"] is True
    skipped = {key(a) for a in (disabled, renamed, deleted, rehired)}
    assert all(e["result"] == DONE for k, e in results.items() if k not in skipped)
    puts = {(p, path) for p, m, path, _, _ in estate.requests("PUT")}
    assert (renamed.portal, f"/users/{renamed.user_id}") not in puts
    assert (rehired.portal, f"/users/{rehired.user_id}") not in puts


async def test_a_silent_no_op_write_is_caught_by_the_read_back_and_fails_the_run(estate) -> None:
    plan, plan_path = estate.make_plan()
    estate.portal("emea").faults = FaultConfig(silent_noop_writes=True)
    log = estate.tmp / "audit.jsonl"

    code, out, err = await estate.cli(
        "apply",
        str(plan_path),
        "--config",
        str(estate.config_path),
        "--yes",
        "--plan-hash",
        plan.plan_hash,
        "--log",
        str(log),
    )

    assert code == 3, err
    results = outcomes_by_account(log)
    for action in plan.actions:
        entry = results[(action.portal, action.user_id)]
        if action.portal == "emea":
            assert entry["result"] == FAILED and "silent no-op" in entry["reason"]
            assert entry["after"]["enabled"] is True
            assert estate.user("emea", action.user_id)["enabled"] is True
        else:  # one failing portal does not stop the other
            assert entry["result"] == DONE
    assert estate.portal("emea").stats.by_endpoint["PUT /users/{id}"] > 0
    assert "failed" in out and verify_log(log, KEY).ok


async def test_429s_mid_apply_are_waited_out_and_every_account_finishes(estate) -> None:
    plan, _ = estate.make_plan()
    estate.portal("emea").faults = FaultConfig(throttle_rate=0.2, seed=5)  # a shared-budget burst
    # A tiny real limit, without rate headers to pace by: real 429s from the window, not dice.
    amer = estate.portal("amer")
    amer.faults = FaultConfig(rate_headers=False)
    amer.spec = amer.spec.model_copy(update={"rate_limit_per_window": 5})
    amer.set_window(0.5)
    config = estate.config()

    with AuditLog(estate.tmp / "audit.jsonl", key=KEY) as log:
        outcomes = await run_targets(targets_from_plan(plan), config, log, command="apply")

    assert [o.result for o in outcomes] == [DONE] * len(plan.actions)
    assert all(estate.user(a.portal, a.user_id)["enabled"] is False for a in plan.actions)
    for name in ("emea", "amer"):
        assert estate.portal(name).stats.status_counts[429] > 0, (
            f"{name} never throttled: the test proves nothing"
        )
    assert verify_log(estate.tmp / "audit.jsonl", KEY).entries == 2 * len(plan.actions)  # intent + outcome


async def test_a_portal_with_bad_credentials_fails_alone(estate) -> None:
    plan, plan_path = estate.make_plan()
    wrong = "WRONG-key-0123456789abcdef"
    log = estate.tmp / "audit.jsonl"

    code, out, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        "--log", str(log), env={**estate.env, "LU_AMER_KEY": wrong},
    )  # fmt: skip

    assert code == 3
    results = outcomes_by_account(log)
    amer = [results[(a.portal, a.user_id)] for a in plan.actions if a.portal == "amer"]
    emea = [results[(a.portal, a.user_id)] for a in plan.actions if a.portal == "emea"]
    assert all(e["result"] == FAILED and "401" in e["reason"] for e in amer)
    assert all(e["result"] == DONE for e in emea)
    # the confirmation table's read-only pass meets the 401 for every account; apply stops at the first
    amer_planned = sum(a.portal == "amer" for a in plan.actions)
    assert estate.portal("amer").stats.by_endpoint["GET /users/{id}"] == amer_planned + 1
    assert estate.portal("amer").stats.writes == 0
    assert_no_secret(estate, out, err, log.read_text())
    assert wrong not in out + err + log.read_text()


async def test_remove_memberships_deletes_memberships_never_users_and_verifies(estate) -> None:
    plan, plan_path = estate.make_plan()
    data = {name: estate.portal(name).data for name in ("emea", "amer")}
    groups_before = {
        (a.portal, a.user_id): sorted(g for _, (g, u) in data[a.portal].memberships.items() if u == a.user_id)
        for a in plan.actions
    }
    assert any(groups_before.values()), "some planned account should be in a group"
    log = estate.tmp / "audit.jsonl"

    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        "--remove-memberships", "--log", str(log),
    )  # fmt: skip

    assert code == 0, err
    for (portal, user_id), groups in groups_before.items():
        assert not [m for m, (_, u) in data[portal].memberships.items() if u == user_id]
        removed = [
            e["group"]["id"]
            for e in outcomes(log)
            if e["action"] == "remove_membership" and (e["portal"], e["user_id"]) == (portal, user_id)
        ]
        assert sorted(removed) == groups
    bodies = [e for e in outcomes(log) if e["action"] == "remove_membership"]
    assert bodies and all(e["result"] == DONE and e["group"]["title"] for e in bodies)
    intents = {
        e["seq"]
        for e in read_entries(log, KEY)
        if e["phase"] == "intent" and e["action"] == "remove_membership"
    }
    assert all(e["intent_seq"] in intents for e in bodies), "the DELETEs were announced before they were sent"
    deletes = estate.requests("DELETE")
    assert deletes and all(path == "/group_memberships/0" for _, _, path, _, _ in deletes)
    assert_nothing_deleted(estate, memberships=True)
    assert all(estate.user(a.portal, a.user_id) for a in plan.actions), "accounts still exist"


async def test_an_idp_that_cannot_be_re_checked_fails_the_disable_safely(estate) -> None:
    plan, plan_path = estate.make_plan()
    estate.okta.faults.fail_from_page = 1
    estate.okta.faults.fail_status = 401
    log = estate.tmp / "audit.jsonl"

    code, out, _ = await estate.cli(
        "apply",
        str(plan_path),
        "--config",
        str(estate.config_path),
        "--yes",
        "--plan-hash",
        plan.plan_hash,
        "--log",
        str(log),
    )

    assert code == 3 and f"0 done, 0 skipped, {len(plan.actions)} failed" in out
    assert all(e["result"] == FAILED and "IdP re-check failed" in e["reason"] for e in read_entries(log, KEY))
    assert estate.requests("PUT") == []
    assert len(estate.okta.exchanges) <= 2, "an IdP refusing our token is not asked again for every account"


async def test_without_idps_in_the_config_the_log_says_nothing_was_re_checked(estate) -> None:
    plan, plan_path = estate.make_plan()
    config = estate.write_config(estate.tmp / "no-idp.toml", idp=False)
    log = estate.tmp / "audit.jsonl"

    code, _, err = await estate.cli(
        "apply",
        str(plan_path),
        "--config",
        str(config),
        "--yes",
        "--plan-hash",
        plan.plan_hash,
        "--log",
        str(log),
    )

    assert code == 0, err
    assert "not re-checked" in err
    for entry in read_entries(log, KEY):
        assert entry["idp_recheck"] == {"*": "not re-checked: the config names no IdP"}
    assert estate.okta.exchanges == []


async def test_a_plan_edited_after_review_is_refused_before_any_request(estate) -> None:
    plan, plan_path = estate.make_plan()
    data = json.loads(plan_path.read_text())
    data["actions"] = data["actions"][1:]  # someone drops (or adds) an account after approval
    plan_path.write_text(json.dumps(data, sort_keys=True, indent=2))

    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash
    )

    assert code == 2 and "modified after it was made" in err
    assert estate.requests() == []


async def test_apply_pinned_to_another_hash_is_refused(estate) -> None:
    plan, plan_path = estate.make_plan()
    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", "0" * 64
    )
    assert code == 2 and "not the approved" in err
    assert estate.requests() == []
    assert load_plan(plan_path, KEY, plan.plan_hash).plan_hash == plan.plan_hash


async def run_on_terminal(estate, answer: bytes, *args: str) -> tuple[int, str]:
    """The CLI with a pseudo-terminal as stdin/stdout/stderr, typing `answer` at the prompt."""
    leader, follower = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.remediate", *args,
        env={**os.environ, **estate.env, "COLUMNS": "250"}, cwd=estate.tmp,
        stdin=follower, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    loop = asyncio.get_running_loop()
    while b"[y/N]" not in seen:
        chunk = await asyncio.wait_for(loop.run_in_executor(None, os.read, leader, 65536), timeout=60)
        if not chunk:
            break
        seen += chunk
    os.write(leader, answer + b"\n")
    code = await asyncio.wait_for(proc.wait(), timeout=60)
    try:
        while chunk := os.read(leader, 65536):
            seen += chunk
    except OSError:
        pass
    os.close(leader)
    return code, seen.decode(errors="replace")


async def test_on_a_terminal_apply_asks_and_no_means_nothing_happens(estate) -> None:
    plan, plan_path = estate.make_plan()
    log = estate.tmp / "audit.jsonl"
    args = ("apply", str(plan_path), "--config", str(estate.config_path), "--log", str(log))

    code, screen = await run_on_terminal(estate, b"n", *args)
    assert (
        code == 1 and f"Disable {len(plan.actions)} account(s)" in screen and "nothing was changed" in screen
    )
    assert estate.requests("PUT") == [] and not log.exists(), "only the live reads for the table"

    code, screen = await run_on_terminal(estate, b"y", *args)
    assert code == 0, screen
    assert all(estate.user(a.portal, a.user_id)["enabled"] is False for a in plan.actions)
    assert len(outcomes(log)) == len(plan.actions)


async def test_apply_with_json_logs_keeps_stderr_json_and_ends_with_a_summary_to_record(estate) -> None:
    plan, plan_path = estate.make_plan()
    log = estate.tmp / "audit.jsonl"
    code, out, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        "--log", str(log), "--log-format", "json",
    )  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines()]  # no confirmation table: JSON only
    assert [entry.get("event") for entry in lines].count("summary") == 1
    summary = lines[-1]
    assert (summary["command"], summary["exit_code"], summary["plan_hash"]) == (
        "remediate apply",
        0,
        plan.plan_hash,
    )
    assert (summary["done"], summary["skipped"], summary["failed"]) == (len(plan.actions), 0, 0)
    assert summary["head"] == verify_log(log, KEY).head and f"head {summary['head']}" in out
    assert any("Okta" in entry["message"] or "okta" in entry["message"] for entry in lines)  # the IdP note
    assert_no_secret(estate, out, err)
