"""`idgraph watch` refuses what it cannot run with: exit 2, one line naming the field, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crawler.config import load_config
from crawler.store import SnapshotStore
from idgraph.cli import app
from idgraph.watch import _only_watcher, watch

PORTAL = (
    '[[portals]]\nname = "emea"\nbase_url = "https://emea.example"\nusername_env = "U"\npassword_env = "P"\n'
)
OKTA = '[[idps]]\nname = "okta"\ntype = "okta"\nbase_url = "https://acme.okta.example"\ntoken_env = "T"\n'
SCIM = '[[idps]]\nname = "hr"\ntype = "scim"\nbase_url = "https://scim.example"\ntoken_env = "T"\n'
ENV = {"U": "user", "P": "password-value", "T": "token-value", "HOOK": "hook-secret-value"}


@pytest.mark.parametrize(
    ("toml", "args", "message"),
    [
        (OKTA, [], "portals: watch needs at least one portal"),
        (PORTAL + SCIM, [], "idps: no IdP in the config has a change feed (no change feed for idp hr;"),
        (PORTAL, [], "idps: no IdP in the config has a change feed (the config names no IdP)"),
        (PORTAL + OKTA + '[watch]\nremediation_log = "audit.jsonl"\n', [],
         "watch.remediation_log: needs [remediation] key_env"),
        (PORTAL + OKTA, ["--interval", "0.5"], "--interval: at least 1 second"),
        (PORTAL + OKTA + '[[alerts]]\nname = "h"\ntype = "webhook"\nurl = "http://siem.example/x"\n'
         'secret_env = "HOOK"\n', [], "alerts[0].url: plain http is only allowed for loopback hosts"),
        (PORTAL + OKTA + '[[alerts]]\nname = "h"\ntype = "pager"\n', [], "alerts[0].type"),
    ],
)  # fmt: skip
def test_a_config_watch_cannot_run_with_exits_2_naming_the_field(
    tmp_path: Path, toml: str, args: list[str], message: str
) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(toml)
    db = tmp_path / "snap.db"
    SnapshotStore(db).close()
    before = db.read_bytes()
    result = CliRunner().invoke(app, ["watch", "--config", str(config), "--db", str(db), *args], env=ENV)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert db.read_bytes() == before and not (tmp_path / "audit.jsonl").exists()
    assert all(secret not in result.output for secret in ENV.values())


def test_without_a_snapshot_watch_says_to_crawl_first_and_creates_none(tmp_path: Path) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(PORTAL + OKTA)
    result = CliRunner().invoke(
        app, ["watch", "--config", str(config), "--db", str(tmp_path / "none.db")], env=ENV
    )
    assert result.exit_code == 2
    assert "run `idgraph crawl` first" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == [config]


def test_a_second_watcher_on_the_same_snapshot_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(PORTAL + OKTA)
    db = tmp_path / "snap.db"
    SnapshotStore(db).close()
    with _only_watcher(db):  # the first watcher holds the snapshot
        result = CliRunner().invoke(
            app, ["watch", "--config", str(config), "--db", str(db), "--once"], env=ENV
        )
    assert result.exit_code == 2
    assert "another `idgraph watch` is following" in " ".join(result.output.split())


async def test_a_round_that_fails_inside_does_not_end_the_watch(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(PORTAL + OKTA)
    db = tmp_path / "snap.db"
    SnapshotStore(db).close()

    async def broken(self) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("idgraph.watch_round.Watcher.round", broken)
    assert await watch(load_config(config, ENV), db, interval=1, once=True, summary=False) == 3


async def test_an_idp_without_a_change_feed_is_a_warning_event_in_json_logs(tmp_path: Path) -> None:
    """With `--log-format json`, stderr is JSON lines only: the IdP the watcher cannot follow included."""
    import asyncio
    import json
    import os
    import sys

    from idgraph.demo_watch import simulated_estate

    async with simulated_estate(tmp_path / "s.db", ["emea"], users=20, seed=3) as estate:
        config = tmp_path / "idgraph.toml"
        config.write_text(estate.toml() + "\n" + SCIM)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "idgraph", "watch", "--config", str(config), "--db", str(estate.db),
            "--once", "--log-format", "json",
            env={**os.environ, **estate.env, "T": "token-value"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    events = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    no_feed = [e for e in events if e.get("event") == "no_feed"]
    assert [(e["source"], e["level"]) for e in no_feed] == [("hr", "warning")]
    assert "no change feed" in no_feed[0]["message"]
    assert events[-1]["event"] == "summary"
