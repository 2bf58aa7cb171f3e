"""report.html's review parts in headless Chromium: the per-person view, the accepted and excluded findings
with why, a finding whose exception lapsed marked "back" — and nothing a reviewer typed runs as script."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cdp import Browser

from graph.person_view import PersonView
from graph.reports import ReportInput, render_markdown, write_reports
from graph.reports.input import Reviewed

HOSTILE_NAME = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def _reviewed_report(report: ReportInput) -> ReportInput:
    findings = report.ordered()
    accepted, excluded, back = findings[0], findings[1], findings[2]
    report.findings = replace(
        report.findings, findings=[f for f in findings if f not in (accepted, excluded)]
    )
    report.accepted = [Reviewed(accepted, f"exception by lead@acme.com until 2027-01-01: {HOSTILE_NAME}")]
    report.excluded = [Reviewed(excluded, "excluded by rule break-glass", "break-glass")]
    report.review_notes = {back.id: "exception by lead@acme.com on 2026-01-02 expired at 2026-03-01: leave"}
    report.reopened = {back.id}
    report.exclusion_rules = [
        {"rule": "break-glass", "reason": "sealed admin", "email": "bg-*@acme.com", "username": None,
         "portal": None, "user_type": None, "expires": None, "state": "in force", "accounts": 1},
    ]  # fmt: skip
    report.people = [
        PersonView(
            person="a.smith@acme.com", verdict="critical", codes=("idp_disabled_active",),
            idp_status="okta:disabled",
            accounts=(
                {"portal": "emea", "learnupon_user_id": 1, "email": "A.Smith@acme.com", "enabled": True,
                 "user_type": "admin", "last_sign_in_at": None, "findings": ["idp_disabled_active"]},
                {"portal": "apac", "learnupon_user_id": 9, "email": HOSTILE_NAME, "enabled": False,
                 "user_type": "learner", "last_sign_in_at": None, "findings": []},
            ),
        )
    ]  # fmt: skip
    return report


async def test_review_sections_render_and_run_nothing(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    report = _reviewed_report(realistic_report)
    path = write_reports(tmp_path / "out", report, ["html"])["html"]
    page = await browser.new_page()
    await page.goto(path.as_uri())
    assert await page.evaluate("document.querySelectorAll('#accepted-table tbody tr').length") == 1
    assert await page.evaluate("document.querySelectorAll('#excluded-table tbody tr').length") == 1
    assert (
        await page.evaluate("document.querySelector('#exclusion-rules tbody tr').dataset.rule")
        == "break-glass"
    )
    assert await page.evaluate("document.querySelectorAll('#people-table tbody tr').length") == 1
    accounts = await page.evaluate("document.querySelector('#people-table ul.accounts').innerText")
    assert "emea #1 A.Smith@acme.com" in accounts and "disabled" in accounts and "<script>" in accounts
    assert await page.evaluate("document.querySelectorAll('.badge.back').length") == 1
    note = await page.evaluate("document.getElementById('out-of-headline').innerText")
    assert note.startswith("Not counted above: 1 accepted under a live exception and 1 excluded by a rule")
    total = len(report.findings.findings)
    assert (
        await page.evaluate("document.getElementById('count').textContent") == f"{total} of {total} findings"
    )
    assert await page.evaluate("window.__pwned === undefined")
    assert page.errors == [] and page.external_requests == []
    markdown = render_markdown(report)
    assert "## People" in markdown and "## Accepted and excluded" in markdown and "<script>" not in markdown
