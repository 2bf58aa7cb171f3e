"""The minimal request plan of one simulated portal: the fewest requests the API allows, by purpose.

Computed from the simulator's ground truth, so tests can assert the crawler's request count and
benchmarks can compute its efficiency against the same floor. It includes the boundary re-checks of the
entity listings and the per-user / per-group fetches the counters force, so it is the plan's floor, not a
hypothetical one.
"""

from __future__ import annotations

import math

from .dataset import PortalData, PortalSpec


def pages(count: int, page_size: int, has_next_header: bool) -> int:
    """Requests one listing needs: with LU-Has-Next-Page none is wasted; without, one empty page ends it."""
    if has_next_header:
        return max(1, math.ceil(count / page_size))
    return math.ceil(count / page_size) + 1


def minimal_plan(spec: PortalSpec, data: PortalData) -> dict[str, int]:
    """The fewest requests the API allows for this portal, by purpose."""
    headers = spec.dialect == "real"
    size = spec.page_size
    index = data.index
    courses = data.visible_course_ids()
    hidden_users = data.users_with_hidden_enrollments()
    stale_groups = [
        g for g, row in data.groups.items() if row["number_of_members"] != len(data.members_of(g))
    ]
    plan = {
        "users": pages(len(data.users), size, headers),
        "groups": pages(len(data.groups), size, headers),
        "group_members": sum(pages(len(data.members_of(g)), size, headers) for g in data.groups),
        "courses": pages(len(courses), size, headers),
        "course_enrollments": sum(
            pages(len(index.enrollments_by_course.get(c, [])), size, headers) for c in courses
        ),
        "user_enrollments": sum(pages(len(data.enrollments_of_user(u)), size, headers) for u in hidden_users),
        "group_members_recheck": sum(pages(len(data.members_of(g)), size, headers) for g in stale_groups),
    }
    # Entity listings re-read the page before each later page, to catch records that slid back across
    # a page boundary (a deletion mid-scan); that costs one request per boundary.
    for purpose, count in (
        ("users", len(data.users)),
        ("groups", len(data.groups)),
        ("courses", len(courses)),
    ):
        plan[f"{purpose}_boundary_check"] = max(0, math.ceil(count / size) - 1)
    return {purpose: n for purpose, n in plan.items() if n}
