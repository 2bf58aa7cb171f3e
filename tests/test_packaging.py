"""The built wheel carries every non-Python file the code reads (a wheel once shipped without the Cypher
query library, and `idgraph query --list` then printed nothing)."""

from __future__ import annotations

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


def test_the_wheel_carries_the_query_library_and_report_assets(tmp_path: Path) -> None:
    source = _clean_copy(tmp_path / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("idgraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"graph/queries/{p.name}" for p in QUERIES_DIR.glob("*.yaml")}
    assert expected and expected <= names
    # report.html inlines these at run time: without them every HTML report fails to render.
    assets = {f"graph/reports/assets/{p.name}" for p in REPORT_ASSETS.iterdir() if p.is_file()}
    assert {"graph/reports/assets/report.css", "graph/reports/assets/report.js"} <= assets
    assert "graph/reports/assets/page.html" in assets and assets <= names


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
