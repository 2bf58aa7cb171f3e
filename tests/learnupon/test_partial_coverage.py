"""Findings that stay true when part of a portal's crawl fails: coverage per collection, endpoint
fallbacks, and verdicts that need only what was read — against the simulator and a fake Okta."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lu_helpers import assert_snapshot_equals_truth, make_portal
from tenacity import wait_none

from crawler.idp.fakes import serve
from crawler.idp.fakes.okta import OktaFake, okta_users_from_people
from crawler.orchestrator import crawl
from crawler.simulator.faults import FaultConfig
from crawler.simulator.population import generate_population
from crawler.simulator.server import run_simulator
from crawler.store import SnapshotStore
from graph.api import load_run
from idgraph.demo import DEMO_OKTA_TOKEN, demo_config

POPULATION = generate_population(seed=33, size=260)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient faults are still retried, the same number of times, just without the jittered sleep."""
    monkeypatch.setattr("crawler.http.wait_random_exponential", lambda **_: wait_none())


def portals() -> list[Any]:
    return [
        make_portal(name, POPULATION, seed=seed, users=180, page_size=40, courses=6, groups=4)
        for name, seed in (("emea", 1), ("apac", 2))
    ]


async def crawl_estate(tmp_path: Path, name: str, faults: dict[str, FaultConfig] | None = None):
    """Crawl both portals and Okta; returns (store, run id, coverage by source, findings, the portals)."""
    sims = portals()
    for sim in sims:
        sim.faults = (faults or {}).get(sim.spec.name, FaultConfig())
    okta = await serve(OktaFake(okta_users_from_people(POPULATION), token=DEMO_OKTA_TOKEN).app())
    try:
        async with run_simulator(sims, window_seconds=2.0) as sim:
            config, _ = demo_config(sim, okta.url)
            store = SnapshotStore(tmp_path / f"{name}.db")
            result = await crawl(config, store)
    finally:
        await okta.close()
    with load_run(store, result.run_id, managed_domains=["acme.com", "acme.co.uk"]) as ig:
        findings = ig.findings()
    coverage = {c.source: c for c in result.coverage}
    return store, result.run_id, coverage, findings, {s.spec.name: s for s in sims}


def listed_course_with_enrollments(sim: Any) -> int:
    by_course = sim.data.index.enrollments_by_course
    return next(c for c in sim.data.visible_course_ids() if by_course.get(c))


def verdicts(findings) -> set[tuple[str, str | None, int | None, str]]:
    return {(f.code.value, f.portal, f.learnupon_user_id, f.severity.value) for f in findings.findings}


def states(coverage) -> dict[str, str]:
    return {c.name: c.state for c in coverage.collections}


async def test_a_portal_without_courses_gets_exact_findings_and_its_enrollments_per_user(tmp_path: Path):
    _, _, _, truth, _ = await crawl_estate(tmp_path, "truth")
    store, run_id, coverage, findings, sims = await crawl_estate(
        tmp_path, "no-courses", {"emea": FaultConfig(missing_endpoints=frozenset({"courses"}))}
    )
    assert verdicts(findings) == verdicts(truth) and findings.findings
    assert findings.unavailable == [] and findings.recall_gaps == []
    emea = coverage["emea"]
    assert states(emea) == {
        "users": "complete",
        "groups": "complete",
        "memberships": "complete",
        "courses": "unavailable",
        "enrollments": "complete",
    }
    (courses,) = [c for c in emea.collections if c.name == "courses"]
    assert "absent (answered 404)" in courses.reason
    (enrollments,) = [c for c in emea.collections if c.name == "enrollments"]
    assert enrollments.via == "per user (there is no course listing)"
    assert emea.requests_by_purpose["enrollments_per_user"] == enrollments.requests > 0
    assert not emea.complete and "courses unavailable" in emea.error  # the row summarises honestly
    truth_enrollments = {
        eid: (e["course_id"], e["user_id"]) for eid, e in sims["emea"].data.enrollments.items()
    }
    stored = {r["id"]: (r["course_id"], r["user_id"]) for r in store.rows("lu_enrollments", run_id, "emea")}
    assert stored == truth_enrollments
    assert coverage["apac"].complete  # the other portal read its usual way
    store.close()


