"""Normalised records: what every source hands to the snapshot store.

Sources speak many dialects; these models are the one vocabulary downstream code reads. Transforms are
strict on the keys that identify a record (an id) and lenient on the rest, so a malformed record is
quarantined with its reason instead of silently half-stored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LUUser(_Record):
    id: int
    email: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    user_type: str = "learner"
    enabled: bool = True
    last_sign_in_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    sign_in_count: int | None = None
    number_of_enrollments: int | None = None


class LUGroup(_Record):
    id: int
    title: str | None = None
    number_of_members: int | None = None


class LUCourse(_Record):
    id: int
    name: str | None = None
    status: str | None = None


class LUEnrollment(_Record):
    id: int
    course_id: int
    user_id: int
    course_name: str | None = None
    status: str | None = None
    percentage: float | None = None
    percentage_complete: float | None = None
    date_enrolled: datetime | None = None
    date_completed: datetime | None = None
    date_lastaccessed: datetime | None = None
    unenrolled: bool = False


class LUMembership(_Record):
    group_id: int
    user_id: int
    membership_id: int | None = None


class IdentityStatus(StrEnum):
    """What the IdP lets the person do, whatever the vendor calls it."""

    ACTIVE = "active"
    DISABLED = "disabled"
    NOT_ACTIVATED = "not_activated"
    DELETED = "deleted"


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
