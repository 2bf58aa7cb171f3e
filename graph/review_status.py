"""`idgraph review status`: how far the review of a run has got — decided and undecided findings by
severity, by portal and by reviewer.

A finding is decided when a decision holds for it (`graph.decisions`: the latest on it, on facts that
have not changed, and for an exception not expired) or a rule excludes it; a decision whose facts changed
or whose exception expired counts as lapsed, and its finding as undecided again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from crawler.vocabulary import Severity
from graph.campaign import RunReview
from graph.decisions import DECISIONS, EXCLUDED
from graph.reports.input import NO_PORTAL

COUNTS = ("findings", "decided", "undecided", *DECISIONS, "excluded", "lapsed")


def _kind(review: RunReview, finding_id: str) -> str:
    state = review.states[finding_id]
    if state.state == EXCLUDED:
        return "excluded"
    return state.decision.decision if state.decision is not None else "undecided"


def status(review: RunReview) -> dict[str, Any]:
    """The counts, as `review status --format json` prints them (every severity and portal listed)."""
    groups: dict[str, dict[str, Counter[str]]] = {"severity": {}, "portal": {}, "reviewer": {}}
    for sev in Severity:
        groups["severity"][sev.value] = Counter()
    for portal in sorted(review.graph.sources.portals):
        groups["portal"][portal] = Counter()
    totals: Counter[str] = Counter()
    for f in review.findings.findings:
        kind = _kind(review, f.id)
        state = review.states[f.id]
        counted = [totals, groups["severity"][f.severity.value]]
        counted.append(groups["portal"].setdefault(f.portal or NO_PORTAL, Counter()))
        if state.decision is not None:
            counted.append(groups["reviewer"].setdefault(state.decision.reviewer, Counter()))
        for counter in counted:
            counter["findings"] += 1
            counter[kind] += 1
            counter["decided"] += kind != "undecided"
            counter["lapsed"] += state.lapsed is not None
    return {
        "run": review.run_id,
        "complete": review.complete,
        "incomplete": review.incompleteness(),
        "totals": {c: totals[c] for c in COUNTS},
        **{
            f"by_{name}": {key: {c: counter[c] for c in COUNTS} for key, counter in sorted(entries.items())}
            if name != "severity"
            else {key: {c: counter[c] for c in COUNTS} for key, counter in entries.items()}
            for name, entries in groups.items()
        },
    }
