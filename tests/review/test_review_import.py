"""`idgraph review import`: a decisions file is validated as a whole; every bad one is refused with a clear
message per problem, and nothing is recorded — not the good rows either."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from review_helpers import OTHER_REVIEWER, REVIEWER, decide, export_rows, reviewing, row_of, to_csv, write_run

from crawler.store import SnapshotStore
from graph.decision_import import ImportRefused, import_decisions
from graph.decisions_file import EXPORT_COLUMNS


def _import(db: Path, data: bytes, reviewer: str = REVIEWER, now: datetime | None = None):
    with reviewing(db) as (store, review):
        return import_decisions(store, review, data, reviewer=reviewer, file_name="decisions.csv", now=now)


def _recorded(db: Path) -> tuple[int, int]:
    with SnapshotStore(db) as store:
        reader = store.reader()
        return len(reader.decisions()), len(reader.review_imports())


def _refused(db: Path, data: bytes, reviewer: str = REVIEWER) -> list[str]:
    with pytest.raises(ImportRefused) as refused:
        _import(db, data, reviewer)
    assert _recorded(db) == (0, 0), "a refused file records nothing"
    return refused.value.problems


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def test_export_lists_every_open_finding_with_empty_decision_columns(db: Path) -> None:
    rows = export_rows(db)
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    keys = sorted((r["finding"], r["portal"], r["email"].casefold()) for r in rows)
    assert keys == sorted(
        [
            ("idp_disabled_active", "emea", "ana@acme.com"),
            ("idp_disabled_active", "emea", "bob@acme.com"),
            ("idp_disabled_active", "apac", "bob@acme.com"),
            ("active_after_offboarding", "emea", "bob@acme.com"),
            ("active_after_offboarding", "apac", "bob@acme.com"),
            ("not_in_idp", "emea", "svc-backup@acme.com"),
            ("not_in_idp", "apac", "breakglass-1@acme.com"),
            ("dormant", "emea", "dora@acme.com"),
            ("dormant", "apac", "lead@acme.com"),
        ]
    )
    assert all(r["decision"] == r["scope"] == r["expires_at"] == r["reason"] == "" for r in rows)
    assert rows[0]["severity"] == "critical"  # most severe first
    bob = row_of(rows, "active_after_offboarding", "bob@acme.com", "emea")
    assert bob["days_since_disabled"] == "10" and bob["idp_disabled_at"] and bob["last_sign_in_at"]


def test_a_good_file_is_recorded_in_one_import_with_the_facts_the_reviewer_saw(db: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "idp_disabled_active", "ana@acme.com"), "revoke", "left in May")
    decide(row_of(rows, "dormant", "dora@acme.com"), "keep", "parental leave")
    decide(row_of(rows, "not_in_idp", "svc-backup@acme.com"), "exception", "backup job", scope="account",
           expires_at=_in_days(30))  # fmt: skip
    result = _import(db, to_csv(rows))
    assert result.counts() == {"revoke": 1, "keep": 1, "exception": 1} and result.undecided == len(rows) - 3
    with SnapshotStore(db) as store:
        decisions = store.reader().decisions()
        (received,) = store.reader().review_imports()
    assert {d["decision"] for d in decisions} == {"revoke", "keep", "exception"}
    assert all(d["reviewer"] == REVIEWER and d["import_id"] == received["id"] for d in decisions)
    assert bytes(received["content"]) == to_csv(rows), "the file is kept exactly as received"
    revoke = next(d for d in decisions if d["decision"] == "revoke")
    assert revoke["facts"] == {
        "code": "idp_disabled_active", "severity": "high", "email": "ana@acme.com", "user_type": "learner",
        "idp_status": "disabled",
    }  # fmt: skip
    assert next(d for d in decisions if d["decision"] == "exception")["expires_at"].endswith("T00:00:00Z")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(finding_id="0123456789abcdef"), "unknown finding id '0123456789abcdef'"),
        (lambda r: r.update(reason=""), "a revoke needs a reason"),
        (lambda r: r.update(decision="delete"), "decision 'delete': write revoke, keep or exception"),
        (lambda r: r.update(decision="", reason="no decision"), "no decision, but scope/expiry/reason"),
        (lambda r: r.update(scope="person"), "scope and expires_at are for exceptions only, not for revoke"),
        (lambda r: r.update(decision="exception", scope="account"), "an exception needs expires_at"),
        (lambda r: r.update(decision="exception", expires_at=_in_days(30)), "an exception needs a scope"),
        (
            lambda r: r.update(decision="exception", scope="account", expires_at="2020-01-01"),
            "expires_at 2020-01-01 is not in the future",
        ),
        (
            lambda r: r.update(decision="exception", scope="account", expires_at=_in_days(400)),
            "is more than 365 days away (max_exception_days)",
        ),
        (
            lambda r: r.update(decision="exception", scope="account", expires_at="next quarter"),
            "expires_at 'next quarter' is not a date",
        ),
        (lambda r: r.update(facts="000000000000"), "the facts behind finding"),
    ],
)
def test_each_bad_row_is_refused_with_its_line_and_nothing_is_recorded(db: Path, edit, message) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "dormant", "dora@acme.com"), "keep", "a good row: refused with the rest")
    bad = decide(row_of(rows, "idp_disabled_active", "ana@acme.com"), "revoke", "left")
    edit(bad)
    line = rows.index(bad) + 2  # the header is line 1
    problems = _refused(db, to_csv(rows))
    assert len(problems) == 1 and problems[0].startswith(f"line {line}: ") and message in problems[0], (
        problems
    )


def test_duplicate_rows_are_refused_naming_both_lines(db: Path) -> None:
    rows = export_rows(db)
    first = decide(row_of(rows, "dormant", "dora@acme.com"), "keep", "on leave")
    rows.append(dict(first, decision="revoke"))
    (problem,) = _refused(db, to_csv(rows))
    assert problem == (
        f"line {len(rows) + 1}: finding {first['finding_id']} is also on line {rows.index(first) + 2}: one "
        "decision per finding"
    )


def test_a_reviewer_never_decides_on_their_own_account(db: Path) -> None:
    rows = export_rows(db)
    own = decide(row_of(rows, "dormant", "lead@acme.com"), "keep", "I still need it")
    problems = _refused(db, to_csv(rows), reviewer="LEAD@acme.com")
    assert problems == [
        f"line {rows.index(own) + 2}: LEAD@acme.com cannot decide on their own account (Lead@acme.com in "
        "apac): another reviewer must"
    ]
    assert _import(db, to_csv(rows), reviewer=OTHER_REVIEWER).counts()["keep"] == 1


def test_decisions_on_findings_whose_facts_changed_since_the_export_are_refused(db: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "idp_disabled_active", "ana@acme.com"), "revoke", "left")
    with SnapshotStore(db) as store:  # ana's account became an admin before the file came back
        write_run(store, changes={"ana": {"user_type": "admin"}})
    (problem,) = _refused(db, to_csv(rows))
    assert "the facts behind finding" in problem and "changed since it was exported" in problem
    assert "severity high → critical" in problem and "user_type learner → admin" in problem
    assert "export again" in problem


def test_a_finding_the_newest_run_no_longer_has_is_refused(db: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "dormant", "dora@acme.com"), "keep", "on leave")
    with SnapshotStore(db) as store:
        write_run(store, changes={"dora": {"last_sign_in_at": datetime.now(UTC) - timedelta(days=3)}})
    (problem,) = _refused(db, to_csv(rows))
    assert "is not a finding of run 2 (last seen in run 1)" in problem


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"finding_id,decision\r\nabc,revoke\r\n", "line 1: the header lacks the column(s) facts, scope"),
        (b"finding_id,facts,decision,scope,expires_at,reason\r\nabc,x,revoke\r\n", "line 2: 3 cells where"),
        (b'finding_id,facts,decision,scope,expires_at,reason\r\n"abc,x,revoke,,,"r"x\r\n', "not valid CSV"),
        (b"finding_id,facts,decision,scope,expires_at,reason\r\n\xff\xfeabc,,,,,\r\n", "line 2: not UTF-8"),
        (b"PK\x03\x04\x00\x00 an xlsx", "NUL bytes"),
        (b"finding_id,facts,decision,decision,scope,expires_at,reason\r\n", "names decision twice"),
        (b"finding_id,facts,decision,scope,expires_at,reason\r\n", "no row has a decision"),
    ],
)
def test_a_malformed_file_is_refused_whole(db: Path, data: bytes, message: str) -> None:
    (problem,) = _refused(db, data)
    assert message in problem, problem


def test_every_problem_is_listed_not_just_the_first(db: Path) -> None:
    rows = export_rows(db)
    decide(rows[0], "revoke", "")
    decide(rows[1], "exception", "why")
    decide(rows[2], "maybe")
    problems = _refused(db, to_csv(rows))
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 3", "line 4"]


def test_a_correction_appends_and_supersedes_never_edits(db: Path) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "dormant", "dora@acme.com"), "revoke", "gone")
    _import(db, to_csv(rows))
    decide(row_of(rows, "dormant", "dora@acme.com"), "keep", "mistake: she is on leave")
    _import(db, to_csv(rows), reviewer=OTHER_REVIEWER)
    with SnapshotStore(db) as store:
        first, second = store.reader().decisions()
    assert (first["decision"], second["decision"], second["supersedes"]) == ("revoke", "keep", first["id"])
    with reviewing(db) as (_, review):
        dora = next(f for f in review.findings.findings if f.email == "dora@acme.com")
        assert review.state(dora).decision.decision == "keep"
    with sqlite3.connect(db) as raw:  # not even SQL can rewrite the record
        for statement in ("UPDATE review_decisions SET decision = 'keep'", "DELETE FROM review_decisions",
                          "DELETE FROM review_imports"):  # fmt: skip
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)


def test_import_on_the_command_line_refuses_with_exit_2_and_lists_the_problems(db: Path, cli) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "dormant", "dora@acme.com"), "exception", "on leave")
    path = db.parent / "decisions.csv"
    path.write_bytes(to_csv(rows))
    refused = cli("review", "import", str(path), "--reviewer", REVIEWER, "--db", str(db))
    assert refused.returncode == 2 and refused.stdout == ""
    assert "refused: 2 problem(s); nothing was imported" in refused.stderr
    assert (
        "an exception needs a scope" in refused.stderr and "an exception needs expires_at" in refused.stderr
    )
    assert cli("review", "import", str(path), "--reviewer", "not-an-email", "--db", str(db)).returncode == 2
    row_of(rows, "dormant", "dora@acme.com").update(scope="person", expires_at=_in_days(10))
    path.write_bytes(to_csv(rows))
    done = cli("review", "import", str(path), "--reviewer", REVIEWER, "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 1 decision(s) from decisions.csv as import #1 (run 1)")
    assert _recorded(db) == (1, 1)


def test_the_export_neutralises_formulas_and_imports_back_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "hostile.db"
    with SnapshotStore(db) as store:
        write_run(store, changes={"ana": {"first_name": "=cmd|' /C calc'!A0", "last_name": "+1"}})
    rows = export_rows(db)
    ana = row_of(rows, "idp_disabled_active", "ana@acme.com")
    assert ana["name"] == "'=cmd|' /C calc'!A0 +1"
    decide(ana, "revoke", "-left in May")  # a reason that looks like a formula is kept as typed
    assert _import(db, to_csv(rows)).counts()["revoke"] == 1
    with SnapshotStore(db) as store:
        (decision,) = store.reader().decisions()
    assert decision["reason"] == "-left in May"
