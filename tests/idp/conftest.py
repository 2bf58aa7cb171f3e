"""Shared fixtures for the IdP source tests: real fakes on loopback, a real client, a real snapshot.

Helpers are handed out as fixtures (`tools`), since test modules here are not importable as a package.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from okta_spec import validate_okta_exchanges
from tenacity import wait_none

from crawler.config import Config, CrawlConfig, parse_config
from crawler.http import SourceHttp
from crawler.source import SourceContext
from crawler.store import SnapshotStore

OpenSource = Callable[..., tuple[SourceHttp, Any]]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient faults are still retried, the same number of times, just without the jittered sleep."""
    monkeypatch.setattr("crawler.http.wait_random_exponential", lambda **_: wait_none())


@pytest.fixture
def store(tmp_path: Path) -> Iterable[SnapshotStore]:
    with SnapshotStore(tmp_path / "s.db") as snapshot:
        yield snapshot


@pytest.fixture
def secret() -> Callable[[str], str]:
    """A unique, greppable secret per use."""
    return lambda prefix: f"{prefix}-{secrets.token_hex(12)}"


def url_of(server: Any) -> str:
    return f"http://{server.host}:{server.port}"


def idp(raw: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    """One IdP config, through the real config parser (secrets resolved from `env`)."""
    return config({"idps": [raw]}, env).idps[0]


def config(raw: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    return parse_config(raw, env=env or {})


@dataclass
class Outcome:
    ctx: SourceContext
    http: SourceHttp
    run_id: int
    error: BaseException | None

    def rows(self, table: str = "idp_identities") -> list[dict[str, Any]]:
        return [dict(r) for r in self.ctx.store.rows(table, self.run_id, self.ctx.name)]

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["idp_id"]: r for r in self.rows()}

    def addresses(self, idp_id: str) -> dict[str, tuple[bool, str]]:
        """address -> (is_primary, kind) for one identity."""
        return {
            r["address"]: (bool(r["is_primary"]), r["kind"])
            for r in self.rows("idp_addresses")
            if r["idp_id"] == idp_id
        }

    def collections(self) -> dict[str, dict[str, Any]]:
        rows = self.ctx.store.rows("collections", self.run_id, self.ctx.name)
        return {r["collection"]: dict(r) for r in rows}


async def crawl_one(
    open_source: OpenSource,
    cfg: Any,
    store: SnapshotStore,
    prepare: Callable[[SourceHttp], None] | None = None,
) -> Outcome:
    """Run one source's crawl through a SourceContext on the store; keep the error instead of raising."""
    connector = aiohttp.TCPConnector()
    try:
        http, crawl = open_source(cfg, connector, CrawlConfig())
        if prepare is not None:
            prepare(http)
        run_id = store.start_run([(cfg.name, cfg.type)])
        ctx = SourceContext(name=cfg.name, kind=cfg.type, run_id=run_id, store=store, http=http)
        error: BaseException | None = None
        try:
            await crawl(ctx)
        except Exception as exc:
            error = exc
        finally:
            await http.close()
    finally:
        await connector.close()
    return Outcome(ctx, http, run_id, error)


def assert_no_secrets(
    secrets_: Iterable[str],
    *,
    store: SnapshotStore | None = None,
    caplog: pytest.LogCaptureFixture | None = None,
    errors: Iterable[BaseException | str | None] = (),
) -> None:
    """None of the secrets may appear in the snapshot file (+WAL), the captured logs, or error messages."""
    blobs: dict[str, bytes] = {}
    if store is not None:
        for suffix in ("", "-wal"):
            path = Path(f"{store.path}{suffix}")
            if path.exists():
                blobs[path.name] = path.read_bytes()
    if caplog is not None:
        blobs["logs"] = "\n".join(
            f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
        ).encode()
        blobs["log text"] = caplog.text.encode()
    for index, error in enumerate(errors):
        if error is not None:
            blobs[f"error {index}"] = f"{error} {error!r}".encode()
    checked = [s for s in secrets_ if s]
    assert checked, "nothing to check"
    for where, blob in blobs.items():
        for value in checked:
            assert value.encode() not in blob, f"a secret leaked into {where}"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


class Tools:
    """The helpers above, as one fixture."""

    url_of = staticmethod(url_of)
    idp = staticmethod(idp)
    config = staticmethod(config)
    crawl_one = staticmethod(crawl_one)
    assert_no_secrets = staticmethod(assert_no_secrets)
    validate_okta_exchanges = staticmethod(validate_okta_exchanges)


@pytest.fixture
def tools() -> type[Tools]:
    return Tools
