"""A remediation plan: the accounts to disable, frozen in a file a second person reviews before any change.

This module is the plan *document* — its schema, its keyed hash, reading and refusing it — which `apply`
acts on. Building one from a run's findings is `graph.remediation_plan` (planning lives where findings
live). A plan is built offline from the findings of one snapshot run. It lists each account with the finding
and its evidence and the account's state as the crawl saw it, so `apply` can refuse to act on an account
that changed since. The file is canonical JSON (sorted keys, indent 2, accounts in (portal, user id) order),
so two plans of the same run diff cleanly, and it carries `plan_hash`, the HMAC-SHA256 of its canonical
content under the remediation key (`keys`): nobody without the key can edit a plan and make the hash match
again. The reviewer approves that hash, `apply` refuses a file whose content no longer matches it, and every
audit entry records it. The content binds the run, the portals by name and `base_url` (a plan cannot be
pointed at another tenant), when it was made and when it expires.

Only findings that are facts get here: the rules refuse to emit a finding that depends on an incomplete
source, and the plan copies what they refused (`unavailable`) so the reviewer sees what was not judged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crawler.config import IDP_TYPES, Config
from crawler.coverage import SourceCoverage
from crawler.private import write_private
from crawler.remediation.audit import default_actor
from crawler.remediation.keys import mac, same
from crawler.runs import RunInfo
from crawler.vocabulary import REMEDIABLE, Code, Severity

PLAN_FORMAT = "idgraph-remediation-plan/2"
# `selection.finding` of a plan made from reviewers' revoke decisions (`remediate plan --from-review`): it
# may disable an account for any finding code, because a named reviewer decided so.
REVIEW_SELECTION = "review"
# IdP kinds for which `apply` can search the IdP by email before each write (see idp_check.LOOKUPS).
LOOKUP_KINDS = frozenset(name for name, kind in IDP_TYPES.items() if kind.lookup_by_email)


class PlanError(ValueError):
    """A plan that cannot be built, read or trusted; the message says why in one line."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountState(_Frozen):
    """The account as the crawl saw it: what `apply` compares the live account against."""

    enabled: bool
    email: str | None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    user_type: str | None = None
    last_sign_in_at: str | None = None
    updated_at: str | None = None
    observed_at: str = Field(description="when the crawl that saw this state started")


class PlanFinding(_Frozen):
    code: Code
    id: str
    severity: Severity
    person: str | None
    idp: str | None
    idp_status: str | None
    evidence: dict[str, Any]


class PlanAction(_Frozen):
    portal: str
    user_id: int
    email: str
    action: Literal["disable"] = "disable"
    finding: PlanFinding
    state: AccountState


class PlanRun(_Frozen):
    id: int
    started_at: str
    finished_at: str | None
    status: str
    snapshot: str

    @classmethod
    def of(cls, run: RunInfo, snapshot: str) -> PlanRun:
        """The run a plan was made from, in snapshot file `snapshot`."""
        return cls(
            id=run.id,
            started_at=run.started_at,
            finished_at=run.finished_at,
            status=run.status,
            snapshot=snapshot,
        )


class PlanSelection(_Frozen):
    finding: str
    portals: list[str]
    severities: list[str]


class Plan(_Frozen):
    format: Literal["idgraph-remediation-plan/2"] = "idgraph-remediation-plan/2"  # PLAN_FORMAT
    created_at: str
    expires_at: str
    created_by: str
    base_urls: dict[str, str] = Field(
        description="portal name -> base_url of the config the plan was made for"
    )
    run: PlanRun
    selection: PlanSelection
    settings: dict[str, Any]
    idp_recheck: dict[str, str]
    unavailable: list[dict[str, str]]
    actions: list[PlanAction]
    plan_hash: str = ""

    def content(self) -> dict[str, Any]:
        """Everything the hash covers: the whole plan but the hash itself."""
        return self.model_dump(mode="json", exclude={"plan_hash"})

    def compute_hash(self, key: bytes) -> str:
        """Keyed: HMAC-SHA256 of the canonical content, so an edited plan cannot be re-hashed."""
        return mac(key, canonical_json(self.content()).encode("utf-8"))

    @property
    def portals(self) -> list[str]:
        return sorted({a.portal for a in self.actions})


