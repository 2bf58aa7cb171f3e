"""`idgraph export neo4j` and `idgraph query`, mounted the way idgraph/cli.py mounts them."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import typer
from conftest import Exporter
from neo4j_estate import MANAGED_DOMAINS, write_estate
from typer.testing import CliRunner

from crawler.store import SnapshotStore
from idgraph.neo4j_commands import export_app, query_command

if TYPE_CHECKING:
    from neo4j_fixture import Neo4jServer

SECRET = "not-a-real-pw-7f3a9c"  # must never appear in any output

app = typer.Typer()
app.add_typer(export_app, name="export")
app.command("query")(query_command)


def _auth_args(server: Neo4jServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The test server's credentials, or (auth disabled) any credentials, always through --password-env."""
    monkeypatch.setenv("IDGRAPH_TEST_NEO4J_PASSWORD", server.password or SECRET)
    return ["--user", server.user or "neo4j", "--password-env", "IDGRAPH_TEST_NEO4J_PASSWORD"]


@pytest.fixture
def snapshot_path(tmp_path: Path) -> str:
    with SnapshotStore(tmp_path / "snapshot.db") as store:
        write_estate(store)
    return str(tmp_path / "snapshot.db")


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.neo4j
def test_export_then_query_from_the_command_line(
    exporter: Exporter, first_run: int, neo4j_server: Neo4jServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = _auth_args(neo4j_server, monkeypatch)
    db = str(exporter.store.path)
    common = ["--uri", neo4j_server.uri, *auth, "--database", neo4j_server.database]
    domains = [arg for d in MANAGED_DOMAINS for arg in ("--managed-domain", d)]

    code, output = _invoke("export", "neo4j", *common, "--db", db, "--batch-size", "3", *domains, "--json")
    assert code == 0, output
    stats = json.loads(output)
    assert stats["run_id"] == first_run and stats["nodes_created"]["LearnUponAccount"] == 16

    code, output = _invoke("export", "neo4j", *common, "--db", db, *domains)
    assert code == 0, output
    assert "created 0 nodes / 0 relationships, deleted 0 nodes / 0 relationships" in " ".join(output.split())

    code, output = _invoke("query", "orphan_accounts", *common, "--format", "json")
    assert code == 0, output
    rows = [json.loads(line) for line in output.splitlines()]
    assert [(r["portal"], r["learnupon_user_id"], r["severity"]) for r in rows] == [
        ("apac", 102, "high"),
        ("emea", 2, "critical"),
        ("emea", 3, "critical"),
    ]

    code, output = _invoke(
        "query", "people_in_several_portals", *common, "--param", "min_portals=2", "--format", "csv"
    )
    assert code == 0, output
    assert output.splitlines()[0].startswith("person,portal_count,portals")
    assert len(output.splitlines()) == 4

    code, output = _invoke("query", "coverage", *common)
    assert code == 0 and "emea" in output and "okta" in output
    assert SECRET not in output


def test_the_password_only_comes_from_the_named_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDGRAPH_UNSET_PW", raising=False)
    code, output = _invoke("export", "neo4j", "--uri", "bolt://127.0.0.1:1", "--user", "neo4j",
                           "--password-env", "IDGRAPH_UNSET_PW", "--db", str(tmp_path / "x.db"))  # fmt: skip
    assert code == 2 and "environment variable IDGRAPH_UNSET_PW is not set" in output

    code, output = _invoke("export", "neo4j", "--uri", "bolt://127.0.0.1:1", "--user", "neo4j")
    assert code == 2 and "--user and --password-env go together" in output

    monkeypatch.setenv("IDGRAPH_SET_PW", SECRET)
    missing = str(tmp_path / "missing.db")
    code, output = _invoke("export", "neo4j", "--uri", "bolt://127.0.0.1:1", "--user", "neo4j",
                           "--password-env", "IDGRAPH_SET_PW", "--db", missing)  # fmt: skip
    assert code == 2 and "no snapshot at" in output and SECRET not in output


def test_an_unreachable_server_fails_cleanly_without_the_password(
    snapshot_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDGRAPH_SET_PW", SECRET)
    code, output = _invoke("export", "neo4j", "--uri", "bolt://127.0.0.1:1", "--user", "neo4j",
                           "--password-env", "IDGRAPH_SET_PW", "--db", snapshot_path)  # fmt: skip
    assert code == 2 and "is not reachable" in output and SECRET not in output


class _FakeBoltPort:
    """A loopback port that counts connection attempts: refused (closed), closed at once, or silent."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour, self.attempts, self._held = behaviour, 0, []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        if behaviour == "closed_port":
            self._server.close()
            return
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.attempts += 1
            if self.behaviour == "closes_at_once":
                conn.close()
            else:
                self._held.append(conn)  # accepted, never a byte of Bolt: a server that hangs

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()


@pytest.mark.parametrize("behaviour", ["closed_port", "closes_at_once", "never_answers"])
def test_a_closed_or_unreachable_neo4j_is_one_line_and_exit_2_without_retrying(
    behaviour: str, snapshot_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the driver's defaults a closed port took 57 s to fail (transaction retries); now one attempt,
    bounded by graph.neo4j_connect's 6 s acquisition deadline. Attempts are counted, not seconds."""
    monkeypatch.setenv("IDGRAPH_SET_PW", SECRET)
    fake = _FakeBoltPort(behaviour)
    uri = f"bolt://127.0.0.1:{fake.port}"
    auth = ["--user", "neo4j", "--password-env", "IDGRAPH_SET_PW"]
    try:
        export = _invoke("export", "neo4j", "--uri", uri, *auth, "--db", snapshot_path)
        query = _invoke("query", "orphan_accounts", "--uri", uri, *auth)
    finally:
        fake.close()
    for code, output in (export, query):
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2, output
        assert len(lines) == 1 and lines[0].startswith(f"idgraph: --uri: Neo4j at {uri} is not reachable")
        assert SECRET not in output and "Traceback" not in output
    assert fake.attempts <= 2  # one connection per command: no retry loop (the defaults made 8 and more)


def test_the_library_is_saved_as_cypher_files_for_browser(tmp_path: Path) -> None:
    code, output = _invoke("query", "--save-cypher", str(tmp_path / "cypher"))
    assert code == 0, output
    files = {p.stem: p.read_text() for p in (tmp_path / "cypher").glob("*.cypher")}
    assert "orphan_accounts" in files and len(files) >= 10
    dormant = files["dormant_accounts"].splitlines()
    assert dormant[0] == "// idgraph: dormant_accounts"
    assert "// :param dormant_days => null" in dormant and "MATCH (run:IdgraphRun)" in "\n".join(dormant)


def test_query_usage_errors() -> None:
    code, output = _invoke("query", "orphans", "--uri", "bolt://127.0.0.1:1")
    assert code == 2 and "no query named 'orphans'" in output
    code, output = _invoke(
        "query", "people_in_several_portals", "--uri", "bolt://127.0.0.1:1", "-p", "limit=ten"
    )
    assert code == 2 and "expected an integer" in output
    code, output = _invoke("query", "coverage", "--uri", "bolt://127.0.0.1:1", "-p", "limit=1")
    assert code == 2 and "has no parameter 'limit'" in output
    code, output = _invoke("query", "--list")
    assert code == 0 and "orphan_accounts  (finding idp_disabled_active)" in output
