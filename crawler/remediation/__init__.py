"""Remediation with human approval: disable orphan accounts safely, with a tamper-evident audit trail.

The path is deliberately split in two so that a second person can stand between the verdict and the write:

    idgraph remediate plan   — findings of one snapshot run -> a reviewable, keyed-hash PLAN.json (offline;
                               built by graph.remediation_plan, where findings live)
    idgraph remediate apply  — re-read each account, skip what changed, log the intent, PUT, read back
    idgraph remediate verify — check the audit log's hash chain and MACs (and that it still has the head)
    idgraph remediate undo   — re-enable accounts a logged disable turned off by mistake

Plans and audit entries are authenticated with one key (`keys`): see the README's remediation section.

Nothing here ever sends `DELETE /users`: deleting a LearnUpon user purges its learning history.
"""

from crawler.remediation.apply import Outcome, Target, UndoError, run_targets, targets_from_plan, undo_targets
from crawler.remediation.audit import GENESIS, AuditError, AuditLog, VerifyResult, read_entries, verify_log
from crawler.remediation.keys import KeyMissing, resolve_key
from crawler.remediation.plan import (
    REMEDIABLE,
    Plan,
    PlanAction,
    PlanError,
    load_plan,
    write_plan,
)

__all__ = [
    "GENESIS",
    "REMEDIABLE",
    "AuditError",
    "AuditLog",
    "KeyMissing",
    "Outcome",
    "Plan",
    "PlanAction",
    "PlanError",
    "Target",
    "UndoError",
    "VerifyResult",
    "load_plan",
    "read_entries",
    "resolve_key",
    "run_targets",
    "targets_from_plan",
    "undo_targets",
    "verify_log",
    "write_plan",
]
