"""Quarantine is part of coverage: per source, the count and the distinct reasons with short examples, in
findings.json, report.md and report.html (open when anything was quarantined), from a real snapshot too."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from crawler.config import parse_config
from crawler.orchestrator import crawl
from crawler.store import SnapshotStore
from graph.model import FindingSet
from graph.reports import ReportInput, render_html, render_json, render_markdown
from graph.review import review_run, withheld_by_quarantine

SECONDMENT = (
    "status 'Secondment' is not in the status vocabulary (active_values/disabled_values/not_activated_values)"
)


def test_json_coverage_carries_the_quarantine_reasons(realistic_report: ReportInput) -> None:
    doc = json.loads(render_json(realistic_report))
    by_source = {c["source"]: c for c in doc["coverage"]}
    assert by_source["okta"]["quarantine"] == {
        "count": 4,
        "reasons": [
            {
                "reason": SECONDMENT,
                "count": 3,
                "examples": ["row 4 (k.osei@acme.com)", "row 9 (l.chen@acme.com)", "row 12"],
            },
            {"reason": "no email in column 'Work Email'", "count": 1, "examples": ["row 17"]},
        ],
    }
    assert by_source["emea"]["quarantine"] == {"count": 0, "reasons": []}
    assert doc["summary"]["quarantined"] == 6


def test_json_without_a_summary_keeps_the_bare_count(realistic_report: ReportInput) -> None:
    doc = json.loads(render_json(replace(realistic_report, quarantine={})))
    apac = next(c for c in doc["coverage"] if c["source"] == "apac")
    assert apac["quarantine"] == {"count": 2, "reasons": []}


def test_markdown_lists_the_reasons(realistic_report: ReportInput) -> None:
    text = render_markdown(realistic_report)
    section = text.split("### Quarantined records", 1)[1].split("## Totals", 1)[0]
    assert "6 records read but not understood" in section
    assert "| okta | status 'Secondment' is not in the status vocabulary" in section
    assert "| 3 | row 4 (k.osei@acme.com), row 9 (l.chen@acme.com), row 12 |" in section
    assert r"id: Field required | 2 | record \#3, record \#9" in section
    clean = replace(
        realistic_report,
        quarantine={},
        coverage=[replace(c, quarantined=0) for c in realistic_report.coverage],
    )
    assert "Quarantined records" not in render_markdown(clean)


def test_html_quarantine_block_is_open_only_when_something_was_quarantined(
    realistic_report: ReportInput, hostile_report: ReportInput
) -> None:
    html = render_html(realistic_report)
    coverage = html.split('<section id="coverage"', 1)[1].split("</section>", 1)[0]
    assert '<details id="quarantine" class="quarantine" open>' in coverage
    assert "Secondment" in coverage and "row 4 (k.osei@acme.com)" in coverage
    clean = replace(
        realistic_report,
        quarantine={},
        coverage=[replace(c, quarantined=0) for c in realistic_report.coverage],
    )
    html = render_html(clean)
    assert '<details id="quarantine" class="quarantine">' in html and "Quarantined records: none" in html
    hostile = render_html(hostile_report)
    assert "&lt;script&gt;window.__pwned = 6&lt;/script&gt;" in hostile
    assert "<img" not in hostile


def test_withheld_by_quarantine_counts_the_verdicts_a_quarantine_withheld() -> None:
    from graph.model import Code, Unavailable

    findings = FindingSet(run_id=1, findings=[], unavailable=[])
    findings.unavailable.append(Unavailable(Code.NOT_IN_IDP, "all", "no managed_domains configured"))
    assert withheld_by_quarantine(findings) == 0
    findings.unavailable.append(
        Unavailable(Code.NOT_IN_IDP, "emea", "k.osei@acme.com is quarantined in 'hr': status 'Leave' …")
    )
    assert withheld_by_quarantine(findings) == 1


async def test_a_crawled_csv_quarantine_reaches_every_report(tmp_path: Path) -> None:
    export = tmp_path / "hr.csv"
    export.write_text("id,email,status\n1,a@acme.com,active\n2,B@acme.com,Leave\n3,,active\n")
    config = parse_config({"idps": [{"name": "hr", "type": "csv", "path": str(export)}]}, env={})
    db = tmp_path / "s.db"
    with SnapshotStore(db) as store:
        await crawl(config, store)

    review = review_run(db, tmp_path / "out", formats="json,md,html")

    assert review.withheld_by_quarantine == 0 and review.complete
    doc = json.loads(review.paths["json"].read_text())
    assert doc["coverage"][0]["quarantine"] == {
        "count": 2,
        "reasons": [
            {"reason": "no email in column 'email'", "count": 1, "examples": ["row 4"]},
            {
                "reason": "status 'Leave' is not in the status vocabulary "
                "(active_values/disabled_values/not_activated_values)",
                "count": 1,
                "examples": ["row 3 (b@acme.com)"],
            },
        ],
    }
    assert "row 3 (b@acme.com)" in review.paths["md"].read_text()
    assert '<details id="quarantine" class="quarantine" open>' in review.paths["html"].read_text()
