"""Every notebook in notebooks/ runs headless on demo data: jupytext reads the py:percent source, nbclient
executes it in a real kernel (this venv's Python) in a temp dir, parameters injected after the cell
tagged `parameters` (papermill's convention). A cell error fails the test with the cell and traceback.

The demo snapshot is made once per session, by two `idgraph demo` runs into one directory, so the access
review has a previous run to compare with. Execution times are printed (`pytest -s`), not asserted.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jupytext
import nbclient
import nbformat
import networkx as nx
import pandas as pd
import pytest
from ipykernel import kernelspec

from graph import notebook_api as nb

if TYPE_CHECKING:
    from neo4j import Driver
    from neo4j_fixture import Neo4jServer

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KERNEL = "idgraph-notebook-tests"  # this interpreter, whatever other python3 kernels the machine has
CELL_TIMEOUT_S = 120
CONTRACT = ["finding", "severity", "email", "portal", "learnupon_user_id", "user_type", "idp", "idp_status"]
NEO4J_ENV = ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE")


@dataclass
class Executed:
    notebook: Any  # nbformat.NotebookNode
    seconds: float

    def outputs(self) -> list[dict[str, Any]]:
        return [o for c in self.notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]

    def images(self) -> list[bytes]:
        return [
            base64.b64decode(o["data"]["image/png"])
            for o in self.outputs()
            if "image/png" in o.get("data", {})
        ]

    def text(self) -> str:
        parts = []
        for output in self.outputs():
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/markdown", "") or data.get("text/plain", ""))
        return "\n".join(parts)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo snapshot with two runs (the second usually changes nothing: the simulator is seeded)."""
    out = tmp_path_factory.mktemp("notebook-demo")
    command = [sys.executable, "-m", "idgraph.cli", "demo", "--out", str(out)]
    for _ in range(2):
        subprocess.run([*command, "--portals", "3", "--users", "400", "--quiet"], check=True, timeout=300)
    return out / "idgraph.db"


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data dir holding one kernelspec: this interpreter running ipykernel."""
    root = tmp_path_factory.mktemp("jupyter")
    kernelspec.write_kernel_spec(root / "kernels" / KERNEL)
    return root


class Runner:
    """Executes one notebook in `workdir`; the kernel gets this environment minus any NEO4J_* / MPLBACKEND,
    plus `env`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def __call__(self, name: str, env: dict[str, str] | None = None, **params: Any) -> Executed:
        notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
        tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters'"
        source = "\n".join(f"{key} = {value!r}" for key, value in params.items())
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
        notebook.cells.insert(tagged[0] + 1, cell)
        kernel_env = {k: v for k, v in os.environ.items() if k not in (*NEO4J_ENV, "MPLBACKEND")}
        kernel_env.update(env or {})
        client = nbclient.NotebookClient(
            notebook,
            kernel_name=KERNEL,
            timeout=CELL_TIMEOUT_S,
            extra_arguments=["--colors=nocolor"],  # plain tracebacks in a failing test's message
            resources={"metadata": {"path": str(self.workdir)}},
        )
        started = time.monotonic()
        try:
            client.execute(env=kernel_env)
        finally:  # the executed notebook, to look at (a failing cell shows its traceback)
            nbformat.write(notebook, self.workdir / f"{name}.ipynb")
        seconds = time.monotonic() - started
        print(f"\nnotebook {name}: executed in {seconds:.1f} s")
        return Executed(notebook, seconds)


