"""Baseline: the crawl the seed guide (`seed-learnupon-api-guide.txt`) describes, written honestly and small.

* Users: `GET /users?page=N`, N = 1, 2, … until a page comes back empty.
* Enrollments **per user**, as the guide's "Get User Enrollments" does — but at
  `/enrollments/search?user_id=U&page=N`: the guide's `/enrollments?user_id=U` answers 401 on real portals
  (and in the simulator), so a script that works at all must use the search endpoint. Pages until empty.
* Groups (`/groups?page=N`) and each group's members (`/group_memberships?group_id=G&page=N`), until empty.
  The guide documents no way to read members; this is the real API's.
* One request at a time (aiohttp). On 429: exponential back-off, 1, 2, 4, … s (the guide: "implement
  exponential back-off"), reset after a success; no Retry-After or header knowledge. `second` scales the
  back-off for a time-compressed simulator (window / 60 s), so it waits as long relative to the window as
  it would on a real portal.

The one tolerance added to the guide: responses are the real API's wrapped objects (`{"user": [...]}`),
not the guide's bare arrays, so a page is unwrapped by its key; without that the script reads nothing.
It keeps records in memory (no snapshot store) and does not list courses: both make it cheaper, not dearer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp

LIST_KEYS = ("user", "users", "groups", "group", "enrollments", "courses")
MAX_BACKOFF_DOUBLINGS = 6  # 1 … 64 s


@dataclass
class SeedGuideResult:
    requests: int = 0
    throttled: int = 0
    by_purpose: dict[str, int] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    enrollments: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    memberships: int = 0


def _records(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in LIST_KEYS:
            if isinstance(body.get(key), list):
                return body[key]
    return []


class SeedGuideCrawler:
    def __init__(self, session: aiohttp.ClientSession, api: str, second: float) -> None:
        self.session, self.api, self.second = session, api, second
        self.result = SeedGuideResult()

    async def get(self, path: str, params: dict[str, Any], purpose: str) -> list[Any]:
        doublings = 0
        while True:
            self.result.requests += 1
            self.result.by_purpose[purpose] = self.result.by_purpose.get(purpose, 0) + 1
            async with self.session.get(f"{self.api}{path}", params=params) as resp:
                if resp.status == 429:
                    self.result.throttled += 1
                    await asyncio.sleep(self.second * 2**doublings)
                    doublings = min(doublings + 1, MAX_BACKOFF_DOUBLINGS)
                    continue
                resp.raise_for_status()
                return _records(await resp.json())

    async def all_pages(self, path: str, params: dict[str, Any], purpose: str) -> list[Any]:
        out: list[Any] = []
        page = 1
        while True:
            records = await self.get(path, {**params, "page": page}, purpose)
            if not records:
                return out
            out += records
            page += 1

    async def run(self) -> SeedGuideResult:
        r = self.result
        r.users = await self.all_pages("/users", {}, "users")
        for user in r.users:
            r.enrollments += await self.all_pages(
                "/enrollments/search", {"user_id": user["id"]}, "enrollments"
            )
        r.groups = await self.all_pages("/groups", {}, "groups")
        for group in r.groups:
            r.memberships += len(
                await self.all_pages("/group_memberships", {"group_id": group["id"]}, "members")
            )
        return r


async def crawl_seed_guide(
    base_url: str, username: str, password: str, *, second: float = 1.0
) -> SeedGuideResult:
    """Crawl one portal the seed guide's way; `second` is how long one back-off second lasts."""
    auth = aiohttp.BasicAuth(username, password)
    async with aiohttp.ClientSession(auth=auth) as session:
        return await SeedGuideCrawler(session, f"{base_url.rstrip('/')}/api/v1", second).run()
