"""Finding history across three runs, and the diff that refuses to call "unchecked" "resolved"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from graph import history
from graph.api import load_run
from graph.model import Code, FindingSet
from graph.rules import ReviewSettings

LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
STARTS = ["2026-06-01T00:00:00Z", "2026-06-08T00:00:00Z", "2026-06-15T00:00:00Z"]


def _run(snapshot, n: int, *, ghost_enabled: bool, incomplete: dict[str, str] | None = None) -> int:
    run = snapshot.run(portals=["emea", "apac"], started_at=STARTS[n], incomplete=incomplete)
    run.user("emea", 1, "ana@acme.com")  # disabled in okta: idp_disabled_active
    run.user("emea", 2, "ghost@acme.com", enabled=ghost_enabled)  # not_in_idp while enabled
    if "apac" not in (incomplete or {}):  # apac's users listing failed before it reached cy
        run.user("apac", 3, "cy@acme.com", last_sign_in_at=LONG_AGO)  # dormant
    if n >= 1:
        run.user("emea", 4, "bo@acme.com", last_sign_in_at=LONG_AGO)  # dormant from run 2 on
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    run.identity("okta", "00u2", "bo@acme.com").identity("okta", "00u3", "cy@acme.com")
    return run.finish()


def _record(snapshot, run_id: int) -> FindingSet:
    with load_run(snapshot.store, run_id, managed_domains=["acme.com"]) as ig:
        findings = ig.findings()
        history.record(snapshot.store, findings, ig.settings)
        return findings


def _id(fs: FindingSet, code: Code, portal: str, user_id: int) -> str:
    (finding,) = [
        f for f in fs.findings if (f.code, f.portal, f.learnupon_user_id) == (code, portal, user_id)
    ]
    return finding.id


@pytest.fixture
def three_runs(snapshot):
    run1 = _run(snapshot, 0, ghost_enabled=True)
    run2 = _run(snapshot, 1, ghost_enabled=False, incomplete={"apac": "connection reset"})
    run3 = _run(snapshot, 2, ghost_enabled=False, incomplete={"okta": "HTTP 500"})
    sets = [_record(snapshot, r) for r in (run1, run2, run3)]
    ids = {
        "ana": _id(sets[0], Code.IDP_DISABLED_ACTIVE, "emea", 1),
        "ghost": _id(sets[0], Code.NOT_IN_IDP, "emea", 2),
        "cy": _id(sets[0], Code.DORMANT, "apac", 3),
        "bo": _id(sets[1], Code.DORMANT, "emea", 4),
    }
    return (run1, run2, run3), sets, ids


def test_first_and_last_seen_across_three_runs(snapshot, three_runs):
    (run1, run2, run3), _, ids = three_runs
    known = history.entries(snapshot.store)
    span = {name: (known[fid].first_seen_run, known[fid].last_seen_run) for name, fid in ids.items()}
    assert span == {"ana": (run1, run2), "ghost": (run1, run1), "cy": (run1, run3), "bo": (run2, run3)}
    assert known[ids["cy"]].first_seen_at == STARTS[0] and known[ids["cy"]].last_seen_at == STARTS[2]
    assert history.first_seen(snapshot.store, {ids["bo"]}) == {ids["bo"]: STARTS[1]}


def test_diff_separates_resolved_from_not_rechecked(snapshot, three_runs):
    (run1, run2, run3), _, ids = three_runs
    d2 = history.diff(snapshot.store, run2)
    assert d2.previous_run_id == run1
    names = {fid: name for name, fid in ids.items()}
    assert [names[e.finding_id] for e in d2.new] == ["bo"]
    assert [names[e.finding_id] for e in d2.still_open] == ["ana"]
    assert [names[e.finding_id] for e in d2.resolved] == ["ghost"]  # re-checked, and gone
    assert [names[e.finding_id] for e in d2.not_rechecked] == ["cy"]  # apac was incomplete

    d3 = history.diff(snapshot.store, run3)
    assert d3.new == []  # cy is back after a run that could not see it: still open, not new
    assert sorted(names[e.finding_id] for e in d3.still_open) == ["bo", "cy"]
    assert [names[e.finding_id] for e in d3.not_rechecked] == ["ana"]  # okta incomplete
    assert d3.resolved == []

    d31 = history.diff(snapshot.store, run3, previous_run_id=run1)
    assert [names[e.finding_id] for e in d31.new] == ["bo"]
    assert [names[e.finding_id] for e in d31.resolved] == ["ghost"]


def test_recording_is_idempotent(snapshot, three_runs):
    (_, run2, _), sets, _ = three_runs
    before = history.entries(snapshot.store)
    history.record(snapshot.store, sets[1])
    history.record(snapshot.store, sets[1])
    assert history.entries(snapshot.store) == before
    assert history.run_findings(snapshot.store, run2) == {f.id for f in sets[1].findings}


def test_re_recording_a_run_with_fewer_findings_recomputes_the_span(snapshot, three_runs):
    (_, run2, run3), sets, ids = three_runs
    without_bo = FindingSet(run3, [f for f in sets[2].findings if f.id != ids["bo"]], sets[2].unavailable)
    history.record(snapshot.store, without_bo)
    assert history.entries(snapshot.store)[ids["bo"]].last_seen_run == run2
    assert history.entries(snapshot.store)[ids["bo"]].last_seen_at == STARTS[1]


def test_diff_dict_shape_for_reports(snapshot, three_runs):
    (_, run2, _), _, _ = three_runs
    data = history.diff(snapshot.store, run2).as_dict()
    assert set(data) == {"run_id", "previous_run_id", "new", "resolved", "still_open", "not_rechecked"}
    assert {"finding_id", "code", "email", "portal", "first_seen_at"} <= set(data["new"][0])


def test_first_run_has_everything_new_and_unrecorded_runs_are_refused(snapshot):
    run1 = _run(snapshot, 0, ghost_enabled=True)
    with pytest.raises(LookupError):
        history.diff(snapshot.store, run1)
    findings = _record(snapshot, run1)
    d = history.diff(snapshot.store, run1)
    assert d.previous_run_id is None and len(d.new) == len(findings.findings)
    assert history.load_review_settings(snapshot.store, run1) == ReviewSettings(("acme.com",), 90)


def _two_portal_run(snapshot, n: int, *, apac_failed: bool, emea_partial: bool = False) -> int:
    """ana: disabled in apac, enabled in emea (partially_offboarded on emea); dan: dormant on emea."""
    incomplete = {"apac": "users listing: 500 after 5 attempts"} if apac_failed else {}
    if emea_partial:
        incomplete["emea"] = "users listing: connection reset on page 3"
    run = snapshot.run(portals=["emea", "apac"], started_at=STARTS[n], incomplete=incomplete)
    run.user("emea", 1, "ana@acme.com")
    if not emea_partial:
        run.user("emea", 2, "dan@acme.com", last_sign_in_at=LONG_AGO)
    if not apac_failed:
        run.user("apac", 7, "ana@acme.com", enabled=False)
    run.identity("okta", "00u1", "ana@acme.com").identity("okta", "00u2", "dan@acme.com")
    return run.finish()


def test_a_failed_portal_makes_cross_portal_findings_not_rechecked_never_resolved(snapshot):
    run1 = _two_portal_run(snapshot, 0, apac_failed=False)
    first = _record(snapshot, run1)
    (offboarded,) = [f for f in first.findings if f.code is Code.PARTIALLY_OFFBOARDED]
    assert offboarded.portal == "emea" and "account:apac:7" in offboarded.depends_on

    run2 = _two_portal_run(snapshot, 1, apac_failed=True)  # emea complete, apac failed
    second = _record(snapshot, run2)
    assert not any(f.code is Code.PARTIALLY_OFFBOARDED for f in second.findings)
    gaps = {(g.code, g.portal) for g in second.recall_gaps}
    assert (Code.PARTIALLY_OFFBOARDED, "emea") in gaps  # its counterpart may be in apac
    changes = history.diff(snapshot.store, run2)
    assert [e.finding_id for e in changes.not_rechecked] == [offboarded.id]
    assert changes.resolved == []


def test_an_account_gone_from_a_partial_listing_is_not_rechecked(snapshot):
    run1 = _two_portal_run(snapshot, 0, apac_failed=False)
    first = _record(snapshot, run1)
    (dormant,) = [f for f in first.findings if f.code is Code.DORMANT]
    run2 = _two_portal_run(snapshot, 1, apac_failed=False, emea_partial=True)
    second = _record(snapshot, run2)
    # ana's record was read from emea's partial listing: her finding is a fact, still open
    assert any(f.code is Code.PARTIALLY_OFFBOARDED for f in second.findings)
    changes = history.diff(snapshot.store, run2)
    assert [e.finding_id for e in changes.not_rechecked] == [dormant.id]
    assert [e.code for e in changes.still_open] == [Code.PARTIALLY_OFFBOARDED]
