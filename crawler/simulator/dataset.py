"""One simulated LearnUpon portal: the knobs that shape it and the ground-truth records the server serves.

Records are stored in the real API's field names; the server renames them per dialect when it answers.
`PortalData` is mutable so fault tests can add and remove records mid-crawl; every helper that changes the
set of records calls `touch()`, which drops the cached indexes the server pages from.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .audit import LOGIN_DISABLED, LOGIN_ENABLED, REMOVED_FROM_GROUP, USER_DELETED, AuditTrail
from .population import DEFAULT_REFERENCE_TIME, Person, case_variant

Dialect = Literal["real", "seed", "seed_wrapped"]
ENROLLMENT_STATUSES = ("not_started", "in_progress", "completed", "passed", "failed", "pending_review")
_STATUS_WEIGHTS = (0.25, 0.25, 0.2, 0.17, 0.06, 0.07)
DEPARTMENTS = ("Sales", "Engineering", "Support", "Finance", "Operations", "People", "Marketing", "Legal")
REGIONS = ("EMEA", "AMER", "APAC", "UK", "DACH", "Nordics", "LATAM", "ANZ")
TOPICS = (
    "Information Security Basics",
    "Anti-Bribery and Corruption",
    "Data Protection",
    "Code of Conduct",
    "Health and Safety",
    "Product Fundamentals",
    "Customer Onboarding",
    "Advanced Negotiation",
    "Leadership Essentials",
    "Phishing Awareness",
    "Export Controls",
    "Accessibility at Work",
)
LOCALES = ("en", "en", "en", "en-GB", "fr", "de", "es", "pt-BR")
CUSTOM_FIELDS = (
    {"id": 1, "label": "Department", "data_type": "string"},
    {"id": 2, "label": "Employee ID", "data_type": "string"},
)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with a `Z`, as LearnUpon writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PortalSpec(BaseModel):
    """Everything that decides one portal's directory and how the server speaks for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    username: str
    password: str
    seed: int = 0
    users: int = Field(200, ge=0)  # accounts, duplicates included
    groups: int = Field(8, ge=0)
    courses: int = Field(12, ge=0)  # published
    draft_courses: int = Field(2, ge=0)  # listed only with include_draft=true
    archived_courses: int = Field(2, ge=0)  # never listed; enrollments in them still count
    enrollments_per_user: float = Field(3.0, ge=0)
    username_only_fraction: float = Field(0.0, ge=0, le=1)  # >0 also turns username login on
    disabled_fraction: float = Field(0.05, ge=0, le=1)  # LearnUpon `enabled: false`
    never_signed_in_fraction: float = Field(0.08, ge=0, le=1)
    admins: int = Field(2, ge=0)
    managers: int = Field(3, ge=0)
    instructors: int = Field(1, ge=0)
    stale_group_counts: int = Field(1, ge=0)  # groups whose number_of_members is wrong
    case_variants: int = Field(2, ge=0)  # accounts whose email differs in case from the canonical one
    duplicate_accounts: int = Field(1, ge=0)  # people with a second, case-variant account
    alias_accounts: int = Field(1, ge=0)  # accounts opened with the person's alias address
    idp_disabled_everywhere: int = Field(3, ge=0)  # first N IdP-disabled people: an account in every portal
    page_size: int = Field(0, ge=0)  # 0: the dialect's default (500 real, 50 seed)
    dialect: Dialect = "real"
    definitions_key_typo: bool = False  # spell it `customDataFieldDefintions`, as some portals do
    # What `/users/search` answers for an address nobody has: LearnUpon's docs do not say (change-feeds.md).
    search_no_match: Literal["not_found", "empty_list"] = "not_found"
    rate_limit_per_window: int = Field(300, ge=1)
    rate_limiter: Literal["fixed_window", "token_bucket"] = "fixed_window"  # LearnUpon: a fixed window
    rate_burst: int = Field(0, ge=0)  # token bucket only: the most it holds; 0: a tenth of the limit
    week_budget: int = Field(500_000, ge=1)
    id_offset: int = Field(0, ge=0)
    reference_time: datetime = DEFAULT_REFERENCE_TIME

    @model_validator(mode="after")
    def _default_page_size(self) -> PortalSpec:
        if self.page_size == 0:
            object.__setattr__(self, "page_size", 500 if self.dialect == "real" else 50)
        return self


