"""Parity: each finding query of the Cypher library returns exactly what the networkx rules find.

The queries compute the findings from the exported graph (accounts, people, identities, coverage), not
from the `:Finding` nodes, so this checks that a Cypher user's verdicts and the report's agree — on one
run, and after later runs in which a portal or an IdP failed and records vanished.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Exporter
from neo4j_estate import IDENTITIES, MANAGED_DOMAINS, Omit, write_estate

from crawler.store import SnapshotStore
from graph.api import load_run
from graph.model import SEVERITY_ORDER, Code, FindingSet, Severity
from graph.query_library import finding_queries, run_query

pytestmark = pytest.mark.neo4j

COLUMNS = ("finding", "severity", "email", "portal", "learnupon_user_id", "user_type", "idp", "idp_status")


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (*(row[c] for c in COLUMNS), row["person"])


def _rules(store: SnapshotStore, **settings: Any) -> FindingSet:
    with load_run(store, **settings) as ig:
        return ig.findings()


def _mismatches(exporter: Exporter, findings: FindingSet) -> dict[str, Any]:
    """Per finding code: (only in the rules, only in Cypher) where they differ."""
    queries = finding_queries()
    out = {}
    for code in Code:
        expected = sorted(_key(f.as_row()) for f in findings.findings if f.code is code)
        got = sorted(
            _key(r) for r in run_query(exporter.driver, queries[code.value].name, {}, exporter.database)
        )
        if expected != got:
            out[code.value] = {
                "rules only": set(expected) - set(got),
                "cypher only": set(got) - set(expected),
            }
    return out


def test_every_finding_code_has_a_query() -> None:
    assert set(finding_queries()) == {c.value for c in Code}


def test_finding_queries_match_the_rules_on_one_run(exporter: Exporter, first_run: int) -> None:
    exporter()
    findings = _rules(exporter.store, managed_domains=MANAGED_DOMAINS)
    assert {f.code for f in findings.findings} == set(Code)  # no code passes vacuously

    assert _mismatches(exporter, findings) == {}
    nodes = run_query(exporter.driver, "findings", {}, exporter.database)
    assert sorted(map(_key, nodes)) == sorted(_key(f.as_row()) for f in findings.findings)
    ranks = [SEVERITY_ORDER[Severity(r["severity"])] for r in nodes]
    assert ranks == sorted(ranks)  # most severe first, as the report lists them


def test_finding_queries_match_the_rules_after_a_failed_portal(
    exporter: Exporter, store: SnapshotStore
) -> None:
    write_estate(store)
    exporter()
    # apac fails after one page, keeping ana's account only; cara leaves emea. dormant_days changes too.
    partial = Omit(accounts={("apac", 102), ("emea", 4)}, groups={("apac", 10)}, courses={("apac", 2)})
    second = write_estate(store, partial, failed={"apac": "HTTP 503"}, started_at="2026-06-08T00:00:00Z")
    exporter(dormant_days=200)

    findings = _rules(store, managed_domains=MANAGED_DOMAINS, dormant_days=200)
    assert _mismatches(exporter, findings) == {}
    current = run_query(exporter.driver, "findings", {}, exporter.database)
    assert sorted(_key(r) for r in current if r["last_seen_run"] == second) == sorted(
        _key(f.as_row()) for f in findings.findings
    )
    kept = {
        (r["finding"], r["portal"], r["learnupon_user_id"]) for r in current if r["last_seen_run"] < second
    }
    # apac's listing broke off after one page: 102 was not read, so its finding is kept from run 1; 105
    # was read on that page, so its finding was judged again in the new run
    assert kept == {("idp_disabled_active", "apac", 102), ("active_after_offboarding", "apac", 102)}


def test_finding_queries_match_the_rules_after_a_failed_idp(exporter: Exporter, store: SnapshotStore) -> None:
    write_estate(store)
    exporter()
    broken_off = {(idp, idp_id) for idp, idp_id, *_ in IDENTITIES if idp == "entra"}
    write_estate(store, Omit(identities=broken_off, accounts={("emea", 8)}), failed={"entra": "401"})
    exporter()

    findings = _rules(store, managed_domains=MANAGED_DOMAINS)
    assert not [f for f in findings.findings if f.code in (Code.IDP_DISABLED_ACTIVE, Code.NOT_IN_IDP)]
    assert _mismatches(exporter, findings) == {}
