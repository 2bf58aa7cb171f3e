"""Fixtures of the review tests; the helpers are in review_helpers.py (imported by name, as the tests do)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from review_helpers import idgraph, write_run

from crawler.store import SnapshotStore


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "review.db"
    with SnapshotStore(path) as store:
        write_run(store)
    yield path


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return idgraph