@dataclass(slots=True)
class _Index:
    """Sorted id lists and lookups the server pages from; rebuilt after every change to the record sets."""

    user_ids: list[int]
    group_ids: list[int]
    enrollment_ids: list[int]
    published_course_ids: list[int]
    visible_course_ids: list[int]
    members: dict[int, list[tuple[int, int]]]  # group -> [(membership id, user id)]
    groups_of: dict[int, list[tuple[int, int]]]  # user -> [(membership id, group id)]
    enrollments_by_user: dict[int, list[int]]
    enrollments_by_course: dict[int, list[int]]
    users_by_email: dict[str, list[int]]  # case-folded
    users_by_username: dict[str, list[int]]


@dataclass
class PortalData:
    """The portal's ground truth. Change it through the helpers, or call `touch()` after editing dicts."""

    reference_time: datetime
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (group id, user id)
    courses: dict[int, dict[str, Any]] = field(default_factory=dict)  # `archived` is never served
    enrollments: dict[int, dict[str, Any]] = field(default_factory=dict)
    custom_field_definitions: list[dict[str, Any]] = field(default_factory=list)
    person_of: dict[int, int] = field(default_factory=dict)  # user id -> Person.key
    audit: AuditTrail = field(default_factory=AuditTrail)  # what `GET /audit-trails` serves
    _index: _Index | None = field(default=None, repr=False, compare=False)

    def touch(self) -> None:
        """Forget the cached indexes: the next request rebuilds them from the dicts."""
        self._index = None

    @property
    def index(self) -> _Index:
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def _build_index(self) -> _Index:
        members: dict[int, list[tuple[int, int]]] = {gid: [] for gid in self.groups}
        groups_of: dict[int, list[tuple[int, int]]] = {}
        for mid in sorted(self.memberships):
            gid, uid = self.memberships[mid]
            members.setdefault(gid, []).append((mid, uid))
            groups_of.setdefault(uid, []).append((mid, gid))
        by_user: dict[int, list[int]] = {}
        by_course: dict[int, list[int]] = {}
        enrollment_ids = sorted(self.enrollments)
        for eid in enrollment_ids:
            row = self.enrollments[eid]
            by_user.setdefault(row["user_id"], []).append(eid)
            by_course.setdefault(row["course_id"], []).append(eid)
        by_email: dict[str, list[int]] = {}
        by_username: dict[str, list[int]] = {}
        user_ids = sorted(self.users)
        for uid in user_ids:
            user = self.users[uid]
            if user.get("email"):
                by_email.setdefault(user["email"].casefold(), []).append(uid)
            if user.get("username"):
                by_username.setdefault(user["username"].casefold(), []).append(uid)
        course_ids = sorted(self.courses)
        return _Index(
            user_ids=user_ids,
            group_ids=sorted(self.groups),
            enrollment_ids=enrollment_ids,
            published_course_ids=[
                c for c in course_ids if self.courses[c]["published"] and not self.courses[c]["archived"]
            ],
            visible_course_ids=[c for c in course_ids if not self.courses[c]["archived"]],
            members=members,
            groups_of=groups_of,
            enrollments_by_user=by_user,
            enrollments_by_course=by_course,
            users_by_email=by_email,
            users_by_username=by_username,
        )

    def visible_course_ids(self) -> list[int]:
        """Courses `/courses?include_draft=true` lists: published and drafts, never archived."""
        return list(self.index.visible_course_ids)

    def members_of(self, group_id: int) -> list[int]:
        """The group's real member user ids, whatever its `number_of_members` claims."""
        return [uid for _, uid in self.index.members.get(group_id, [])]

    def enrollments_of_user(self, user_id: int) -> list[dict[str, Any]]:
        return [self.enrollments[eid] for eid in self.index.enrollments_by_user.get(user_id, [])]

    def users_with_hidden_enrollments(self) -> set[int]:
        """Users holding an enrollment in a course `/courses` never lists (their counts will not add up)."""
        hidden = {cid for cid, course in self.courses.items() if course["archived"]}
        return {row["user_id"] for row in self.enrollments.values() if row["course_id"] in hidden}

    def now(self) -> datetime:
        """The portal's clock: the wall clock, never before the dataset's reference time."""
        return max(datetime.now(UTC), self.reference_time)

    def _now(self) -> str:
        return iso(self.now())

    def add_user(
        self,
        email: str | None,
        first_name: str = "New",
        last_name: str = "Learner",
        *,
        username: str | None = None,
        enabled: bool = True,
        user_type: str = "learner",
        user_id: int | None = None,
        person_key: int | None = None,
    ) -> int:
        """Create an account (by default after every existing id, so it lands on the last page)."""
        uid = user_id if user_id is not None else max(self.users, default=0) + 1
        if uid in self.users:
            raise ValueError(f"user id {uid} already exists")
        now = self._now()
        self.users[uid] = _user_record(
            uid,
            email,
            username,
            first_name,
            last_name,
            created=now,
            updated=now,
            enabled=enabled,
            user_type=user_type,
        )
        if person_key is not None:
            self.person_of[uid] = person_key
        self.touch()
        return uid

    def remove_user(self, user_id: int) -> None:
        """Delete an account with its memberships and enrollments (what DELETE /users/{id} does)."""
        user = self.users.pop(user_id, None)
        if user is not None:
            self.audit.record(USER_DELETED, user, self._now())
        self.person_of.pop(user_id, None)
        for mid in [m for m, (_, uid) in self.memberships.items() if uid == user_id]:
            self.remove_membership(mid, audit=False)
        for eid in [e for e, row in self.enrollments.items() if row["user_id"] == user_id]:
            del self.enrollments[eid]
        self.touch()

    def remove_membership(self, membership_id: int, *, audit: bool = True) -> None:
        gid, uid = self.memberships.pop(membership_id)
        if audit and uid in self.users:
            title = self.groups[gid]["title"] if gid in self.groups else None
            self.audit.record(REMOVED_FROM_GROUP, self.users[uid], self._now(), impacted_data=title)
        if gid in self.groups:
            self.groups[gid]["number_of_members"] = max(0, self.groups[gid]["number_of_members"] - 1)
        self.touch()

    def set_enabled(self, user_id: int, enabled: bool) -> None:
        user = self.users[user_id]
        if user["enabled"] != enabled:
            self.audit.record(LOGIN_ENABLED if enabled else LOGIN_DISABLED, user, self._now())
        user["enabled"] = enabled
        user["updated_at"] = self._now()


