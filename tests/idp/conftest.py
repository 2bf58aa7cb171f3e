"""Shared fixtures for the IdP source tests: real fakes on loopback, a real client, a real snapshot.

Helpers are handed out as fixtures (`tools`), since test modules here are not importable as a package.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from tenacity import wait_none
from werkzeug.datastructures import Headers, ImmutableMultiDict

from crawler.config import Config, CrawlConfig, parse_config
from crawler.http import SourceHttp
from crawler.idp.fakes import Exchange
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


# --- Okta: every exchange checked against Okta's published OpenAPI spec -----------------------------

OKTA_SPEC = Path("/work/shared/vendor-specs/okta-users-openapi.yaml")
OKTA_HOST = "https://acme.okta.com"  # the spec's server is https://{yourOktaDomain}


@dataclass(frozen=True)
class SpecRequest:
    """openapi-core's Request protocol over a recorded exchange, as if sent to a real org."""

    exchange: Exchange

    @property
    def parameters(self) -> RequestParameters:
        return RequestParameters(
            query=ImmutableMultiDict(list(self.exchange.query)),
            header=Headers(list(self.exchange.request_headers)),
            cookie=ImmutableMultiDict(),
        )

    host_url = OKTA_HOST

    @property
    def path(self) -> str:
        return self.exchange.path

    @property
    def method(self) -> str:
        return self.exchange.method.lower()

    @property
    def body(self) -> bytes | None:
        return self.exchange.request_body or None

    @property
    def content_type(self) -> str:
        return self.exchange.header("Content-Type") or ""


@dataclass(frozen=True)
class SpecResponse:
    exchange: Exchange

    @property
    def status_code(self) -> int:
        return self.exchange.status

    @property
    def content_type(self) -> str:
        return self.exchange.content_type

    @property
    def headers(self) -> Headers:
        return Headers(list(self.exchange.response_headers))

    @property
    def data(self) -> bytes:
        return self.exchange.body


@functools.cache
def okta_openapi() -> tuple[OpenAPI, OpenAPI]:
    """The spec as published, and a copy whose `default` response is the spec's own `Error` schema.

    The published cut documents 200, 403 and 429 only; Okta also answers 401 (bad token) and 5xx with the
    same `Error` body, so those are checked against that schema rather than skipped.
    """
    published = OpenAPI.from_file_path(str(OKTA_SPEC))
    raw = yaml.safe_load(OKTA_SPEC.read_text(encoding="utf-8"))
    raw["paths"]["/api/v1/users"]["get"]["responses"]["default"] = {
        "description": "Any other error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return published, OpenAPI.from_dict(raw)


def validate_okta_exchanges(exchanges: Iterable[Exchange]) -> int:
    """Validate every request the client sent and every response the fake gave; returns how many."""
    published, with_default = okta_openapi()
    documented = set(published.spec / "paths" / "/api/v1/users" / "get" / "responses")
    count = 0
    for exchange in exchanges:
        request, response = SpecRequest(exchange), SpecResponse(exchange)
        published.validate_request(request)
        spec = published if str(exchange.status) in documented else with_default
        spec.validate_response(request, response)
        for header in ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"):
            assert exchange.response_header_values(header), f"{header} missing on a {exchange.status}"
        count += 1
    return count


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
