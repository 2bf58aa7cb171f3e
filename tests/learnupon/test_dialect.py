"""Both LearnUpon dialects read into the same records; unknown shapes are errors, not empty pages."""

from __future__ import annotations

import pytest

from crawler.errors import TransientError
from crawler.learnupon.dialect import (
    ENROLLMENT_KEYS,
    USER_KEYS,
    extract_list,
    parse_enrollment,
    parse_member,
    parse_user,
)


def test_extract_list_reads_every_dialect() -> None:
    rows = [{"id": 1}]
    assert extract_list({"user": rows, "customDataFieldDefinitions": []}, USER_KEYS, "w") == rows
    assert extract_list({"users": rows}, USER_KEYS, "w") == rows
    assert extract_list(rows, USER_KEYS, "w") == rows
    assert extract_list({"enrollments": []}, ENROLLMENT_KEYS, "w") == []
    assert extract_list({"user": {"id": 1}}, USER_KEYS, "w") == rows


@pytest.mark.parametrize("body", [{"message": "Unauthorized"}, "oops", 17, {"groups": []}])
def test_unknown_shapes_are_errors_not_empty_pages(body: object) -> None:
    with pytest.raises(TransientError, match="unexpected response shape"):
        extract_list(body, USER_KEYS, "emea: users page 3")


def test_seed_user_fields_map_to_real_ones() -> None:
    seed = parse_user({"id": 7, "email": "Jane@Example.com", "is_active": False, "role": "admin"})
    real = parse_user({"id": 7, "email": "Jane@Example.com", "enabled": False, "user_type": "admin"})
    assert seed == real
    assert seed.enabled is False and seed.user_type == "admin"


def test_user_without_a_type_is_unknown_never_a_learner() -> None:
    assert parse_user({"id": 7, "email": "a@b.c", "enabled": True}).user_type == "unknown"
    assert parse_user({"id": 7, "email": "a@b.c", "is_active": True, "role": ""}).user_type == "unknown"


def test_user_without_any_enabled_flag_is_rejected() -> None:
    with pytest.raises(ValueError, match="enabled"):
        parse_user({"id": 7, "email": "a@b.c"})


def test_blank_strings_are_missing_values() -> None:
    user = parse_user({"id": 1, "email": "", "enabled": True, "last_sign_in_at": "", "username": "jdoe"})
    assert user.email is None and user.last_sign_in_at is None and user.username == "jdoe"


def test_enrollment_and_member_rows() -> None:
    row = parse_enrollment({"id": 3, "course_id": 9, "user_id": 7, "status": "passed", "percentage": None})
    assert (row.course_id, row.user_id, row.unenrolled) == (9, 7, False)
    member = parse_member(77, {"id": 7, "email": "a@b.c", "membership_id": 555})
    assert (member.group_id, member.user_id, member.membership_id) == (77, 7, 555)
    with pytest.raises(ValueError):
        parse_member(77, {"email": "a@b.c"})
