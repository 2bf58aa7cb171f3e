"""The crawl plan for one LearnUpon portal, with as few requests as the API allows.

List per collection, never per user: users, groups, the members of each group, courses (drafts
included), the enrollments of each course. Then cross-check the counters LearnUpon keeps —
each user's `number_of_enrollments`, each group's `number_of_members` — against what was crawled, and
fetch per user / per group only where they disagree (enrollments in courses `/courses` does not list,
a listing that shifted under us). Each collection is committed page by page and marked done, so a
resumed crawl skips what is already in the snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from crawler.learnupon.dialect import (
    COURSES,
    ENROLLMENTS,
    GROUPS,
    MEMBERS,
    USERS,
    PageReader,
    parse_course,
    parse_enrollment,
    parse_group,
    parse_member,
    parse_user,
)
from crawler.learnupon.paging import iterate_pages
from crawler.records import LUEnrollment
from crawler.source import SourceContext

CROSSCHECK_DONE = "crosscheck"


class PortalCrawl:
    """Crawl one portal into the snapshot through its `SourceContext`."""

    def __init__(self, ctx: SourceContext, base_url: str) -> None:
        self.ctx = ctx
        self.api = f"{base_url.rstrip('/')}/api/v1"

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._users())
            tasks.create_task(self._groups_and_members())
            tasks.create_task(self._courses_and_enrollments())
        if CROSSCHECK_DONE not in self.ctx.done:
            await self._cross_check()
            self.ctx.mark_done(CROSSCHECK_DONE)

    # --- listings -------------------------------------------------------------------------------
    async def _list(
        self,
        collection: str,
        path: str,
        params: dict[str, Any],
        reader: PageReader,
        parse: Callable[[Any], Any],
        *,
        purpose: str,
        keep: Callable[[Any], bool] | None = None,
        boundary_check: bool = False,
    ) -> None:
        """Walk one listing into the snapshot, unless a previous attempt already committed it."""
        if collection in self.ctx.done:
            return
        rejected = 0
        drift = 0
        pages = iterate_pages(
            self.ctx.http, f"{self.api}{path}", params, reader, purpose=purpose, boundary_check=boundary_check
        )
        async for page in pages:
            if page.duplicates or page.drift:
                self.ctx.progress.drift_events += 1
                drift += 1
            records = self.ctx.normalise(collection, page.records, parse)
            if keep is not None:
                accepted = [r for r in records if keep(r)]
                rejected += len(records) - len(accepted)
                records = accepted
            self.ctx.commit_page(collection, records, done=page.last)
        if drift:
            self.ctx.note(
                f"{collection}: the listing changed while it was read ({drift} drift events); records that "
                "shifted across page boundaries were re-read and duplicates dropped"
            )
        if rejected:
            self.ctx.note(
                f"{collection}: the server ignored the filter in {path}?{_fmt(params)} and returned "
                f"{rejected} records that do not match it; they were dropped"
            )

    async def _users(self) -> None:
        await self._list(
            "users",
            "/users",
            {"version_id": "1.1"},
            USERS,
            parse_user,
            purpose="users",
            boundary_check=True,
        )

    async def _groups_and_members(self) -> None:
        await self._list("groups", "/groups", {}, GROUPS, parse_group, purpose="groups", boundary_check=True)
        group_ids = [row["id"] for row in self.ctx.store.rows("lu_groups", self.ctx.run_id, self.ctx.name)]
        async with asyncio.TaskGroup() as tasks:
            for group_id in group_ids:
                tasks.create_task(self._members(group_id, f"members:{group_id}", "group_members"))

    async def _members(self, group_id: int, collection: str, purpose: str) -> None:
        await self._list(
            collection,
            "/group_memberships",
            {"group_id": group_id, "version_id": "1.1"},
            MEMBERS,
            lambda raw: parse_member(group_id, raw),
            purpose=purpose,
        )

    async def _courses_and_enrollments(self) -> None:
        await self._list(
            "courses",
            "/courses",
            {"include_draft": "true"},
            COURSES,
            parse_course,
            purpose="courses",
            boundary_check=True,
        )
        course_ids = [row["id"] for row in self.ctx.store.rows("lu_courses", self.ctx.run_id, self.ctx.name)]
        async with asyncio.TaskGroup() as tasks:
            for course_id in course_ids:
                tasks.create_task(self._enrollments("course_id", course_id, "course_enrollments"))

    async def _enrollments(self, field: str, value: int, purpose: str) -> None:
        def matches(record: LUEnrollment) -> bool:
            return getattr(record, field) == value

        await self._list(
            f"enrollments:{field}:{value}",
            "/enrollments/search",
            {field: value},
            ENROLLMENTS,
            parse_enrollment,
            purpose=purpose,
            keep=matches,
        )

    # --- cross-check ----------------------------------------------------------------------------
    async def _cross_check(self) -> None:
        """Fetch per user / per group only where LearnUpon's own counters disagree with the crawl."""
        users = self.ctx.store.enrollment_count_mismatches(self.ctx.run_id, self.ctx.name)
        groups = self.ctx.store.member_count_mismatches(self.ctx.run_id, self.ctx.name)
        async with asyncio.TaskGroup() as tasks:
            for user_id in users:
                tasks.create_task(self._enrollments("user_id", user_id, "user_enrollments"))
            for group_id in groups:
                tasks.create_task(
                    self._members(group_id, f"members-recheck:{group_id}", "group_members_recheck")
                )
        still_users = self.ctx.store.enrollment_count_mismatches(self.ctx.run_id, self.ctx.name)
        still_groups = self.ctx.store.member_count_mismatches(self.ctx.run_id, self.ctx.name)
        if users:
            self.ctx.note(
                f"{len(users)} users' number_of_enrollments disagreed with the per-course listing; fetched "
                f"per user ({len(still_users)} still disagree)"
            )
        if groups:
            self.ctx.note(
                f"{len(groups)} groups' number_of_members disagreed with the member listing; re-listed "
                f"({len(still_groups)} still disagree: LearnUpon's counter is stale)"
            )


def _fmt(params: dict[str, Any]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())
