"""A page read straight from bytes must give exactly the records the general, per-record way gives.

The fast way (`PageReader`, pydantic-core on the whole page) exists only for speed; whenever a page has
anything the general way would change before validating, the fast way must decline it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from crawler.learnupon.dialect import (
    ENROLLMENTS,
    MEMBERS,
    USERS,
    PageReader,
    ValidatedPage,
    parse_enrollment,
    parse_member,
    parse_user,
)
from crawler.records import LUUser
from crawler.simulator import make_portals, run_simulator
from crawler.source import quarantine_reason

GROUP = 77


def _general(reader: PageReader, parse: Any, raw: bytes) -> list[Any]:
    """The general way: json.loads, then each record on its own (None where it would be quarantined)."""
    out = []
    for record in reader.records(json.loads(raw), "test"):
        try:
            out.append(parse(record))
        except (ValueError, TypeError):
            out.append(None)
    return out


def _both_ways(reader: PageReader, parse: Any, raw: bytes) -> tuple[bool, list[Any]]:
    """(whether the fast way took the page, the records); fails if the two ways disagree."""
    body = reader.decode(raw)
    general = _general(reader, parse, raw)
    if isinstance(body, ValidatedPage):
        assert [parse(r) for r in body.records] == general
        return True, general
    return False, general


async def _real_pages() -> dict[str, bytes]:
    portals = make_portals(["p"], users=120, seed=7, groups=3, courses=4, page_size=50)
    async with run_simulator(portals) as sim, sim.session("p") as session:
        pages = {}
        async with session.get("api/v1/users?version_id=1.1&page=1") as r:
            pages["users"] = await r.read()
        async with session.get("api/v1/courses?include_draft=true") as r:
            course = (await r.json())["courses"][0]["id"]
        async with session.get(f"api/v1/enrollments/search?course_id={course}") as r:
            pages["enrollments"] = await r.read()
        async with session.get("api/v1/groups") as r:
            group = (await r.json())["groups"][0]["id"]
        async with session.get(f"api/v1/group_memberships?group_id={group}&version_id=1.1") as r:
            pages["members"] = await r.read()
    return pages


READERS = {
    "users": (USERS, parse_user),
    "enrollments": (ENROLLMENTS, parse_enrollment),
    "members": (MEMBERS, lambda raw: parse_member(GROUP, raw)),
}


async def test_real_dialect_pages_take_the_fast_way_with_the_same_records() -> None:
    pages = await _real_pages()
    for name, (reader, parse) in READERS.items():
        fast, records = _both_ways(reader, parse, pages[name])
        assert fast, name
        assert len(records) > 5 and None not in records, name


def _page(key: str, record: dict[str, Any]) -> bytes:
    return json.dumps({key: [record]}).encode()


USER = {
    "id": 1,
    "email": "ana@acme.com",
    "enabled": True,
    "user_type": "learner",
    "created_at": "2024-01-02T03:04:05Z",
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"email": ""}, {"email": None}),
        ({"email": "   "}, {"email": None}),
        ({"first_name": "\x1c"}, {"first_name": None}),
        ({"enabled": None, "is_active": False}, None),  # `enabled` present but null: quarantined
        ({"user_type": None, "role": "admin"}, {"user_type": "admin"}),
        ({"user_type": ""}, {"user_type": "unknown"}),  # a blank type is unknown, never a learner
        ({"last_sign_in_at": ""}, {"last_sign_in_at": None}),
        ({"id": "x"}, None),
    ],
)
def test_what_the_general_way_would_change_is_left_to_it(
    change: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    fast, (record,) = _both_ways(USERS, parse_user, _page("user", {**USER, **change}))
    assert not fast
    if expected is None:
        assert record is None
    else:
        assert {k: getattr(record, k) for k in expected} == expected


def test_seed_dialect_names_are_mapped_by_the_general_way() -> None:
    seed = {k: v for k, v in USER.items() if k not in ("enabled", "user_type")} | {
        "is_active": False,
        "role": "admin",
    }
    fast, (record,) = _both_ways(USERS, parse_user, _page("user", seed))
    assert not fast and (record.enabled, record.user_type) == (False, "admin")
    fast, (record,) = _both_ways(USERS, parse_user, json.dumps([USER]).encode())  # a bare array
    assert not fast and record == parse_user(USER)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-02T04:04:05+01:00",
        "2024-01-02 03:04:05",
        "2024-01-02T03:04:05.250Z",
        1704164645,
        "2024-02-29T00:00:00Z",
    ],
)
def test_timestamps_in_other_forms_give_the_same_canonical_value_either_way(value: Any) -> None:
    fast, (record,) = _both_ways(USERS, parse_user, _page("user", {**USER, "created_at": value}))
    assert fast
    assert record.created_at.endswith("Z") and record.created_at[:10] in ("2024-01-02", "2024-02-29")


@pytest.mark.parametrize(
    "value", ["2023-02-29T00:00:00Z", "2025-04-31T00:00:00Z", "2025-13-01T00:00:00Z", "soon"]
)
def test_impossible_timestamps_are_quarantined_either_way(value: str) -> None:
    fast, (record,) = _both_ways(USERS, parse_user, _page("user", {**USER, "created_at": value}))
    assert not fast and record is None


def test_enrollment_and_member_rows_the_general_way_must_read() -> None:
    enrollment = {
        "id": 3,
        "course_id": 9,
        "user_id": 7,
        "unenrolled": None,
        "date_enrolled": "2024-01-02T03:04:05Z",
    }
    fast, (record,) = _both_ways(ENROLLMENTS, parse_enrollment, _page("enrollments", enrollment))
    assert not fast and record.unenrolled is False
    member = {"id": 7, "user_id": 8, "membership_id": 5}  # a row naming its user: the general way decides
    fast, (record,) = _both_ways(MEMBERS, lambda raw: parse_member(GROUP, raw), _page("user", member))
    assert not fast and (record.group_id, record.user_id, record.membership_id) == (GROUP, 8, 5)
    unnamed = {"id": 7, "user_id": None}  # is `id` the user's or the membership's here? quarantined
    fast, (record,) = _both_ways(MEMBERS, lambda raw: parse_member(GROUP, raw), _page("user", unnamed))
    assert not fast and record is None


def test_garbled_bytes_are_a_transient_fault_not_an_empty_page() -> None:
    with pytest.raises(ValueError):
        USERS.decode(b'{"user": [{"id": 1, "enabl')


def test_records_never_default_enabled_or_user_type() -> None:
    with pytest.raises(ValueError, match="enabled"):
        LUUser.model_validate({"id": 1, "user_type": "learner"})
    with pytest.raises(ValueError, match="user_type"):
        LUUser.model_validate({"id": 1, "enabled": True})


def test_a_bad_timestamp_is_quarantined_with_a_reason_a_reviewer_can_read() -> None:
    with pytest.raises(ValidationError) as info:
        parse_user({**USER, "created_at": "2023-02-29T00:00:00Z"})
    assert quarantine_reason(info.value) == "created_at: not a valid date and time"
