"""The LearnUpon calls remediation makes, and nothing else: read a user, set `enabled`, list and remove
memberships. There is deliberately no method that could send `DELETE /users/{id}`.

Bodies are wrapped in capitalised keys (`{"User": …}`, `{"GroupMembership": …}`): the real API answers an
unwrapped body with 404 "Invalid user parameters provided". Reads accept every dialect the crawler does.
"""

from __future__ import annotations

import contextlib

from pydantic import ValidationError

from crawler.errors import NotFoundError, SourceError
from crawler.http import SourceHttp
from crawler.learnupon.dialect import GROUPS, USER_KEYS, extract_list, parse_user
from crawler.learnupon.paging import iterate_pages
from crawler.records import LUUser


class PortalClient:
    """The four LearnUpon calls remediation makes, over one portal's `SourceHttp`."""

    def __init__(self, http: SourceHttp, base_url: str) -> None:
        self.http = http
        self.api = f"{base_url.rstrip('/')}/api/v1"

    async def read_user(self, user_id: int) -> LUUser | None:
        """The account as it is now, or None when the portal says it does not exist.

        `version_id=1.1` makes LearnUpon include `updated_at`, which the drift checks compare.
        """
        try:
            response = await self.http.get_json(
                f"{self.api}/users/{user_id}", {"version_id": "1.1"}, purpose="remediation_read"
            )
        except NotFoundError:
            return None
        body = response.body
        if isinstance(body, dict) and "id" in body and not any(k in body for k in USER_KEYS):
            body = [body]  # the seed dialect answers the bare object
        where = f"{self.http.name}: GET /users/{user_id}"
        for raw in extract_list(body, USER_KEYS, where):
            try:
                user = parse_user(raw)
            except (ValidationError, ValueError, TypeError) as exc:
                raise SourceError(f"{where}: the account cannot be read ({type(exc).__name__})") from None
            if user.id == user_id:
                return user
        raise SourceError(f"{where}: the answer does not contain user {user_id}")

    async def set_enabled(self, user_id: int, enabled: bool) -> None:
        await self.http.request(
            "PUT",
            f"{self.api}/users/{user_id}",
            json_body={"User": {"enabled": enabled}},
            purpose="remediation_write",
        )

    async def groups_of(self, user_id: int) -> dict[int, str | None]:
        """The account's groups (id -> title), every page."""
        groups: dict[int, str | None] = {}
        async for page in iterate_pages(
            self.http,
            f"{self.api}/group_memberships",
            {"user_id": user_id},
            GROUPS,
            purpose="remediation_read",
        ):
            for raw in page.records:
                if isinstance(raw, dict) and isinstance(raw.get("id"), int):
                    groups[raw["id"]] = raw.get("title")
        return groups

    async def remove_membership(self, group_id: int, user_id: int) -> None:
        with contextlib.suppress(NotFoundError):  # gone already (or a retried DELETE): the read-back decides
            await self.http.request(
                "DELETE",
                f"{self.api}/group_memberships/0",
                json_body={"GroupMembership": {"group_id": group_id, "user_id": user_id}},
                purpose="remediation_write",
            )
