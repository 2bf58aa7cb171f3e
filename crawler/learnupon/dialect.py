"""Reading both LearnUpon dialects: the real API and the seed guide's.

The real API wraps lists in objects keyed `user`, `groups`, `courses`, `enrollments`; the seed guide
shows bare arrays and lower-case plural keys, `is_active` for `enabled` and `role` for `user_type`.
LearnUpon has changed shapes over time, so we read all of them — but a body that is none of them is an
error, never an empty page: an empty page ends a listing, and a listing must not end by accident.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, PlainValidator, TypeAdapter, ValidationError, create_model

from crawler.errors import TransientError
from crawler.http import decode_json
from crawler.records import LUCourse, LUEnrollment, LUGroup, LUMembership, LUUser
from crawler.vocabulary import UNKNOWN_USER_TYPE

# Wrapper keys per collection, real dialect first.
USER_KEYS = ("user", "users")
GROUP_KEYS = ("groups", "group")
COURSE_KEYS = ("courses", "course")
ENROLLMENT_KEYS = ("enrollments", "enrollment")
MEMBER_KEYS = ("user", "users")


def extract_list(body: Any, keys: tuple[str, ...], where: str, *, any_list: bool = False) -> list[Any]:
    """The records of a list response, whatever the dialect; TransientError if the shape is unknown.

    `any_list`: for an endpoint whose wrapper key is undocumented (audit trails), a body without any of
    `keys` yields its first list-valued key instead.
    """
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
        if any_list:
            for value in body.values():
                if isinstance(value, list):
                    return value
        if not body:
            return []
    raise TransientError(f"{where}: unexpected response shape (expected a list under {'/'.join(keys)})")


def _general_reader_decides(value: Any) -> None:
    raise ValueError("present: the general reader decides")


class MemberRow(BaseModel):
    """A group member row as the real API sends it: the user's `id`, and with version 1.1 the membership's.

    `user_id` must be absent — even null: when a row carries one, `parse_member` decides which id counts.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: int
    membership_id: int | None = None
    user_id: Annotated[None, PlainValidator(_general_reader_decides)] = None


def _clean(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError(f"record is a {type(raw).__name__}, not an object")
    return {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in raw.items()}


def parse_user(raw: Any) -> LUUser:
    if type(raw) is LUUser:  # validated with its page (see PageReader)
        return raw
    data = _clean(raw)
    if "enabled" not in data and "is_active" in data:
        data["enabled"] = data["is_active"]
    if data.get("user_type") is None:
        data["user_type"] = data.get("role") or UNKNOWN_USER_TYPE
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
    if type(raw) is LUEnrollment:  # validated with its page (see PageReader)
        return raw
    data = _clean(raw)
    if data.get("unenrolled") is None:
        data["unenrolled"] = False
    return LUEnrollment.model_validate(data)


def parse_member(group_id: int, raw: Any) -> LUMembership:
    """A `/group_memberships?group_id=` row is a user; the membership id only comes with version 1.1."""
    if type(raw) is MemberRow:  # validated with its page (see PageReader)
        return LUMembership(group_id=group_id, user_id=raw.id, membership_id=raw.membership_id)
    data = _clean(raw)
    user_id = data.get("user_id", data.get("id"))
    if user_id is None:
        raise ValueError("id: missing user id in group member row")
    return LUMembership(group_id=group_id, user_id=user_id, membership_id=data.get("membership_id"))


class ValidatedPage(NamedTuple):
    """A page whose records were validated straight from its bytes: they are records already."""

    records: list[Any]


class PageReader:
    """Turns a listing page's bytes into its records, by the fastest way that gives the same records.

    The general way is `json.loads`, then per record: blanks to None, the seed dialect's names mapped,
    validation, quarantine for what does not validate (`SourceContext.normalise`). At thousands of pages a
    second that Python per field is most of the crawler's CPU, so a page in the real dialect is first
    validated whole, from bytes, inside pydantic-core (`fast_record`). That only succeeds when the general
    way would change nothing before validating — no blank strings (`Text` rejects them), `enabled` and
    `user_type` present (no defaults), no `user_id` on member rows — so both ways give equal records; any
    page it rejects (another dialect, one odd record, garbled JSON) simply takes the general way.
    """

    def __init__(
        self, keys: tuple[str, ...], fast_record: type[BaseModel] | None = None, *, any_list: bool = False
    ) -> None:
        self.keys = keys
        self.any_list = any_list  # see `extract_list`
        self._fast: TypeAdapter[Any] | None = None
        if fast_record is not None:
            page = create_model(  # {"<real dialect key>": [records...], ...anything else ignored}
                f"{fast_record.__name__}Page",
                __config__=ConfigDict(extra="ignore"),
                # The record model is chosen at run time, which the type checker cannot follow.
                **{keys[0]: (list[fast_record], ...)},  # type: ignore[call-overload, valid-type]
            )
            self._fast = TypeAdapter(page)

    def decode(self, raw: bytes) -> Any:
        """The body: a ValidatedPage when the fast way applies, else the parsed JSON."""
        if self._fast is not None:
            try:
                return ValidatedPage(getattr(self._fast.validate_json(raw), self.keys[0]))
            except ValidationError:
                pass
        return decode_json(raw)

    def records(self, body: Any, where: str) -> list[Any]:
        """The page's records: validated ones, or raw ones for the general way."""
        if isinstance(body, ValidatedPage):
            return body.records
        return extract_list(body, self.keys, where, any_list=self.any_list)


USERS = PageReader(USER_KEYS, LUUser)
GROUPS = PageReader(GROUP_KEYS)  # a handful per portal, and `title` may come as `name`: general way only
COURSES = PageReader(COURSE_KEYS)
ENROLLMENTS = PageReader(ENROLLMENT_KEYS, LUEnrollment)
MEMBERS = PageReader(MEMBER_KEYS, MemberRow)
