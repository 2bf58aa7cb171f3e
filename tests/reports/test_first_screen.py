"""report.html's first screen says what to act on: counts by severity and by person, whether the coverage
holds (one line when it does, every gap when it does not), then the most severe rows — at 390 px too."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cdp import Browser, Page

from graph.model import Code, FindingSet, RecallGap
from graph.reports import ReportInput, render_html, write_reports

PHONE, DESKTOP = (390, 844), (1280, 900)


def _complete(report: ReportInput) -> ReportInput:
    coverage = [replace(c, complete=True, error=None) for c in report.coverage]
    return replace(report, coverage=coverage, findings=FindingSet(42, report.findings.findings))


def _summary(html: str) -> str:
    return html.split('<section id="summary"', 1)[1].split("</section>", 1)[0]


def test_counts_by_severity_and_by_person_come_first(realistic_report: ReportInput) -> None:
    html = render_html(realistic_report)
    assert html.split("<main>", 1)[1].lstrip().startswith('<section id="summary"')
    summary = _summary(html)
    findings = realistic_report.findings.findings
    people = {f.person for f in findings}
    accounts = {
        (f.portal, f.learnupon_user_id, f.email if f.learnupon_user_id is None else None) for f in findings
    }
    # ≥: not_in_idp is withheld in the fixture, so every count is a lower bound
    assert f"<strong>≥ {len(people)} people</strong> with ≥ {len(accounts)} accounts" in summary
    critical = [f for f in findings if f.severity.value == "critical"]
    n_people = len({f.person for f in critical})
    assert (
        f'<span class="n">≥ {len(critical)}</span><span>critical</span>'
        f'<span class="who">≥ {n_people} {"person" if n_people == 1 else "people"}, '
    ) in summary
    assert realistic_report.reach()["total"] == (30, len(people), len(accounts))


def test_complete_coverage_is_one_line_and_crawl_detail_is_folded(realistic_report: ReportInput) -> None:
    html = render_html(_complete(realistic_report))
    summary = _summary(html)
    banner = summary.split('id="coverage-banner"', 1)[1].split("</p>", 1)[0]
    assert "All 5 sources completed." in banner and "<ul" not in banner
    assert "6 records could not be understood" in banner  # quarantine is still said, in one line
    crawl = html.split('<details id="crawl-detail"', 1)[1].split("</details>", 1)[0]
    assert not crawl.startswith(" open")
    for cov in realistic_report.coverage:
        for note in cov.notes or []:
            assert note not in summary  # implementation detail stays behind the toggle
    notes = [n for c in realistic_report.coverage for n in c.notes or []]
    assert notes and all(n.replace("'", "&#x27;") in crawl for n in notes)


def test_incomplete_coverage_stays_expanded_on_the_first_screen(realistic_report: ReportInput) -> None:
    gap = RecallGap(Code.DORMANT, "apac", "users listing stopped at page 9")
    findings = realistic_report.findings
    report = replace(
        realistic_report,
        findings=FindingSet(42, findings.findings, findings.unavailable, [gap]),
    )
    summary = _summary(render_html(report))
    assert "Coverage incomplete: 1 of 5 sources did not complete." in summary
    assert "Verdicts not given." in summary and "<code>not_in_idp</code>" in summary
    assert "Findings may be missing." in summary and "users listing stopped at page 9" in summary


# --- in the browser ------------------------------------------------------------------------------------
async def _open_at(browser: Browser, report: ReportInput, tmp_path: Path, size: tuple[int, int]) -> Page:
    width, height = size
    path = write_reports(tmp_path / f"out-{width}", report, ["html"])["html"]
    page = await browser.new_page()
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    await page.goto(path.as_uri())
    await page.evaluate("new Promise((resolve) => requestAnimationFrame(() => resolve(true)))")
    return page


_TOPS = """(() => {
  const top = (sel) => { const el = document.querySelector(sel);
    return el ? el.getBoundingClientRect().top + window.scrollY : null; };
  return {width: document.documentElement.scrollWidth, counts: top('#severity-counts'),
          critical: top('#severity-counts .card.sev-critical'), row: top('tbody.finding'),
          banner: top('#coverage-banner')};
})()"""


async def test_phone_width_does_not_overflow_and_shows_what_to_act_on(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    for report in (_complete(realistic_report), realistic_report):
        page = await _open_at(browser, report, tmp_path, PHONE)
        tops = await page.evaluate(_TOPS)
        assert tops["width"] <= PHONE[0], tops  # wide tables scroll inside their own container
        assert tops["critical"] < PHONE[1] and tops["banner"] < PHONE[1], tops
        if report.coverage_clean():
            assert tops["row"] < PHONE[1], tops  # the first (most severe) finding row is on screen
        assert page.errors == []


async def test_desktop_first_finding_row_is_on_the_first_screen(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    for report in (_complete(realistic_report), realistic_report):
        page = await _open_at(browser, report, tmp_path, DESKTOP)
        tops = await page.evaluate(_TOPS)
        assert tops["width"] <= DESKTOP[0], tops
        assert tops["counts"] < 400 and tops["row"] < 800, tops
        first = await page.evaluate("document.querySelector('tbody.finding').dataset.severity")
        assert first == "critical"
        assert page.errors == []
