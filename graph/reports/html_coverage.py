"""The coverage part of report.html: what was read, per source, and what it costs the verdicts."""

from __future__ import annotations

from crawler.coverage import SourceCoverage
from graph.reports.html_common import NONE, dash, e, num, plural
from graph.reports.input import ReportInput, affects

# Fixed column widths, so the portal and IdP coverage tables line up one above the other.
_COVERAGE_COLS = (
    '<colgroup><col class="c-src"><col class="c-kind"><col class="c-ok"><col class="c-err"><col class="c-n">'
    '<col class="c-q"></colgroup>'
)


def _read_list(c: SourceCoverage) -> str:
    """Each collection in a reviewer's words: read completely, or not, and what that costs."""
    states = "".join(
        f'<li class="coll {e(col.state)}"><strong>{e(col.name)}</strong> '
        + ("read completely" if col.complete else e(col.state))
        + (f": {e(col.reason)} — <em>{e(affects(col.name))}</em>" if not col.complete else "")
        + "</li>"
        for col in c.collections
    )
    return f'<ul class="collections">{states}</ul>' if states else dash(c.error)


def _coverage_table(caption: str, rows: list[SourceCoverage]) -> str:
    body = []
    for c in rows:
        if c.complete:
            row_class, state = "", '<span class="state ok">✓ complete</span>'
        else:
            row_class, state = ' class="incomplete"', '<span class="state bad">✗ incomplete</span>'
        body.append(
            f'<tr{row_class}><th scope="row">{e(c.source)}</th><td>{e(c.kind)}</td><td>{state}</td>'
            f'<td class="err">{_read_list(c)}</td><td class="num">{num(c.records)}</td>'
            f'<td class="num">{num(c.quarantined)}</td></tr>'
        )
    return (
        f'<table class="coverage"><caption>{e(caption)}</caption>{_COVERAGE_COLS}<thead><tr>'
        '<th scope="col">Source</th><th scope="col">Kind</th><th scope="col">Complete</th>'
        '<th scope="col">What was read</th><th scope="col" class="num">Records</th>'
        f'<th scope="col" class="num">Quarantined</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _crawl_detail(report: ReportInput) -> str:
    """How the crawl went (requests, 429s, LearnUpon's counters against our listings, endpoint fallbacks):
    for whoever runs idgraph, not for the reviewer's verdicts, so it stays folded."""
    rows = []
    for c in report.ordered_coverage():
        notes = "".join(f"<li>{e(n)}</li>" for n in c.notes or [])
        via = "".join(f"<li>{e(col.name)} read via {e(col.via)}</li>" for col in c.collections if col.via)
        notes_html = f'<ul class="notes">{via}{notes}</ul>' if notes or via else NONE
        rows.append(
            f'<tr><th scope="row">{e(c.source)}</th><td class="num">{num(c.requests)}</td>'
            f'<td class="num">{num(c.throttled)}</td><td class="num">{num(c.retries)}</td>'
            f"<td>{notes_html}</td></tr>"
        )
    return (
        '<details id="crawl-detail" class="crawl"><summary>Crawl detail: requests, rate limiting and '
        "LearnUpon's own counters checked against the listings</summary>"
        '<div class="scroll"><table class="crawl"><thead><tr><th scope="col">Source</th>'
        '<th scope="col" class="num">Requests</th>'
        '<th scope="col" class="num" title="responses with HTTP 429 Too Many Requests">429s</th>'
        '<th scope="col" class="num">Retries</th><th scope="col">Notes</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def coverage_banner(report: ReportInput) -> str:
    """One line when every source is complete and every verdict given; otherwise each gap, in full."""
    coverage, incomplete, unavailable = report.coverage, report.incomplete(), report.unavailable
    gaps = report.recall_gaps
    if not coverage:
        return (
            '<div class="banner bad" role="alert" id="coverage-banner"><p><strong>No coverage recorded for '
            "this run.</strong> Nothing here proves that any source was read completely.</p></div>"
        )
    if not incomplete and not unavailable and not gaps:
        quarantined = report.quarantined_count()
        unread = (
            f' <a href="#quarantine" class="warn">{plural(quarantined, "record")} could not be understood</a>'
            "; they are listed under Coverage."
            if quarantined
            else ""
        )
        return (
            f'<p class="banner ok" role="status" id="coverage-banner"><strong>All {len(coverage)} '
            "sources completed.</strong> Every listing was read to the end and every verdict given."
            f'{unread} <a href="#coverage">What was read</a></p>'
        )
    parts = ['<div class="banner bad" role="alert" id="coverage-banner">']
    if incomplete:
        lines = "".join(
            f"<li><strong>{e(c.source)}</strong> ({e(c.kind)}): {e(c.error or 'did not complete')}</li>"
            for c in incomplete
        )
        parts.append(
            f"<p><strong>Coverage incomplete: {len(incomplete)} of {len(coverage)} sources did not complete."
            f"</strong> The findings below are not the whole picture.</p><ul>{lines}</ul>"
        )
    if unavailable:
        lines = "".join(
            f"<li><code>{e(str(u.code))}</code> — {'all portals' if u.scope == 'all' else e(u.scope)}: "
            f"{e(u.reason)}</li>"
            for u in unavailable
        )
        parts.append(
            "<p><strong>Verdicts not given.</strong> A fact they need was not read, so these verdicts "
            f'were withheld rather than guessed:</p><ul class="unavailable">{lines}</ul>'
        )
    if gaps:
        lines = "".join(
            f"<li><code>{e(str(g.code))}</code> on <strong>{e(g.portal)}</strong>: {e(g.reason)}</li>"
            for g in gaps
        )
        parts.append(
            "<p><strong>Findings may be missing.</strong> Every record that was read was judged, but these "
            f'listings did not finish:</p><ul class="recall-gaps">{lines}</ul>'
        )
    parts.append("</div>")
    return "".join(parts)


def _quarantine(report: ReportInput) -> str:
    """The records no verdict could read, per source: each distinct reason, its count and a few examples.
    Open when anything was quarantined; a reviewer fixes the export or the vocabulary from here."""
    sources = report.quarantined_sources()
    if not sources:
        return (
            '<details id="quarantine" class="quarantine"><summary>Quarantined records: none</summary>'
            "<p>Every record read could be normalised.</p></details>"
        )
    total = sum(q.count for _, q in sources)
    rows = []
    for cov, summary in sources:
        reasons = summary.reasons or []
        if not reasons:
            rows.append(
                f'<tr><th scope="row">{e(cov.source)}</th><td>{NONE} (reasons not recorded)</td>'
                f'<td class="num">{num(summary.count)}</td><td>{NONE}</td></tr>'
            )
        for reason in reasons:
            examples = ", ".join(f"<code>{e(x)}</code>" for x in reason.examples) or NONE
            rows.append(
                f'<tr><th scope="row">{e(cov.source)}</th><td class="reason">{e(reason.reason)}</td>'
                f'<td class="num">{num(reason.count)}</td><td class="examples">{examples}</td></tr>'
            )
    return (
        '<details id="quarantine" class="quarantine" open><summary><strong>Quarantined records: '
        f"{plural(total, 'record')} in {plural(len(sources), 'source')}</strong> — read but not "
        "understood, never guessed; fix the data or the config and crawl again</summary>"
        '<div class="scroll"><table class="quarantine"><thead><tr><th scope="col">Source</th>'
        '<th scope="col">Reason</th><th scope="col" class="num">Records</th>'
        f'<th scope="col">Examples</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div></details>'
    )


def coverage_section(report: ReportInput) -> str:
    coverage = report.ordered_coverage()
    portals = [c for c in coverage if c.kind == "learnupon"]
    idps = [c for c in coverage if c.kind != "learnupon"]
    tables = (_coverage_table("LearnUpon portals", portals) if portals else "") + (
        _coverage_table("Identity providers", idps) if idps else ""
    )
    return (
        '<section id="coverage" aria-labelledby="coverage-h"><h2 id="coverage-h">Coverage: what was read</h2>'
        f'<div class="scroll">{tables}</div>{_quarantine(report)}{_crawl_detail(report)}</section>'
    )
