"""Reading both LearnUpon dialects: the real API and the seed guide's.

The real API wraps lists in objects keyed `user`, `groups`, `courses`, `enrollments`; the seed guide
shows bare arrays and lower-case plural keys, `is_active` for `enabled` and `role` for `user_type`.
LearnUpon has changed shapes over time, so we read all of them — but a body that is none of them is an
error, never an empty page: an empty page ends a listing, and a listing must not end by accident.
"""

from __future__ import annotations

from typing import Any

from crawler.errors import TransientError
from crawler.records import LUCourse, LUEnrollment, LUGroup, LUMembership, LUUser

# Wrapper keys per collection, real dialect first.
USER_KEYS = ("user", "users")
GROUP_KEYS = ("groups", "group")
COURSE_KEYS = ("courses", "course")
ENROLLMENT_KEYS = ("enrollments", "enrollment")
MEMBER_KEYS = ("user", "users")


def extract_list(body: Any, keys: tuple[str, ...], where: str) -> list[Any]:
    """The records of a list response, whatever the dialect; TransientError if the shape is unknown."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            if key in body:
                value = body[key]
                if value is None:
                    return []
                if isinstance(value, list):
                    return value
                if isinstance(value, dict):
                    return [value]
        if not body:
            return []
    raise TransientError(f"{where}: unexpected response shape (expected a list under {'/'.join(keys)})")


def _clean(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError(f"record is a {type(raw).__name__}, not an object")
    return {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in raw.items()}


def parse_user(raw: Any) -> LUUser:
    data = _clean(raw)
    if "enabled" not in data and "is_active" in data:
        data["enabled"] = data["is_active"]
    if data.get("user_type") is None and data.get("role") is not None:
        data["user_type"] = data["role"]
    if data.get("user_type") is None:
        data.pop("user_type", None)
    if data.get("enabled") is None:
        raise ValueError("enabled: missing (neither `enabled` nor `is_active` present)")
    return LUUser.model_validate(data)


def parse_group(raw: Any) -> LUGroup:
    data = _clean(raw)
    if data.get("title") is None and data.get("name") is not None:
        data["title"] = data["name"]
    return LUGroup.model_validate(data)


def parse_course(raw: Any) -> LUCourse:
    data = _clean(raw)
    if data.get("name") is None and data.get("title") is not None:
        data["name"] = data["title"]
    return LUCourse.model_validate(data)


def parse_enrollment(raw: Any) -> LUEnrollment:
    data = _clean(raw)
    if data.get("unenrolled") is None:
        data["unenrolled"] = False
    return LUEnrollment.model_validate(data)


def parse_member(group_id: int, raw: Any) -> LUMembership:
    """A `/group_memberships?group_id=` row is a user; the membership id only comes with version 1.1."""
    data = _clean(raw)
    user_id = data.get("user_id", data.get("id"))
    if user_id is None:
        raise ValueError("id: missing user id in group member row")
    return LUMembership(group_id=group_id, user_id=user_id, membership_id=data.get("membership_id"))
