"""Okta's published OpenAPI specs as test oracles: every exchange a fake had, validated request and response.

`/work/shared/vendor-specs/` holds Okta's own cuts of its management spec for `/api/v1/users` and
`/api/v1/logs`. No Log* schema is marked nullable although real events carry nulls, so System Log bodies
are validated with null-valued keys stripped (see change-feeds.md, "Validating fakes").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from crawler.idp.fakes import Exchange

SPECS = Path("/work/shared/vendor-specs")
OKTA_SPEC = SPECS / "okta-users-openapi.yaml"
OKTA_LOGS_SPEC = SPECS / "okta-logs-openapi.yaml"
OKTA_HOST = "https://acme.okta.com"  # the spec's server is https://{yourOktaDomain}
RATE_HEADERS = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")


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
    strip_nulls: bool = False

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
        if not self.strip_nulls or not self.exchange.body:
            return self.exchange.body
        return json.dumps(without_nulls(json.loads(self.exchange.body))).encode()


def without_nulls(value: Any) -> Any:
    """`value` with every null-valued key removed, at every depth (nulls in lists are kept)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@functools.cache
def okta_openapi(spec_path: Path = OKTA_SPEC, path: str = "/api/v1/users") -> tuple[OpenAPI, OpenAPI]:
    """The spec as published, and a copy whose `default` response is the spec's own `Error` schema.

    The published cuts document a few statuses only; Okta also answers 401 (bad token) and 5xx with the
    same `Error` body, so those are checked against that schema rather than skipped.
    """
    published = OpenAPI.from_file_path(str(spec_path))
    raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    raw["paths"][path]["get"]["responses"]["default"] = {
        "description": "Any other error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return published, OpenAPI.from_dict(raw)


def validate_okta_exchanges(
    exchanges: Iterable[Exchange], spec_path: Path = OKTA_SPEC, path: str = "/api/v1/users"
) -> int:
    """Validate every request sent to `path` and every response the fake gave; returns how many."""
    published, with_default = okta_openapi(spec_path, path)
    documented = set(published.spec / "paths" / path / "get" / "responses")
    count = 0
    for exchange in exchanges:
        if exchange.path != path:
            continue
        request = SpecRequest(exchange)
        response = SpecResponse(exchange, strip_nulls=spec_path == OKTA_LOGS_SPEC)
        published.validate_request(request)
        spec = published if str(exchange.status) in documented else with_default
        spec.validate_response(request, response)
        for header in RATE_HEADERS:
            assert exchange.response_header_values(header), f"{header} missing on a {exchange.status}"
        count += 1
    return count


def validate_okta_log_exchanges(exchanges: Iterable[Exchange]) -> int:
    """Every `/api/v1/logs` exchange against Okta's System Log spec, nulls stripped from the bodies."""
    return validate_okta_exchanges(exchanges, OKTA_LOGS_SPEC, "/api/v1/logs")
