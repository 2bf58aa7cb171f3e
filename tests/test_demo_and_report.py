"""`idgraph demo`, `idgraph report` and `idgraph diff` end to end, as a user runs them."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

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
    assert "report.html" in demo.stderr and "idp_disabled_active" in demo.stderr

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


def test_report_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = idgraph("report", "--db", str(tmp_path / "nope.db"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert missing.returncode == 2 and "no snapshot" in missing.stderr
