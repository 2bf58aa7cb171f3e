"""`idgraph review evidence` offline: what the pack refuses, what it says when evidence is missing or the
audit log does not hold, and that nothing a reviewer typed can reach a formula or a path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from review_helpers import REVIEWER, decide, export_rows, reviewing, row_of, to_csv

from crawler.remediation.audit import AuditLog
from graph.decision_import import import_decisions

KEY = "evidence-test-key-0123456789abcdef"


def _import(db: Path, rows, file_name: str = "d.csv") -> None:
    with reviewing(db) as (store, review):
        import_decisions(store, review, to_csv(rows), reviewer=REVIEWER, file_name=file_name)


def _log(tmp_path: Path, entries: int = 2) -> Path:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key=KEY.encode()) as log:
        for n in range(entries):
            log.append(
                {"phase": "outcome", "command": "apply", "action": "disable", "portal": "emea", "user_id": 1,
                 "email": "ana@acme.com", "result": "done", "reason": f"#{n}", "before": {"enabled": True},
                 "after": {"enabled": False}, "plan_hash": "p" * 64}
            )  # fmt: skip
    return path


def test_a_hostile_reason_or_file_name_reaches_no_formula_and_no_path(db: Path, tmp_path: Path, cli) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "dormant", "dora@acme.com"), "keep", '=HYPERLINK("https://evil.invalid","x")')
    _import(db, rows, file_name="../../../../etc/passwd")
    log = _log(tmp_path)
    args = ("--out", str(tmp_path / "pack"), "--log", str(log), "--key-env", "EVIDENCE_KEY")
    result = cli("review", "evidence", "--db", str(db), *args, env={"EVIDENCE_KEY": KEY})
    assert result.returncode == 0, result.stderr
    pack = tmp_path / "pack"
    decisions = (pack / "decisions/decisions.csv").read_text()
    assert "'=HYPERLINK(" in decisions and ",=HYPERLINK(" not in decisions
    received = sorted(p.name for p in (pack / "decisions/received").iterdir())
    assert received == [f"0001-{hashlib.sha256(to_csv(rows)).hexdigest()[:12]}.csv"]
    assert not (tmp_path / "etc").exists()
    assert "../../../../etc/passwd" in (pack / "decisions/imports.csv").read_text(), (
        "named, never used as a path"
    )
    html = (pack / "summary.html").read_text()
    assert "Content-Security-Policy" in html and "default-src &#x27;none&#x27;" in html
    assert "<script" not in html
    for path in pack.rglob("*"):
        if path.is_file():
            assert oct(path.stat().st_mode & 0o777) == "0o600", path
            assert KEY not in path.read_text(errors="replace")


def test_without_a_log_or_with_one_that_does_not_verify_the_pack_says_so_and_exits_3(
    db: Path, tmp_path: Path, cli
) -> None:
    rows = export_rows(db)
    decide(row_of(rows, "idp_disabled_active", "ana@acme.com"), "revoke", "left")
    _import(db, rows)
    none = cli("review", "evidence", "--db", str(db), "--out", str(tmp_path / "no-log"))
    assert none.returncode == 3 and "no --log given" in none.stderr
    facts = json.loads((tmp_path / "no-log/manifest.json").read_text())["facts"]
    assert facts["revocations"] == {"not executed": 1} and facts["audit_chain"]["given"] is False
    assert "no remediation audit log was given" in (tmp_path / "no-log/summary.html").read_text()

    log = _log(tmp_path)
    lines = log.read_text().splitlines()
    log.write_text(lines[0].replace('"#0"', '"#9"') + "\n" + lines[1] + "\n")  # an edited entry
    env = {"EVIDENCE_KEY": KEY}
    broken = cli("review", "evidence", "--db", str(db), "--out", str(tmp_path / "broken"), "--log", str(log),
                 "--key-env", "EVIDENCE_KEY", env=env)  # fmt: skip
    assert broken.returncode == 3 and "the audit log does not verify" in broken.stderr
    chain = json.loads((tmp_path / "broken/remediation/chain.json").read_text())
    assert chain["verified"] is False and "hash does not match" in chain["reason"]
    assert "BROKEN" in (tmp_path / "broken/summary.html").read_text()


def test_the_pack_refuses_a_used_directory_a_missing_key_and_an_unreadable_log(
    db: Path, tmp_path: Path, cli
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "old.txt").write_text("an earlier pack")
    result = cli("review", "evidence", "--db", str(db), "--out", str(used))
    assert result.returncode == 2 and "never overwritten" in result.stderr
    assert sorted(p.name for p in used.iterdir()) == ["old.txt"]
    log = _log(tmp_path)
    result = cli("review", "evidence", "--db", str(db), "--out", str(tmp_path / "p"), "--log", str(log))
    assert result.returncode == 2 and "no remediation key" in result.stderr
    missing = ("--log", str(tmp_path / "missing.jsonl"), "--key-env", "EVIDENCE_KEY")
    result = cli("review", "evidence", "--db", str(db), "--out", str(tmp_path / "p"), *missing,
                 env={"EVIDENCE_KEY": KEY})  # fmt: skip
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert not (tmp_path / "p").exists(), "nothing written"
