"""One run under review: its findings evaluated and recorded, the exclusion rules and decisions applied.

Every review command (`idgraph review export|import|status|evidence`, `remediate plan --from-review`) and
the reports open a run through `open_review`, so they agree on which findings are open, accepted under an
exception, or excluded by a rule — and on the run's completeness, which every one of them reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from crawler.runs import RunInfo
from crawler.store import INCREMENTAL, SnapshotStore
from graph import history
from graph.api import IdentityGraph, load_run
from graph.decisions import ACCEPTED, EXCLUDED, OPEN, Decision, FindingReview, review_states
from graph.exclusions import Exclusions
from graph.model import Finding, FindingSet
from graph.rules import ReviewSettings


@dataclass
class RunReview:
    """A run's findings with where each stands in the review."""

    graph: IdentityGraph
    findings: FindingSet
    decisions: list[Decision]
    exclusions: Exclusions
    states: dict[str, FindingReview]
    as_of: datetime  # the run's start: what expiries are measured against

    @property
    def run_id(self) -> int:
        return self.graph.run.id

    @property
    def complete(self) -> bool:
        """Every source's every collection was read and no verdict withheld: counts are exact."""
        return all(c.complete for c in self.graph.coverage) and not self.findings.unavailable

    def incompleteness(self) -> list[str]:
        """Why the run's numbers are lower bounds (one line per reason), or []."""
        lines = [f"{c.source}: {c.error or 'incomplete'}" for c in self.graph.coverage if not c.complete]
        withheld = sorted({u.code.value for u in self.findings.unavailable})
        if withheld:
            lines.append(f"verdicts withheld for some accounts: {', '.join(withheld)}")
        return lines

    def state(self, finding: Finding) -> FindingReview:
        return self.states.get(finding.id, FindingReview(OPEN))

    def in_state(self, state: str) -> list[Finding]:
        return [f for f in self.findings.findings if self.state(f).state == state]

    @property
    def open(self) -> list[Finding]:
        return self.in_state(OPEN)

    @property
    def accepted(self) -> list[Finding]:
        return self.in_state(ACCEPTED)

    @property
    def excluded(self) -> list[Finding]:
        return self.in_state(EXCLUDED)


def review_of(graph: IdentityGraph, store: SnapshotStore) -> RunReview:
    """Apply the run's saved exclusion rules and every decision to an opened run (findings recorded)."""
    findings = graph.findings()
    history.record(store, findings, graph.settings)
    as_of = graph.rule_input().run_started_at.astimezone(UTC)
    exclusions = Exclusions.of(graph.settings.exclude, graph.resolution.accounts, as_of)
    decisions = [Decision.from_row(r) for r in store.reader().decisions()]
    states = review_states(findings.findings, decisions, exclusions, as_of)
    return RunReview(graph, findings, decisions, exclusions, states, as_of)


def crawl_run(store: SnapshotStore, run_id: int | None) -> RunInfo:
    """The run a verdict is given over (the newest crawl by default); LookupError for a watch round: it
    read only the people it looked up, so every account it did not read would look absent."""
    run = store.run(run_id)
    if run.kind == INCREMENTAL:
        raise LookupError(
            f"run {run.id} is an incremental run of `idgraph watch`: it read only the people it looked up; "
            "name a crawl (without --run: the newest)"
        )
    return run


@contextmanager
def open_review(
    store: SnapshotStore, run_id: int | None = None, settings: ReviewSettings | None = None
) -> Iterator[RunReview]:
    """The run (the newest by default) under review; `settings` from a config replace the saved ones."""
    run = crawl_run(store, run_id)
    if settings is not None:
        history.save_review_settings(store, run.id, settings)
    with load_run(store, run.id) as graph:
        yield review_of(graph, store)