def _user_record(
    uid: int,
    email: str | None,
    username: str | None,
    first: str,
    last: str,
    *,
    created: str,
    updated: str,
    enabled: bool = True,
    user_type: str = "learner",
    locale: str = "en",
    last_sign_in: str | None = None,
    sign_ins: int = 0,
    department: str = "Sales",
    employee_id: str = "",
) -> dict[str, Any]:
    """A user in the real API's field names; `email` None drops the key, `username` None omits login names."""
    record: dict[str, Any] = {"id": uid, "email": email}
    if email is None:
        del record["email"]
    if username is not None:
        record["username"] = username
    record.update(
        {
            "first_name": first,
            "last_name": last,
            "locale": locale,
            "created_at": created,
            "updated_at": updated,
            "last_sign_in_at": last_sign_in,
            "account_expires": None,
            "sign_in_count": sign_ins,
            "number_of_enrollments": 0,
            "number_of_enrollments_accessed": 0,
            "enabled": enabled,
            "user_type": user_type,
            "can_enroll": user_type in ("admin", "manager"),
            "can_delete_users": user_type == "admin",
            "CustomData": {"Department": department, "Employee ID": employee_id},
            "customDataFieldValues": [
                {"value": department, "definition_id": 1},
                {"value": employee_id, "definition_id": 2},
            ],
        }
    )
    return record


def _ids(rng: random.Random, start: int, count: int) -> list[int]:
    """Increasing ids with gaps, as a long-lived portal has after deletions."""
    out, current = [], start
    for _ in range(count):
        current += rng.randint(1, 7)
        out.append(current)
    return out


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    if end <= start:
        return start
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))


