"""One access review of one run: findings evaluated, history recorded, reports written.

The glue between the graph API, finding history and the report writers, shared by `idgraph report`,
`idgraph diff` and `idgraph demo` so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crawler.coverage import SourceCoverage
from crawler.store import FULL, SnapshotStore
from graph import history
from graph.api import load_run
from graph.campaign import RunReview, crawl_run, open_review
from graph.model import FindingSet
from graph.person_view import people_view
from graph.reports import ReportInput, write_reports
from graph.reports.input import Reviewed, RunDiff
from graph.rules import ReviewSettings


@dataclass
class Review:
    run_id: int
    findings: FindingSet
    diff: history.Diff
    paths: dict[str, Path]
    complete: bool  # every source's every collection was read
    withheld_by_quarantine: int = 0  # verdicts not given because an identity they need was quarantined
    coverage: list[SourceCoverage] = field(default_factory=list)  # per source: what the run read

    @property
    def verdicts_withheld(self) -> bool:
        """Some verdict was not given (a fact it needs was not read): `idgraph report` exits 3."""
        return bool(self.findings.unavailable)


def withheld_by_quarantine(findings: FindingSet) -> int:
    """The verdicts withheld because of a quarantined identity (`graph.rules` says "quarantined")."""
    return sum(1 for u in findings.unavailable if "quarantin" in u.reason.casefold())


def review_run(
    db: Path,
    out: Path | None,
    *,
    run_id: int | None = None,
    formats: Iterable[str] | str = ("csv", "json", "html", "md"),
    settings: ReviewSettings | None = None,
) -> Review:
    """Evaluate a run's findings, record them in the history, and (when `out` is given) write reports.

    `settings` (from a config's `[review]`) are saved with the run; without them, the settings saved at
    crawl time are used.
    """
    with SnapshotStore(db) as store, open_review(store, run_id, settings) as under_review:
        graph, findings = under_review.graph, under_review.findings
        changes = history.diff(store, graph.run.id)
        paths: dict[str, Path] = {}
        if out is not None:
            report = report_input(store, under_review)
            report.diff = (
                RunDiff.from_mapping(changes.as_dict()) if changes.previous_run_id is not None else None
            )
            paths = write_reports(out, report, formats)
        complete = all(c.complete for c in graph.coverage)
        return Review(
            graph.run.id,
            findings,
            changes,
            paths,
            complete,
            withheld_by_quarantine(findings),
            list(graph.coverage),
        )


def report_input(store: SnapshotStore, under_review: RunReview) -> ReportInput:
    """What the report writers read for a run under review: the open findings as the headline, the
    accepted and excluded ones beside them with why, and the per-person view."""
    graph, findings = under_review.graph, under_review.findings
    states = under_review.states
    open_ids = {f.id for f in under_review.open}
    notes = {fid: s.note for fid, s in states.items() if fid in open_ids and s.note}
    return ReportInput(
        run=store.run(graph.run.id),
        coverage=graph.coverage,
        findings=FindingSet(
            findings.run_id,
            [f for f in findings.findings if f.id in open_ids],
            findings.unavailable,
            findings.recall_gaps,
        ),
        first_seen=history.first_seen(store, {f.id for f in findings.findings}),
        collisions=len({c.address for c in graph.collisions}),
        unmatchable=len(graph.unmatchable),
        quarantine=store.quarantine_summary(graph.run.id),
        accepted=[Reviewed(f, states[f.id].note or "accepted") for f in under_review.accepted],
        excluded=[
            Reviewed(f, states[f.id].note or "excluded", states[f.id].rule) for f in under_review.excluded
        ],
        review_notes=notes,
        reopened={fid for fid in open_ids if states[fid].lapsed is not None},
        exclusion_rules=under_review.exclusions.rows(),
        people=people_view(graph.resolution, findings.findings, states),
    )


def diff_runs(db: Path, run_id: int | None = None, previous_run_id: int | None = None) -> history.Diff:
    """What changed from `previous_run_id` (default: the run before) to `run_id` (default: the newest).

    Either run is evaluated and recorded first if no report ever recorded it, so a diff never depends on
    which runs someone happened to report.
    """
    with SnapshotStore(db) as store:
        newest = crawl_run(store, run_id).id
        if previous_run_id is None:
            earlier = [r.id for r in store.runs(FULL) if r.id < newest]  # never a watch round
            previous_run_id = earlier[-1] if earlier else None
        else:
            crawl_run(store, previous_run_id)  # LookupError for a run that does not exist, or a watch round
        for run in (previous_run_id, newest):
            if run is None:
                continue
            try:
                history.run_findings(store, run)
            except LookupError:
                with load_run(store, run) as graph:
                    history.record(store, graph.findings(), graph.settings)
        if previous_run_id is None:
            return history.Diff(newest, None)
        return history.diff(store, newest, previous_run_id)
