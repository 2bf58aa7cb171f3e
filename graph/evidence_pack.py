"""`idgraph review evidence`: the pack an auditor asks for, written from one run of the snapshot (and the
remediation audit log), every file hashed in `manifest.json` and `SHA256SUMS`.

An auditor re-performs a review rather than trusting it (docs: access-reviews.md §2), so the pack holds
the population with the coverage that proves it complete, every finding and where it stands, every
decision with reviewer, time and reason, the files reviewers sent exactly as received, the exceptions in
force, the exclusion rules, and the remediation audit entries with their read-backs and the chain's head.
The same inputs give the same bytes: rows sorted, columns fixed, JSON with sorted keys, no clock in any
file but `manifest.json` (its `generated_at`) and `SHA256SUMS`, which lists it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from crawler.private import make_private_dirs, write_private
from crawler.remediation.audit import entries_of, open_intents, verify_log_bytes
from crawler.runs import RunInfo, utcnow
from crawler.store import SnapshotStore
from graph.campaign import RunReview
from graph.decisions import DECISIONS, exceptions_in_force, latest_decisions, standing_revokes
from graph.reports.csv_report import render_csv, safe_cell
from graph.reports.json_report import coverage_entry, run_entry
from graph.review import report_input

PACK_FORMAT = "idgraph-evidence-pack/1"
ACCOUNT_COLUMNS = (
    "portal", "learnupon_user_id", "email", "username", "user_type", "enabled", "last_sign_in_at",
    "created_at", "person", "match", "excluded_by",
)  # fmt: skip
DECISION_COLUMNS = (
    "decision_id", "decided_at", "reviewer", "decision", "scope", "expires_at", "reason", "finding_id",
    "finding", "severity", "portal", "learnupon_user_id", "email", "person", "run_id", "facts", "supersedes",
    "import_id", "file_sha256",
)  # fmt: skip
IMPORT_COLUMNS = (
    "import_id",
    "imported_at",
    "reviewer",
    "run_id",
    "file_name",
    "file_sha256",
    "decisions",
    "path",
)
EXCEPTION_COLUMNS = (*DECISION_COLUMNS[:8], "finding", "severity", "portal", "learnupon_user_id", "email",
                     "person", "findings_accepted")  # fmt: skip
RULE_COLUMNS = ("rule", "reason", "email", "username", "portal", "user_type", "expires", "state", "accounts")
ACTION_COLUMNS = (
    "seq", "ts", "command", "phase", "plan_hash", "portal", "user_id", "email", "action", "result", "reason",
    "before_enabled", "after_enabled", "finding", "finding_id", "undo_of", "intent_seq",
)  # fmt: skip
REVOCATION_COLUMNS = (
    "decision_id", "decided_at", "reviewer", "reason", "finding", "finding_id", "portal", "learnupon_user_id",
    "email", "status", "disable_entry", "disabled_at", "read_back_enabled", "undone_by", "enabled_in_run",
)  # fmt: skip


class PackError(ValueError):
    """The pack cannot be written (the directory is in use, the log cannot be read); nothing was written."""


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """Fixed columns, CRLF, every cell neutralised against formula injection; None and bools spelled out."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(safe_cell(row.get(c)) for c in columns)
    return buffer.getvalue()


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


@dataclass
class AuditEvidence:
    """The remediation audit log as the pack sees it: its bytes, entries, and whether its chain holds."""

    name: str | None = None
    data: bytes = b""
    entries: list[dict[str, Any]] = field(default_factory=list)
    verified: bool | None = None  # None: no log was given
    head: str | None = None
    reason: str | None = None

    @classmethod
    def read(cls, path: Path | None, key: bytes | None, expect_head: str | None = None) -> AuditEvidence:
        if path is None:
            return cls()
        if key is None:
            raise PackError("--log needs the remediation key (--key-env VAR, or --config) to verify it")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PackError(f"--log: cannot read {path}: {exc.strerror}") from None
        result = verify_log_bytes(data, key, expect_head)
        entries = entries_of(data, result) if result.ok else []  # the bytes packed, not a second read
        return cls(path.name, data, entries, result.ok, result.head, result.reason)

    def chain(self) -> dict[str, Any]:
        return {
            "log": self.name,
            "given": self.verified is not None,
            "verified": self.verified,
            "entries": len(self.entries),
            "head": self.head,
            "reason": self.reason,
            "open_intents": open_intents(self.entries) if self.entries else [],
        }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Pack:
    """The files of one pack, path -> bytes, and the facts the summary and manifest state."""

    files: dict[str, bytes] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, path: str, content: str | bytes) -> None:
        self.files[path] = content.encode("utf-8") if isinstance(content, str) else content


def tool_version() -> str:
    try:
        return version("idgraph")
    except PackageNotFoundError:
        return "unknown"