@pytest.fixture
def execute(kernel_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Runs notebooks with our kernelspec first on JUPYTER_PATH (looked up here, inherited by the kernel)."""
    monkeypatch.setenv(
        "JUPYTER_PATH", os.pathsep.join(filter(None, [str(kernel_dir), os.getenv("JUPYTER_PATH")]))
    )
    return Runner(tmp_path)


def test_explore(demo_db: Path, execute: Runner) -> None:
    run = execute("explore", DB=str(demo_db))
    images = run.images()
    assert len(images) >= 3  # findings by portal/code, what orphans hold, one neighbourhood
    assert all(image.startswith(b"\x89PNG") for image in images)
    text = run.text()
    assert "people in several portals" in text
    assert "orphans hold" in text


def test_access_review(demo_db: Path, execute: Runner, tmp_path: Path) -> None:
    out = tmp_path / "ticket.csv"
    run = execute("access_review", DB=str(demo_db), OUT=str(out))
    assert run.images()
    text = run.text()
    assert "Verdicts withheld: none." in text  # the demo's crawls complete
    assert "Since run 1:" in text  # two demo runs: the diff section compares them
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][: len(CONTRACT)] == CONTRACT
    assert {"change", "first_seen", "groups"} <= set(rows[0])
    assert len(rows) > 1
    assert f"wrote {len(rows) - 1} findings to {out}" in text
    assert out.stat().st_mode & 0o077 == 0  # names people and their access: owner-only


def test_access_review_of_the_first_run(demo_db: Path, execute: Runner, tmp_path: Path) -> None:
    out = tmp_path / "first.csv"
    text = execute("access_review", DB=str(demo_db), RUN_ID=1, OUT=str(out)).text()
    assert "Run 1 is the first recorded run: every finding is new." in text
    with out.open(newline="") as handle:
        assert {row["change"] for row in csv.DictReader(handle)} == {"new"}


def test_access_review_of_a_partial_run(demo_db: Path, execute: Runner, tmp_path: Path) -> None:
    """One portal's users listing failed in the newest run before any page, whose findings were never
    recorded: the notebook records them, says findings there may be missing, and reports the portal's old
    findings as not re-checked."""
    db = tmp_path / "partial.db"
    shutil.copy(demo_db, db)
    with sqlite3.connect(db) as con:
        run_id = con.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        (collections,) = con.execute(
            "SELECT collections FROM coverage WHERE run_id = ? AND source = 'apac'", (run_id,)
        ).fetchone()
        failed = [
            {**c, "state": "incomplete", "reason": "HTTP 503 after 5 retries"} if c["name"] == "users" else c
            for c in json.loads(collections)
        ]
        con.execute(
            "UPDATE coverage SET complete = 0, error = ?, collections = ? "
            "WHERE run_id = ? AND source = 'apac'",
            ("users incomplete: HTTP 503 after 5 retries", json.dumps(failed), run_id),
        )
        con.execute("DELETE FROM lu_users WHERE run_id = ? AND portal = 'apac'", (run_id,))
        con.execute("DELETE FROM finding_occurrences WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM finding_runs WHERE run_id = ?", (run_id,))
        con.execute(  # as history.record would have left it after run 1 alone
            """UPDATE finding_history SET last_seen_run = :before,
               last_seen_at = (SELECT started_at FROM runs WHERE id = :before) WHERE last_seen_run = :run""",
            {"before": run_id - 1, "run": run_id},
        )
    run = execute("access_review", DB=str(db))
    text = run.text()
    assert "Findings may be missing: " in text and "Findings may be missing: none." not in text
    assert "HTTP 503 after 5 retries" in text
    assert "not re-checked" in text
    ticket = tmp_path / f"access-review-run{run_id}.csv"  # OUT = None: next to the snapshot
    with ticket.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    apac = [row for row in rows if row["portal"] == "apac"]
    assert apac  # the failed portal's open findings stay on the ticket...
    assert {row["change"] for row in apac} == {"not_rechecked"}  # ...as not re-checked, from run 1
    assert {row["last_seen_run"] for row in apac} == {str(run_id - 1)}
    others = [row for row in rows if row["portal"] != "apac"]
    code = "code" if "code" in others[0] else "finding"
    assert {row["change"] for row in others if row[code] != "partially_offboarded"} == {"still_open"}
    # a partially_offboarded finding whose disabled counterpart was in apac could not be re-checked
    assert {row["change"] for row in others if row[code] == "partially_offboarded"} <= {
        "still_open",
        "not_rechecked",
    }
    with sqlite3.connect(db) as con:
        recorded = con.execute("SELECT COUNT(*) FROM finding_runs WHERE run_id = ?", (run_id,)).fetchone()[0]
    assert recorded == 1


def test_neo4j_without_a_server(demo_db: Path, execute: Runner) -> None:
    run = execute("neo4j", DB=str(demo_db))
    text = run.text()
    assert "NEO4J_URI is not set" in text
    assert "orphan_accounts" in text  # the query library is listed anyway
    assert "exported run" not in text


def test_neo4j(demo_db: Path, execute: Runner, neo4j_server: Neo4jServer, neo4j_driver: Driver) -> None:
    """Against the tests' real Neo4j (neo4j_driver starts it from an empty database)."""
    env = {"NEO4J_URI": neo4j_server.uri, "NEO4J_DATABASE": neo4j_server.database}
    if neo4j_server.auth is not None:
        env["NEO4J_USER"], env["NEO4J_PASSWORD"] = neo4j_server.auth
    run = execute("neo4j", env=env, DB=str(demo_db))
    text = run.text()
    assert "NEO4J_URI is not set" not in text
    assert "exported run 2" in text
    assert "orphan accounts" in text
    assert "All three agree." in text


# --- graph.notebook_api, the parts the demo data does not reach ---------------------------------------
def test_ticket_csv_is_private_and_spreadsheet_safe(tmp_path: Path) -> None:
    table = pd.DataFrame({"finding": ["not_in_idp"], "email": ['=HYPERLINK("http://x")'], "groups": [None]})
    path = nb.export_ticket(table, tmp_path / "t.csv")
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row == {"finding": "not_in_idp", "email": '\'=HYPERLINK("http://x")', "groups": ""}


def test_draw_neighbourhood_of_tiny_graphs() -> None:
    assert nb.draw_neighbourhood(nx.DiGraph()).axes  # nothing to draw, still a figure
    one = nx.DiGraph()
    one.add_node("person:a@x.com", kind="person", key="a@x.com")
    assert nb.ring_layout(one, "person:a@x.com") == {"person:a@x.com": (0.0, 0.0)}
    two = one.copy()
    two.add_node("group:p:1", kind="group", title=None, id=1)  # unreachable, untitled
    positions = nb.ring_layout(two, "person:a@x.com")
    assert set(positions) == set(two) and positions["group:p:1"] != (0.0, 0.0)
    assert nb.node_label("group:p:1", two.nodes["group:p:1"]) == "group 1"
    nb.draw_neighbourhood(two, center="person:a@x.com")


def test_neo4j_target_from_env_never_shows_the_password() -> None:
    assert nb.Neo4jTarget.from_env({}) is None
    target = nb.Neo4jTarget.from_env(
        {"NEO4J_URI": "neo4j://db:7687", "NEO4J_USER": "neo4j", "NEO4J_PASSWORD": "s3cret"}
    )
    assert target is not None and target.auth == ("neo4j", "s3cret") and target.database == "neo4j"
    assert "s3cret" not in repr(target)
