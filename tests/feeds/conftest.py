"""Shared fixtures for the change-feed tests: real fakes on loopback, real clients, no retry sleeps."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from tenacity import wait_none


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient faults are still retried, the same number of times, just without the jittered sleep."""
    monkeypatch.setattr("crawler.http.wait_random_exponential", lambda **_: wait_none())


@pytest.fixture
def secret() -> Callable[[str], str]:
    """A unique, greppable secret per use."""
    return lambda prefix: f"{prefix}-{secrets.token_hex(12)}"
