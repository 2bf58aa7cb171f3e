"""report.html, checked as a file and in a real headless Chromium driven over the DevTools protocol.

The browser tests load the report by file:// URL and fail on any uncaught exception, console error, log error
(CSP violations land there) or any request that is not file:// or data:. They type into the filter box, use
the select filters, click sort headers, and compare what is visible with what the fixture says.
"""

from __future__ import annotations

import json
import os
import re
import struct
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

from cdp import Browser, Page

from graph.model import Finding
from graph.reports import ReportInput, render_html, render_json, write_reports

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "report-screenshot.png"


class _Scan(HTMLParser):
    """Collects what the parser really built: tags, and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "poster", "srcset", "xlink:href"):
                self.urls.append(value or "")
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")


def _scan(html: str) -> _Scan:
    scan = _Scan()
    scan.feed(html)
    return scan


# --- static checks ------------------------------------------------------------------------------------
def test_html_is_self_contained(realistic_report: ReportInput) -> None:
    html = render_html(realistic_report)
    scan = _scan(html)
    assert scan.tags.count("script") == 1 and scan.tags.count("style") == 1
    assert "link" in scan.tags  # the data: favicon, so the browser asks the network for none
    for url in scan.urls:
        assert url.startswith(("#", "data:")), url
    assert scan.handlers == []
    assert not re.search(
        r"https?://(?!www\.w3\.org/2000/svg)", html
    )  # the SVG namespace is a name, not a fetch
    csp = unescape(html.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0])
    assert csp.startswith("default-src 'none'; style-src 'sha256-") and "'unsafe-inline'" not in csp


def test_html_escapes_hostile_strings(hostile_report: ReportInput) -> None:
    html = render_html(hostile_report)
    scan = _scan(html)
    assert scan.tags.count("script") == 1  # only ours
    assert "img" not in scan.tags and "b" not in scan.tags
    assert scan.handlers == []
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned = 3" in html
    assert "&lt;b&gt;amer&lt;/b&gt;" in html
    assert "https://evil.invalid/pixel.png" in html  # present as text, never as an attribute
    assert all("evil" not in url for url in scan.urls)


def test_html_summary_first_and_incomplete_banner(realistic_report: ReportInput) -> None:
    html = render_html(realistic_report)
    main = html.split("<main>", 1)[1]
    assert main.lstrip().startswith('<section id="summary"')
    summary = main.split('<section id="summary"', 1)[1].split("</section>", 1)[0]
    assert 'id="coverage-banner"' in summary  # incompleteness stays on the first screen
    banner = html.split('id="coverage-banner"', 1)[1].split("</div>", 1)[0]
    assert "Coverage incomplete: 1 of 5 sources did not complete." in banner
    assert "<strong>entra</strong> (entra): HTTP 503 Service Unavailable" in banner
    assert "Verdicts not given." in banner
    assert "<code>not_in_idp</code> — all portals: IdP &#x27;entra&#x27; did not complete" in banner
    assert "<code>idp_disabled_active</code> — entra: people known only to" in banner
    assert html.index('id="summary"') < html.index('id="findings"') < html.index('id="coverage"')
    assert html.index('id="coverage"') < html.index('id="totals"')


def test_html_when_every_source_completed(realistic_report: ReportInput) -> None:
    from dataclasses import replace

    from graph.model import FindingSet

    coverage = [replace(c, complete=True, error=None) for c in realistic_report.coverage]
    ok = replace(
        realistic_report, coverage=coverage, findings=FindingSet(42, realistic_report.findings.findings)
    )
    html = render_html(ok)
    assert 'class="banner ok"' in html and "All 5 sources completed." in html
    assert "Verdicts not given" not in html


def test_html_caps_the_listed_rows_and_says_so(realistic_report: ReportInput) -> None:
    html = render_html(realistic_report, max_rows=7)
    assert html.count('<tbody class="finding"') == 7
    assert "This page lists the 7 most severe of 30 findings" in html
    assert (
        '<span class="n">≥ 30</span><span>findings</span>' in html
    )  # totals count everything (≥: a code is withheld)
    listed = re.findall(r'<tbody class="finding" data-id="(\w+)"', html)
    assert listed == [f.id for f in realistic_report.ordered()[:7]]
    assert 'id="capped"' not in render_html(realistic_report)


def test_diff_given_as_history_mapping(realistic_report: ReportInput) -> None:
    """The history module hands the diff over as a plain mapping of entry dicts (`Diff.as_dict()`)."""
    from dataclasses import replace

    ordered = realistic_report.ordered()
    entry = {
        "finding_id": ordered[2].id,
        "code": "dormant",
        "email": "x@acme.com",
        "portal": "emea",
        "idp": None,
    }
    gone = {**entry, "finding_id": "feedfacecafebeef", "email": "gone<b>@acme.com"}
    mapping = {"run_id": 42, "previous_run_id": 40, "new": [entry], "resolved": [gone], "still_open": [],
               "not_rechecked": []}  # fmt: skip
    report = replace(realistic_report, diff=mapping)
    html = render_html(report)
    assert "Changes since run #40" in html
    assert html.count('data-new="1"') == 1 and f'data-id="{ordered[2].id}" ' in html
    assert "<code>feedfacecafebeef</code> dormant · gone&lt;b&gt;@acme.com · emea" in html
    doc = json.loads(render_json(report))
    assert doc["summary"]["changes"]["resolved"][0]["email"] == "gone<b>@acme.com"


# --- browser -------------------------------------------------------------------------------------------
async def _open(browser: Browser, report: ReportInput, tmp_path: Path) -> Page:
    path = write_reports(tmp_path / "out", report, ["html"])["html"]
    page = await browser.new_page()
    await page.goto(path.as_uri())
    await page.evaluate("new Promise((resolve) => requestAnimationFrame(() => resolve(true)))")
    return page


VISIBLE_IDS = "Array.from(document.querySelectorAll('tbody.finding:not([hidden])')).map((b) => b.dataset.id)"


async def _type(page: Page, text: str) -> None:
    await page.evaluate(
        "(() => { const box = document.getElementById('filter'); box.focus(); "
        f"box.value = {json.dumps(text)}; box.dispatchEvent(new Event('input', {{bubbles: true}})); }})()"
    )


async def _choose(page: Page, select_id: str, value: str) -> None:
    await page.evaluate(
        f"(() => {{ const s = document.getElementById({json.dumps(select_id)}); "
        f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
    )


async def _click_sort(page: Page, column: str) -> None:
    await page.evaluate(f"document.querySelector('th[data-col={column}] button').click()")


def _matches(finding: Finding, report: ReportInput, term: str) -> bool:
    text = json.dumps(report.record(finding), ensure_ascii=False, default=str).casefold()
    return term.casefold() in text


async def test_report_loads_clean_and_offline(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    page = await _open(browser, realistic_report, tmp_path)
    assert await page.evaluate("document.querySelectorAll('tbody.finding').length") == 30
    assert await page.evaluate("document.getElementById('count').textContent") == "30 of 30 findings"
    assert await page.evaluate("document.querySelector('main > section').id") == "summary"
    banner = await page.evaluate("document.getElementById('coverage-banner').innerText")
    assert "entra" in banner and "not_in_idp" in banner and "503" in banner
    assert await page.evaluate("document.querySelectorAll('svg.chart rect').length") > 10
    assert page.requests and all(url.startswith("file://") for url in page.requests[:1])
    assert page.external_requests == []
    assert page.errors == []


async def test_filter_box_shows_exactly_the_matching_rows(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    page = await _open(browser, realistic_report, tmp_path)
    findings = realistic_report.findings.findings

    await _type(page, "northwind")
    expected = {f.id for f in findings if _matches(f, realistic_report, "northwind")}
    assert 0 < len(expected) < 30
    assert set(await page.evaluate(VISIBLE_IDS)) == expected
    assert (
        await page.evaluate("document.getElementById('count').textContent")
        == f"{len(expected)} of 30 findings"
    )

    await _type(page, "NorthWind   Dormant")  # case-insensitive; every word must match
    both = {
        f.id for f in findings if _matches(f, realistic_report, "northwind") and f.code.value == "dormant"
    }
    assert set(await page.evaluate(VISIBLE_IDS)) == both

    await _type(page, "")
    await _choose(page, "filter-portal", "apac")
    await _choose(page, "filter-severity", "high")
    expected = {f.id for f in findings if f.portal == "apac" and f.severity.value == "high"}
    assert expected and set(await page.evaluate(VISIBLE_IDS)) == expected

    await _type(page, "no-such-person-anywhere")
    assert await page.evaluate(VISIBLE_IDS) == []
    assert await page.evaluate("document.getElementById('count').textContent") == "0 of 30 findings"
    assert await page.evaluate("document.getElementById('no-match').hidden") is False

    await page.evaluate("document.getElementById('reset').click()")
    await page.evaluate("new Promise((resolve) => setTimeout(() => resolve(true), 20))")
    assert len(await page.evaluate(VISIBLE_IDS)) == 30

    await page.evaluate("document.getElementById('filter-new').click()")
    assert realistic_report.diff is not None
    assert set(await page.evaluate(VISIBLE_IDS)) == realistic_report.diff.new_ids()
    assert page.errors == []


async def test_click_to_sort_headers(browser: Browser, realistic_report: ReportInput, tmp_path: Path) -> None:
    page = await _open(browser, realistic_report, tmp_path)
    initial = [f.id for f in realistic_report.ordered()]
    assert await page.evaluate(VISIBLE_IDS) == initial
    by_id = {f.id: f for f in realistic_report.findings.findings}

    await _click_sort(page, "learnupon_user_id")
    with_id = [i for i in initial if by_id[i].learnupon_user_id is not None]
    blanks = [i for i in initial if by_id[i].learnupon_user_id is None]
    ascending = sorted(with_id, key=lambda i: by_id[i].learnupon_user_id or 0) + blanks
    assert await page.evaluate(VISIBLE_IDS) == ascending
    assert (
        await page.evaluate("document.querySelector('th[data-col=learnupon_user_id]').ariaSort")
        == "ascending"
    )

    await _click_sort(page, "learnupon_user_id")
    descending = (
        sorted(with_id, key=lambda i: -(by_id[i].learnupon_user_id or 0)) + blanks
    )  # blanks stay last
    assert await page.evaluate(VISIBLE_IDS) == descending
    assert (
        await page.evaluate("document.querySelector('th[data-col=learnupon_user_id]').ariaSort")
        == "descending"
    )
    assert (
        await page.evaluate("document.querySelector('th[data-col=severity]').hasAttribute('aria-sort')")
        is False
    )

    await _click_sort(page, "portal")  # stable: ties keep the order they had
    before = descending
    expected = sorted(before, key=lambda i: by_id[i].portal or "")
    assert await page.evaluate(VISIBLE_IDS) == expected

    await _type(page, "acme.com")  # filtering keeps the sorted order
    visible = await page.evaluate(VISIBLE_IDS)
    assert visible == [i for i in expected if "acme.com" in (by_id[i].email or "")]
    assert page.errors == []


async def test_evidence_is_readable_per_row(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    page = await _open(browser, realistic_report, tmp_path)
    first = realistic_report.ordered()[0]
    text = await page.evaluate(
        f"(() => {{ const d = document.querySelector('tbody[data-id=\"{first.id}\"] details'); "
        "d.open = true; return d.innerText; })()"
    )
    assert "identities" in text and ("DEPROVISIONED" in text or "SUSPENDED" in text)
    assert "status changed at" in text and first.id in text
    assert page.errors == []


async def test_quarantine_reasons_are_visible_in_the_coverage_section(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    page = await _open(browser, realistic_report, tmp_path)
    assert await page.evaluate("document.getElementById('quarantine').open") is True
    assert await page.evaluate("document.getElementById('quarantine').closest('section').id") == "coverage"
    text = await page.evaluate("document.getElementById('quarantine').innerText")
    assert "Quarantined records: 6 records in 2 sources" in text
    for summary in realistic_report.quarantine.values():
        for reason in summary.reasons:
            assert reason.reason in text
            assert all(example in text for example in reason.examples)
    rows = await page.evaluate(
        "Array.from(document.querySelectorAll('#quarantine tbody tr')).map((r) => "
        "Array.from(r.cells).map((c) => c.innerText))"
    )
    secondment = realistic_report.quarantine["okta"].reasons[0].reason
    assert "Secondment" in secondment
    assert ["okta", secondment, "3", "row 4 (k.osei@acme.com), row 9 (l.chen@acme.com), row 12"] in rows
    visible = await page.evaluate(
        "(() => { const r = document.querySelector('#quarantine td.reason').getBoundingClientRect(); "
        "return r.width > 0 && r.height > 0; })()"
    )
    assert visible is True
    assert page.errors == []


async def test_hostile_strings_stay_text_in_the_browser(
    browser: Browser, hostile_report: ReportInput, tmp_path: Path
) -> None:
    page = await _open(browser, hostile_report, tmp_path)
    await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert await page.evaluate("document.scripts.length") == 1
    assert await page.evaluate("document.querySelectorAll('main img, main b').length") == 0
    body = await page.evaluate("document.body.innerText")
    assert "<script>window.__pwned = 1</script>" in body
    assert "<b>amer</b>" in body
    assert await page.evaluate("document.title") == "<script>window.__pwned = 5</script> review — run 7"
    assert page.external_requests == []
    assert page.errors == []


async def test_screenshot(browser: Browser, realistic_report: ReportInput, tmp_path: Path) -> None:
    """Renders the realistic fixture; with IDGRAPH_SCREENSHOT=1 the PNG is saved for the README."""
    page = await _open(browser, realistic_report, tmp_path)
    await page.evaluate(
        "(() => { const d = document.querySelector('tbody.finding details'); if (d) d.open = true; })()"
    )
    target = SCREENSHOT if os.environ.get("IDGRAPH_SCREENSHOT") == "1" else tmp_path / "report.png"
    path = await page.screenshot(target, width=1280, max_height=2400)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1280 and 1000 < height <= 2400
    assert page.errors == []
    if target == SCREENSHOT:
        os.chmod(path, 0o644)  # a docs asset, not a report


async def test_print_expands_evidence(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    page = await _open(browser, realistic_report, tmp_path)
    await page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert await page.evaluate("document.querySelectorAll('details:not([open])').length") == 0
    await page.evaluate("window.dispatchEvent(new Event('afterprint'))")
    assert await page.evaluate("document.querySelectorAll('tbody.finding details[open]').length") == 0
    pdf = await page.send("Page.printToPDF", {"printBackground": True})
    assert pdf["data"][:8] and page.errors == []


async def test_a_withheld_code_reads_n_a_never_zero(
    browser: Browser, realistic_report: ReportInput, tmp_path: Path
) -> None:
    """not_in_idp is withheld for everyone in the fixture (entra incomplete): its tile and its total say
    n/a with the reason, and the severity tiles say they are lower bounds."""
    page = await _open(browser, realistic_report, tmp_path)
    tile = await page.evaluate("document.getElementById('tile-not_in_idp').innerText")
    assert tile.split()[0] == "n/a" and "withheld" in tile.casefold()
    why = await page.evaluate("document.getElementById('tile-not_in_idp').title")
    assert "entra" in why
    total = await page.evaluate(
        "Array.from(document.querySelectorAll('table.matrix tr.withheld td.total')).map((td) => td.innerText)"
    )
    assert len(total) == 1 and total[0].startswith("n/a — withheld: IdP 'entra' did not complete")
    dormant = await page.evaluate("document.getElementById('tile-dormant').innerText")
    assert dormant.split()[0].isdigit()  # a code that was judged shows its count
    critical = await page.evaluate("document.querySelector('.card.sev-critical .n').innerText")
    assert critical.startswith("≥ ")
    assert page.errors == []
