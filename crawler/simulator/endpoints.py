"""The LearnUpon v1 resources the simulator serves: one handler per (method, path template).

Handlers are synchronous and cheap: they page by slicing the portal's cached sorted id lists. Filters a
resource does not know are ignored, as the real API ignores them, so the unfiltered list comes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from .audit import AuditQueryError

if TYPE_CHECKING:
    from .app import SimulatedPortal

JSON_ERROR = {"error": "There was a problem in the JSON you submitted."}
_MEMBER_FIELDS = ("id", "first_name", "last_name", "email", "created_at", "locale")
_UPDATABLE = frozenset({"first_name", "last_name", "email", "username", "locale", "user_type"})
_SEED_FIELDS = {"is_active": "enabled", "role": "user_type"}


@dataclass(slots=True)
class Reply:
    """A handler's answer before rendering: JSON `body` or plain `text`, and paging for the LU-* headers."""

    status: int = 200
    body: Any = None
    text: str | None = None
    paging: tuple[int, int, bool] | None = None  # page, per page, has next


Query = Mapping[str, str]
Handler = Callable[["SimulatedPortal", Query, list[str], bytes], Reply]


def not_found(message: str = "Not Found") -> Reply:
    return Reply(404, {"message": message})


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _v11(p: SimulatedPortal, query: Query) -> bool:
    return p.param(query, "version_id") == "1.1"


def _users(p: SimulatedPortal, q: Query, ids: list[int]) -> Reply:
    rows, paging = p.page(q, ids)
    with_updated = _v11(p, q)
    return Reply(
        body=p.wrap("user", [p.shape_user(p.data.users[uid], with_updated) for uid in rows]), paging=paging
    )


