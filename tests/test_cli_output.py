"""The command line as a script sees it: results on stdout, everything else on stderr; tables whole at 80
columns; a closed pipe ends quietly; `--log-format json` ends with one summary event; clear one-line
errors (a --db that is not a snapshot, a busy port, every config problem at once)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.vocabulary import Code
from idgraph.cli import DIFF_COLUMNS

ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TERM")}


def idgraph(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess: stdout and stderr are pipes, never a terminal (80 columns)."""
    return subprocess.run(
        [sys.executable, "-m", "idgraph", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={**ENV, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A snapshot with two runs, and the second demo's output."""
    out = tmp_path_factory.mktemp("demo")
    first = idgraph("demo", "--out", str(out), "--portals", "2", "--users", "60", "--quiet", cwd=out)
    assert first.returncode == 0, first.stderr
    second = idgraph("demo", "--out", str(out), "--portals", "2", "--users", "60", cwd=out)
    assert second.returncode == 0, second.stderr
    return out / "idgraph.db", second


def fits_80_columns(text: str) -> None:
    """Tables fit 80 columns, nothing cut short; a line naming a file stays whole (for grep and copy)."""
    assert text.strip()
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines() if "/" not in line) <= 80, text


def test_demo_puts_its_tables_on_stdout_whole_at_80_columns_and_its_progress_on_stderr(demo) -> None:
    _, shown = demo
    fits_80_columns(shown.stdout)
    for result in ("coverage", "complete  records", "throughput", "findings", "report:", "snapshot:"):
        assert result in shown.stdout
    assert "simulating 2 LearnUpon portals" in shown.stderr
    assert "coverage" not in shown.stderr and "report:" not in shown.stderr


def test_report_and_diff_results_are_on_stdout_and_parse(demo, tmp_path: Path) -> None:
    db, _ = demo
    report = idgraph("report", "--db", str(db), "--out", str(tmp_path / "r"), "--format", "csv", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "findings of run 2" in report.stdout and f"csv: {tmp_path / 'r' / 'findings.csv'}" in report.stdout
    assert report.stderr == ""
    fits_80_columns(report.stdout)

    as_csv = idgraph("diff", "--db", str(db), "--format", "csv", cwd=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows and list(rows[0]) == list(DIFF_COLUMNS)
    assert {row["change"] for row in rows} <= {"new", "resolved", "not_rechecked", "still_open"}
    assert "still open" in as_csv.stderr  # the tally is for the person, beside the data

    table = idgraph("diff", "--db", str(db), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "run 2 vs run 1" in table.stdout and "still open" in table.stdout
    fits_80_columns(table.stdout)


@pytest.mark.parametrize(
    "args",
    [["diff", "--format", "csv"], ["diff", "--format", "json"], ["query", "--list"], ["--help"]],
    ids=" ".join,
)
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly_with_141(demo, args: list[str]) -> None:
    db, _ = demo
    extra = ["--db", str(db)] if args[0] == "diff" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "idgraph", *args, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=db.parent,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first byte
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 141, text  # 128 + SIGPIPE, as a shell reports `yes | head -1`
    for noise in ("Traceback", "BrokenPipe", "Broken pipe", "Exception ignored"):
        assert noise not in text


def json_lines(stderr: str) -> list[dict]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    summaries = [entry for entry in lines if entry.get("event") == "summary"]
    assert len(summaries) == 1 and lines[-1] is summaries[0], stderr
    return lines


def test_json_logs_end_with_one_summary_event_with_sources_findings_and_exit_code(demo, tmp_path) -> None:
    db, _ = demo
    shown = idgraph(
        "report", "--db", str(db), "--out", str(tmp_path / "r"), "--log-format", "json", cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    summary = json_lines(shown.stderr)[-1]
    assert summary["command"] == "report" and summary["exit_code"] == 0 and summary["run_id"] == 2
    assert summary["complete"] is True and summary["withheld"] == [] and summary["recall_gaps"] == []
    assert {s["source"] for s in summary["sources"]} == {"emea", "amer", "okta"}
    assert all(s["complete"] and s["error"] is None for s in summary["sources"])
    assert set(summary["findings"]) == {code.value for code in Code}
    document = json.loads((tmp_path / "r" / "findings.json").read_text())
    for code in Code:
        assert summary["findings"][code.value] == sum(f["finding"] == code for f in document["findings"])
    assert summary["files"]["json"] == str(tmp_path / "r" / "findings.json")
    assert "findings of run 2" in shown.stdout  # the result stays on stdout

    diff = idgraph("diff", "--db", str(db), "--format", "json", "--log-format", "json", cwd=tmp_path)
    summary = json_lines(diff.stderr)[-1]
    assert (summary["command"], summary["exit_code"], summary["previous_run_id"]) == ("diff", 0, 1)
    assert summary["changes"]["still_open"] == len(json.loads(diff.stdout)["still_open"])


def test_review_commands_log_json_and_end_with_their_summary_event(demo, tmp_path: Path) -> None:
    db, _ = demo
    exported = idgraph("review", "export", "--db", str(db), "--out", str(tmp_path / "d.csv"),
                       "--log-format", "json", cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    summary = json_lines(exported.stderr)[-1]
    assert (summary["command"], summary["exit_code"], summary["run_id"]) == ("review export", 0, 2)
    assert summary["complete"] is True
    rows = (tmp_path / "d.csv").read_text(encoding="utf-8-sig").splitlines()
    assert summary["open"] == len(rows) - 1 and exported.stdout.startswith(str(tmp_path / "d.csv"))

    status = idgraph("review", "status", "--db", str(db), "--format", "json", "--log-format", "json",
                     cwd=tmp_path)  # fmt: skip
    summary = json_lines(status.stderr)[-1]
    assert (summary["command"], summary["exit_code"]) == ("review status", 0)
    assert summary["totals"] == json.loads(status.stdout)["totals"]

    refused = idgraph("review", "import", str(tmp_path / "missing.csv"), "--reviewer", "lead@acme.com",
                      "--db", str(db), "--log-format", "json", cwd=tmp_path)  # fmt: skip
    lines = json_lines(refused.stderr)
    assert refused.returncode == 2 and refused.stdout == ""
    assert lines[-1]["exit_code"] == 2 and "cannot read" in lines[-1]["error"]


def test_a_failing_command_still_ends_with_its_summary_event(tmp_path: Path) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(
        '[[portals]]\nname = "emea"\nbase_url = "http://acme.learnupon.com"\nusername_env = "LU_U"\n'
        'password_env = "LU_P"\ncolour = "blue"\n'
    )
    shown = idgraph("crawl", "--config", str(config), "--db", str(tmp_path / "s.db"), "--log-format", "json",
                    cwd=tmp_path)  # fmt: skip
    assert shown.returncode == 2 and shown.stdout == ""
    lines = json_lines(shown.stderr)
    error = next(entry for entry in lines if entry.get("event") == "error")
    assert [p.split(":")[0] for p in error["problems"]] == [
        "portals[0].username_env", "portals[0].password_env", "portals[0].base_url", "portals[0].colour",
    ]  # fmt: skip
    assert lines[-1]["exit_code"] == 2 and lines[-1]["error"].startswith("config error: 4 problems")
    assert not (tmp_path / "s.db").exists()


def test_every_config_problem_is_listed_at_once_in_text_too(tmp_path: Path) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(
        '[review]\ndormant_days = 0\n\n[[portals]]\nname = "emea"\nbase_url = "https://acme.learnupon.com"\n'
        'username_env = "LU_U"\npassword_env = "LU_P"\n\n'
        '[[idps]]\nname = "okta"\ntype = "okta"\nbase_url = "https://acme.okta.com"\ntoken_env = "OKTA_T"\n'
    )
    shown = idgraph("crawl", "--config", str(config), "--db", str(tmp_path / "s.db"), cwd=tmp_path)
    assert shown.returncode == 2 and shown.stdout == ""
    assert shown.stderr.startswith("idgraph: config error: 4 problems:")
    for field in ("portals[0].username_env", "portals[0].password_env", "idps[0].token_env",
                  "review.dormant_days"):  # fmt: skip
        assert f"\n  {field}: " in shown.stderr
    assert not (tmp_path / "s.db").exists()


def _foreign_db(path: Path) -> tuple[bytes, int, int]:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('someone else''s data')")
    db.close()
    path.chmod(0o644)
    return _state(path)


def _state(path: Path) -> tuple[bytes, int, int]:
    return hashlib.sha256(path.read_bytes()).digest(), path.stat().st_mode, path.stat().st_mtime_ns


@pytest.mark.parametrize(
    "command", ["crawl", "report", "diff", "export neo4j", "remediate plan", "review status", "watch"]
)
def test_a_db_that_is_not_an_idgraph_snapshot_is_one_line_exit_2_and_left_untouched(
    command: str, tmp_path: Path
) -> None:
    db = tmp_path / "other-app.db"
    before = _foreign_db(db)
    config = tmp_path / "idgraph.toml"
    config.write_text(
        '[[portals]]\nname = "emea"\nbase_url = "http://127.0.0.1:9/emea"\nusername_env = "LU_U"\n'
        'password_env = "LU_P"\n\n[remediation]\nkey_env = "RKEY"\n'
    )
    watched = tmp_path / "watch.toml"  # watch needs an IdP with a change feed
    watched.write_text(
        config.read_text()
        + '\n[[idps]]\nname = "okta"\ntype = "okta"\nbase_url = "http://127.0.0.1:9"\ntoken_env = "OKTA_T"\n'
    )
    args = {
        "crawl": ["crawl", "--config", str(config)],
        "report": ["report", "--out", str(tmp_path / "out")],
        "diff": ["diff"],
        "export neo4j": ["export", "neo4j", "--uri", "bolt://127.0.0.1:9"],
        "remediate plan": ["remediate", "plan", "--config", str(config), "--finding", "idp_disabled_active",
                           "--out", str(tmp_path / "plan.json")],
        "review status": ["review", "status"],
        "watch": ["watch", "--config", str(watched), "--once"],
    }[command]  # fmt: skip
    env = {"LU_U": "user", "LU_P": "password", "RKEY": "k" * 32, "OKTA_T": "token"}
    shown = idgraph(*args, "--db", str(db), cwd=tmp_path, env=env)
    assert shown.returncode == 2, shown.stderr
    assert shown.stderr.count("\n") == 1 and "is a SQLite database without idgraph's tables" in shown.stderr
    assert shown.stdout == ""
    assert _state(db) == before
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["idgraph.toml", "other-app.db", "watch.toml"]  # no -wal, no out, no lock


def test_an_empty_file_is_not_a_snapshot_to_read(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    shown = idgraph("report", "--db", str(db), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert shown.returncode == 2 and "is empty, not an idgraph snapshot" in shown.stderr
    assert db.stat().st_size == 0


def test_simulate_on_a_busy_port_is_one_line_exit_2_and_shows_no_credentials(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        shown = idgraph("simulate", "--port", str(port), "--portals", "emea", "--users", "5", cwd=tmp_path)
    assert shown.returncode == 2
    assert shown.stdout == ""  # no credentials for a server that is not ours
    assert shown.stderr.count("\n") == 1 and f"--port: cannot listen on 127.0.0.1:{port}" in shown.stderr
    assert "password" not in shown.stderr


def test_simulate_shows_credentials_on_stdout_once_listening(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "idgraph", "simulate", "--port", "0", "--portals", "emea", "--users", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("emea: base_url=http://127.0.0.1:") and " password=" in line
        assert ":0/" not in line  # the port actually bound, not the one asked for
        port = int(line.split("base_url=http://127.0.0.1:")[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it was listening when it said so
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "Ctrl-C stops" in err and proc.returncode == 0