def canonical_json(value: Any) -> str:
    """One spelling per value: what hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def actor() -> str:
    """Who made the plan (`user@host`), as the audit log records who applied it."""
    who = default_actor()
    return f"{who['user']}@{who['host']}"


def describe_recheck(coverage: Iterable[SourceCoverage]) -> dict[str, str]:
    """Per IdP of the run: whether `apply` will search it by email before disabling, or say it could not."""
    out: dict[str, str] = {}
    for cov in coverage:
        if cov.kind == "learnupon":
            continue
        if cov.kind in LOOKUP_KINDS:
            out[cov.source] = "re-checked at apply time: searched by email when the apply config names it"
        else:
            out[cov.source] = f"NOT re-checked at apply time: {cov.kind} sources offer no lookup by email"
    if not out:
        out["*"] = "NOT re-checked: the run crawled no IdP"
    return out


def parse_timestamp(value: str, what: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PlanError(f"plan: {what} {value!r} is not a timestamp") from None
    if ts.tzinfo is None:
        raise PlanError(f"plan: {what} {value!r} has no time zone")
    return ts


def iso_timestamp(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_plan(plan: Plan) -> str:
    """The file's text: sorted keys, indent 2, a final newline — made to be read and diffed."""
    return json.dumps(plan.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_plan(plan: Plan, path: Path) -> Path:
    """Write owner-only (a plan names people), atomically."""
    return write_private(path, render_plan(plan))


def load_plan(
    path: Path, key: bytes, expected_hash: str | None = None, *, now: datetime | None = None
) -> Plan:
    """Read a plan; refuse it unless its keyed hash holds, it has not expired, and it is the approved one.

    `expected_hash` must be the full hash: a prefix (or the empty string) is not an approval.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"plan: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise PlanError(f"plan: {path} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != PLAN_FORMAT:
        raise PlanError(f"plan: {path} is not an {PLAN_FORMAT} file")
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "plan"
        raise PlanError(f"plan: {where}: {first['msg']}") from None
    actual = plan.compute_hash(key)
    if not same(plan.plan_hash, actual):
        raise PlanError(
            f"plan: {path} fails authentication: it was modified after it was made, or made with another "
            f"key (plan_hash {plan.plan_hash[:12]}…); make a new plan and have it reviewed again"
        )
    if expected_hash is not None and not same(expected_hash.strip().lower(), actual):
        raise PlanError(
            f"plan: hash {actual[:12]}… is not the approved {expected_hash!r} (give the full hash)"
        )
    now = now or datetime.now().astimezone()
    if now >= parse_timestamp(plan.expires_at, "expires_at"):
        raise PlanError(f"plan: expired at {plan.expires_at} (made {plan.created_at}); make a new plan")
    if parse_timestamp(plan.created_at, "created_at") > now + timedelta(minutes=5):
        raise PlanError(f"plan: created_at {plan.created_at} is in the future")
    seen: set[tuple[str, int]] = set()
    for action in plan.actions:
        account = (action.portal, action.user_id)
        if account in seen:
            raise PlanError(f"plan: account {action.portal}/{action.user_id} is listed twice")
        seen.add(account)
        if action.finding.code not in REMEDIABLE and plan.selection.finding != REVIEW_SELECTION:
            raise PlanError(f"plan: {action.finding.code.value} is not a remediable finding")
        if action.portal not in plan.base_urls:
            raise PlanError(f"plan: portal {action.portal} has no base_url in the plan")
    return plan


def check_config(plan: Plan, config: Config) -> None:
    """Refuse to apply a plan to portals other than the ones it was made for (same name, same base_url)."""
    urls = {p.name: p.base_url.rstrip("/") for p in config.portals}
    missing = sorted(set(plan.portals) - set(urls))
    if missing:
        raise PlanError(f"--config: the plan names portal(s) the config lacks: {', '.join(missing)}")
    for name in plan.portals:
        if urls[name] != plan.base_urls[name]:
            raise PlanError(
                f"--config: portal {name} is {urls[name]} in the config "
                f"but {plan.base_urls[name]} in the plan"
            )


def check_unused(plan: Plan, entries: Iterable[dict[str, Any]]) -> None:
    """A plan is single-use: refuse one the audit log shows was carried out already, or partly undone.

    Re-applying would act on a situation that no longer exists — above all, it would disable again an
    account someone deliberately re-enabled with `remediate undo`. An apply that stopped before every
    account had an outcome may be run again, to finish it.
    """
    mine = [e for e in entries if e.get("plan_hash") == plan.plan_hash and e.get("phase") == "outcome"]
    undone = [e for e in mine if e.get("command") == "undo" and e.get("result") == "done"]
    if undone:
        first = undone[0]
        raise PlanError(
            f"plan {plan.plan_hash[:12]}… was applied and then undone (entry {first['seq']} re-enabled "
            f"{first['portal']}/{first['user_id']}, undoing entry {first.get('undo_of')}): a plan is "
            "single-use; re-applying it would undo the undo. Crawl again and make a new plan"
        )
    applied = [e for e in mine if e.get("command") == "apply" and e.get("action") == "disable"]
    settled = {(e.get("portal"), e.get("user_id")) for e in applied}
    if applied and all((a.portal, a.user_id) in settled for a in plan.actions):
        seqs = [e["seq"] for e in applied]
        raise PlanError(
            f"plan {plan.plan_hash[:12]}… was already applied (log entries {min(seqs)}–{max(seqs)}, "
            f"{applied[-1].get('ts')}): a plan is single-use. Crawl again and make a new plan"
        )
