"""Every finding rule, on hand-built snapshots."""

from __future__ import annotations

from graph.api import load_run
from graph.model import Code, Finding, FindingSet, Severity

DOMAINS = ("acme.com",)


def _evaluate(snapshot, run_id: int, managed_domains=DOMAINS, dormant_days: int = 90) -> FindingSet:
    with load_run(snapshot.store, run_id, managed_domains=managed_domains, dormant_days=dormant_days) as ig:
        return ig.findings()


def _of(fs: FindingSet, code: Code) -> list[Finding]:
    return [f for f in fs.findings if f.code is code]


def _keys(fs: FindingSet, code: Code) -> list[tuple[str | None, int | None]]:
    return sorted((f.portal, f.learnupon_user_id) for f in _of(fs, code))


def _unavailable(fs: FindingSet, code: Code) -> dict[str, str]:
    return {u.scope: u.reason for u in fs.unavailable if u.code is code}


# --- idp_disabled_active --------------------------------------------------------------------------
def test_disabled_person_with_an_enabled_account_carries_the_evidence(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "Ana@ACME.com", last_sign_in_at=run.ago(3), user_type="learner")
    run.identity(
        "okta",
        "00u1",
        "ana@acme.com",
        status="disabled",
        raw_status="DEPROVISIONED",
        status_changed_at=run.ago(10),
    )
    run.group("emea", 77, "Sales", members=[1]).group("emea", 78, "All staff", members=[1])
    run.course("emea", 5, "Security 101").course("emea", 6, "GDPR")
    run.enroll("emea", 1, 5, "completed").enroll("emea", 1, 6, "in_progress")
    fs = _evaluate(snapshot, run.finish())
    (finding,) = _of(fs, Code.IDP_DISABLED_ACTIVE)
    assert finding.severity is Severity.HIGH
    assert (finding.email, finding.person, finding.portal, finding.learnupon_user_id) == (
        "Ana@ACME.com",
        "ana@acme.com",
        "emea",
        1,
    )
    assert (finding.idp, finding.idp_status, finding.user_type) == ("okta", "disabled", "learner")
    ev = finding.evidence
    assert ev["identities"] == [
        {
            "idp": "okta",
            "idp_id": "00u1",
            "status": "disabled",
            "raw_status": "DEPROVISIONED",
            "status_changed_at": "2026-05-22T00:00:00Z",
            "matched_address": "ana@acme.com",
            "primary_address": "ana@acme.com",
        }
    ]
    assert ev["matched_address"] == "ana@acme.com"
    assert ev["last_sign_in_at"] == "2026-05-29T00:00:00Z"
    assert ev["created_at"] == "2025-04-27T00:00:00Z"
    assert ev["groups"] == ["All staff", "Sales"]
    assert ev["enrollments"] == {"completed": 1, "in_progress": 1}
    assert ev["user_type"] == "learner"


