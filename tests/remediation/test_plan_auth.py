"""Issue 14, item 1: an edited plan must not disable anyone. Each test mounts the attack on the simulator."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest

from crawler.remediation.apply import DONE, SKIPPED
from crawler.remediation.audit import read_entries
from crawler.remediation.plan import PlanError, canonical_json, load_plan

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY


def outcomes_by_account(log) -> dict[tuple[str, int], dict]:
    return {(e["portal"], e["user_id"]): e for e in read_entries(log, KEY) if e["phase"] == "outcome"}


def add_an_admin_as_a_learner(estate, plan_path) -> tuple[str, int]:
    """The attack of the issue: add an admin, claim it is a learner, recompute plan_hash with plain sha256."""
    data = json.loads(plan_path.read_text())
    planned = {(a["portal"], a["user_id"]) for a in data["actions"]}
    users = estate.portal("emea").data.users
    admin_id = next(uid for uid, u in sorted(users.items()) if u["enabled"] and ("emea", uid) not in planned)
    users[admin_id]["user_type"] = "admin"
    estate.portal("emea").data.touch()
    forged = json.loads(json.dumps(next(a for a in data["actions"] if a["portal"] == "emea")))
    forged["user_id"] = admin_id
    forged["email"] = users[admin_id]["email"]
    forged["state"].update(email=users[admin_id]["email"], user_type="learner")
    data["actions"].append(forged)
    content = {k: v for k, v in data.items() if k != "plan_hash"}
    data["plan_hash"] = hashlib.sha256(canonical_json(content).encode()).hexdigest()
    plan_path.write_text(json.dumps(data, sort_keys=True, indent=2))
    return "emea", admin_id


async def test_an_edited_plan_rehashed_with_sha256_is_refused_even_with_an_empty_plan_hash(estate) -> None:
    _, plan_path = estate.make_plan()
    portal, admin_id = add_an_admin_as_a_learner(estate, plan_path)
    rehashed = json.loads(plan_path.read_text())["plan_hash"]
    log = estate.tmp / "audit.jsonl"
    # Without an IdP to re-check (Okta would vouch for an active admin) the old code disabled the admin.
    no_idp = estate.write_config(estate.tmp / "no-idp.toml", idp=False)

    for pinned in ("", rehashed):
        code, _, err = await estate.cli(
            "apply",
            str(plan_path),
            "--config",
            str(no_idp),
            "--yes",
            "--plan-hash",
            pinned,
            "--log",
            str(log),
        )
        assert code == 2, err
        assert "not the approved" in err or "fails authentication" in err, err

    assert estate.user(portal, admin_id)["enabled"] is True, "the admin must not be disabled"
    assert estate.requests() == [] and not log.exists()


async def test_yes_needs_the_full_plan_hash_never_a_prefix_nor_nothing(estate) -> None:
    plan, plan_path = estate.make_plan()
    base = ["apply", str(plan_path), "--config", str(estate.config_path), "--yes"]
    for extra, words in (
        ([], "--yes needs --plan-hash"),
        (["--plan-hash", ""], "not the approved"),
        (["--plan-hash", plan.plan_hash[:16]], "not the approved"),
        (["--plan-hash", plan.plan_hash[:-1]], "not the approved"),
    ):
        code, _, err = await estate.cli(*base, *extra)
        assert code == 2 and words in err, (extra, err)
    assert estate.requests() == []
    with pytest.raises(PlanError, match="not the approved"):
        load_plan(plan_path, KEY, plan.plan_hash[:16])


async def test_a_plan_made_with_another_key_or_without_one_is_refused(estate) -> None:
    plan, plan_path = estate.make_plan()
    other = {**estate.env, "IDGRAPH_REMEDIATION_KEY": "another-key-of-enough-length-42"}
    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        env=other,
    )  # fmt: skip
    assert code == 2 and "fails authentication" in err
    keyless = estate.write_config(estate.tmp / "keyless.toml", remediation="")
    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(keyless), "--yes", "--plan-hash", plan.plan_hash
    )
    assert code == 2 and "[remediation] key_env" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = await estate.cli(
        "plan", "--db", str(estate.db), "--finding", "idp_disabled_active", "--config", str(keyless),
        "--out", str(estate.tmp / "p.json"),
    )  # fmt: skip
    assert code == 2 and "key_env" in err and not (estate.tmp / "p.json").exists()
    unset = {k: v for k, v in estate.env.items() if k != "IDGRAPH_REMEDIATION_KEY"}
    code, _, err = await estate.cli(
        "plan", "--db", str(estate.db), "--finding", "idp_disabled_active",
        "--config", str(estate.config_path), "--out", str(estate.tmp / "p.json"), env=unset,
    )  # fmt: skip
    assert code == 2 and "IDGRAPH_REMEDIATION_KEY is not set" in err
    assert estate.requests() == []
    for secret in estate.secrets:
        assert secret not in err and secret not in plan_path.read_text()


async def test_a_plan_is_bound_to_the_base_urls_it_was_made_for(estate) -> None:
    plan, plan_path = estate.make_plan()
    assert plan.base_urls == {p: estate.sim.base_url(p) for p in plan.portals}
    # The same portal names, pointed at another tenant (here: amer's portal under emea's name).
    elsewhere = estate.write_config(estate.tmp / "elsewhere.toml", urls={"emea": estate.sim.base_url("amer")})
    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(elsewhere), "--yes", "--plan-hash", plan.plan_hash
    )
    assert code == 2 and "portal emea is" in err and "in the plan" in err, err
    # And the plan's own base_url cannot be edited to match: that breaks its MAC.
    data = json.loads(plan_path.read_text())
    data["base_urls"]["emea"] = estate.sim.base_url("amer")
    plan_path.write_text(json.dumps(data, sort_keys=True, indent=2))
    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(elsewhere), "--yes", "--plan-hash", plan.plan_hash
    )
    assert code == 2 and "fails authentication" in err
    assert estate.requests() == []


async def test_a_plan_past_its_maximum_age_is_refused(estate) -> None:
    plan, plan_path = estate.make_plan()
    made = datetime.fromisoformat(plan.created_at.replace("Z", "+00:00"))
    assert datetime.fromisoformat(plan.expires_at.replace("Z", "+00:00")) - made == timedelta(hours=72)
    assert (
        load_plan(plan_path, KEY, plan.plan_hash, now=made + timedelta(hours=71)).plan_hash == plan.plan_hash
    )
    with pytest.raises(PlanError, match="expired"):
        load_plan(plan_path, KEY, plan.plan_hash, now=made + timedelta(hours=72, seconds=1))
    # Pushing expires_at out is an edit like any other.
    data = json.loads(plan_path.read_text())
    data["expires_at"] = "2999-01-01T00:00:00.000Z"
    plan_path.write_text(json.dumps(data, sort_keys=True, indent=2))
    with pytest.raises(PlanError, match="fails authentication"):
        load_plan(plan_path, KEY, plan.plan_hash)


async def test_live_drift_in_any_saved_field_is_skipped_and_the_table_shows_live_values(estate) -> None:
    plan, plan_path = estate.make_plan()
    emails = [a.email.casefold() for a in plan.actions]
    single = [a for a in plan.actions if emails.count(a.email.casefold()) == 1]
    promoted, renamed, touched = single[:3]
    estate.user(promoted.portal, promoted.user_id)["user_type"] = "admin"  # made an admin since the crawl
    estate.user(renamed.portal, renamed.user_id)["username"] = "someone-else"
    estate.user(touched.portal, touched.user_id)["updated_at"] = "2099-01-01T00:00:00Z"  # edited since
    for name in ("emea", "amer"):
        estate.portal(name).data.touch()
    log = estate.tmp / "audit.jsonl"

    code, _, err = await estate.cli(
        "apply", str(plan_path), "--config", str(estate.config_path), "--yes", "--plan-hash", plan.plan_hash,
        "--log", str(log),
    )  # fmt: skip

    assert code == 0, err
    results = outcomes_by_account(log)
    for action, field in ((promoted, "user_type"), (renamed, "username"), (touched, "updated_at")):
        entry = results[(action.portal, action.user_id)]
        assert entry["result"] == SKIPPED and f"changed since the plan: {field}" in entry["reason"], entry
        assert estate.user(action.portal, action.user_id)["enabled"] is True
    skipped = {(a.portal, a.user_id) for a in (promoted, renamed, touched)}
    assert all(e["result"] == DONE for k, e in results.items() if k not in skipped)
    # The confirmation table showed the account as the portal has it now, and that it will be skipped.
    row = next(line for line in err.splitlines() if f" {promoted.user_id} " in line and "skipped" in line)
    assert "admin" in row and "will be skipped" in row, row
