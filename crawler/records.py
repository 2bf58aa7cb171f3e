"""Normalised records: what every source hands to the snapshot store.

Sources speak many dialects; these models are the one vocabulary downstream code reads. Transforms are
strict on the keys that identify a record (an id) and lenient on the rest, so a malformed record is
quarantined with its reason instead of silently half-stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from crawler.vocabulary import IdentityStatus

# A date and time in the one form the snapshot stores: UTC, seconds, "Z". Valid dates only: February
# stops at 28 (the 29th takes the general path below, which knows leap years).
_CANONICAL_UTC = (
    r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-"
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ$"
)


def canonical_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a "Z"; a moment without a zone is taken as UTC (as the graph reads it)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


class _UtcTimestampSchema:
    """Validates like `datetime` and keeps the canonical string (what the snapshot stores).

    A value already in canonical form is checked by pattern inside pydantic-core and kept as it is — the
    common case, with no `datetime` made and printed again per value; any other form `datetime` accepts
    (offsets, fractions, a space for "T", epoch seconds, `datetime` objects) is converted.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.str_schema(pattern=_CANONICAL_UTC),
                core_schema.no_info_after_validator_function(canonical_utc, core_schema.datetime_schema()),
            ],
            mode="left_to_right",
            custom_error_type="timestamp",  # one message for both branches, not the pattern's regex
            custom_error_message="not a valid date and time",
        )


UtcTimestamp = Annotated[str, _UtcTimestampSchema]
# Text with something in it. The dialect readers turn blank strings into None before validating, so this
# only ever rejects a blank that skipped them: a page read straight from bytes (see `learnupon.dialect`)
# with a blank string in it goes the general way instead. (Python's `str.strip` also strips \x1c-\x1f.)
Text = Annotated[str, Field(pattern=r"[^\s\x1c-\x1f]")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LUUser(_Record):
    """`enabled` and `user_type` have no defaults: an account is never assumed enabled, nor a learner,
    because a field was missing. The reader maps the seed dialect's `is_active` and `role`, and stores a
    record that names no type at all as `unknown` (`UNKNOWN_USER_TYPE`), which ranks like an admin."""

    id: int
    email: Text | None = None
    username: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    user_type: Text
    enabled: bool
    last_sign_in_at: UtcTimestamp | None = None
    created_at: UtcTimestamp | None = None
    updated_at: UtcTimestamp | None = None
    sign_in_count: int | None = None
    number_of_enrollments: int | None = None


class LUGroup(_Record):
    id: int
    title: Text | None = None
    number_of_members: int | None = None


class LUCourse(_Record):
    id: int
    name: Text | None = None
    status: Text | None = None


class LUEnrollment(_Record):
    id: int
    course_id: int
    user_id: int
    course_name: Text | None = None
    status: Text | None = None
    percentage: float | None = None
    percentage_complete: float | None = None
    date_enrolled: UtcTimestamp | None = None
    date_completed: UtcTimestamp | None = None
    date_lastaccessed: UtcTimestamp | None = None
    unenrolled: bool = False


class LUMembership(_Record):
    group_id: int
    user_id: int
    membership_id: int | None = None


class IdentityAddress(_Record):
    address: str
    primary: bool = False
    kind: str = Field(default="email", description="email | alias | proxy | upn")


class Identity(_Record):
    """One person as one IdP knows them."""

    idp_id: str = Field(description="the IdP's immutable id")
    addresses: tuple[IdentityAddress, ...]
    raw_status: str
    status: IdentityStatus
    status_changed_at: datetime | None = None
    last_login: datetime | None = None
    user_type: str | None = Field(default=None, description="member | guest | service, when the IdP says")
    display_name: str | None = None

    def primary_address(self) -> str | None:
        for item in self.addresses:
            if item.primary:
                return item.address
        return self.addresses[0].address if self.addresses else None
