"""Issue 14, item 2: a forged or truncated audit log must not verify, and undo must not act on one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crawler.remediation.apply import DONE, FAILED
from crawler.remediation.audit import (
    AuditError,
    AuditLog,
    canonical_line,
    entry_hash,
    read_entries,
    verify_log,
)

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY
ACTOR = {"user": "tester", "host": "ci"}


def write_entries(path: Path, count: int, key: bytes = KEY) -> None:
    with AuditLog(path, key=key, actor=ACTOR) as log:
        for i in range(count):
            log.append({"action": "disable", "portal": "emea", "user_id": 100 + i, "result": "done"})


def forge_next(path: Path, record: dict) -> dict:
    """Append a self-consistent entry (seq, prev_hash, hash): all that someone without the key can do."""
    data = path.read_bytes()
    lines = data.split(b"\n")[:-1]
    last = json.loads(lines[-1])
    entry = {**last, **record, "seq": last["seq"] + 1, "prev_hash": hashlib.sha256(lines[-1]).hexdigest()}
    entry.pop("mac", None)
    entry["hash"] = entry_hash(entry)
    entry["mac"] = "0" * 64
    path.write_bytes(data + canonical_line(entry) + b"\n")
    return entry


def test_a_self_consistent_entry_appended_without_the_key_does_not_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 3)
    forge_next(path, {"user_id": 555})
    result = verify_log(path, KEY)
    assert not result.ok and result.broken_entry == 4 and "mac" in (result.reason or "")
    with pytest.raises(AuditError, match="entry 4"):
        read_entries(path, KEY)


def test_a_log_rewritten_whole_under_another_key_does_not_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 3, key=b"someone-elses-key-0123456789")
    result = verify_log(path, KEY)
    assert not result.ok and result.broken_entry == 1 and "mac" in (result.reason or "")


def test_a_truncated_log_is_refused_against_the_recorded_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 5)
    head = verify_log(path, KEY).head
    full = path.read_bytes()
    path.write_bytes(b"".join(line + b"\n" for line in full.split(b"\n")[:3]))  # the last two cut off

    assert verify_log(path, KEY).ok, "without the recorded head a shorter chain is still a chain"
    result = verify_log(path, KEY, expect_head=head)
    assert not result.ok and "not in the log" in (result.reason or "")
    with pytest.raises(AuditError, match="not in the log"):
        read_entries(path, KEY, expect_head=head)
    with pytest.raises(AuditError, match="not in the log"):
        AuditLog(path, key=KEY, expect_head=head).open()
    for partial in (head[:16], ""):
        assert not verify_log(path, KEY, expect_head=partial).ok, "a prefix is not a head"
    path.unlink()  # a deleted log is the extreme truncation
    with pytest.raises(AuditError, match="not in the log"):
        AuditLog(path, key=KEY, expect_head=head).open()


def test_a_log_that_grew_since_the_recorded_head_still_verifies_against_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(path, 2)
    head = verify_log(path, KEY).head
    with AuditLog(path, key=KEY, actor=ACTOR, expect_head=head) as log:
        log.append({"action": "disable", "portal": "emea", "user_id": 7, "result": "done"})
    assert verify_log(path, KEY, expect_head=head).ok and verify_log(path, KEY).entries == 3


async def applied(estate) -> tuple[Path, list[dict], str]:
    """A real apply; returns the log, its outcome entries and the head apply printed."""
    plan, plan_path = estate.make_plan()
    log = estate.tmp / "audit.jsonl"
    code, out, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        "--log", str(log),
    )  # fmt: skip
    assert code == 0, err
    head = next(line.split()[1] for line in out.splitlines() if line.startswith("head "))
    assert head == verify_log(log, KEY).head
    for portal in estate.sim.portals:
        portal.reset_stats()
    return log, [e for e in read_entries(log, KEY) if e["phase"] == "outcome"], head


def let_back_in(estate, email: str) -> None:
    for user in estate.okta.users:
        if user["profile"]["email"].casefold() == email.casefold():
            user["status"] = "ACTIVE"


async def test_a_forged_disable_entry_fails_verify_and_undo_will_not_act_on_it(estate) -> None:
    """The issue's attack: an admin disabled someone; a forged entry claims we did, for undo to re-enable."""
    log, _, _ = await applied(estate)
    users = estate.portal("emea").data.users
    victim = next(uid for uid, u in sorted(users.items()) if u["enabled"])
    estate.portal("emea").data.set_enabled(victim, False)  # a portal admin's decision, not ours
    let_back_in(estate, users[victim]["email"])
    state = {"enabled": False, "email": users[victim]["email"], "user_type": users[victim]["user_type"]}
    forged = forge_next(
        log, {"phase": "outcome", "action": "disable", "result": DONE, "user_id": victim,
              "email": users[victim]["email"], "before": {**state, "enabled": True}, "after": state},
    )  # fmt: skip
    config = ["--config", str(estate.config_path)]

    code, verdict, _ = await estate.cli("verify", str(log), *config)
    assert code == 1 and f"BROKEN at entry {forged['seq']}" in verdict and "mac" in verdict
    code, _, err = await estate.cli(
        "undo", str(log), "--entry", str(forged["seq"]), *config, "--yes", "--force"
    )
    assert code == 2 and f"entry {forged['seq']}" in err
    assert users[victim]["enabled"] is False
    assert estate.requests() == []