def build_pack(store: SnapshotStore, review: RunReview, audit: AuditEvidence) -> Pack:
    """Every file of the pack but the manifest and SHA256SUMS (`write_pack` adds those)."""
    from graph.reports.evidence_html import render_summary

    pack = Pack()
    run = store.run(review.run_id)
    report = report_input(store, review)
    accounts = _population(review)
    coverage = _coverage(store, review, accounts)
    pack.add("population/accounts.csv", csv_text(ACCOUNT_COLUMNS, accounts))
    pack.add("population/coverage.json", json_text(coverage))
    pack.add("findings.csv", render_csv(report))
    decisions = sorted(review.decisions, key=lambda d: d.id)
    pack.add("decisions/decisions.csv", csv_text(DECISION_COLUMNS, (d.as_row() for d in decisions)))
    imports = []
    for received in store.reader().review_imports():
        path = f"decisions/received/{received['id']:04d}-{received['file_sha256'][:12]}.csv"
        pack.add(path, bytes(received["content"]))
        imports.append(
            {**{k: received[k] for k in IMPORT_COLUMNS[1:7]}, "import_id": received["id"], "path": path}
        )
    pack.add("decisions/imports.csv", csv_text(IMPORT_COLUMNS, imports))
    in_force = exceptions_in_force(review.decisions, review.as_of, review.states)
    accepted_by: dict[int, int] = {}
    for state in review.states.values():
        if state.state == "accepted" and state.decision is not None:
            accepted_by[state.decision.id] = accepted_by.get(state.decision.id, 0) + 1
    exceptions = [{**d.as_row(), "findings_accepted": accepted_by.get(d.id, 0)} for d in in_force]
    pack.add("exceptions.csv", csv_text(EXCEPTION_COLUMNS, exceptions))
    pack.add("exclusions.csv", csv_text(RULE_COLUMNS, review.exclusions.rows()))
    actions = _actions(audit.entries)
    revocations = _revocations(review, audit.entries)
    pack.add("remediation/actions.csv", csv_text(ACTION_COLUMNS, actions))
    pack.add("remediation/revocations.csv", csv_text(REVOCATION_COLUMNS, revocations))
    pack.add("remediation/chain.json", json_text(audit.chain()))
    if audit.name is not None:
        pack.add("remediation/audit.jsonl", audit.data)
    pack.facts = _facts(review, run, coverage, decisions, exceptions, revocations, audit)
    pack.add("run.json", json_text({"run": pack.facts["run"], "settings": _settings(review)}))
    pack.add("summary.html", render_summary(pack.facts, coverage, exceptions, revocations, review))
    return pack


def _population(review: RunReview) -> list[dict[str, Any]]:
    rows = []
    for a in sorted(review.graph.resolution.accounts, key=lambda a: (a.portal, a.id)):
        rows.append(
            {
                "portal": a.portal, "learnupon_user_id": a.id, "email": a.email, "username": a.username,
                "user_type": a.user_type, "enabled": a.enabled, "last_sign_in_at": a.last_sign_in_at,
                "created_at": a.created_at, "person": a.person, "match": a.match.value,
                "excluded_by": review.exclusions.rule_of(a.portal, a.id),
            }
        )  # fmt: skip
    return rows


