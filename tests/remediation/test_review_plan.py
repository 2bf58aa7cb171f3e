"""`remediate plan --from-review` on the simulator: exactly the revoke decisions that still stand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from crawler.orchestrator import crawl
from crawler.remediation.audit import read_entries
from crawler.remediation.plan import PlanError, load_plan, write_plan
from crawler.store import SnapshotStore
from graph.campaign import open_review
from graph.decision_import import import_decisions
from graph.decisions_file import render_export
from graph.review import report_input
from graph.review_plan import plan_from_review
from graph.rules import ReviewSettings

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY
REVIEWER = "review.lead@example.org"


def _rows(estate) -> list[dict[str, str]]:
    settings = ReviewSettings.from_config(estate.config().review)
    with SnapshotStore(estate.db) as store, open_review(store, None, settings) as review:
        text = render_export(review, report_input(store, review))
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def _import(estate, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with SnapshotStore(estate.db) as store, open_review(store) as review:
        import_decisions(store, review, buffer.getvalue().encode(), reviewer=REVIEWER, file_name="d.csv",
                         now=datetime.now(UTC))  # fmt: skip


async def test_a_revoked_dormant_account_is_disabled_although_the_idp_still_lets_the_person_in(
    estate,
) -> None:
    rows = _rows(estate)
    row = next(r for r in rows if r["finding"] == "dormant" and r["idp_status"] == "active" and r["email"])
    row.update(decision="revoke", reason="unused for a year: PCI 8.2.6")
    _import(estate, rows)
    plan, left_out = plan_from_review(estate.db, config=estate.config(), key=KEY)
    assert [(a.portal, a.user_id, a.finding.code.value) for a in plan.actions] == [
        (row["portal"], int(row["learnupon_user_id"]), "dormant")
    ]
    assert left_out == []
    path = write_plan(plan, estate.tmp / "plan.json")
    log = estate.tmp / "audit.jsonl"
    code, _, err = await estate.cli("apply", str(path), "--config", str(estate.config_path), "--yes",
                                    "--plan-hash", plan.plan_hash, "--log", str(log))  # fmt: skip
    assert code == 0, err
    (outcome,) = [e for e in read_entries(log, KEY) if e["phase"] == "outcome"]
    assert outcome["result"] == "done" and outcome["idp_recheck"] == {"okta": "ACTIVE"}
    assert estate.user(row["portal"], int(row["learnupon_user_id"]))["enabled"] is False


async def test_revokes_on_changed_facts_or_excluded_accounts_are_left_out_with_the_reason(estate) -> None:
    rows = _rows(estate)
    orphans = [
        r
        for r in rows
        if r["finding"] == "idp_disabled_active" and r["email"] and r["user_type"] == "learner"
    ]
    promoted, excluded, kept = orphans[0], orphans[1], orphans[2]
    for row in (promoted, excluded, kept):
        row.update(decision="revoke", reason="left")
    _import(estate, rows)
    # The account becomes an admin before the plan is made: the reviewer decided on something else.
    estate.user(promoted["portal"], int(promoted["learnupon_user_id"]))["user_type"] = "admin"
    with SnapshotStore(estate.db) as store:
        assert (await crawl(estate.config(), store)).complete
    config = estate.write_config(estate.tmp / "excluding.toml")
    config.write_text(
        config.read_text().replace(
            "[remediation]",
            f'[[review.exclude]]\nid = "kiosk"\nreason = "shared kiosk"\nemail = "{excluded["email"]}"\n\n'
            "[remediation]",
        )
    )
    plan, left_out = plan_from_review(estate.db, config=estate.config(config), key=KEY)
    assert [(a.portal, a.user_id) for a in plan.actions] == [(kept["portal"], int(kept["learnupon_user_id"]))]
    reasons = {(n.portal, n.user_id): n.reason for n in left_out}
    assert (
        "no longer holds: the facts changed"
        in reasons[(promoted["portal"], int(promoted["learnupon_user_id"]))]
    )
    assert "user_type learner → admin" in reasons[(promoted["portal"], int(promoted["learnupon_user_id"]))]
    assert reasons[(excluded["portal"], int(excluded["learnupon_user_id"]))] == "excluded by rule kiosk"


def test_only_a_review_plan_may_disable_for_a_code_that_is_not_remediable(estate, tmp_path) -> None:
    rows = _rows(estate)
    next(r for r in rows if r["finding"] == "dormant" and r["email"]).update(
        decision="revoke", reason="unused"
    )
    _import(estate, rows)
    plan, _ = plan_from_review(estate.db, config=estate.config(), key=KEY)
    assert load_plan(write_plan(plan, tmp_path / "review.json"), KEY).actions
    forged = plan.model_copy(update={"selection": plan.selection.model_copy(update={"finding": "dormant"})})
    forged = forged.model_copy(update={"plan_hash": forged.compute_hash(KEY)})
    with pytest.raises(PlanError, match="dormant is not a remediable finding"):
        load_plan(write_plan(forged, tmp_path / "finding.json"), KEY)


async def test_plan_needs_exactly_one_of_finding_and_from_review(estate) -> None:
    base = (
        "plan",
        "--config",
        str(estate.config_path),
        "--db",
        str(estate.db),
        "--out",
        str(estate.tmp / "p.json"),
    )
    for extra in ((), ("--finding", "idp_disabled_active", "--from-review")):
        code, _, err = await estate.cli(*base, *extra)
        assert code == 2 and "give one of --finding CODE or --from-review" in err
    code, out, err = await estate.cli(*base, "--from-review")
    assert code == 0 and "disable 0 account(s)" in out, err  # the plan's line is a result: stdout


def test_a_finding_plan_never_touches_an_excepted_or_excluded_account(estate) -> None:
    from graph.model import Code
    from graph.remediation_plan import plan_from_snapshot

    rows = _rows(estate)
    orphans = [r for r in rows if r["finding"] == "idp_disabled_active" and r["email"]]
    excepted, excluded = orphans[0], orphans[1]
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    excepted.update(decision="exception", scope="account", reason="board observer", expires_at=until)
    _import(estate, rows)
    config = estate.write_config(estate.tmp / "excluding.toml")
    rule = f'[[review.exclude]]\nid = "kiosk"\nreason = "shared"\nemail = "{excluded["email"]}"\n\n'
    config.write_text(config.read_text().replace("[remediation]", rule + "[remediation]"))
    left_out: list = []
    plan = plan_from_snapshot(estate.db, code=Code.IDP_DISABLED_ACTIVE, config=estate.config(config), key=KEY,
                              left_out=left_out)  # fmt: skip
    planned = {(a.portal, a.user_id) for a in plan.actions}
    for row in (excepted, excluded):
        assert (row["portal"], int(row["learnupon_user_id"])) not in planned
    reasons = {(n.portal, n.user_id): n.reason for n in left_out}
    assert reasons[(excepted["portal"], int(excepted["learnupon_user_id"]))].startswith(
        "under a live exception"
    )
    assert reasons[(excluded["portal"], int(excluded["learnupon_user_id"]))] == "excluded by rule kiosk"
    expected = {
        (r["portal"], int(r["learnupon_user_id"]))
        for r in orphans
        if r is not excepted
        and r["email"].casefold() != excluded["email"].casefold()  # the rule: every portal
    }
    assert planned == expected
