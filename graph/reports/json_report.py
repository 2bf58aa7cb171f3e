"""findings.json: `{"run", "coverage", "findings", "unavailable", "summary", …}`, keys in a stable order.

`findings` are the open ones (the headline); `accepted` (under a live exception) and `excluded` (by a
`[review] exclude` rule) list the rest with why; `people` is the per-person view.

Each coverage entry carries `"quarantine": {"count", "reasons": [{"reason", "count", "examples"}]}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crawler.coverage import SourceCoverage
from crawler.runs import QuarantineSummary, RunInfo
from graph.reports.input import ReportInput, evidence_json
from graph.reports.safe_files import write_private

# The contract's coverage keys first, then what explains them.
COVERAGE_KEYS = (
    "source",
    "kind",
    "complete",
    "error",
    "requests",
    "throttled",
    "retries",
    "records",
    "quarantined",
    "drift_events",
    "started_at",
    "finished_at",
    "requests_by_purpose",
    "notes",
    "collections",
)


def coverage_entry(cov: SourceCoverage, quarantine: QuarantineSummary | None = None) -> dict[str, Any]:
    entry = {key: getattr(cov, key) for key in COVERAGE_KEYS}
    entry["complete"] = bool(cov.complete)
    entry["requests_by_purpose"] = dict(sorted((cov.requests_by_purpose or {}).items()))
    entry["notes"] = list(cov.notes or [])
    entry["collections"] = [c.as_dict() for c in cov.collections]
    # The count and the distinct reasons with short examples; never the quarantined records themselves.
    entry["quarantine"] = (quarantine or QuarantineSummary(count=cov.quarantined or 0)).as_dict()
    return entry


def run_entry(run: RunInfo) -> dict[str, Any]:
    return {"id": run.id, "started_at": run.started_at, "finished_at": run.finished_at, "status": run.status}


def build_document(report: ReportInput) -> dict[str, Any]:
    findings = []
    for finding in report.ordered():
        record = report.record(finding)
        # Round-trip through the canonical form: sorted keys, datetimes as ISO strings.
        record["evidence"] = json.loads(evidence_json(finding.evidence))
        findings.append(record)
    return {
        "run": run_entry(report.run),
        "coverage": [coverage_entry(c, report.quarantine_of(c)) for c in report.ordered_coverage()],
        "findings": findings,
        "unavailable": [
            {"code": str(u.code), "scope": u.scope, "reason": u.reason} for u in report.unavailable
        ],
        "recall_gaps": [
            {"code": str(g.code), "portal": g.portal, "reason": g.reason} for g in report.recall_gaps
        ],
        "summary": report.summary(),
        "accepted": _reviewed(report, "accepted"),
        "excluded": _reviewed(report, "excluded"),
        "exclusion_rules": list(report.exclusion_rules),
        "people": [p.as_dict() for p in report.people],
    }


def _reviewed(report: ReportInput, state: str) -> list[dict[str, Any]]:
    out = []
    for kind, item in report.out_of_headline():
        if kind == state:
            record = report.reviewed_record(item, state)
            record["evidence"] = json.loads(evidence_json(item.finding.evidence))
            out.append(record)
    return out


def render_json(report: ReportInput) -> str:
    return json.dumps(build_document(report), indent=2, ensure_ascii=False, default=str) + "\n"


def write_json(path: Path | str, report: ReportInput) -> Path:
    return write_private(path, render_json(report))