@dataclass(slots=True)
class _Account:
    person: Person
    email: str | None  # username-only logins: "" or None (the key is then left out)
    user_type: str = "learner"
    enabled: bool = True


def _plan_accounts(spec: PortalSpec, population: list[Person], rng: random.Random) -> list[_Account]:
    """Who has an account here, under which address, with which role; in account-creation order."""
    n_dup = min(spec.duplicate_accounts, spec.users // 2)
    n_people = spec.users - n_dup
    if n_people > len(population):
        raise ValueError(
            f"portal {spec.name!r} needs {n_people} distinct people; population has {len(population)}"
        )
    # The first IdP-disabled people hold an account in every portal built from this population.
    everywhere = [p for p in population if p.idp_disabled][: min(spec.idp_disabled_everywhere, n_people)]
    keys = {p.key for p in everywhere}
    others = rng.sample([p for p in population if p.key not in keys], n_people - len(everywhere))
    accounts = [_Account(p, p.email) for p in everywhere + others]
    pinned, pool = accounts[: len(everywhere)], accounts[len(everywhere) :]
    rng.shuffle(pool)

    def take(count: int, ok: Callable[[_Account], bool] = lambda a: True) -> list[_Account]:
        """Remove and return the first `count` pooled accounts that pass `ok`: one edge case each."""
        picked: list[_Account] = []
        kept: list[_Account] = []
        for acc in pool:
            (picked if len(picked) < count and ok(acc) else kept).append(acc)
        pool[:] = kept
        return picked

    for acc in take(round(n_people * spec.username_only_fraction)):
        acc.email = "" if rng.random() < 0.5 else None
    for acc in take(spec.alias_accounts, lambda a: bool(a.person.aliases)):
        acc.email = acc.person.aliases[0]
    for acc in take(spec.case_variants):
        acc.email = case_variant(acc.person.email, rng)
    duplicates = [_Account(acc.person, case_variant(acc.person.email, rng)) for acc in take(n_dup)]

    # IdP-disabled admins and managers make the high-severity findings the demo must show.
    roles: tuple[tuple[str, int, list[_Account]], ...] = (
        ("admin", spec.admins, pinned[:1]),
        ("manager", spec.managers, pinned[1:2]),
        ("instructor", spec.instructors, []),
    )
    for role, count, forced in roles:
        forced = forced[:count]
        for acc in forced + take(count - len(forced), lambda a: bool(a.email)):
            acc.user_type = role
    candidates = accounts[len(pinned) :] + duplicates
    for acc in rng.sample(candidates, round(len(candidates) * spec.disabled_fraction)):
        acc.enabled = False
    if len(pinned) > 2:  # offboarded in some portals only: partially_offboarded across portals
        pinned[2].enabled = rng.random() < 0.5
    accounts += duplicates
    rng.shuffle(accounts)
    return accounts


def _make_users(spec: PortalSpec, data: PortalData, accounts: list[_Account], rng: random.Random) -> None:
    """Users in creation order: ids and created_at both increase, so `/users` pages in signup order."""
    ref = spec.reference_time
    first = ref - timedelta(days=1100)
    step = timedelta(days=1095) / max(1, len(accounts))
    logins = spec.username_only_fraction > 0
    user_ids = _ids(rng, spec.id_offset + 1000, len(accounts))
    for i, (uid, acc) in enumerate(zip(user_ids, accounts, strict=True)):
        person = acc.person
        created = first + step * i + step * rng.random() * 0.9
        last_seen = min(ref, person.status_changed_at) if person.idp_disabled else ref
        last_sign_in = None
        if rng.random() >= spec.never_signed_in_fraction:
            recent = rng.random() < 0.7  # most people sign in regularly; the rest drift towards dormancy
            last_sign_in = _between(
                rng, max(created, last_seen - timedelta(days=45)) if recent else created, last_seen
            )
        sign_ins = rng.randint(1, 400) if last_sign_in else 0
        username = f"{person.given_name[0]}{person.family_name}{uid % 10_000}".lower() if logins else None
        employee_id = f"E{person.key:05d}" if person.in_idp else ""
        updated = _between(rng, created, ref)
        record = _user_record(
            uid,
            acc.email,
            username,
            person.given_name,
            person.family_name,
            created=iso(created),
            updated=iso(updated),
            enabled=acc.enabled,
            user_type=acc.user_type,
            locale=rng.choice(LOCALES),
            last_sign_in=iso(last_sign_in) if last_sign_in else None,
            sign_ins=sign_ins,
            department=rng.choice(DEPARTMENTS),
            employee_id=employee_id,
        )
        if rng.random() < 0.05:
            record["account_expires"] = iso(ref + timedelta(days=rng.randint(-60, 365)))
        data.users[uid] = record
        data.person_of[uid] = person.key


def _make_groups(spec: PortalSpec, data: PortalData, rng: random.Random) -> None:
    """Groups, memberships (0-3 per user) and a few stale `number_of_members` counters."""
    titles = [f"{d} {r}" for r in REGIONS for d in DEPARTMENTS]
    group_ids = _ids(rng, spec.id_offset + 100, spec.groups)
    for n, gid in enumerate(group_ids):
        title = titles[n % len(titles)] + (f" {n // len(titles) + 1}" if n >= len(titles) else "")
        created = spec.reference_time - timedelta(days=rng.uniform(200, 1200))
        data.groups[gid] = {
            "id": gid,
            "title": title,
            "description": f"Learners in {title}",
            "number_of_members": 0,
            "created_at": iso(created),
            "updated_at": iso(_between(rng, created, spec.reference_time)),
        }
    if not group_ids:
        return
    mid = spec.id_offset + 50_000
    for uid in sorted(data.users):
        count = rng.choices((0, 1, 2, 3), weights=(0.15, 0.5, 0.25, 0.1))[0]
        for gid in rng.sample(group_ids, min(count, len(group_ids))):
            mid += rng.randint(1, 5)
            data.memberships[mid] = (gid, uid)
            data.groups[gid]["number_of_members"] += 1
    for gid in rng.sample(group_ids, min(spec.stale_group_counts, len(group_ids))):
        real = data.groups[gid]["number_of_members"]
        drift = rng.choice((-2, -1, 1, 3))
        data.groups[gid]["number_of_members"] = real + drift if real + drift >= 0 else real + 1


def _make_courses(spec: PortalSpec, data: PortalData, rng: random.Random) -> None:
    """Published, draft and archived courses; their enrollment counters are stale on purpose."""
    kinds = (
        ["published"] * spec.courses + ["draft"] * spec.draft_courses + ["archived"] * spec.archived_courses
    )
    rng.shuffle(kinds)
    for n, (cid, kind) in enumerate(zip(_ids(rng, spec.id_offset + 500, len(kinds)), kinds, strict=True)):
        name = TOPICS[n % len(TOPICS)] + (f" {n // len(TOPICS) + 1}" if n >= len(TOPICS) else "")
        created = spec.reference_time - timedelta(days=rng.uniform(300, 1300))
        published = kind != "draft"
        data.courses[cid] = {
            "id": cid,
            "name": name,
            "reference_code": f"C-{cid}",
            "version": str(rng.randint(1, 4)),
            "status": "published" if published else "draft",
            "published": published,
            "created_at": iso(created),
            "date_published": iso(created + timedelta(days=3)) if published else None,
            "number_of_modules": rng.randint(1, 9),
            "num_enrolled": rng.randint(0, 5),
            "num_completed": 0,
            "archived": kind == "archived",
        }


def _make_enrollments(spec: PortalSpec, data: PortalData, rng: random.Random) -> None:
    """Enrollments per user (every status present), then each user's `number_of_enrollments` to match."""
    course_ids = sorted(data.courses)
    if not course_ids or not data.users:
        return
    weights = {
        c: 0.3 if data.courses[c]["archived"] else 0.5 if not data.courses[c]["published"] else 1.0
        for c in course_ids
    }
    pairs: list[tuple[int, int]] = []
    for uid in sorted(data.users):
        count = min(
            len(course_ids),
            max(0, round(rng.gauss(spec.enrollments_per_user, spec.enrollments_per_user / 2))),
        )
        ranked = sorted(course_ids, key=lambda c: rng.random() ** (1 / weights[c]), reverse=True)
        pairs += [(uid, cid) for cid in sorted(ranked[:count])]
    archived = [c for c in course_ids if data.courses[c]["archived"]]
    if archived and not any(data.courses[c]["archived"] for _, c in pairs):
        uid = min(data.users)
        pairs = [p for p in pairs if p != (uid, archived[0])] + [(uid, archived[0])]
    statuses = rng.choices(ENROLLMENT_STATUSES, weights=_STATUS_WEIGHTS, k=len(pairs))
    if len(pairs) >= len(ENROLLMENT_STATUSES) and set(statuses) != set(ENROLLMENT_STATUSES):
        for status, i in zip(ENROLLMENT_STATUSES, rng.sample(range(len(pairs)), 6), strict=True):
            statuses[i] = status
    groups_of: dict[int, list[int]] = {}
    for gid, uid in data.memberships.values():
        groups_of.setdefault(uid, []).append(gid)
    for eid, (uid, cid), status in zip(
        _ids(rng, spec.id_offset + 10_000, len(pairs)), pairs, statuses, strict=True
    ):
        data.enrollments[eid] = _enrollment(
            eid, data.users[uid], data.courses[cid], status, groups_of.get(uid, []), spec.reference_time, rng
        )
    for row in data.enrollments.values():
        user = data.users[row["user_id"]]
        user["number_of_enrollments"] += 1
        user["number_of_enrollments_accessed"] += row["status"] != "not_started"


def _enrollment(
    eid: int,
    user: dict[str, Any],
    course: dict[str, Any],
    status: str,
    groups: list[int],
    ref: datetime,
    rng: random.Random,
) -> dict[str, Any]:
    """One enrollment row whose dates and percentages agree with its status."""
    enrolled = _between(rng, datetime.fromisoformat(user["created_at"]), ref)
    started: datetime | None = None
    completed: datetime | None = None
    if status != "not_started":
        started = min(ref, enrolled + timedelta(days=rng.uniform(0, 30)))
    if started is not None and status in ("completed", "passed", "failed"):
        completed = min(ref, started + timedelta(days=rng.uniform(0, 60)))
    certified = status in ("completed", "passed") and rng.random() < 0.3
    last_touch = completed or started
    return {
        "id": eid,
        "course_id": course["id"],
        "course_name": course["name"],
        "user_id": user["id"],
        "email": user.get("email"),
        "username": user.get("username"),
        "group_id": rng.choice(groups) if groups and rng.random() < 0.3 else None,
        "status": status,
        "percentage": {"passed": rng.randint(70, 100), "failed": rng.randint(10, 69)}.get(status),
        "percentage_complete": {"not_started": 0, "in_progress": rng.randint(5, 95)}.get(status, 100),
        "date_enrolled": iso(enrolled),
        "date_started": iso(started) if started else None,
        "date_completed": iso(completed) if completed else None,
        "date_lastaccessed": iso(last_touch) if last_touch else None,
        "due_date": iso(enrolled + timedelta(days=rng.choice((30, 60, 90)))) if rng.random() < 0.4 else None,
        "cert_expires_at": iso(completed + timedelta(days=365)) if certified and completed else None,
        "updated_at": iso(last_touch or enrolled),
        "unenrolled": rng.random() < 0.03,
        "certificate_name": f"{course['name']} Certificate" if certified else None,
    }


def generate_portal(spec: PortalSpec, population: list[Person]) -> PortalData:
    """The portal's whole directory, identical for identical (spec, population)."""
    rng = random.Random(f"portal:{spec.seed}:{spec.name}")
    data = PortalData(
        reference_time=spec.reference_time, custom_field_definitions=[dict(d) for d in CUSTOM_FIELDS]
    )
    _make_users(spec, data, _plan_accounts(spec, population, rng), rng)
    _make_groups(spec, data, rng)
    _make_courses(spec, data, rng)
    _make_enrollments(spec, data, rng)
    return data
