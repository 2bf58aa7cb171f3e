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

from crawler.coverage import COMPLETE, INCOMPLETE, UNAVAILABLE, CollectionCoverage
from crawler.errors import SourceError
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
from crawler.source import SourceContext

CROSSCHECK_DONE = "crosscheck"

# The collections of a portal, and the request purposes each one's requests are counted under.
PURPOSES: dict[str, tuple[str, ...]] = {
    "users": ("users", "users_boundary_check"),
    "groups": ("groups", "groups_boundary_check"),
    "memberships": ("group_members", "group_members_recheck"),
    "courses": ("courses", "courses_boundary_check"),
    "enrollments": (
        "course_enrollments",
        "user_enrollments",
        "enrollments_per_user",
        "enrollments_per_user_seed",
    ),
}
# The ways to read one user's enrollments, in order of preference: the real API's search, then the seed
# guide's `GET /enrollments?user_id=` (which real portals were seen to answer 401).
PER_USER_WAYS = (
    ("/enrollments/search", "enrollments_per_user"),
    ("/enrollments", "enrollments_per_user_seed"),
)


class PortalCrawl:
    """Crawl one portal into the snapshot through its `SourceContext`.

    A listing that fails ends only its own collection: the others go on, and every page read stays in
    the snapshot as a fact. `run` leaves each collection's state in `ctx.collections`.
    """

    def __init__(self, ctx: SourceContext, base_url: str) -> None:
        self.ctx = ctx
        self.api = f"{base_url.rstrip('/')}/api/v1"
        self.failures: dict[str, list[SourceError]] = {name: [] for name in PURPOSES}
        self.absent: dict[str, str] = {}  # collection -> why no way could read it
        self.enrollments_via: str | None = None  # set when enrollments took a fallback
        self._per_user_way: tuple[str, str] | None = None
        self._users_listed = asyncio.Event()
        # Listings an earlier attempt of this run began and did not finish: listed again from the start.
        progress = ctx.store.collection_progress(ctx.run_id, ctx.name)
        self._half_listed = {name for name, (done, _, _) in progress.items() if not done}

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._users())
            tasks.create_task(self._groups_and_members())
            tasks.create_task(self._courses_and_enrollments())
        if CROSSCHECK_DONE not in self.ctx.done and await self._cross_check():
            self.ctx.mark_done(CROSSCHECK_DONE)
        self.ctx.collections = self._collections()

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
        group: str,
    ) -> bool:
        """Walk one listing into the snapshot, unless a previous attempt already committed it.

        Returns whether it completed; a failure is kept in `failures[group]` and raised no further.
        """
        if collection in self.ctx.done:
            return True
        if collection in self._half_listed:
            self._half_listed.discard(collection)
            rows = _listing_rows(collection)
            if rows is not None:  # what the portal deleted meanwhile must not survive the resume
                self.ctx.store.drop_listing(self.ctx.run_id, self.ctx.name, collection, *rows)
        try:
            await self._walk(collection, path, params, reader, parse, purpose, keep, boundary_check)
        except SourceError as exc:
            self.failures[group].append(exc)
            return False
        return True

    async def _walk(self, collection: str, path: str, params: dict[str, Any], reader: PageReader,
                    parse: Callable[[Any], Any], purpose: str, keep: Callable[[Any], bool] | None,
                    boundary_check: bool) -> None:  # fmt: skip
        """The pages of one listing, each committed as it arrives (see `_list`)."""
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
        try:
            await self._list(
                "users",
                "/users",
                {"version_id": "1.1"},
                USERS,
                parse_user,
                purpose="users",
                boundary_check=True,
                group="users",
            )
        finally:
            self._users_listed.set()

    async def _groups_and_members(self) -> None:
        listed = await self._list(
            "groups",
            "/groups",
            {},
            GROUPS,
            parse_group,
            purpose="groups",
            boundary_check=True,
            group="groups",
        )
        if not listed and self._absent("groups"):
            self.absent["memberships"] = "there is no group listing to list the members of"
        group_ids = [row["id"] for row in self.ctx.store.rows("lu_groups", self.ctx.run_id, self.ctx.name)]
        async with asyncio.TaskGroup() as tasks:
            for group_id in group_ids:
                tasks.create_task(self._members(group_id, f"members:{group_id}", "group_members"))

    async def _members(self, group_id: int, collection: str, purpose: str) -> bool:
        return await self._list(
            collection,
            "/group_memberships",
            {"group_id": group_id, "version_id": "1.1"},
            MEMBERS,
            lambda raw: parse_member(group_id, raw),
            purpose=purpose,
            group="memberships",
        )

    async def _courses_and_enrollments(self) -> None:
        """Enrollments per course; per user when there is no course listing or no search by course."""
        await self._list(
            "courses",
            "/courses",
            {"include_draft": "true"},
            COURSES,
            parse_course,
            purpose="courses",
            boundary_check=True,
            group="courses",
        )
        if not self._absent("courses"):
            course_ids = [
                row["id"] for row in self.ctx.store.rows("lu_courses", self.ctx.run_id, self.ctx.name)
            ]
            # The first course alone: if the search by course is absent, the others need not ask.
            if course_ids and (
                await self._course_enrollments(course_ids[0]) or not self._absent("enrollments")
            ):
                async with asyncio.TaskGroup() as tasks:
                    for course_id in course_ids[1:]:
                        tasks.create_task(self._course_enrollments(course_id))
            if not self._absent("enrollments"):
                return
            why = "the search by course is absent"
        else:
            why = "there is no course listing"
        await self._users_listed.wait()
        self.failures["enrollments"] = [f for f in self.failures["enrollments"] if not f.endpoint_absent]
        user_ids = [row["id"] for row in self.ctx.store.rows("lu_users", self.ctx.run_id, self.ctx.name)]
        self.enrollments_via = f"per user ({why})"
        await self._per_user_enrollments(user_ids, purpose=None)

    async def _course_enrollments(self, course_id: int) -> bool:
        return await self._list(
            f"enrollments:course_id:{course_id}",
            "/enrollments/search",
            {"course_id": course_id},
            ENROLLMENTS,
            parse_enrollment,
            purpose="course_enrollments",
            keep=lambda record: record.course_id == course_id,
            group="enrollments",
        )

    async def _per_user_enrollments(self, user_ids: list[int], purpose: str | None) -> bool:
        """Each user's enrollments through the first way the portal has; False if any listing failed.

        The first user tries each way in turn (a 404/405/501 means the endpoint is absent, never that the
        user has none); the rest use the way that worked.
        """
        pending = [u for u in user_ids if f"enrollments:user_id:{u}" not in self.ctx.done]
        if not pending:
            return True
        if self._per_user_way is None:
            first, pending = pending[0], pending[1:]
            tried = []
            for path, way_purpose in PER_USER_WAYS:
                before = len(self.failures["enrollments"])
                if await self._user_enrollments(first, path, purpose or way_purpose):
                    self._per_user_way = (path, way_purpose)
                    if path != PER_USER_WAYS[0][0]:
                        self.enrollments_via = f"{self.enrollments_via or 'per user'} through GET {path}"
                    break
                failures = self.failures["enrollments"]
                failure = failures[-1] if len(failures) > before else None
                if failure is None or not failure.endpoint_absent:
                    return False  # that way exists but failed: the other users' listings would too
                tried.append(f"GET {path} answered {failure.status}")
                self.failures["enrollments"].pop()
            else:
                self.absent["enrollments"] = "no way to read enrollments: " + ", ".join(tried)
                return False
        path, way_purpose = self._per_user_way
        async with asyncio.TaskGroup() as tasks:
            results = [
                tasks.create_task(self._user_enrollments(u, path, purpose or way_purpose)) for u in pending
            ]
        return all(r.result() for r in results)

    async def _user_enrollments(self, user_id: int, path: str, purpose: str) -> bool:
        return await self._list(
            f"enrollments:user_id:{user_id}",
            path,
            {"user_id": user_id},
            ENROLLMENTS,
            parse_enrollment,
            purpose=purpose,
            keep=lambda record: record.user_id == user_id,
            group="enrollments",
        )

    def _absent(self, collection: str) -> bool:
        """Did this collection's endpoint turn out absent (not failing, not refusing: not there)?"""
        failures = self.failures[collection]
        if collection in self.absent:
            return True
        if failures and all(f.endpoint_absent for f in failures) and not self._any_done(collection):
            first = failures[0]
            self.absent[collection] = f"the endpoint is absent (answered {first.status})"
            return True
        return False

    def _any_done(self, collection: str) -> bool:
        prefix = {"memberships": "members:", "enrollments": "enrollments:"}.get(collection, collection)
        return any(name.startswith(prefix) for name in self.ctx.done)

    # --- cross-check ----------------------------------------------------------------------------
    async def _cross_check(self) -> bool:
        """Fetch per user / per group only where LearnUpon's own counters disagree with the crawl.

        Returns whether every re-fetch it needed succeeded.
        """
        users = self.ctx.store.enrollment_count_mismatches(self.ctx.run_id, self.ctx.name)
        groups = self.ctx.store.member_count_mismatches(self.ctx.run_id, self.ctx.name)
        if "enrollments" in self.absent:
            users = []  # no way to read enrollments: nothing to re-fetch with
        async with asyncio.TaskGroup() as tasks:
            user_check = tasks.create_task(self._per_user_enrollments(users, "user_enrollments"))
            member_checks = [
                tasks.create_task(
                    self._members(group_id, f"members-recheck:{group_id}", "group_members_recheck")
                )
                for group_id in groups
            ]
        ok = user_check.result() and all(m.result() for m in member_checks)
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
        return ok

    # --- what was read --------------------------------------------------------------------------
    def _collections(self) -> list[CollectionCoverage]:
        """Each collection's state, from what is committed (so a resumed run reads the same way)."""
        progress = self.ctx.store.collection_progress(self.ctx.run_id, self.ctx.name)
        done = {name for name, (is_done, _, _) in progress.items() if is_done}
        by_purpose = self.ctx.http.stats.by_purpose
        out = []
        for name, purposes in PURPOSES.items():
            prefix = {"memberships": "members", "enrollments": "enrollments:"}.get(name, name)
            listings = [v for k, v in progress.items() if k == name or k.startswith(prefix)]
            cov = CollectionCoverage(
                name,
                requests=sum(by_purpose.get(p, 0) for p in purposes),
                pages=sum(pages for _, pages, _ in listings),
                records=sum(records for _, _, records in listings),
            )
            cov.state, cov.reason = self._state(name, done)
            if name == "enrollments":
                cov.via = self.enrollments_via
            out.append(cov)
        return out

    def _state(self, name: str, done: set[str]) -> tuple[str, str | None]:
        if name in self.absent:
            return UNAVAILABLE, self.absent[name]
        failures = self.failures[name]
        if name in ("users", "groups", "courses"):
            if name in done:
                return COMPLETE, None
            return INCOMPLETE, _failure_reason(failures) or "the listing did not finish"
        if name == "memberships":
            if "groups" in done and all(f"members:{r['id']}" in done for r in self._rows("lu_groups")):
                return COMPLETE, None  # a failed re-check leaves counters stale, not members unread
            why = "the group listing is incomplete, so some groups' members were never listed"
            return INCOMPLETE, _failure_reason(failures) or why
        # enrollments: every listing of its plan done, or LearnUpon's counters vouch for every user
        disagree = self.ctx.store.enrollment_count_mismatches(self.ctx.run_id, self.ctx.name)
        crosschecked = CROSSCHECK_DONE in done and not disagree
        if self.enrollments_via is not None:
            planned = "users" in done and all(
                f"enrollments:user_id:{r['id']}" in done for r in self._rows("lu_users")
            )
        else:
            planned = "courses" in done and all(
                f"enrollments:course_id:{r['id']}" in done for r in self._rows("lu_courses")
            )
        vouched = (
            crosschecked
            and "users" in done
            and self.ctx.store.users_without_enrollment_counter(self.ctx.run_id, self.ctx.name) == 0
        )
        if (planned and crosschecked) or vouched:
            if failures:
                return COMPLETE, (
                    f"{_failure_reason(failures)}; every user's number_of_enrollments now agrees with "
                    "the enrollments read, so none is missing"
                )
            return COMPLETE, None
        why = _failure_reason(failures) or "not every enrollment listing finished"
        return INCOMPLETE, why

    def _rows(self, table: str) -> list[Any]:
        return self.ctx.store.rows(table, self.ctx.run_id, self.ctx.name)


def _failure_reason(failures: list[SourceError]) -> str | None:
    """One line for a collection's failed listings: the first error, and how many more there were."""
    if not failures:
        return None
    more = f" (and {len(failures) - 1} more listings failed)" if len(failures) > 1 else ""
    return f"{failures[0]}{more}"


def _listing_rows(collection: str) -> tuple[str, dict[str, int]] | None:
    """The snapshot rows one listing alone writes: (table, narrowing columns); None for a re-check, whose
    rows an earlier, finished listing also vouches for."""
    if collection in ("users", "groups", "courses"):
        return f"lu_{collection}", {}
    kind, _, rest = collection.partition(":")
    if kind == "members":
        return "lu_memberships", {"group_id": int(rest)}
    if kind == "enrollments":
        column, _, value = rest.partition(":")
        if column in ("course_id", "user_id"):
            return "lu_enrollments", {column: int(value)}
    return None


def _fmt(params: dict[str, Any]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())
