"""`idgraph demo`, `idgraph report` and `idgraph diff` end to end, as a user runs them."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

CONTRACT_COLUMNS = [
    "finding",
    "severity",
    "email",
    "portal",
    "learnupon_user_id",
    "user_type",
    "idp",
    "idp_status",
]


def idgraph(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "idgraph.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_demo_runs_end_to_end_and_report_diff_work_offline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    demo = idgraph("demo", "--out", str(out), "--portals", "2", "--users", "300", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    # the tables and paths are the result (stdout); the progress line is not
    assert "report.html" in demo.stdout and "idp_disabled_active" in demo.stdout
    assert "simulating" in demo.stderr and "report.html" not in demo.stderr

    for name in ("findings.csv", "findings.json", "report.html", "report.md", "idgraph.db"):
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    document = json.loads((out / "findings.json").read_text())
    assert set(document) >= {"run", "coverage", "findings"}
    assert {c["source"] for c in document["coverage"]} == {"emea", "amer", "okta"}
    assert all({"source", "kind", "complete", "error"} <= set(c) for c in document["coverage"])
    codes = {f["finding"] for f in document["findings"]}
    assert {"idp_disabled_active", "not_in_idp", "partially_offboarded"} <= codes
    with (out / "findings.csv").open(newline="") as handle:
        header = next(csv.reader(handle))
    assert header[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    _check_flat_columns(out, header, document)

    # the report is rebuilt offline from the snapshot, with the settings saved at crawl time
    again = tmp_path / "again"
    report = idgraph(
        "report", "--db", str(out / "idgraph.db"), "--out", str(again), "--format", "json", cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr
    rebuilt = json.loads((again / "findings.json").read_text())
    assert sorted(f["finding_id"] for f in rebuilt["findings"]) == sorted(
        f["finding_id"] for f in document["findings"]
    )
    assert not (again / "report.html").exists()

    diff = idgraph("diff", "--db", str(out / "idgraph.db"), cwd=tmp_path)
    assert diff.returncode == 0, diff.stderr
    assert "first run" in diff.stderr


def _check_flat_columns(out: Path, header: list[str], document: dict[str, Any]) -> None:
    """The flat columns come after the contract's and `evidence` (then where each stands in the review),
    and say what the snapshot says."""
    flat = ["name", "last_sign_in_at", "idp_disabled_at", "days_since_disabled", "groups"]
    assert header[header.index("evidence") + 1 :] == [*flat, "review_state", "review_note"]
    with sqlite3.connect(out / "idgraph.db") as db:
        names = {
            (portal, uid): " ".join(p for p in (first, last) if p)
            for portal, uid, first, last in db.execute(
                "SELECT portal, id, first_name, last_name FROM lu_users"
            )
        }
    run_time = datetime.fromisoformat(document["run"]["started_at"].replace("Z", "+00:00"))
    with (out / "findings.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(document["findings"])
    dated = 0
    for row in rows:
        evidence = json.loads(row["evidence"])
        assert row["name"] == names[(row["portal"], int(row["learnupon_user_id"]))]
        assert row["last_sign_in_at"] == (evidence["last_sign_in_at"] or "")
        assert row["groups"] == "; ".join(evidence["groups"])
        if row["finding"] == "idp_disabled_active":
            assert row["idp_disabled_at"]  # the simulated Okta says when (statusChanged)
        if row["idp_disabled_at"]:
            assert all(i["status"] in ("disabled", "deleted") for i in evidence["identities"])
            changed = [i["status_changed_at"] for i in evidence["identities"]]
            assert row["idp_disabled_at"] == max(changed)  # Okta's statusChanged, the only IdP here
            disabled = datetime.fromisoformat(row["idp_disabled_at"].replace("Z", "+00:00"))
            assert int(row["days_since_disabled"]) == (run_time - disabled).days
            dated += 1
    assert any(row["name"] for row in rows)
    assert dated >= sum(1 for row in rows if row["finding"] == "idp_disabled_active") > 0


def test_report_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = idgraph("report", "--db", str(tmp_path / "nope.db"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert missing.returncode == 2 and "no snapshot" in missing.stderr