def list_users(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /users: every user, paged; `email`, `group_id`… are not filters here and are ignored."""
    return _users(p, q, p.data.index.user_ids)


def get_user(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /users/{id}: a one-element `user` list (the seed dialect: the bare object)."""
    user = p.data.users.get(int(segs[1]))
    if user is None:
        return not_found("User not found")
    shaped = p.shape_user(user, _v11(p, q))
    return Reply(body=shaped if p.spec.dialect == "seed" else p.wrap("user", [shaped]))


def search_users(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /users/search?email= (case-insensitive) or ?username=; any other parameter returns the roster.

    No match answers 404 or an empty `user` list, as the portal spec says (which one LearnUpon sends is
    not documented)."""
    email, username = p.param(q, "email"), p.param(q, "username")
    index = p.data.index
    if email is not None:
        ids = index.users_by_email.get(email.strip().casefold(), [])
    elif username is not None:
        ids = index.users_by_username.get(username.strip().casefold(), [])
    else:
        ids = index.user_ids
    if not ids and p.spec.search_no_match == "not_found":
        return not_found("User not found")
    return _users(p, q, ids)


def list_groups(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /groups, paged; `?title=` matches the whole title, case-insensitively."""
    ids = p.data.index.group_ids
    title = p.param(q, "title")
    if title is not None:
        ids = [g for g in ids if p.data.groups[g]["title"].casefold() == title.casefold()]
    rows, paging = p.page(q, ids)
    return Reply(body=p.wrap("groups", [p.data.groups[g] for g in rows]), paging=paging)


def group_memberships(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /group_memberships?group_id= lists member *users*; ?user_id= lists the user's groups."""
    data, index, v11 = p.data, p.data.index, _v11(p, q)
    group_id, user_id = p.param(q, "group_id"), p.param(q, "user_id")
    if group_id is not None:
        gid = _int(group_id)
        if gid not in data.groups:
            return not_found("Group not found")
        rows, paging = p.page(q, index.members.get(gid, []))
        members = []
        for mid, uid in rows:
            user = data.users[uid]
            member = {k: user[k] for k in _MEMBER_FIELDS if k in user}
            if v11:
                member["membership_id"] = mid
            members.append(member)
        return Reply(body=p.wrap("member", members), paging=paging)
    if user_id is not None:
        uid = _int(user_id)
        if uid not in data.users:
            return not_found("User not found")
        rows, paging = p.page(q, index.groups_of.get(uid, []))
        groups = [
            {**data.groups[gid], "membership_id": mid} if v11 else data.groups[gid] for mid, gid in rows
        ]
        return Reply(body=p.wrap("group", groups), paging=paging)
    return not_found()


def list_courses(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /courses: published only; include_draft=true adds drafts; archived courses never appear."""
    index, courses = p.data.index, p.data.courses
    include_draft = (p.param(q, "include_draft") or "").lower() == "true"
    ids = index.visible_course_ids if include_draft else index.published_course_ids
    course_id, name = _int(p.param(q, "course_id")), p.param(q, "name")
    if p.param(q, "course_id") is not None:
        ids = [c for c in ids if c == course_id]
    if name is not None:
        ids = [c for c in ids if name.casefold() in courses[c]["name"].casefold()]
    rows, paging = p.page(q, ids)
    records = [{k: v for k, v in courses[c].items() if k != "archived"} for c in rows]
    return Reply(body=p.wrap("courses", records), paging=paging)


def search_enrollments(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /enrollments/search by user_id, course_id or email (and date_from/date_to on updated_at).

    Withdrawn (`unenrolled`) rows are returned too. With no filter the portal answers with every enrollment.
    """
    index, rows = p.data.index, p.data.enrollments
    user_id, course_id, email = (p.param(q, k) for k in ("user_id", "course_id", "email"))
    date_from, date_to = p.param(q, "date_from"), p.param(q, "date_to")
    uid, cid = _int(user_id), _int(course_id)  # a non-numeric id matches nothing
    email_users = set(index.users_by_email.get(email.strip().casefold(), [])) if email is not None else set()
    # The first filter given picks the candidate list; the others are checked row by row.
    checks: list[Callable[[dict[str, Any]], bool]] = []
    if user_id is not None:
        ids = index.enrollments_by_user.get(uid, []) if uid is not None else []
        if course_id is not None:
            checks.append(lambda r: r["course_id"] == cid)
    elif course_id is not None:
        ids = index.enrollments_by_course.get(cid, []) if cid is not None else []
    elif email is not None:
        ids = sorted(chain.from_iterable(index.enrollments_by_user.get(u, []) for u in email_users))
    else:
        ids = index.enrollment_ids
    if email is not None and (user_id is not None or course_id is not None):
        checks.append(lambda r: r["user_id"] in email_users)
    if date_from:
        checks.append(lambda r: r["updated_at"][:10] >= date_from)
    if date_to:
        checks.append(lambda r: r["updated_at"][:10] <= date_to)
    if checks:
        ids = [e for e in ids if all(check(rows[e]) for check in checks)]
    page, paging = p.page(q, ids)
    return Reply(body=p.wrap("enrollments", [rows[e] for e in page]), paging=paging)


def enrollments_root(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """Plain GET /enrollments was seen to answer 401 on a real portal, whatever the credentials; the seed
    guide's portals answer `GET /enrollments?user_id=` with that user's enrollments."""
    user_id = _int(p.param(q, "user_id"))
    if p.spec.dialect == "real" or user_id is None:
        return Reply(401, {"message": "Unauthorized"})
    rows = p.data.enrollments
    page, paging = p.page(q, p.data.index.enrollments_by_user.get(user_id, []))
    return Reply(body=p.wrap("enrollments", [rows[e] for e in page]), paging=paging)


def audit_trails(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """GET /audit-trails?date_range=ISO,ISO and/or ?action=N: the last 30 days, newest first, paged."""
    try:
        records = p.data.audit.select(p.data.now(), p.param(q, "date_range"), p.param(q, "action"))
    except AuditQueryError as exc:
        return Reply(400, {"message": str(exc)})
    rows, paging = p.page(q, records)
    return Reply(body=p.wrap("audit_trails", rows), paging=paging)


_BAD_JSON = object()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return _BAD_JSON


def put_user(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """PUT /users/{id} with {"User": {...}}; unknown fields are silently dropped, like the real API does."""
    uid = int(segs[1])
    user = p.data.users.get(uid)
    if user is None:
        return not_found("User not found")
    payload = _json(body)
    if payload is _BAD_JSON:
        return Reply(400, JSON_ERROR)
    fields = payload.get("User") if isinstance(payload, dict) else None
    if not isinstance(fields, dict):
        return not_found("Invalid user parameters provided")
    if p.faults.silent_noop_writes:
        return Reply(body={"id": uid})
    renames = _SEED_FIELDS if p.spec.dialect != "real" else {}
    for key, value in fields.items():
        key = renames.get(key, key)
        if key == "enabled" and isinstance(value, bool):
            p.data.set_enabled(uid, value)
        elif key in _UPDATABLE and isinstance(value, str):
            user[key] = value
            p.data.touch()  # email and username are indexed
    return Reply(body={"id": uid})


def delete_user(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """DELETE /users/{id} purges the account and its history; remediation must never send it."""
    uid = int(segs[1])
    if uid not in p.data.users:
        return not_found("User not found")
    if not p.faults.silent_noop_writes:
        p.data.remove_user(uid)
    return Reply(body={})


def delete_membership(p: SimulatedPortal, q: Query, segs: list[str], body: bytes) -> Reply:
    """DELETE /group_memberships/{id}, or /0 with a {"GroupMembership": {group_id, user_id}} body."""
    mid = int(segs[1])
    if mid == 0:
        payload = _json(body)
        wanted = payload.get("GroupMembership") if isinstance(payload, dict) else None
        if not isinstance(wanted, dict):
            return not_found("Invalid group membership parameters provided")
        pair = (wanted.get("group_id"), wanted.get("user_id"))
        mid = next((m for m, row in p.data.memberships.items() if row == pair), 0)
    if mid not in p.data.memberships:
        return not_found("Group membership not found")
    if not p.faults.silent_noop_writes:
        p.data.remove_membership(mid)
    return Reply(body={})


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "users"): list_users,
    ("GET", "users/{id}"): get_user,
    ("GET", "users/search"): search_users,
    ("PUT", "users/{id}"): put_user,
    ("DELETE", "users/{id}"): delete_user,
    ("GET", "groups"): list_groups,
    ("GET", "group_memberships"): group_memberships,
    ("DELETE", "group_memberships/{id}"): delete_membership,
    ("GET", "courses"): list_courses,
    ("GET", "courses/{id}"): lambda p, q, segs, body: not_found(),  # measured: 404 even for real courses
    ("GET", "enrollments"): enrollments_root,
    ("GET", "enrollments/search"): search_enrollments,
    ("GET", "audit-trails"): audit_trails,
}