async def test_without_the_search_endpoint_the_seed_guides_enrollments_listing_is_read(tmp_path: Path):
    sims = [make_portal("seed", POPULATION, seed=3, users=60, page_size=20, courses=4, dialect="seed")]
    sims[0].faults = FaultConfig(missing_endpoints=frozenset({"courses", "enrollments/search"}))
    async with run_simulator(sims, window_seconds=2.0) as sim:
        config, _ = demo_config(sim)
        store = SnapshotStore(tmp_path / "seed.db")
        result = await crawl(config, store)
    (cov,) = result.coverage
    (enrollments,) = [c for c in cov.collections if c.name == "enrollments"]
    assert enrollments.state == "complete", enrollments.reason
    assert enrollments.via == "per user (there is no course listing) through GET /enrollments"
    assert cov.requests_by_purpose["enrollments_per_user_seed"] > 0
    stored = {r["id"] for r in store.rows("lu_enrollments", result.run_id, "seed")}
    assert stored == set(sims[0].data.enrollments)
    store.close()


async def test_one_course_whose_enrollments_fail_for_good_costs_no_verdict(tmp_path: Path):
    _, _, _, truth, truth_sims = await crawl_estate(tmp_path, "truth")
    course = listed_course_with_enrollments(truth_sims["emea"])
    broken = FaultConfig(broken_listings=frozenset({("enrollments/search", "course_id", str(course))}))
    store, run_id, coverage, findings, sims = await crawl_estate(tmp_path, "broken", {"emea": broken})
    assert verdicts(findings) == verdicts(truth)
    assert findings.unavailable == [] and findings.recall_gaps == []
    (enrollments,) = [c for c in coverage["emea"].collections if c.name == "enrollments"]
    # LearnUpon's own counters sent idgraph per user for that course's learners, and now all agree
    assert enrollments.state == "complete"
    assert "answered 500" in enrollments.reason and "none is missing" in enrollments.reason
    assert_snapshot_equals_truth(store, run_id, sims["emea"])
    store.close()


async def test_enrollments_nobody_can_vouch_for_stay_incomplete_and_cost_no_verdict(tmp_path: Path):
    _, _, _, truth, truth_sims = await crawl_estate(tmp_path, "truth")
    index = truth_sims["emea"].data.index
    course = listed_course_with_enrollments(truth_sims["emea"])
    learner = truth_sims["emea"].data.enrollments[index.enrollments_by_course[course][0]]["user_id"]
    broken = FaultConfig(
        broken_listings=frozenset(
            {
                ("enrollments/search", "course_id", str(course)),
                ("enrollments/search", "user_id", str(learner)),
            }
        )
    )
    _, _, coverage, findings, _ = await crawl_estate(tmp_path, "broken", {"emea": broken})
    assert states(coverage["emea"])["enrollments"] == "incomplete"
    assert states(coverage["emea"])["users"] == "complete"
    assert verdicts(findings) == verdicts(truth)  # enrollments are evidence: no verdict needs them
    assert findings.unavailable == [] and findings.recall_gaps == []
    on_emea = [f for f in findings.findings if f.portal == "emea"]
    assert on_emea and all("enrollments incomplete" in f.evidence["evidence_incomplete"][0] for f in on_emea)


