"""findings.csv and findings.json: contract columns and shape, order, formula neutralisation, file modes."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from graph.model import SEVERITY_ORDER, Code, FindingSet
from graph.reports import CSV_COLUMNS, ReportInput, parse_formats, render_csv, render_json, write_reports
from graph.reports.csv_report import neutralise
from graph.reports.input import CODE_ORDER
from graph.reports.safe_files import write_private

CONTRACT = ["finding", "severity", "email", "portal", "learnupon_user_id", "user_type", "idp", "idp_status"]
FLAT = ["name", "last_sign_in_at", "idp_disabled_at", "days_since_disabled", "groups"]
REVIEW = ["review_state", "review_note"]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- CSV ------------------------------------------------------------------------------------------
def test_csv_columns_contract_first_then_ours(realistic_report: ReportInput) -> None:
    header = next(csv.reader(io.StringIO(render_csv(realistic_report))))
    assert header[: len(CONTRACT)] == CONTRACT
    assert header == [*CONTRACT, "finding_id", "first_seen", "person", "evidence", *FLAT, *REVIEW]
    assert tuple(header) == CSV_COLUMNS


def test_csv_rows_carry_every_finding_with_evidence_as_json(realistic_report: ReportInput) -> None:
    rows = _rows(render_csv(realistic_report))
    findings = {f.id: f for f in realistic_report.findings.findings}
    assert len(rows) == len(findings) == 30
    for row in rows:
        finding = findings[row["finding_id"]]
        assert row["finding"] == finding.code.value
        assert row["severity"] == finding.severity.value
        assert row["email"] == finding.email
        assert row["learnupon_user_id"] == (
            "" if finding.learnupon_user_id is None else str(finding.learnupon_user_id)
        )
        assert row["first_seen"] == realistic_report.first_seen[finding.id]
        assert json.loads(row["evidence"]) == finding.evidence
        assert "\n" not in row["evidence"] and ", " not in row["evidence"][:40]  # compact


def test_csv_order_is_severity_code_portal_email(realistic_report: ReportInput) -> None:
    rows = _rows(render_csv(realistic_report))
    keys = [
        (SEVERITY_ORDER[r["severity"]], CODE_ORDER[Code(r["finding"])], r["portal"], r["email"].casefold())
        for r in rows
    ]
    assert keys == sorted(keys)


def test_output_is_deterministic_whatever_the_input_order(realistic_report: ReportInput) -> None:
    shuffled = list(reversed(realistic_report.findings.findings))
    other = replace(
        realistic_report, findings=FindingSet(42, shuffled, realistic_report.findings.unavailable)
    )
    assert render_csv(other) == render_csv(realistic_report)
    assert render_json(other) == render_json(realistic_report)


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_neutralise_prefixes_formula_triggers(prefix: str) -> None:
    assert neutralise(prefix + "SUM(A1:A2)") == "'" + prefix + "SUM(A1:A2)"


@pytest.mark.parametrize("value", ["alice@acme.com", "", "'=already", " =spaced", 42, None])
def test_neutralise_leaves_other_cells_alone(value: object) -> None:
    assert neutralise(value) == value


def test_csv_neutralises_every_string_cell(hostile_report: ReportInput) -> None:
    text = render_csv(hostile_report)
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert len(rows) == len(hostile_report.findings.findings)
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    by_id = {r["finding_id"]: r for r in _rows(text)}
    for finding in hostile_report.findings.findings:
        row = by_id[finding.id]
        assert finding.email is not None
        expected = "'" + finding.email if finding.email[0] in "=+-@\t\r" else finding.email
        assert row["email"] == expected  # the value survives, only prefixed
        assert json.loads(row["evidence"]) == finding.evidence  # embedded newlines and quotes round-trip
    assert by_id[hostile_report.findings.findings[0].id]["user_type"] == "'=learner"


def test_csv_is_utf8(realistic_report: ReportInput, tmp_path: Path) -> None:
    paths = write_reports(tmp_path / "out", realistic_report, ["csv"])
    raw = paths["csv"].read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert "Tomás Etxeberria" in raw.decode("utf-8")  # evidence JSON keeps non-ASCII as UTF-8, not \u escapes


# --- JSON -----------------------------------------------------------------------------------------
def test_json_has_exactly_the_contract_shape(realistic_report: ReportInput) -> None:
    doc = json.loads(render_json(realistic_report))
    assert list(doc) == [
        "run", "coverage", "findings", "unavailable", "recall_gaps", "summary",
        "accepted", "excluded", "exclusion_rules", "people",
    ]  # fmt: skip
    assert doc["run"] == {
        "id": 42,
        "started_at": "2025-11-03T06:00:04Z",
        "finished_at": "2025-11-03T06:41:37Z",
        "status": "incomplete",
    }
    for entry in doc["coverage"]:
        assert list(entry)[:4] == ["source", "kind", "complete", "error"]
        assert {"requests", "throttled", "records", "quarantined", "notes", "collections"} <= set(entry)
        assert isinstance(entry["complete"], bool)
    assert [c["source"] for c in doc["coverage"]] == ["amer", "apac", "emea", "entra", "okta"]
    assert len(doc["findings"]) == 30
    for record in doc["findings"]:
        assert list(record) == [*CONTRACT, "finding_id", "first_seen", "person", "evidence", *FLAT, *REVIEW]
        assert isinstance(record["evidence"], dict)
    summary = doc["summary"]
    assert summary["total"] == 30
    assert summary["by_code"] == {
        "idp_disabled_active": 13,
        # withheld for everyone (entra incomplete): never a 0 that reads as "none found"
        "not_in_idp": "n/a — withheld: IdP 'entra' did not complete: an account missing from a partial "
        "listing is not proof it is absent",
        "partially_offboarded": 5,
        "dormant": 8,
        "duplicate_account": 4,
        "active_after_offboarding": 0,
    }
    assert summary["complete_counts"] is False and list(summary["withheld"]) == ["not_in_idp"]
    assert sum(summary["by_severity"].values()) == 30
    assert set(summary["by_portal"]) == {"emea", "amer", "apac"}
    assert sum(summary["by_portal"].values()) == 30
    assert summary["changes"]["previous_run_id"] == 41
    assert (summary["collisions"], summary["unmatchable"]) == (2, 5)


def test_json_says_which_verdict_is_unavailable_and_why(realistic_report: ReportInput) -> None:
    doc = json.loads(render_json(realistic_report))
    entra = next(c for c in doc["coverage"] if c["source"] == "entra")
    assert entra["complete"] is False
    assert "503" in entra["error"]
    assert doc["summary"]["sources_incomplete"] == ["entra"]
    withheld = {(u["code"], u["scope"]): u["reason"] for u in doc["unavailable"]}
    assert set(withheld) == {("not_in_idp", "all"), ("idp_disabled_active", "entra")}
    assert "'entra' did not complete" in withheld[("not_in_idp", "all")]
    assert all(u["reason"] for u in doc["unavailable"])
    assert not any(f["finding"] == "not_in_idp" for f in doc["findings"])


def test_json_evidence_with_datetimes_and_sets_is_serialised(realistic_report: ReportInput) -> None:
    from datetime import UTC, datetime

    finding = replace(
        realistic_report.findings.findings[0],
        evidence={"changed": datetime(2025, 9, 1, 12, tzinfo=UTC), "groups": {"b", "a"}},
    )
    report = replace(realistic_report, findings=FindingSet(42, [finding]))
    record = json.loads(render_json(report))["findings"][0]
    assert record["evidence"] == {"changed": "2025-09-01T12:00:00+00:00", "groups": ["a", "b"]}
    assert json.loads(_rows(render_csv(report))[0]["evidence"])["groups"] == ["a", "b"]


# --- files ----------------------------------------------------------------------------------------
def test_every_file_is_owner_only_and_the_new_dir_0700(realistic_report: ReportInput, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "reports"
    paths = write_reports(out, realistic_report)
    assert list(paths) == ["csv", "json", "html", "md"]
    assert {p.name for p in paths.values()} == {"findings.csv", "findings.json", "report.html", "report.md"}
    assert _mode(out) == 0o700
    for path in paths.values():
        assert path.parent == out
        assert _mode(path) == 0o600, path
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in paths.values()
    )  # no temp files left


def test_files_are_created_0600_even_with_a_permissive_umask(
    realistic_report: ReportInput, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        paths = write_reports(tmp_path / "out", realistic_report, "csv,md")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "out") == 0o700
    assert all(_mode(p) == 0o600 for p in paths.values())


def test_an_existing_world_readable_report_is_replaced_owner_only(
    realistic_report: ReportInput, tmp_path: Path
) -> None:
    target = tmp_path / "findings.csv"
    target.write_text("old")
    target.chmod(0o644)
    write_reports(tmp_path, realistic_report, ["csv"])
    assert _mode(target) == 0o600
    assert target.read_text(encoding="utf-8").startswith("finding,severity,")


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "report.md"
    link.symlink_to(victim)
    write_private(link, "report")
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text() == "report"
    assert _mode(link) == 0o600


def test_unknown_format_is_rejected_before_anything_is_written(
    realistic_report: ReportInput, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"'pdf'.*csv, json, html, md"):
        write_reports(tmp_path / "out", realistic_report, ["csv", "pdf"])
    assert not (tmp_path / "out").exists()
    assert parse_formats("CSV, markdown,csv") == ["csv", "md"]


# --- flat columns after the contract's --------------------------------------------------------------
def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_csv_flat_columns_copy_the_evidence(realistic_report: ReportInput) -> None:
    run_time = _utc(realistic_report.run.started_at)
    rows = {r["finding_id"]: r for r in _rows(render_csv(realistic_report))}
    disabled_seen = 0
    for finding in realistic_report.findings.findings:
        row, ev = rows[finding.id], finding.evidence
        assert row["name"] == ev["name"]
        assert row["last_sign_in_at"] == (ev["last_sign_in_at"] or "")
        assert row["groups"] == "; ".join(sorted(ev["groups"]))
        if finding.code is Code.IDP_DISABLED_ACTIVE:
            # disabled everywhere: the latest status change is when the last IdP let the person go
            latest = max(_utc(i["status_changed_at"]) for i in ev["identities"])
            assert _utc(row["idp_disabled_at"]) == latest
            assert row["days_since_disabled"] == str((run_time - latest).days)
            disabled_seen += 1
        else:
            assert row["idp_disabled_at"] == row["days_since_disabled"] == ""
    assert disabled_seen == 13


def test_idp_disabled_at_is_left_empty_when_unknown(realistic_report: ReportInput) -> None:
    """No timestamp on one identity, or one identity still active: when it happened is not known."""
    base = next(f for f in realistic_report.ordered() if f.code is Code.IDP_DISABLED_ACTIVE)
    identity = {"idp": "okta", "status": "disabled", "status_changed_at": "2025-09-01T00:00:00Z"}
    cases = [
        [identity, {**identity, "idp": "entra", "status_changed_at": None}],
        [identity, {**identity, "idp": "entra", "status": "active"}],
        [],
    ]
    for identities in cases:
        finding = replace(base, evidence={**base.evidence, "identities": identities})
        row = _rows(render_csv(replace(realistic_report, findings=FindingSet(42, [finding]))))[0]
        assert row["idp_disabled_at"] == row["days_since_disabled"] == "", identities


def test_csv_neutralises_the_flat_cells_too(realistic_report: ReportInput) -> None:
    base = realistic_report.ordered()[0]
    evidence = {
        **base.evidence,
        "name": '=HYPERLINK("https://evil.invalid")',
        "last_sign_in_at": "@SUM(A1)",
        "groups": ["+cmd", "-2+3"],
    }
    finding = replace(base, evidence=evidence)
    row = _rows(render_csv(replace(realistic_report, findings=FindingSet(42, [finding]))))[0]
    assert row["name"] == "'" + evidence["name"]
    assert row["last_sign_in_at"] == "'@SUM(A1)"
    assert row["groups"] == "'+cmd; -2+3"


def test_json_records_carry_the_flat_fields(realistic_report: ReportInput) -> None:
    """findings.json's schema is open to additive fields (design doc): the same values, groups a list."""
    doc = json.loads(render_json(realistic_report))
    by_id = {f.id: f for f in realistic_report.findings.findings}
    for record in doc["findings"]:
        finding = by_id[record["finding_id"]]
        assert record["name"] == finding.evidence["name"]
        assert record["groups"] == sorted(finding.evidence["groups"])
        assert isinstance(record["days_since_disabled"], int | None)
