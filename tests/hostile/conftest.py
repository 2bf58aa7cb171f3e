"""Hostile-fake tests: transient faults are still retried, without the jittered sleep."""

from __future__ import annotations

import pytest
from tenacity import wait_none


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("crawler.http.wait_random_exponential", lambda **_: wait_none())
