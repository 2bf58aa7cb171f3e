"""The built wheel carries every non-Python file the code reads (a wheel once shipped without the Cypher
query library, and `idgraph query --list` then printed nothing)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from graph.query_library import QUERIES_DIR, QueryError, load_queries

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_query_library(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("idgraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"graph/queries/{p.name}" for p in QUERIES_DIR.glob("*.yaml")}
    assert expected and expected <= names


def test_an_empty_query_library_is_an_error_not_silence(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="has no queries"):
        load_queries(tmp_path)
