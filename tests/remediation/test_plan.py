"""`remediate plan`: built offline from a real snapshot, reviewable, hashed, and limited to facts."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat

from crawler.orchestrator import crawl
from crawler.remediation.plan import canonical_json, load_plan
from crawler.store import SnapshotStore
from graph.model import Code
from graph.remediation_plan import plan_from_snapshot

KEY = b"remediation-SECRET-key-2b7d41c9e8a3"  # conftest.REMEDIATION_KEY


async def test_plan_is_canonical_hashed_owner_only_and_sends_nothing(estate) -> None:
    out = estate.tmp / "plan.json"

    code, stdout, err = await estate.cli(
        "plan", "--db", str(estate.db), "--finding", "idp_disabled_active",
        "--config", str(estate.config_path), "--out", str(out),
    )  # fmt: skip

    assert code == 0, err
    text = out.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    content = {k: v for k, v in data.items() if k != "plan_hash"}
    assert data["plan_hash"] == hmac.new(KEY, canonical_json(content).encode(), hashlib.sha256).hexdigest()
    assert data["base_urls"] == {
        p: estate.sim.base_url(p).rstrip("/") for p in {a["portal"] for a in data["actions"]}
    }
    assert data["created_at"] < data["expires_at"]
    assert f"plan {data['plan_hash']} → {out}" in stdout  # the hash a script records: a result, stdout
    keys = [(a["portal"], a["user_id"]) for a in data["actions"]]
    assert keys == sorted(keys) and len(keys) == len(set(keys)) > 0
    for action in data["actions"]:
        assert action["action"] == "disable" and action["finding"]["code"] == "idp_disabled_active"
        assert action["state"]["enabled"] is True and action["state"]["email"] == action["email"]
        assert action["finding"]["evidence"]["identities"], "the evidence travels with the plan"
    assert data["run"]["id"] == estate.run_id and data["selection"]["finding"] == "idp_disabled_active"
    assert data["idp_recheck"]["okta"].startswith("re-checked at apply time")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert estate.requests() == [] and estate.okta.exchanges == []
    for secret in estate.secrets:
        assert secret not in text and secret not in stdout + err
    assert load_plan(out, KEY).plan_hash == data["plan_hash"]


async def test_two_plans_of_one_run_differ_only_in_when_and_by_whom(estate) -> None:
    first, _ = estate.make_plan(estate.tmp / "a.json")
    second, _ = estate.make_plan(estate.tmp / "b.json")
    drop = {"created_at", "expires_at", "created_by"}
    assert {k: v for k, v in first.content().items() if k not in drop} == {
        k: v for k, v in second.content().items() if k not in drop
    }


async def test_portal_and_severity_filters(estate) -> None:
    full, _ = estate.make_plan()
    only, _ = estate.make_plan(estate.tmp / "emea.json", portals=["emea"], severities=[])
    assert {a.portal for a in only.actions} == {"emea"}
    assert len(only.actions) == sum(a.portal == "emea" for a in full.actions)
    out = estate.tmp / "crit.json"
    code, _, err = await estate.cli(
        "plan", "--db", str(estate.db), "--finding", "idp_disabled_active", "--severity", "critical,high",
        "--portal", "amer", "--config", str(estate.config_path), "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    plan = load_plan(out, KEY)
    assert plan.selection.severities == ["critical", "high"] and plan.selection.portals == ["amer"]
    assert {a.finding.severity for a in plan.actions} <= {"critical", "high"}
    assert {a.portal for a in plan.actions} == {"amer"}


async def test_bad_selections_are_usage_errors_that_write_nothing(estate) -> None:
    out = estate.tmp / "plan.json"
    for args, words in (
        (["--finding", "dormant"], "not remediable"),
        (["--finding", "nope"], "unknown finding"),
        (["--finding", "idp_disabled_active", "--portal", "mars"], "no portal named mars"),
        (["--finding", "idp_disabled_active", "--severity", "urgent"], "--severity"),
        (["--finding", "idp_disabled_active", "--run", "99"], "no run 99"),
    ):
        code, _, err = await estate.cli(
            "plan", "--db", str(estate.db), *args, "--config", str(estate.config_path), "--out", str(out)
        )
        assert code == 2 and words in err, (args, err)
        assert not out.exists()


async def test_an_incomplete_idp_crawl_yields_no_actions_and_says_why(estate) -> None:
    """Findings that depend on an incomplete source are not facts: the plan lists none, and says so."""
    estate.okta.faults.fail_from_page = 1
    with SnapshotStore(estate.db) as store:
        result = await crawl(estate.config(), store)
    assert not result.complete

    plan = plan_from_snapshot(
        estate.db, code=Code.IDP_DISABLED_ACTIVE, config=estate.config(), key=KEY, run_id=result.run_id
    )

    assert plan.actions == []
    assert plan.run.id == result.run_id and plan.run.status == "incomplete"
    assert any(u["scope"] == "all" and "IdP crawl incomplete" in u["reason"] for u in plan.unavailable)
    assert estate.make_plan(run_id=estate.run_id)[0].actions, "the earlier, complete run still plans"


def test_build_plan_is_pure_and_keeps_only_live_remediable_accounts() -> None:
    from crawler.store import RunInfo, SourceCoverage
    from graph.model import Finding, FindingSet, Severity, Unavailable
    from graph.remediation_plan import build_plan
    from graph.rules import ReviewSettings

    def finding(code: Code, portal: str, uid: int, email: str | None, severity=Severity.HIGH) -> Finding:
        return Finding(code, severity, email, email and email.lower(), portal, uid, "learner", "okta",
                       "disabled", {"identities": [{"idp": "okta", "status": "disabled"}]})  # fmt: skip

    findings = FindingSet(
        run_id=7,
        findings=[
            finding(Code.IDP_DISABLED_ACTIVE, "emea", 3, "C@acme.com"),
            finding(Code.IDP_DISABLED_ACTIVE, "emea", 1, "a@acme.com", Severity.CRITICAL),
            finding(Code.IDP_DISABLED_ACTIVE, "apac", 2, "b@acme.com"),
            finding(Code.IDP_DISABLED_ACTIVE, "emea", 4, "gone@acme.com"),  # no snapshot row
            finding(Code.IDP_DISABLED_ACTIVE, "emea", 5, "off@acme.com"),  # already disabled in the snapshot
            finding(Code.DORMANT, "emea", 6, "d@acme.com"),  # another code
        ],
        unavailable=[
            Unavailable(Code.IDP_DISABLED_ACTIVE, "account:apac:9", "collision"),
            Unavailable(Code.IDP_DISABLED_ACTIVE, "entra", "IdP crawl incomplete"),
            Unavailable(Code.DORMANT, "emea", "not this code"),
        ],
    )
    rows = {
        (p, i): {"email": e, "enabled": en, "user_type": "learner"}
        for p, i, e, en in [
            ("emea", 1, "a@acme.com", 1), ("apac", 2, "b@acme.com", 1), ("emea", 3, "C@acme.com", 1),
            ("emea", 5, "off@acme.com", 0), ("emea", 6, "d@acme.com", 1),
        ]
    }  # fmt: skip
    coverage = [SourceCoverage("emea", "learnupon", True), SourceCoverage("apac", "learnupon", True),
                SourceCoverage("okta", "okta", True), SourceCoverage("entra", "entra", False)]  # fmt: skip
    run = RunInfo(7, "2025-11-03T06:00:00Z", "2025-11-03T06:40:00Z", "incomplete")

    def build(**kw):
        return build_plan(findings, rows, run=run, snapshot="s.db", coverage=coverage,
                          code=Code.IDP_DISABLED_ACTIVE, settings=ReviewSettings(), key=KEY,
                          base_urls={"emea": "https://emea.example", "apac": "https://apac.example"},
                          created_at="2025-11-03T07:00:00.000Z", created_by="me@host", **kw)  # fmt: skip

    plan = build()
    assert [(a.portal, a.user_id) for a in plan.actions] == [("apac", 2), ("emea", 1), ("emea", 3)]
    assert plan.plan_hash == build().plan_hash == plan.compute_hash(KEY)
    assert plan.expires_at == "2025-11-06T07:00:00.000Z"  # 72 hours
    assert plan.idp_recheck["okta"].startswith("re-checked") and plan.idp_recheck["entra"].startswith("NOT")
    assert [u["scope"] for u in plan.unavailable] == ["account:apac:9", "entra"]
    emea = build(portals=["emea"], severities=[Severity.CRITICAL])
    assert [(a.portal, a.user_id) for a in emea.actions] == [("emea", 1)]
    assert [u["scope"] for u in emea.unavailable] == ["entra"], "a gap in another portal is not this plan's"
    assert emea.plan_hash != plan.plan_hash


def test_the_plan_key_stays_out_of_the_plan_basis_repr() -> None:
    """A basis in a log line or a traceback's locals must not carry the key that seals plans."""
    from crawler.runs import RunInfo
    from graph.remediation_plan import PlanBasis
    from graph.rules import ReviewSettings

    basis = PlanBasis(RunInfo(1, "2025-11-03T06:00:00Z", None, "complete"), "s.db", (), ReviewSettings(),
                      b"plan-signing-key-42", {"emea": "https://emea.example"})  # fmt: skip
    assert "plan-signing-key-42" not in repr(basis) and "emea.example" in repr(basis)
