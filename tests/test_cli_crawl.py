"""`idgraph crawl` end to end in a subprocess: exit codes, coverage, and no secret anywhere."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from crawler.simulator.server import make_portals, run_simulator
from crawler.store import SnapshotStore

WINDOW = 1.0


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "idgraph.cli", *args,
        env={**os.environ, **env, "COLUMNS": "200"}, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


def write_config(path: Path, sim, names: list[str]) -> None:
    blocks = []
    for name in names:
        blocks.append(
            f'[[portals]]\nname = "{name}"\nbase_url = "{sim.base_url(name)}"\n'
            f'username_env = "LU_{name.upper()}_USER"\npassword_env = "LU_{name.upper()}_KEY"\n'
            f"rate_window_seconds = {WINDOW}\n"
        )
    path.write_text('[review]\nmanaged_domains = ["acme.com"]\n\n' + "\n".join(blocks))


async def test_wrong_credentials_on_one_portal_exit_3_others_complete_no_secret_leaks(tmp_path: Path) -> None:
    names = ["emea", "amer", "apac"]
    portals = make_portals(names, users=150, seed=3)
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        config = tmp_path / "idgraph.toml"
        write_config(config, sim, names)
        env = {}
        for portal in portals:
            env[f"LU_{portal.spec.name.upper()}_USER"] = portal.spec.username
            env[f"LU_{portal.spec.name.upper()}_KEY"] = portal.spec.password
        wrong_key = "WRONG-key-0123456789abcdef"
        env["LU_AMER_KEY"] = wrong_key
        db = tmp_path / "snap.db"
        code, out, err = await run_cli(
            "crawl", "--config", str(config), "--db", str(db), "--log-format", "json", env=env, cwd=tmp_path
        )
    assert code == 3, err
    with SnapshotStore(db) as store:
        coverage = {c.source: c for c in store.coverage(store.run().id)}
    assert coverage["emea"].complete and coverage["apac"].complete
    assert not coverage["amer"].complete
    assert "401" in (coverage["amer"].error or "")
    lines = [json.loads(line) for line in err.splitlines()]  # every stderr line is one JSON object
    assert any(entry.get("source") == "amer" and "incomplete" in entry["message"] for entry in lines)
    summary = lines[-1]  # the last line, and the only summary
    assert [entry.get("event") for entry in lines].count("summary") == 1 and summary["event"] == "summary"
    assert (summary["command"], summary["exit_code"], summary["complete"]) == ("crawl", 3, False)
    sources = {s["source"]: s for s in summary["sources"]}
    assert (
        sources["emea"]["complete"] and not sources["amer"]["complete"] and "401" in sources["amer"]["error"]
    )
    assert summary["run_id"] == 1 and "findings" not in summary  # a crawl computes no findings
    assert "run 1 INCOMPLETE" in out and "coverage" in out  # the result is on stdout in either format

    secrets = [wrong_key] + [p.spec.password for p in portals]
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("snap.db*"))
    for secret in secrets:
        assert secret not in out and secret not in err
        assert secret.encode() not in db_bytes
        for cov in coverage.values():
            assert secret not in (cov.error or "") and secret not in json.dumps(cov.notes)


async def test_bad_config_exits_2_naming_the_field_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "idgraph.toml"
    config.write_text(
        '[[portals]]\nname = "emea"\nbase_url = "http://acme.learnupon.com"\n'
        'username_env = "U"\npassword_env = "P"\n'
    )
    db = tmp_path / "snap.db"
    code, _, err = await run_cli(
        "crawl", "--config", str(config), "--db", str(db), env={"U": "u", "P": "p"}, cwd=tmp_path
    )
    assert code == 2
    assert "portals[0].base_url" in err and "loopback" in err
    assert not db.exists()


async def test_unknown_csv_status_values_are_named_once_after_the_crawl(tmp_path: Path) -> None:
    export = tmp_path / "hr.csv"
    export.write_text(
        "id,email,status\n1,a@acme.com,active\n2,b@acme.com,Leave\n3,c@acme.com,Leave\n4,d@acme.com,Secondment\n"
    )
    config = tmp_path / "idgraph.toml"
    config.write_text(f'[[idps]]\nname = "hr"\ntype = "csv"\npath = "{export}"\n')

    code, _out, err = await run_cli(
        "crawl", "--config", str(config), "--db", str(tmp_path / "snap.db"), env={}, cwd=tmp_path
    )

    assert code == 0, err
    note = (
        "unknown status values seen: 'Leave' (2 rows), 'Secondment' (1 row): "
        "map them with active_values / disabled_values / not_activated_values"
    )
    assert err.count(note) == 1, err
    assert "hr:" in err.split(note)[0].splitlines()[-1]


async def test_the_coverage_table_is_the_result_on_stdout_and_quiet_prints_none(tmp_path: Path) -> None:
    portals = make_portals(["emea"], users=40, seed=3)
    env = {"LU_EMEA_USER": portals[0].spec.username, "LU_EMEA_KEY": portals[0].spec.password}
    async with run_simulator(portals, window_seconds=WINDOW) as sim:
        config = tmp_path / "idgraph.toml"
        write_config(config, sim, ["emea"])
        db = str(tmp_path / "snap.db")
        code, out, err = await run_cli("crawl", "--config", str(config), "--db", db, env=env, cwd=tmp_path)
        assert code == 0, err
        assert "coverage" in out and "complete  records" in out and f"run 1 complete → {db}" in out
        assert "coverage" not in err and "run 1" not in err  # stderr: the live progress and logs only
        code, out, err = await run_cli(
            "crawl", "--config", str(config), "--db", db, "--quiet", env=env, cwd=tmp_path
        )
    assert code == 0, err
    assert out == ""  # the exit code says it all
    assert err.count("\n") == 1 and "WARNING" in err and "no IdP configured" in err  # warnings still show
