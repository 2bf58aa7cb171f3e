"""`idgraph demo --watch`, as a user runs it: the crawl, then someone offboarded in the simulated Okta and
the alert arriving at a signed webhook and in alerts.jsonl."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path


def test_demo_watch_shows_the_offboarding_and_its_alerts(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    demo = subprocess.run(
        [sys.executable, "-m", "idgraph.cli", "demo", "--out", str(out), "--portals", "2", "--users", "300",
         "--watch"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    # The offboarding and the alerts it raised are the demo's result: stdout, like its tables.
    assert "deactivated in the simulated Okta" in demo.stdout
    assert "signatures verified" in demo.stdout and "finding_opened" in demo.stdout
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert alerts and {a["type"] for a in alerts} == {"finding_opened"}
    assert len({a["person"] for a in alerts}) == 1
    assert stat.S_IMODE((out / "alerts.jsonl").stat().st_mode) == 0o600
    assert "report.html" in demo.stdout  # the plain demo's output is all still there