async def test_verify_apply_and_undo_refuse_a_log_cut_short_of_the_recorded_head(estate) -> None:
    log, entries, head = await applied(estate)
    data = log.read_bytes()
    log.write_bytes(b"".join(line + b"\n" for line in data.split(b"\n")[:-1][:-2]))  # hide the last account
    config = ["--config", str(estate.config_path)]

    code, verdict, _ = await estate.cli("verify", str(log), *config, "--expect-head", head)
    assert code == 1 and "not in the log" in verdict
    code, _, err = await estate.cli(
        "undo",
        str(log),
        "--entry",
        str(entries[0]["seq"]),
        *config,
        "--yes",
        "--force",
        "--expect-head",
        head,
    )
    assert code == 2 and "not in the log" in err
    plan, plan_path = estate.make_plan(estate.tmp / "again.json")
    code, _, err = await estate.cli(
        "apply", str(plan_path), *config, "--yes", "--plan-hash", plan.plan_hash, "--log", str(log),
        "--expect-head", head,
    )  # fmt: skip
    assert code == 2 and "not in the log" in err
    assert estate.requests() == []
    code, verdict, _ = await estate.cli("verify", str(log), *config, "--expect-head", "0" * 64)
    assert code == 0 and "contains the expected head" in verdict


async def test_undo_refuses_an_account_someone_else_disabled_after_us(estate) -> None:
    log, entries, head = await applied(estate)
    ours = entries[0]
    data = estate.portal(ours["portal"]).data
    # A portal admin re-enabled it, then disabled it again for their own reasons: enabled reads false again.
    data.set_enabled(ours["user_id"], True)
    data.set_enabled(ours["user_id"], False)
    estate.user(ours["portal"], ours["user_id"])["updated_at"] = "2099-01-01T00:00:00Z"
    let_back_in(estate, ours["email"])

    code, _, err = await estate.cli(
        "undo", str(log), "--entry", str(ours["seq"]), "--config", str(estate.config_path), "--yes",
        "--expect-head", head,
    )  # fmt: skip

    assert code == 3, err
    assert estate.user(ours["portal"], ours["user_id"])["enabled"] is False
    last = read_entries(log, KEY)[-1]
    assert last["result"] == FAILED and "changed since our disable's read-back: updated_at" in last["reason"]
    assert estate.requests("PUT") == []


async def test_undo_refuses_while_the_idp_still_says_disabled_unless_forced(estate) -> None:
    log, entries, head = await applied(estate)
    ours = entries[0]
    args = ["undo", str(log), "--entry", str(ours["seq"]), "--config", str(estate.config_path), "--yes"]

    code, out, err = await estate.cli(*args, "--expect-head", head)
    assert code == 3, err
    last = read_entries(log, KEY)[-1]
    assert last["result"] == FAILED and "the IdP still says the person is disabled" in last["reason"]
    assert estate.user(ours["portal"], ours["user_id"])["enabled"] is False
    assert estate.requests("PUT") == []

    new_head = next(line.split()[1] for line in out.splitlines() if line.startswith("head "))
    code, _, err = await estate.cli(*args, "--force", "--expect-head", new_head)
    assert code == 0, err
    assert estate.user(ours["portal"], ours["user_id"])["enabled"] is True
    last = read_entries(log, KEY)[-1]
    assert last["result"] == DONE and last["undo_of"] == ours["seq"] and last["intent_seq"] == last["seq"] - 1
