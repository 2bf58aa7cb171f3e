"""The built wheel carries every non-Python file the code reads (a wheel once shipped without the Cypher
query library, and `idgraph query --list` then printed nothing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from graph.query_library import QUERIES_DIR, QueryError, load_queries

REPO = Path(__file__).resolve().parents[1]
REPORT_ASSETS = REPO / "graph" / "reports" / "assets"


def _clean_copy(destination: Path) -> Path:
    """The tracked files only, as a fresh clone has them: no egg-info or build/ left by an editable install
    (their file lists would smuggle the data files into the wheel and hide the bug)."""
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from a clean copy of the tracked files (build isolation, as a user's pip)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = _clean_copy(tmp / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("idgraph-*.whl")
    return wheel


def test_the_wheel_carries_the_query_library_and_report_assets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"graph/queries/{p.name}" for p in QUERIES_DIR.glob("*.yaml")}
    assert expected and expected <= names
    # report.html inlines these at run time: without them every HTML report fails to render.
    assets = {f"graph/reports/assets/{p.name}" for p in REPORT_ASSETS.iterdir() if p.is_file()}
    assert {"graph/reports/assets/report.css", "graph/reports/assets/report.js"} <= assets
    assert "graph/reports/assets/page.html" in assets and assets <= names


def test_the_installed_wheel_runs_version_demo_and_query_list(wheel: Path, tmp_path: Path) -> None:
    """`pip install idgraph-*.whl` (not editable) into a fresh venv, then the commands a new user runs
    first, from that venv's `idgraph` script, outside the source tree. Offline: the wheel comes with
    `--no-index --no-deps`, and the dependencies are this environment's own (a .pth line), so nothing is
    fetched; the venv holds no source tree, no egg-link and no editable finder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
         str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dependencies = next(
        p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "aiohttp").is_dir()
    )
    (Path(site) / "idgraph_test_dependencies.pth").write_text(f"{dependencies}\n")
    work = tmp_path / "elsewhere"  # not the source tree: nothing may be imported from a checkout
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}

    def idgraph(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "idgraph"), *args], cwd=work, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip

    where = subprocess.run(
        [str(python), "-c", "import idgraph, graph, crawler; print(idgraph.__file__, graph.__file__)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.count(site) == 2 and str(REPO) not in where

    from importlib.metadata import version

    shown = idgraph("--version")
    assert (shown.returncode, shown.stdout) == (0, f"idgraph {version('idgraph')}\n"), shown.stderr

    demo = idgraph("demo", "--out", str(work / "demo"), "--portals", "1", "--users", "50")
    assert demo.returncode == 0, demo.stderr
    assert "findings" in demo.stdout and "idp_disabled_active" in demo.stdout
    html = (work / "demo" / "report.html").read_text()
    css = (REPORT_ASSETS / "report.css").read_text()
    assert css.strip().splitlines()[0] in html  # the stylesheet came from the wheel's package data
    findings = json.loads((work / "demo" / "findings.json").read_text())
    assert findings["findings"] and all(c["complete"] for c in findings["coverage"])

    listed = idgraph("query", "--list")
    assert listed.returncode == 0, listed.stderr
    for query in QUERIES_DIR.glob("*.yaml"):
        assert f"\n{query.stem}" in f"\n{listed.stdout}", query.stem


def test_an_empty_query_library_is_an_error_not_silence(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="has no queries"):
        load_queries(tmp_path)


def test_version_is_a_result_on_stdout() -> None:
    from importlib.metadata import version

    shown = subprocess.run(
        [sys.executable, "-m", "idgraph.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"idgraph {version('idgraph')}"
