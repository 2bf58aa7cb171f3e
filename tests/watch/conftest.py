"""Fixtures of the watcher tests (helpers in watch_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watch_helpers import SnapshotBuilder


@pytest.fixture
def snapshot(tmp_path: Path) -> Iterator[Any]:
    builder = SnapshotBuilder(tmp_path / "snapshot.db")
    yield builder
    builder.store.close()
