"""A fake SCIM 2.0 service provider: `GET {base}/Users` with RFC 7644 index paging.

Faithful where crawlers go wrong: `startIndex` is 1-based, the server may return fewer than `count` (its
own cap), `totalResults` is the whole set, errors use the SCIM error schema. `truncate_after` makes the
server stop returning resources while still reporting the full `totalResults` — the silent short listing a
crawler must refuse to trust.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from crawler.idp.fakes import Exchange, Faults, recording_middleware
from crawler.idp.fakes.directory import FakePerson, iso

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def scim_user(person: FakePerson) -> dict[str, Any]:
    emails = [{"value": person.email, "type": "work", "primary": True}]
    emails += [{"value": alias, "type": "other", "primary": False} for alias in person.aliases]
    record: dict[str, Any] = {
        "schemas": [USER],
        "id": person.stable_uuid("scim"),
        "externalId": person.id,
        "userName": person.login or person.email,
        "name": {
            "givenName": person.given_name.title(),
            "familyName": person.family_name.title(),
            "formatted": person.display_name,
        },
        "displayName": person.display_name,
        "active": not person.disabled,
        "emails": emails,
        "meta": {
            "resourceType": "User",
            "created": iso(person.status_changed_at),
            "lastModified": iso(person.status_changed_at),
        },
    }
    return person.render("scim", record)


def scim_error(status: int, detail: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"schemas": [ERROR], "status": str(status), "detail": detail},
        status=status,
        headers=headers,
        content_type="application/scim+json",
    )


class ScimFake:
    """One SCIM endpoint under `prefix` (e.g. `/scim/v2`)."""

    def __init__(
        self,
        users: Iterable[FakePerson | Mapping[str, Any]],
        *,
        token: str = "scim-test-token",
        prefix: str = "/scim/v2",
        max_count: int = 100,
        faults: Faults | None = None,
        truncate_after: int | None = None,
    ) -> None:
        self.users = [scim_user(u) if isinstance(u, FakePerson) else dict(u) for u in users]
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.max_count = max_count
        self.faults = faults or Faults()
        self.truncate_after = truncate_after
        self.exchanges: list[Exchange] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[recording_middleware(self.exchanges)])
        app.router.add_get(f"{self.prefix}/Users", self._list_users)
        return app

    async def _list_users(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not secrets.compare_digest(token.encode(), self.token.encode()):
            return scim_error(401, "Authentication failure")
        if self.faults.take_throttle():
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else None
            return scim_error(429, "Too many requests", headers)
        try:
            start = max(1, int(request.query.get("startIndex", "1")))
            count = int(request.query.get("count", str(self.max_count)))
        except ValueError:
            return scim_error(400, "startIndex and count must be integers")
        count = min(max(count, 0), self.max_count)
        page_number = (start - 1) // max(count, 1) + 1
        if self.faults.page_fails(page_number):
            return scim_error(self.faults.fail_status, "Internal error")
        visible = self.users if self.truncate_after is None else self.users[: self.truncate_after]
        page = visible[start - 1 : start - 1 + count]
        body = {
            "schemas": [LIST_RESPONSE],
            "totalResults": len(self.users),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": page,
        }
        return web.json_response(body, content_type="application/scim+json")


__all__ = ["ScimFake", "scim_error", "scim_user"]