def test_active_in_one_idp_disabled_in_another_is_not_a_finding(snapshot):
    run = snapshot.run(idps=["okta", "entra"])
    run.user("emea", 1, "ana@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    run.identity("entra", "e1", "ana@acme.com", status="active")
    assert _of(_evaluate(snapshot, run.finish()), Code.IDP_DISABLED_ACTIVE) == []


def test_disabled_everywhere_across_idps_and_deleted_counts_as_disabled(snapshot):
    run = snapshot.run(idps=["okta", "entra"])
    run.user("emea", 1, "ana@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    run.identity("entra", "e1", "asmith@acme.com", ("ana@acme.com", "proxy"), status="deleted")
    (finding,) = _of(_evaluate(snapshot, run.finish()), Code.IDP_DISABLED_ACTIVE)
    assert (finding.idp, finding.idp_status) == ("entra;okta", "deleted;disabled")


def test_not_activated_is_not_disabled(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", status="not_activated")
    fs = _evaluate(snapshot, run.finish())
    assert _of(fs, Code.IDP_DISABLED_ACTIVE) == []
    assert _of(fs, Code.NOT_IN_IDP) == []  # known to the IdP, just not activated


def test_disabled_person_with_accounts_in_two_portals_gets_two_findings(snapshot):
    run = snapshot.run(portals=["emea", "apac"])
    run.user("emea", 1, "ana@acme.com").user("apac", 9, "ANA@acme.com").user("apac", 10, "bo@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", status="disabled").identity("okta", "00u2", "bo@acme.com")
    fs = _evaluate(snapshot, run.finish())
    assert _keys(fs, Code.IDP_DISABLED_ACTIVE) == [("apac", 9), ("emea", 1)]
    assert len({f.id for f in fs.findings}) == len(fs.findings)


def test_a_disabled_learnupon_account_is_not_a_finding(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana@acme.com", enabled=False)
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    assert _evaluate(snapshot, run.finish()).findings == []


def test_admin_and_manager_raise_the_severity(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana@acme.com", user_type="admin").user("emea", 2, "bo@acme.com", user_type="manager")
    run.user("emea", 3, "cy@acme.com", user_type="admin", last_sign_in_at=run.ago(200))
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    run.identity("okta", "00u2", "bo@acme.com", status="disabled").identity("okta", "00u3", "cy@acme.com")
    fs = _evaluate(snapshot, run.finish())
    assert {f.learnupon_user_id: f.severity for f in _of(fs, Code.IDP_DISABLED_ACTIVE)} == {
        1: Severity.CRITICAL,
        2: Severity.CRITICAL,
    }
    (dormant,) = _of(fs, Code.DORMANT)
    assert dormant.severity is Severity.MEDIUM


def test_incomplete_idp_makes_idp_verdicts_unavailable(snapshot):
    run = snapshot.run(idps=["okta", "entra"], incomplete={"entra": "HTTP 503 on page 7"})
    run.user("emea", 1, "ana@acme.com").user("emea", 2, "ghost@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    fs = _evaluate(snapshot, run.finish())
    assert _of(fs, Code.IDP_DISABLED_ACTIVE) == [] and _of(fs, Code.NOT_IN_IDP) == []
    for code in (Code.IDP_DISABLED_ACTIVE, Code.NOT_IN_IDP):
        reason = _unavailable(fs, code)["all"]
        assert "entra" in reason and "HTTP 503 on page 7" in reason and "okta" not in reason


def test_no_idp_crawled_makes_idp_verdicts_unavailable(snapshot):
    run = snapshot.run(idps=[])
    run.user("emea", 1, "ghost@acme.com")
    fs = _evaluate(snapshot, run.finish())
    assert _of(fs, Code.NOT_IN_IDP) == []
    no_idp = {"all": "no IdP configured: nobody's IdP status is known"}
    assert _unavailable(fs, Code.NOT_IN_IDP) == no_idp
    assert _unavailable(fs, Code.IDP_DISABLED_ACTIVE) == no_idp


# --- not_in_idp -----------------------------------------------------------------------------------
def test_not_in_idp_only_for_managed_domains(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ghost@ACME.COM").user("emea", 2, "learner@customer.example")
    run.user("emea", 3, "a.smith@acme.com").user("emea", 4, "gone@acme.com", enabled=False)
    run.user("emea", 5, "sub@eu.acme.com")
    run.identity("okta", "00u1", "ana@acme.com", ("a.smith@acme.com", "alias"))
    fs = _evaluate(snapshot, run.finish())
    (finding,) = _of(fs, Code.NOT_IN_IDP)
    assert (finding.learnupon_user_id, finding.severity, finding.idp) == (1, Severity.MEDIUM, None)
    assert finding.evidence["domain"] == "acme.com"
    assert finding.evidence["identities"] == []


def test_without_managed_domains_not_in_idp_says_it_was_not_checked(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ghost@acme.com")
    run.identity("okta", "00u1", "ana@acme.com")
    fs = _evaluate(snapshot, run.finish(), managed_domains=())
    assert _of(fs, Code.NOT_IN_IDP) == []
    assert _unavailable(fs, Code.NOT_IN_IDP) == {"all": "no managed_domains configured"}


# --- portals --------------------------------------------------------------------------------------
def test_accounts_read_from_an_incomplete_portal_are_facts_and_recall_is_flagged(snapshot):
    run = snapshot.run(portals=["emea", "apac"], incomplete={"apac": "429 budget exhausted"})
    for portal in ("emea", "apac"):
        run.user(portal, 1, "ana@acme.com", last_sign_in_at=run.ago(300))
        run.user(portal, 2, "ghost@acme.com").user(portal, 3, "GHOST@acme.com")
    run.user("apac", 4, "bo@acme.com").user("emea", 4, "bo@acme.com", enabled=False)
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    fs = _evaluate(snapshot, run.finish())
    assert {f.portal for f in fs.findings} == {"emea", "apac"}  # apac's records were read: facts
    assert fs.unavailable == [] or all(u.scope != "apac" for u in fs.unavailable)
    (offboarded,) = _of(fs, Code.PARTIALLY_OFFBOARDED)  # bo: enabled in apac, disabled in emea
    assert (offboarded.portal, offboarded.depends_on) == ("apac", ("account:apac:4", "account:emea:4"))
    gaps = {(g.code, g.portal): g.reason for g in fs.recall_gaps}
    for code in Code:
        assert gaps[(code, "apac")].startswith("portal apac: 429 budget exhausted"), code
        assert gaps[(code, "apac")].endswith("findings on apac may be missing"), code
    assert (Code.PARTIALLY_OFFBOARDED, "emea") in gaps and (Code.DORMANT, "emea") not in gaps


def test_an_account_without_a_user_type_ranks_like_an_admin(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana@acme.com", user_type="unknown")
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    fs = _evaluate(snapshot, run.finish())
    (finding,) = _of(fs, Code.IDP_DISABLED_ACTIVE)
    assert finding.severity is Severity.CRITICAL and finding.user_type == "unknown"
    assert "did not say" in finding.evidence["user_type_note"]


def test_collision_accounts_get_no_idp_verdict_and_say_why(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "shared@acme.com", last_sign_in_at=run.ago(120))
    run.identity("okta", "00u1", "bo@acme.com", ("shared@acme.com", "alias"), status="disabled")
    run.identity("okta", "00u2", "shared@acme.com", status="disabled")
    fs = _evaluate(snapshot, run.finish())
    assert _of(fs, Code.IDP_DISABLED_ACTIVE) == [] and _of(fs, Code.NOT_IN_IDP) == []
    for code in (Code.IDP_DISABLED_ACTIVE, Code.NOT_IN_IDP):
        reason = _unavailable(fs, code)["account:emea:1"]
        assert "shared@acme.com" in reason and "00u1" in reason and "00u2" in reason
    (dormant,) = _of(fs, Code.DORMANT)
    assert dormant.evidence["match"] == "collision"
    assert dormant.evidence["collisions"][0]["identities"] == ["00u1", "00u2"]


def test_username_only_accounts_are_still_judged_for_dormancy(snapshot):
    run = snapshot.run()
    run.user("emea", 1, None, username="kiosk", last_sign_in_at=None)
    run.identity("okta", "00u1", "ana@acme.com")
    fs = _evaluate(snapshot, run.finish())
    (finding,) = fs.findings
    assert (finding.code, finding.person, finding.evidence["username"]) == (Code.DORMANT, None, "kiosk")


# --- partially_offboarded -------------------------------------------------------------------------
def test_partially_offboarded_one_finding_per_enabled_account(snapshot):
    run = snapshot.run(portals=["emea", "apac", "us"])
    run.user("emea", 1, "ana@acme.com", enabled=False)
    run.user("apac", 2, "Ana@acme.com").user("us", 3, "ana@ACME.com", user_type="admin")
    run.user("us", 4, "bo@acme.com", enabled=False).user("us", 5, "BO@acme.com")  # same portal only
    run.identity("okta", "00u1", "ana@acme.com").identity("okta", "00u2", "bo@acme.com")
    fs = _evaluate(snapshot, run.finish())
    findings = _of(fs, Code.PARTIALLY_OFFBOARDED)
    assert sorted((f.portal, f.severity) for f in findings) == [
        ("apac", Severity.HIGH),
        ("us", Severity.CRITICAL),
    ]
    assert findings[0].evidence["disabled_in"][0]["portal"] == "emea"


# --- dormant --------------------------------------------------------------------------------------
def test_dormant_is_measured_against_the_run_start(snapshot):
    start = "2020-03-01T00:00:00Z"  # long ago: against "now" every account would be dormant
    run = snapshot.run(started_at=start)
    run.user("emea", 1, "recent@x.org", last_sign_in_at=run.ago(10))
    run.user("emea", 2, "old@x.org", last_sign_in_at=run.ago(91))
    run.user("emea", 3, "never-old@x.org", last_sign_in_at=None, created_at=run.ago(100))
    run.user("emea", 4, "never-new@x.org", last_sign_in_at=None, created_at=run.ago(5))
    run.user("emea", 5, "never-unknown@x.org", last_sign_in_at=None, created_at=None)
    run.user("emea", 6, "off@x.org", last_sign_in_at=run.ago(400), enabled=False)
    run.identity("okta", "00u1", "ana@acme.com")
    fs = _evaluate(snapshot, run.finish())
    assert _keys(fs, Code.DORMANT) == [("emea", 2), ("emea", 3), ("emea", 5)]
    by_id = {f.learnupon_user_id: f.evidence for f in _of(fs, Code.DORMANT)}
    assert by_id[2]["never_signed_in"] is False and by_id[3]["never_signed_in"] is True
    assert by_id[2]["cutoff"] == "2019-12-02T00:00:00Z"


def test_dormant_days_is_configurable(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "a@x.org", last_sign_in_at=run.ago(40))
    run.identity("okta", "00u1", "ana@acme.com")
    run_id = run.finish()
    assert _of(_evaluate(snapshot, run_id, dormant_days=30), Code.DORMANT)
    assert not _of(_evaluate(snapshot, run_id, dormant_days=90), Code.DORMANT)


# --- duplicate_account ----------------------------------------------------------------------------
def test_duplicates_in_one_portal_list_each_other(snapshot):
    run = snapshot.run(portals=["emea", "apac"])
    run.user("emea", 1, "Ana@ACME.com").user("emea", 2, "ana@acme.com").user("apac", 3, "ana@acme.com")
    run.user("emea", 4, "bo@acme.com").user("emea", 5, "Bo@acme.com", enabled=False)  # one is disabled
    run.user("emea", 6, "cy@acme.com").user("emea", 7, "c.y@acme.com")  # primary and alias
    run.identity("okta", "00u1", "ana@acme.com").identity("okta", "00u2", "bo@acme.com")
    run.identity("okta", "00u3", "cy@acme.com", ("c.y@acme.com", "alias"))
    fs = _evaluate(snapshot, run.finish())
    assert _keys(fs, Code.DUPLICATE_ACCOUNT) == [("emea", 1), ("emea", 2), ("emea", 6), ("emea", 7)]
    first = next(f for f in _of(fs, Code.DUPLICATE_ACCOUNT) if f.learnupon_user_id == 1)
    assert [o["learnupon_user_id"] for o in first.evidence["other_accounts"]] == [2]
    assert first.severity is Severity.LOW


def test_evaluate_is_deterministic(snapshot):
    run = snapshot.run(portals=["emea", "apac"])
    run.user("emea", 1, "ana@acme.com", last_sign_in_at=None).user("apac", 1, "ana@acme.com", enabled=False)
    run.user("emea", 2, "ghost@acme.com")
    run.identity("okta", "00u1", "ana@acme.com", status="disabled")
    run_id = run.finish()
    first, second = _evaluate(snapshot, run_id), _evaluate(snapshot, run_id)
    assert [f.id for f in first.findings] == [f.id for f in second.findings]
    assert first.findings == second.findings
    assert {f.code for f in first.findings} == {
        Code.IDP_DISABLED_ACTIVE,
        Code.NOT_IN_IDP,
        Code.PARTIALLY_OFFBOARDED,
        Code.DORMANT,
    }


# --- active_after_offboarding -------------------------------------------------------------------------
def test_a_sign_in_after_every_idp_let_the_person_go_is_critical_with_the_days(snapshot):
    run = snapshot.run(idps=["okta", "entra"])
    run.user("emea", 1, "ana@acme.com", last_sign_in_at=run.ago(2))  # used after the last disable
    run.user("emea", 2, "bo@acme.com", last_sign_in_at=run.ago(20))  # last used before the disable
    run.user("emea", 3, "cy@acme.com", last_sign_in_at=None)  # never used
    run.user("emea", 4, "di@acme.com", last_sign_in_at=run.ago(2), enabled=False)  # already disabled
    run.identity("okta", "00u1", "ana@acme.com", status="disabled", status_changed_at=run.ago(30))
    run.identity("entra", "e1", "ana@acme.com", status="deleted", status_changed_at=run.ago(10))
    run.identity("okta", "00u2", "bo@acme.com", status="disabled", status_changed_at=run.ago(10))
    run.identity("okta", "00u3", "cy@acme.com", status="disabled", status_changed_at=run.ago(10))
    run.identity("okta", "00u4", "di@acme.com", status="disabled", status_changed_at=run.ago(10))
    fs = _evaluate(snapshot, run.finish())
    (finding,) = _of(fs, Code.ACTIVE_AFTER_OFFBOARDING)
    assert (finding.learnupon_user_id, finding.severity) == (1, Severity.CRITICAL)
    # "disabled" means when the last IdP let go (entra, 10 days before), not the first (okta, 30)
    assert finding.evidence["idp_disabled_at"] == "2026-05-22T00:00:00Z"
    assert finding.evidence["days_since_disabled"] == 10
    assert finding.evidence["signed_in_after_disable_days"] == 8
    assert finding.depends_on == ("account:emea:1", "idps")
    assert _unavailable(fs, Code.ACTIVE_AFTER_OFFBOARDING) == {}
    assert _keys(fs, Code.IDP_DISABLED_ACTIVE) == [("emea", 1), ("emea", 2), ("emea", 3)]


def test_an_idp_that_gives_no_disable_date_withholds_the_verdict_for_that_account(snapshot):
    run = snapshot.run(idps=["okta", "entra"])
    run.user("emea", 1, "ana@acme.com", last_sign_in_at=run.ago(2))
    run.user("emea", 2, "bo@acme.com", last_sign_in_at=None)  # never signed in: nothing to withhold
    run.identity("okta", "00u1", "ana@acme.com", status="disabled", status_changed_at=run.ago(30))
    run.identity("entra", "e1", "ana@acme.com", status="disabled")  # Entra's user has no disable time
    run.identity("entra", "e2", "bo@acme.com", status="disabled")
    fs = _evaluate(snapshot, run.finish())
    assert _of(fs, Code.ACTIVE_AFTER_OFFBOARDING) == []
    assert _unavailable(fs, Code.ACTIVE_AFTER_OFFBOARDING) == {
        "account:emea:1": "entra did not say when it disabled ana@acme.com: whether the account was used "
        "after offboarding is unknown"
    }


def test_active_after_offboarding_needs_every_idp_complete(snapshot):
    run = snapshot.run(idps=["okta", "entra"], incomplete={"entra": "HTTP 503"})
    run.user("emea", 1, "ana@acme.com", last_sign_in_at=run.ago(2))
    run.identity("okta", "00u1", "ana@acme.com", status="disabled", status_changed_at=run.ago(30))
    fs = _evaluate(snapshot, run.finish())
    assert _of(fs, Code.ACTIVE_AFTER_OFFBOARDING) == []
    assert "HTTP 503" in _unavailable(fs, Code.ACTIVE_AFTER_OFFBOARDING)["all"]


def test_a_disable_dated_after_the_run_started_counts_zero_days_and_says_so(snapshot):
    run = snapshot.run()
    run.user("emea", 1, "ana@acme.com", last_sign_in_at=run.ago(-0.5))  # clocks: both after the start
    run.identity("okta", "00u1", "ana@acme.com", status="disabled", status_changed_at=run.ago(-0.25))
    fs = _evaluate(snapshot, run.finish())
    for finding in fs.findings:
        if finding.code in (Code.ACTIVE_AFTER_OFFBOARDING, Code.IDP_DISABLED_ACTIVE):
            assert finding.evidence["days_since_disabled"] == 0
            assert "after this run started" in finding.evidence["days_since_disabled_note"]
    assert {f.code for f in fs.findings} >= {Code.ACTIVE_AFTER_OFFBOARDING, Code.IDP_DISABLED_ACTIVE}
