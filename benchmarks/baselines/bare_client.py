"""Baseline: the least any Python crawler on aiohttp must spend — the floor under idgraph's CPU per request.

Walks the same listings as idgraph's plan (users, groups, each group's members, courses, each course's
enrollments; every page until `LU-Has-Next-Page` says no) with one plain `aiohttp` session per portal and
`json.loads`, and nothing else: no validation, no snapshot, no rate control, no retries, no boundary
re-reads, no cross-check. It only makes sense against a portal that never throttles, and it is not a
crawler anyone should run; it answers "how much of idgraph's cost is its own work, and how much is HTTP".
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from benchmarks.sim_process import PortalInfo

CONCURRENCY = 8  # per portal, as idgraph's default max_concurrency_per_source


async def _pages(
    session: aiohttp.ClientSession, url: str, params: dict[str, Any], key: str
) -> tuple[list[Any], int]:
    """Every record of one listing, and the requests it took."""
    records: list[Any] = []
    number = 0
    for number in range(1, 10_000):
        async with session.get(url, params={**params, "page": number}) as response:
            if response.status != 200:
                raise RuntimeError(f"bare client: {url} answered {response.status}")
            body = json.loads(await response.read())
            more = response.headers.get("LU-Has-Next-Page") == "true"
        page = body[key]
        records += page
        if not more or not page:
            break
    return records, number


async def crawl_bare(connector: aiohttp.BaseConnector, portal: PortalInfo) -> int:
    """Fetch every page of one portal's listings; returns the number of requests sent."""
    api = f"{portal.base_url}/api/v1"
    auth = aiohttp.encode_basic_auth(portal.username, portal.password)
    slots = asyncio.Semaphore(CONCURRENCY)
    sent = 0

    async def pages(path: str, params: dict[str, Any], key: str) -> list[Any]:
        nonlocal sent
        async with slots:
            records, requests = await _pages(session, f"{api}{path}", params, key)
        sent += requests
        return records

    async with aiohttp.ClientSession(
        connector=connector, connector_owner=False, headers={"Authorization": auth}
    ) as session:

        async def members() -> None:
            groups = await pages("/groups", {}, "groups")
            query = {"version_id": "1.1"}
            await asyncio.gather(
                *(pages("/group_memberships", {**query, "group_id": g["id"]}, "user") for g in groups)
            )

        async def enrollments() -> None:
            courses = await pages("/courses", {"include_draft": "true"}, "courses")
            await asyncio.gather(
                *(pages("/enrollments/search", {"course_id": c["id"]}, "enrollments") for c in courses)
            )

        await asyncio.gather(pages("/users", {"version_id": "1.1"}, "user"), members(), enrollments())
    return sent