async def test_a_users_listing_that_breaks_off_keeps_the_verdicts_of_the_accounts_read(tmp_path: Path):
    _, _, _, truth, _ = await crawl_estate(tmp_path, "truth")
    _, _, coverage, findings, _ = await crawl_estate(
        tmp_path, "partial", {"apac": FaultConfig(broken_listings=frozenset({("users", "page", "3")}))}
    )
    assert states(coverage["apac"])["users"] == "incomplete"
    got, expected = verdicts(findings), verdicts(truth)
    assert got < expected  # nothing invented, some missing...
    assert {v for v in expected - got if v[1] == "emea"} <= {
        v for v in expected if v[0] == "partially_offboarded"
    }  # ...on emea, only findings whose counterpart was on apac's unread pages
    assert any(v[1] == "apac" for v in got)  # the pages read are facts
    gaps = {(g.code.value, g.portal) for g in findings.recall_gaps}
    assert ("idp_disabled_active", "apac") in gaps and ("partially_offboarded", "emea") in gaps
    assert ("dormant", "emea") not in gaps


async def test_without_an_idp_every_idp_verdict_is_withheld_and_report_exits_3(tmp_path: Path):
    sims = portals()
    async with run_simulator(sims, window_seconds=2.0) as sim:
        config, _ = demo_config(sim)  # portals only
        with SnapshotStore(tmp_path / "no-idp.db") as store:
            result = await crawl(config, store)
    assert result.complete  # every source it names was read...
    report = subprocess.run(
        [sys.executable, "-m", "idgraph.cli", "report", "--db", str(tmp_path / "no-idp.db"),
         "--out", str(tmp_path / "out"), "--format", "json,md"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert report.returncode == 3, report.stderr  # ...but the IdP verdicts were withheld
    summary = json.loads((tmp_path / "out" / "findings.json").read_text())["summary"]
    for code in ("idp_disabled_active", "not_in_idp"):
        assert summary["by_code"][code] == "n/a — withheld: no IdP configured: nobody's IdP status is known"
    assert isinstance(summary["by_code"]["dormant"], int)
    assert "n/a — withheld: no IdP configured" in (tmp_path / "out" / "report.md").read_text()


async def test_a_failed_counterpart_portal_leaves_cross_portal_findings_not_rechecked(tmp_path: Path):
    from graph import history

    store, first_run, _, first, _ = await crawl_estate(tmp_path, "history")
    history.record(store, first)
    offboarded = {
        f.id for f in first.findings if f.code.value == "partially_offboarded" and f.portal == "emea"
    }
    assert offboarded  # emea accounts of people disabled in apac
    store.close()
    broken = FaultConfig(broken_listings=frozenset({("users", "page", "1")}))
    store, second_run, coverage, second, _ = await crawl_estate(tmp_path, "history", {"apac": broken})
    assert coverage["emea"].complete and states(coverage["apac"])["users"] == "incomplete"
    history.record(store, second)
    changes = history.diff(store, second_run, first_run)
    assert offboarded <= {e.finding_id for e in changes.not_rechecked}  # never "resolved"
    assert not offboarded & {e.finding_id for e in changes.resolved}
    store.close()


async def test_diff_between_two_runs_needs_no_report_and_writes_json_to_stdout(tmp_path: Path):
    store, first_run, _, _, _ = await crawl_estate(tmp_path, "diff")
    store.close()
    broken = FaultConfig(broken_listings=frozenset({("users", "page", "1")}))
    store, second_run, _, _, _ = await crawl_estate(tmp_path, "diff", {"apac": broken})
    store.close()
    db = str(tmp_path / "diff.db")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "idgraph.cli", "diff", "--db", db, *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    shown = cli("--from", str(first_run), "--to", str(second_run), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    changes = json.loads(shown.stdout)  # results on stdout, the summary line on stderr
    assert (changes["run_id"], changes["previous_run_id"]) == (second_run, first_run)
    assert changes["not_rechecked"] and not any(e["portal"] == "apac" for e in changes["resolved"])
    assert "not re-checked" in shown.stderr
    as_csv = cli("--format", "csv")
    assert as_csv.returncode == 0 and as_csv.stdout.splitlines()[0].startswith("change,finding,severity")
    assert cli("--format", "yaml").returncode == 2
