"""Pytest plugin: a real Neo4j 5.26 server for integration tests.

Why a real server: the exporter's Cypher (MERGE, constraints, batching) is only trustworthy against the
engine it targets, and no Docker is available here, so tests/neo4j-server/ builds a tiny Java launcher
around neo4j-harness from Maven Central and this plugin runs it as a subprocess.

Fixtures:
  neo4j_server  (session)  -> Neo4jServer(uri, user, password, database); one server for the session.
  neo4j_driver  (function) -> neo4j.Driver on an empty database (data, constraints, indexes dropped).

Environment:
  NEO4J_URI [+ NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE]  use that server (Neo4j 5.23+), start nothing.
  IDGRAPH_NEO4J_JAVA_OPTS   JVM flags for the launcher (default: DEFAULT_JAVA_OPTS).
  IDGRAPH_NEO4J_PAGECACHE   page cache of the launched server (default 512m, read by the launcher).
  CI=true                   missing Java/Maven fails the tests instead of skipping them.

The module has no package-relative imports so that it loads both as ``tests.neo4j_fixture`` and as
``neo4j_fixture`` with tests/ on sys.path.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from neo4j import Driver

SERVER_DIR = Path(__file__).resolve().parent / "neo4j-server"
BUILD_SCRIPT = SERVER_DIR / "build.sh"
BUILD_TIMEOUT_S = 1800.0  # a cold Maven cache downloads ~180 MB
START_TIMEOUT_S = 180.0  # process start -> BOLT_URI line
CONNECT_TIMEOUT_S = 60.0  # BOLT_URI line -> verify_connectivity() ok
STOP_TIMEOUT_S = 60.0  # stdin closed -> process exit, then kill
DEFAULT_JAVA_OPTS = "-Xms256m -Xmx1g -XX:+UseG1GC"
MISSING_TOOL_EXIT = 127  # build.sh's code for "java or mvn not found"
STDERR_TAIL_LINES = 60
MARKER = "neo4j: needs a real Neo4j server (the neo4j_server / neo4j_driver fixtures)"


@dataclass(frozen=True)
class Neo4jServer:
    """Where the tests' Neo4j server is; ``managed`` is False for a server given by NEO4J_URI."""

    uri: str
    user: str | None = None
    password: str | None = None
    database: str = "neo4j"
    managed: bool = True

    @property
    def auth(self) -> tuple[str, str] | None:
        """Auth tuple for ``GraphDatabase.driver``; None when the server has auth disabled."""
        if self.user is None:
            return None
        return (self.user, self.password or "")


class _Unavailable(Exception):
    """The toolchain to build/run the server is missing: skip locally, fail in CI."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _unavailable(reason: str) -> NoReturn:
    """CI must never silently skip the Neo4j tests; a developer without Java may."""
    if _in_ci():
        pytest.fail(f"Neo4j test server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(
        f"Neo4j test server unavailable: {reason}. To run these tests install OpenJDK 17 and Maven "
        "(apt-get install openjdk-17-jdk-headless maven) or point NEO4J_URI at a Neo4j 5 server."
    )


def _tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no stderr captured)"
    return "\n".join(text.splitlines()[-lines:])


def build_server() -> Path:
    """Runs build.sh (a no-op when up to date) and returns the launcher jar."""
    if shutil.which("java") is None:
        raise _Unavailable("'java' not found on PATH")
    try:
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{BUILD_SCRIPT} did not finish within {BUILD_TIMEOUT_S:.0f} s", pytrace=False)
    if result.returncode == MISSING_TOOL_EXIT:
        raise _Unavailable("'mvn' not found on PATH (needed to build tests/neo4j-server)")
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-STDERR_TAIL_LINES:])
        pytest.fail(
            f"building the Neo4j test server failed (exit {result.returncode}):\n{tail}",
            pytrace=False,
        )
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("NEO4J_TEST_SERVER_JAR="):
            return Path(line.split("=", 1)[1])
    pytest.fail(f"{BUILD_SCRIPT} did not print NEO4J_TEST_SERVER_JAR=...:\n{result.stdout}", pytrace=False)


def _read_first_line(stream: IO[str], into: list[str], done: threading.Event) -> None:
    """Reads the launcher's protocol line on a thread, so the caller can wait with a timeout."""
    try:
        into.append(stream.readline())
    finally:
        done.set()