def _coverage(
    store: SnapshotStore, review: RunReview, accounts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per source what was read; per portal, accounts read and LearnUpon's own counters cross-checked."""
    quarantine = store.quarantine_summary(review.run_id)
    out = []
    for cov in sorted(review.graph.coverage, key=lambda c: (c.kind != "learnupon", c.kind, c.source)):
        entry = coverage_entry(cov, quarantine.get(cov.source))
        if cov.kind == "learnupon":
            mine = [a for a in accounts if a["portal"] == cov.source]
            users = cov.collection("users")
            run_id, portal = review.run_id, cov.source
            entry["population"] = {
                "accounts_read": len(mine),
                "enabled": sum(1 for a in mine if a["enabled"]),
                "excluded": sum(1 for a in mine if a["excluded_by"]),
                "users_listing": users.as_dict() if users is not None else None,
                "counters_cross_check": {
                    "users_whose_number_of_enrollments_disagrees": len(
                        store.enrollment_count_mismatches(run_id, portal)
                    ),
                    "users_without_number_of_enrollments": store.users_without_enrollment_counter(
                        run_id, portal
                    ),
                    "groups_whose_number_of_members_disagrees": len(
                        store.member_count_mismatches(run_id, portal)
                    ),
                },
            }
        out.append(entry)
    return out


def _actions(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        if e.get("phase") not in ("outcome", "intent"):
            continue
        before, after = e.get("before") or {}, e.get("after") or {}
        rows.append(
            {
                **{k: e.get(k) for k in ACTION_COLUMNS},
                "before_enabled": before.get("enabled"),
                "after_enabled": after.get("enabled"),
            }
        )
    return rows


def _revocations(review: RunReview, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each standing revoke decision, followed through the audit log to the read-back and the run."""
    disables: dict[tuple[str, int], dict[str, Any]] = {}
    undone: dict[int, int] = {}
    for e in entries:
        if e.get("phase") != "outcome":
            continue
        if e.get("command") == "apply" and e.get("action") == "disable":
            disables[(e["portal"], int(e["user_id"]))] = e  # the latest attempt on the account counts
        elif e.get("command") == "undo" and e.get("result") == "done" and e.get("undo_of") is not None:
            undone[int(e["undo_of"])] = int(e["seq"])
    rows = []
    for d in standing_revokes(review.decisions):
        if d.portal is None or d.learnupon_user_id is None:
            continue
        entry = disables.get((d.portal, d.learnupon_user_id))
        after = (entry or {}).get("after") or {}
        account = review.graph.resolution.account(d.portal, d.learnupon_user_id)
        enabled = None if account is None else account.enabled
        undo = undone.get(int(entry["seq"])) if entry else None
        if entry is None:
            status = "not executed"
        elif undo is not None:
            status = "undone"
        elif entry.get("result") == "done" and after.get("enabled") is False:
            status = "verified"
        elif entry.get("result") == "skipped" and "already disabled" in str(entry.get("reason")):
            status = "already disabled"
        else:
            status = str(entry.get("result"))
        rows.append(
            {
                "decision_id": d.id, "decided_at": d.decided_at, "reviewer": d.reviewer, "reason": d.reason,
                "finding": d.code, "finding_id": d.finding_id, "portal": d.portal,
                "learnupon_user_id": d.learnupon_user_id, "email": d.email, "status": status,
                "disable_entry": (entry or {}).get("seq"), "disabled_at": (entry or {}).get("ts"),
                "read_back_enabled": after.get("enabled"), "undone_by": undo,
                "enabled_in_run": "not read" if enabled is None else enabled,
            }
        )  # fmt: skip
    return rows


def _settings(review: RunReview) -> dict[str, Any]:
    settings = review.graph.settings
    return {
        "managed_domains": list(settings.managed_domains),
        "dormant_days": settings.dormant_days,
        **settings.review_rules(),
    }


def _facts(
    review: RunReview,
    run: RunInfo,
    coverage: list[dict[str, Any]],
    decisions: Sequence[Any],
    exceptions: list[dict[str, Any]],
    revocations: list[dict[str, Any]],
    audit: AuditEvidence,
) -> dict[str, Any]:
    """The numbers the summary shows and the manifest states, each backed by a file of the pack."""
    by_kind = dict.fromkeys(DECISIONS, 0)
    for d in latest_decisions(decisions).values():
        by_kind[d.decision] += 1
    statuses: dict[str, int] = {}
    for r in revocations:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {
        "run": run_entry(run),
        "complete": review.complete,
        "incomplete": review.incompleteness(),
        "accounts_read": sum(c.get("population", {}).get("accounts_read", 0) for c in coverage),
        "findings": {
            "open": len(review.open),
            "accepted": len(review.accepted),
            "excluded": len(review.excluded),
        },
        "decisions": {"rows": len(decisions), "standing_by_kind": by_kind},
        "exceptions_in_force": len(exceptions),
        "revocations": dict(sorted(statuses.items())),
        "audit_chain": audit.chain(),
    }


def write_pack(out: Path, pack: Pack, *, snapshot: str) -> tuple[Path, str]:
    """Write the files, then `manifest.json` and `SHA256SUMS`; returns (directory, sha256 of SHA256SUMS).

    Refuses a directory that exists and is not empty: a pack is never written over (a later pack is a new
    directory, which can cite this one's SHA256SUMS hash).
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackError(f"--out: {out} exists and is not empty; a pack is never overwritten")
    make_private_dirs(out)
    for path, data in sorted(pack.files.items()):
        target = out / path
        make_private_dirs(target.parent)
        write_private(target, data)
    listed = [{"path": p, "sha256": _sha(d), "bytes": len(d)} for p, d in sorted(pack.files.items())]
    manifest = {
        "format": PACK_FORMAT,
        "generated_at": utcnow(),
        "tool_version": tool_version(),
        "snapshot": snapshot,
        "facts": pack.facts,
        "files": listed,
    }
    manifest_bytes = json_text(manifest).encode("utf-8")
    write_private(out / "manifest.json", manifest_bytes)
    sums = [(p, _sha(d)) for p, d in pack.files.items()] + [("manifest.json", _sha(manifest_bytes))]
    text = "".join(f"{digest}  {path}\n" for path, digest in sorted(sums))
    write_private(out / "SHA256SUMS", text)
    return out, _sha(text.encode("utf-8"))
