"""Exceptions and exclusions carry across runs: accepted while they hold, back with the reason when they
expire or the facts behind them change; excluded accounts counted and listed, never dropped."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from review_helpers import (
    OTHER_REVIEWER,
    REVIEWER,
    SETTINGS,
    decide,
    export_rows,
    reviewing,
    row_of,
    to_csv,
    write_run,
)

from crawler.config import ConfigError, ExcludeRule, load_review_config
from crawler.store import SnapshotStore
from graph.decision_import import import_decisions
from graph.review import review_run
from graph.review_status import status
from graph.rules import ReviewSettings


def _import(db: Path, rows, reviewer: str = REVIEWER, now: datetime | None = None) -> None:
    with reviewing(db) as (store, review):
        import_decisions(store, review, to_csv(rows), reviewer=reviewer, file_name="d.csv", now=now)


def _states(db: Path, run_id: int | None = None) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """(code, portal, email) -> (state, note)."""
    with reviewing(db, run_id) as (_, review):
        return {
            (f.code.value, f.portal or "", (f.email or "").casefold()): (
                review.state(f).state,
                review.state(f).note,
            )
            for f in review.findings.findings
        }


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def test_an_exception_moves_its_finding_to_accepted_in_this_and_later_runs(db: Path, tmp_path: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "not_in_idp", "svc-backup@acme.com"), "exception", "nightly backup job, owned by IT",
           scope="account", expires_at=_in_days(60))  # fmt: skip
    _import(db, rows)
    with SnapshotStore(db) as store:
        write_run(store)
    state, note = _states(db)[("not_in_idp", "emea", "svc-backup@acme.com")]
    assert state == "accepted"
    assert note.startswith(f"exception by {REVIEWER} on ") and "(this account) until" in note
    assert note.endswith(": nightly backup job, owned by IT")
    assert ("not_in_idp", "emea", "svc-backup@acme.com") not in {
        (r["finding"], r["portal"], r["email"]) for r in export_rows(db)
    }, "an accepted finding is not exported for decision again"

    review = review_run(db, tmp_path / "out", formats="csv,json,html,md")
    document = json.loads(review.paths["json"].read_text())
    assert [r["email"] for r in document["accepted"]] == ["svc-backup@acme.com"]
    assert "svc-backup@acme.com" not in [r["email"] for r in document["findings"]]
    assert document["summary"]["accepted"] == 1 and document["summary"]["total"] == len(document["findings"])
    with review.paths["csv"].open(newline="") as handle:
        by_state = {(r["email"], r["finding"]): r["review_state"] for r in csv.DictReader(handle)}
    assert by_state[("svc-backup@acme.com", "not_in_idp")] == "accepted"
    assert 'id="accepted-table"' in review.paths["html"].read_text()
    assert "## Accepted and excluded" in review.paths["md"].read_text()


def test_an_expired_exception_brings_its_finding_back_with_the_reason(db: Path) -> None:
    rows = export_rows(db)
    granted = datetime.now(UTC) - timedelta(days=20)
    decide(row_of(rows, "dormant", "dora@acme.com"), "exception", "parental leave", scope="account",
           expires_at=(granted + timedelta(days=5)).date().isoformat())  # fmt: skip
    _import(db, rows, now=granted)  # decided 20 days ago, for 5 days: the run (a day ago) is past it
    state, note = _states(db)[("dormant", "emea", "dora@acme.com")]
    assert state == "open" and "expired at" in note and note.endswith(": parental leave")
    with reviewing(db) as (_, review):
        counts = status(review)
    assert counts["totals"]["lapsed"] == 1 and counts["totals"]["exception"] == 0
    assert row_of(export_rows(db), "dormant", "dora@acme.com")["review_note"] == note


def test_a_change_in_the_facts_behind_an_exception_brings_it_back(db: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "idp_disabled_active", "ana@acme.com"), "exception", "contractor, rehire pending",
           scope="account", expires_at=_in_days(30))  # fmt: skip
    _import(db, rows)
    with SnapshotStore(db) as store:
        write_run(store, changes={"ana": {"user_type": "admin"}})  # the account became an admin
    state, note = _states(db)[("idp_disabled_active", "emea", "ana@acme.com")]
    assert state == "open"
    assert "no longer holds: the facts changed (severity high → critical; user_type learner → admin)" in note


def test_a_person_wide_exception_covers_every_portal_until_one_account_differs(db: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "active_after_offboarding", "bob@acme.com", "emea"), "exception", "garden leave",
           scope="person", expires_at=_in_days(30))  # fmt: skip
    _import(db, rows)
    states = _states(db)
    for portal in ("emea", "apac"):
        assert states[("active_after_offboarding", portal, "bob@acme.com")][0] == "accepted"
        assert states[("idp_disabled_active", portal, "bob@acme.com")][0] == "open", "another code"
    assert "(this person in every portal)" in states[("active_after_offboarding", "apac", "bob@acme.com")][1]

    with SnapshotStore(db) as store:
        write_run(store, changes={"bob-apac": {"user_type": "manager"}})
    states = _states(db)
    assert states[("active_after_offboarding", "emea", "bob@acme.com")][0] == "accepted"
    state, note = states[("active_after_offboarding", "apac", "bob@acme.com")]
    assert state == "open" and "no longer holds" in note  # critical either way: the user type is the fact
    with SnapshotStore(db) as store:
        write_run(store, changes={"idp:bob": {"status": "deleted", "raw_status": "DEPROVISIONED"}})
    states = _states(db)
    for portal in ("emea", "apac"):
        state, note = states[("active_after_offboarding", portal, "bob@acme.com")]
        assert state == "open" and "idp_status disabled → deleted" in note


RULES = (
    ExcludeRule(id="break-glass", reason="sealed emergency admin", email="BreakGlass-*@acme.com"),
    ExcludeRule(id="backup", reason="backup service", username="SVC-BACKUP", user_type="admin"),
    ExcludeRule(id="old-kiosk", reason="retired", portal="emea", expires=date(2020, 1, 1)),
    ExcludeRule(id="apac-learners", reason="never matches an admin", portal="apac", user_type="instructor"),
)


def test_exclusion_rules_take_accounts_out_of_the_headline_but_count_and_list_them(
    db: Path, tmp_path: Path
) -> None:
    settings = ReviewSettings(SETTINGS.managed_domains, 90, RULES)
    review = review_run(db, tmp_path / "out", formats="json,csv,html", settings=settings)
    states = _states(db)
    assert states[("not_in_idp", "apac", "breakglass-1@acme.com")] == (
        "excluded",
        "excluded by rule break-glass",
    )
    assert states[("not_in_idp", "emea", "svc-backup@acme.com")] == ("excluded", "excluded by rule backup")
    assert states[("dormant", "emea", "dora@acme.com")][0] == "open", "an expired rule excludes nothing"
    document = json.loads(review.paths["json"].read_text())
    assert {(r["email"], r["review_note"]) for r in document["excluded"]} == {
        ("breakglass-1@acme.com", "excluded by rule break-glass"),
        ("svc-backup@acme.com", "excluded by rule backup"),
    }
    assert document["summary"]["excluded"] == 2
    rules = {r["rule"]: (r["state"], r["accounts"]) for r in document["exclusion_rules"]}
    assert rules == {
        "break-glass": ("in force", 1), "backup": ("in force", 1), "old-kiosk": ("expired", 0),
        "apac-learners": ("in force", 0),
    }  # fmt: skip
    html = review.paths["html"].read_text()
    assert 'id="excluded-table"' in html and 'data-rule="old-kiosk"' in html
    with reviewing(db) as (_, under_review):  # the rules were saved with the run: no config needed now
        assert status(under_review)["totals"]["excluded"] == 2


def test_exclusion_rules_in_the_config_file_and_their_errors(tmp_path: Path, cli) -> None:
    path = tmp_path / "idgraph.toml"
    path.write_text(
        '[review]\nmanaged_domains = ["acme.com"]\nmax_exception_days = 90\n'
        '[[review.exclude]]\nid = "break-glass"\nreason = "sealed"\nemail = "breakglass-*@acme.com"\n'
        "expires = 2030-06-30\n"
    )
    review = load_review_config(path)
    assert review.exclude == [
        ExcludeRule(
            id="break-glass", reason="sealed", email="breakglass-*@acme.com", expires=date(2030, 6, 30)
        )
    ]
    assert review.max_exception_days == 90
    path.write_text('[[review.exclude]]\nid = "all"\nreason = "oops"\n')
    with pytest.raises(ConfigError, match="rule 'all' matches every account"):
        load_review_config(path)
    path.write_text('[[review.exclude]]\nid = "a"\nreason = "r"\nportal = "x"\n' * 2)
    with pytest.raises(ConfigError, match="rule id 'a' is used twice"):
        load_review_config(path)
    path.write_text('[[review.exclude]]\nid = "a"\nreason = "r"\nportal = "x"\ncolour = "red"\n')
    bad = cli("review", "status", "--db", str(tmp_path / "none.db"))
    assert bad.returncode == 2 and "no snapshot" in bad.stderr
    report = cli(
        "report", "--config", str(path), "--db", str(tmp_path / "x.db"), "--out", str(tmp_path / "o")
    )
    assert report.returncode == 2 and "review.exclude[0].colour" in report.stderr


def test_accounts_under_a_live_revoke_are_readable_for_watchers(db: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "idp_disabled_active", "ana@acme.com"), "revoke", "left")
    decide(row_of(rows, "active_after_offboarding", "bob@acme.com", "emea"), "revoke", "left, used after")
    decide(row_of(rows, "idp_disabled_active", "bob@acme.com", "emea"), "revoke", "left")
    decide(row_of(rows, "dormant", "dora@acme.com"), "revoke", "unused")
    _import(db, rows)
    rows = export_rows(db)
    decide(row_of(rows, "dormant", "dora@acme.com"), "keep", "on leave after all")
    _import(db, rows, reviewer=OTHER_REVIEWER)
    with SnapshotStore(db) as store:
        live = store.reader().live_revokes()
    assert [(r.portal, r.learnupon_user_id, r.email, r.reviewer) for r in live] == [
        ("emea", 1, "ana@acme.com", REVIEWER),
        ("emea", 2, "bob@acme.com", REVIEWER),  # one row per account, however many findings were revoked
    ]


def test_status_counts_decided_and_undecided_by_severity_portal_and_reviewer(db: Path, cli) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "idp_disabled_active", "ana@acme.com"), "revoke", "left")
    decide(row_of(rows, "dormant", "dora@acme.com"), "keep", "leave")
    _import(db, rows)
    rows = export_rows(db)
    decide(row_of(rows, "dormant", "lead@acme.com"), "exception", "tests the LMS", scope="account",
           expires_at=_in_days(10))  # fmt: skip
    _import(db, rows, reviewer=OTHER_REVIEWER)
    result = cli("review", "status", "--db", str(db), "--format", "json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["totals"] == {
        "findings": 9, "decided": 3, "undecided": 6, "revoke": 1, "keep": 1, "exception": 1, "excluded": 0,
        "lapsed": 0,
    }  # fmt: skip
    assert counts["by_severity"]["high"]["revoke"] == 1 and counts["by_severity"]["low"]["decided"] == 2
    assert counts["by_portal"]["apac"]["exception"] == 1 and counts["by_portal"]["emea"]["undecided"] == 3
    assert counts["by_reviewer"] == {
        REVIEWER: {**dict.fromkeys(counts["totals"], 0), "findings": 2, "decided": 2, "revoke": 1, "keep": 1},
        OTHER_REVIEWER: {**dict.fromkeys(counts["totals"], 0), "findings": 1, "decided": 1, "exception": 1},
    }
    table = cli("review", "status", "--db", str(db))
    assert table.returncode == 0 and "review of run 1" in table.stdout and OTHER_REVIEWER in table.stdout


def test_on_an_incomplete_run_every_review_command_says_so_and_exits_3(db: Path, tmp_path: Path, cli) -> None:
    with SnapshotStore(db) as store:
        write_run(store, incomplete={"apac": "HTTP 503 on page 2"})
    for args in (["status"], ["export", "--out", str(tmp_path / "d.csv")]):
        result = cli("review", *args, "--db", str(db))
        assert result.returncode == 3, result.stderr
        assert "run 2 is INCOMPLETE" in result.stderr and "apac: HTTP 503 on page 2" in result.stderr


def test_a_person_wide_exception_does_not_cover_an_account_the_reviewer_never_saw() -> None:
    from graph.decisions import Decision, finding_facts, review_states
    from graph.exclusions import Exclusions
    from graph.model import Code, Finding, Severity

    def finding(portal: str, uid: int) -> Finding:
        email = "eve@acme.com"
        return Finding(Code.DORMANT, Severity.LOW, email, email, portal, uid, "learner", "okta", "active")

    seen, new = finding("emea", 1), finding("amer", 7)
    facts = {**finding_facts(seen), "accounts": {"emea:1": finding_facts(seen)}}
    exception = Decision(1, seen.id, "dormant", "low", "emea", 1, "eve@acme.com", "eve@acme.com", "exception",
                         "person", "sabbatical", "2999-01-01T00:00:00Z", REVIEWER, "2026-01-01T00:00:00Z", 1,
                         facts, None, 1)  # fmt: skip
    states = review_states(
        [seen, new], [exception], Exclusions.of((), [], datetime.now(UTC)), datetime.now(UTC)
    )
    assert states[seen.id].state == "accepted"
    assert states[new.id].state == "open"
    assert "amer/7 was not among those the reviewer saw" in (states[new.id].note or "")
