"""`remediate undo` and `remediate verify` on the log a real apply wrote."""

from __future__ import annotations

import json

from crawler.remediation.apply import DONE, SKIPPED
from crawler.remediation.audit import read_entries, verify_log

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY


def outcomes(log) -> list[dict]:
    return [e for e in read_entries(log, KEY) if e["phase"] == "outcome"]


def let_back_in(estate, emails) -> None:
    """The IdP re-admits these people (what makes an undo legitimate: it was a mistaken offboarding)."""
    wanted = {e.casefold() for e in emails}
    for user in estate.okta.users:
        if user["profile"]["email"].casefold() in wanted:
            user["status"] = "ACTIVE"


async def apply_with_one_pre_disabled(estate):
    """Apply a plan in which one account was already disabled by someone else: one skip, the rest done."""
    plan, plan_path = estate.make_plan()
    pre = plan.actions[0]
    estate.portal(pre.portal).data.set_enabled(pre.user_id, False)
    before = estate.enabled_states()
    log = estate.tmp / "audit.jsonl"
    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        "--log", str(log),
    )  # fmt: skip
    assert code == 0, err
    let_back_in(estate, [a.email for a in plan.actions])
    for portal in estate.sim.portals:
        portal.reset_stats()
    estate.okta.exchanges.clear()
    return plan, log, before


async def test_undo_restores_exactly_what_was_disabled_and_nothing_else(estate) -> None:
    plan, log, before = await apply_with_one_pre_disabled(estate)
    entries = read_entries(log, KEY)
    done = [e["seq"] for e in outcomes(log) if e["action"] == "disable" and e["result"] == DONE]
    assert len(done) == len(plan.actions) - 1
    args = [arg for seq in done for arg in ("--entry", str(seq))]

    code, out, err = await estate.cli("undo", str(log), *args, "--config", str(estate.config_path), "--yes")

    assert code == 0, err
    assert estate.enabled_states() == before, "every account is back as it was before apply"
    pre = plan.actions[0]
    assert estate.user(pre.portal, pre.user_id)["enabled"] is False, (
        "the account apply skipped stays disabled"
    )
    undo = [e for e in read_entries(log, KEY)[len(entries) :] if e["phase"] == "outcome"]
    assert sorted(e["undo_of"] for e in undo) == done  # portals run concurrently: any interleaving
    assert all(e["action"] == "enable" and e["result"] == DONE and e["command"] == "undo" for e in undo)
    assert all(e["before"]["enabled"] is False and e["after"]["enabled"] is True for e in undo)
    assert sum(p.stats.by_endpoint["PUT /users/{id}"] for p in estate.sim.portals) == len(done)
    assert estate.okta.exchanges, "re-enabling asks the IdP whether the person is still disabled"
    assert verify_log(log, KEY).ok and verify_log(log, KEY).entries == len(entries) + 2 * len(done)
    for secret in estate.secrets:
        assert secret not in out + err + log.read_text()


async def test_undo_of_some_entries_touches_only_those(estate) -> None:
    _, log, _ = await apply_with_one_pre_disabled(estate)
    done = [e for e in outcomes(log) if e["action"] == "disable" and e["result"] == DONE]
    chosen, rest = done[:2], done[2:]

    code, _, err = await estate.cli(
        "undo", str(log), "--entry", str(chosen[0]["seq"]), "--entry", str(chosen[1]["seq"]),
        "--config", str(estate.config_path), "--yes",
    )  # fmt: skip

    assert code == 0, err
    for entry in chosen:
        assert estate.user(entry["portal"], entry["user_id"])["enabled"] is True
    for entry in rest:
        assert estate.user(entry["portal"], entry["user_id"])["enabled"] is False


async def test_undo_refuses_skips_repeats_and_missing_entries_before_sending_anything(estate) -> None:
    _, log, _ = await apply_with_one_pre_disabled(estate)
    entries = outcomes(log)
    skipped = next(e["seq"] for e in entries if e["result"] == SKIPPED)
    done = next(e["seq"] for e in entries if e["result"] == DONE)
    config = ["--config", str(estate.config_path), "--yes"]

    code, _, err = await estate.cli("undo", str(log), "--entry", str(skipped), *config)
    assert code == 2 and "only a completed disable" in err
    code, _, err = await estate.cli("undo", str(log), "--entry", "999", *config)
    assert code == 2 and "no such entry" in err
    assert estate.requests() == []

    code, _, err = await estate.cli("undo", str(log), "--entry", str(done), *config)
    assert code == 0, err
    code, _, err = await estate.cli("undo", str(log), "--entry", str(done), *config)
    assert code == 2 and "already undone" in err


async def test_undo_without_confirmation_sends_nothing(estate) -> None:
    _, log, _ = await apply_with_one_pre_disabled(estate)
    size = log.stat().st_size
    done = next(e["seq"] for e in outcomes(log) if e["result"] == DONE)

    code, _, err = await estate.cli(
        "undo", str(log), "--entry", str(done), "--config", str(estate.config_path)
    )

    assert code == 2 and "refusing" in err
    assert estate.requests() == [] and log.stat().st_size == size


async def test_a_tampered_log_fails_verification_naming_the_entry_and_blocks_undo(estate) -> None:
    _, log, _ = await apply_with_one_pre_disabled(estate)
    lines = log.read_text().splitlines()
    middle = len(lines) // 2
    entry = json.loads(lines[middle])
    entry["email"] = "innocent@acme.com"  # one field of a middle line
    lines[middle] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    log.write_text("\n".join(lines) + "\n")

    code, verdict, _ = await estate.cli("verify", str(log), "--config", str(estate.config_path))

    assert code == 1
    assert f"BROKEN at entry {middle + 1}" in verdict and "edited" in verdict
    code, _, err = await estate.cli(
        "undo", str(log), "--entry", "1", "--config", str(estate.config_path), "--yes"
    )
    assert code == 2 and f"entry {middle + 1}" in err
    plan, plan_path = estate.make_plan(estate.tmp / "again.json")
    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        "--log", str(log),
    )  # fmt: skip
    assert code == 2 and "refusing to extend" in err
    assert estate.requests() == []