def _wait_for_bolt_uri(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line: list[str] = []
    done = threading.Event()
    threading.Thread(target=_read_first_line, args=(proc.stdout, line, done), daemon=True).start()
    if not done.wait(START_TIMEOUT_S):
        raise RuntimeError(f"no BOLT_URI line within {START_TIMEOUT_S:.0f} s")
    first = line[0].strip() if line else ""
    if not first.startswith("BOLT_URI="):
        proc.wait(timeout=10)
        raise RuntimeError(f"launcher exited (code {proc.returncode}) before BOLT_URI; got {first!r}")
    return first.split("=", 1)[1]


def wait_until_connectable(server: Neo4jServer, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Retries ``verify_connectivity`` until the server answers: Bolt may lag the launcher's line."""
    from neo4j import GraphDatabase
    from neo4j.exceptions import ServiceUnavailable, SessionExpired

    deadline = time.monotonic() + timeout_s
    with GraphDatabase.driver(server.uri, auth=server.auth) as driver:
        while True:
            try:
                driver.verify_connectivity()
                return
            except (ServiceUnavailable, SessionExpired, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Closing stdin is the launcher's shutdown signal; kill only if it hangs."""
    if proc.stdin is not None and not proc.stdin.closed:
        with contextlib.suppress(OSError):  # already broken pipe: the launcher is gone anyway
            proc.stdin.close()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jServer]:
    """One Neo4j server for the whole session: NEO4J_URI if set, else the launcher built here."""
    uri = os.environ.get("NEO4J_URI")
    if uri:
        server = Neo4jServer(
            uri=uri,
            user=os.environ.get("NEO4J_USER"),
            password=os.environ.get("NEO4J_PASSWORD"),
            database=os.environ.get("NEO4J_DATABASE", "neo4j"),
            managed=False,
        )
        wait_until_connectable(server)
        yield server
        return

    try:
        jar = build_server()
    except _Unavailable as exc:
        _unavailable(str(exc))

    from neo4j.exceptions import DriverError, Neo4jError

    java = shutil.which("java") or "java"
    java_opts = shlex.split(os.environ.get("IDGRAPH_NEO4J_JAVA_OPTS", DEFAULT_JAVA_OPTS))
    stderr_log = tmp_path_factory.mktemp("neo4j-server") / "launcher.stderr.log"
    with stderr_log.open("wb") as stderr:
        proc = subprocess.Popen(
            [java, *java_opts, "-jar", str(jar)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        error: str | None = None
        try:
            server = Neo4jServer(uri=_wait_for_bolt_uri(proc))
            wait_until_connectable(server)
        except (RuntimeError, OSError, subprocess.SubprocessError, DriverError, Neo4jError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            _stop(proc)
            pytest.fail(
                f"Neo4j test server failed to start: {error}\n--- launcher stderr ({stderr_log}) ---\n"
                f"{_tail(stderr_log)}",
                pytrace=False,
            )
        yield server
    finally:
        _stop(proc)


def _quote_name(name: str) -> str:
    """Backtick-quotes a schema name for DROP, which takes no parameters."""
    return "`" + name.replace("`", "``") + "`"


def wipe_database(driver: Driver, database: str) -> None:
    """Empties the database so each test starts from nothing, keeping the built-in LOOKUP indexes."""
    with driver.session(database=database) as session:
        # Auto-commit + IN TRANSACTIONS keeps memory flat if a test left a large graph behind.
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
        for record in session.run("SHOW CONSTRAINTS YIELD name RETURN name").data():
            session.run(f"DROP CONSTRAINT {_quote_name(record['name'])} IF EXISTS").consume()
        indexes = session.run("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name").data()
        for record in indexes:
            session.run(f"DROP INDEX {_quote_name(record['name'])} IF EXISTS").consume()


@pytest.fixture
def neo4j_driver(neo4j_server: Neo4jServer) -> Iterator[Driver]:
    """A driver on an empty database; each test gets its own so closing it cannot break others."""
    from neo4j import GraphDatabase

    driver = GraphDatabase.driver(neo4j_server.uri, auth=neo4j_server.auth)
    try:
        wipe_database(driver, neo4j_server.database)
        yield driver
    finally:
        driver.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test that uses the server, so ``-m "not neo4j"`` deselects them all."""
    for item in items:
        if "neo4j_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.neo4j)
