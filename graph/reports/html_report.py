"""report.html: one self-contained offline page for a reviewer — coverage first, then totals, then findings.

Everything is rendered and escaped here, on the Python side; the inline script only filters, sorts and counts
rows already in the page, so no finding data ever passes through JavaScript source. A Content Security
Policy carrying the hashes of the one inline style and the one inline script forbids every network fetch and
every other script: a second line of defence behind the escaping.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from crawler.coverage import SourceCoverage
from graph.model import Code, Finding, Severity
from graph.reports.input import CODE_MEANING, NO_PORTAL, ReportInput, affects, evidence_json, item_id
from graph.reports.safe_files import write_private

SEVERITY_COLOURS = {
    Severity.CRITICAL: "#7f1d1d",
    Severity.HIGH: "#dc2626",
    Severity.MEDIUM: "#f59e0b",
    Severity.LOW: "#94a3b8",
}
SEVERITY_RANK = {sev: rank for rank, sev in enumerate(Severity)}

# (key, header) of the findings table; the key is the th's data-col, used by the script and the tests.
COLUMNS = (
    ("severity", "Severity"),
    ("finding", "Finding"),
    ("email", "Account"),
    ("portal", "Portal"),
    ("learnupon_user_id", "LU user id"),
    ("user_type", "User type"),
    ("idp", "IdP"),
    ("idp_status", "IdP status"),
    ("first_seen", "First seen"),
)
_MAX_DEPTH = 6
# Past this many rows a browser takes many seconds to open the page; the CSV and JSON always have them all.
MAX_ROWS = 5_000
_NAME_KEYS = ("name", "display_name", "full_name", "first_name", "last_name")
_NONE = '<span class="none">—</span>'
_NUMERIC = {"learnupon_user_id": ' class="num"'}
# Fixed column widths, so the portal and IdP coverage tables line up one above the other.
_COVERAGE_COLS = (
    '<colgroup><col class="c-src"><col class="c-kind"><col class="c-ok"><col class="c-err"><col class="c-n">'
    '<col class="c-n"><col class="c-n"><col class="c-q"><col class="c-notes"></colgroup>'
)


def e(value: Any) -> str:
    """Escape any value for HTML text or a double-quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _num(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _dash(value: Any) -> str:
    return _NONE if value in (None, "") else e(value)


def _humanise(key: Any) -> str:
    return str(key).replace("_", " ")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


# --- evidence ---------------------------------------------------------------------------------------
def _evidence_html(value: Any, depth: int = 0) -> str:
    """Any JSON-like evidence as readable HTML: dicts as key/value lists, lists of dicts as small tables."""
    if depth > _MAX_DEPTH:
        return "<code>" + e(evidence_json(value) if isinstance(value, Mapping) else value) + "</code>"
    if isinstance(value, Mapping):
        if not value:
            return _NONE
        items = "".join(
            f"<dt>{e(_humanise(k))}</dt><dd>{_evidence_html(v, depth + 1)}</dd>" for k, v in value.items()
        )
        return f'<dl class="kv">{items}</dl>'
    if isinstance(value, list | tuple | set | frozenset):
        values = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if not values:
            return _NONE
        if all(isinstance(v, Mapping) for v in values):
            keys: list[Any] = []
            for v in values:
                keys += [k for k in v if k not in keys]
            head = "".join(f'<th scope="col">{e(_humanise(k))}</th>' for k in keys)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_evidence_html(v.get(k), depth + 1)}</td>" for k in keys) + "</tr>"
                for v in values
            )
            return f'<table class="ev-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        if all(not isinstance(v, Mapping | list | tuple) for v in values):
            return '<ul class="chips">' + "".join(f"<li>{_scalar(v)}</li>" for v in values) + "</ul>"
        return "<ol>" + "".join(f"<li>{_evidence_html(v, depth + 1)}</li>" for v in values) + "</ol>"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None or value == "":
        return _NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "isoformat"):
        value = value.isoformat()
    return e(value)


def _evidence_summary(evidence: Mapping[str, Any]) -> str:
    """A one-line preview of the evidence, readable before the reviewer opens it (plain text, unescaped)."""
    parts: list[str] = []
    for key, value in evidence.items():
        if key in _NAME_KEYS:  # already shown under the email
            continue
        if len(parts) == 5:
            parts.append("…")
            break
        label = _humanise(key)
        if isinstance(value, list | tuple | set | frozenset):
            parts.append(f"{label}: {len(value)}")
        elif isinstance(value, Mapping):
            parts.append(label)
        elif value not in (None, ""):
            text = str(value)
            parts.append(f"{label}: {text if len(text) <= 40 else text[:39] + '…'}")
    return " · ".join(parts) if parts else "none recorded"


def _display_name(evidence: Mapping[str, Any]) -> str | None:
    for key in _NAME_KEYS[:3]:
        value = evidence.get(key)
        if isinstance(value, str) and value.strip():
            return value
    joined = " ".join(str(p) for p in (evidence.get("first_name"), evidence.get("last_name")) if p)
    return joined or None


# --- header and coverage ----------------------------------------------------------------------------
def _header(report: ReportInput) -> str:
    run, summary = report.run, report.summary()
    complete = sum(1 for c in report.coverage if c.complete)
    sources = len(report.coverage)
    sources_class = "ok" if complete == sources and sources > 0 else "bad"
    status_class = "ok" if run.status == "complete" else "bad"
    withheld = report.withheld()
    # While a code is withheld every other count is a lower bound: "≥ 0 critical", never a clean "0".
    at_least = "≥ " if withheld else ""
    hint = f' title="lower bound: {e(", ".join(c.value for c in withheld))} withheld"' if withheld else ""
    cards = [
        f'<div class="card total"{hint}><span class="n">{at_least}{summary["total"]:,}</span>'
        "<span>findings</span></div>"
    ]
    for sev in Severity:
        n = summary["by_severity"][sev.value]
        cards.append(
            f'<div class="card sev-{sev.value}"{hint}><span class="n">{at_least}{n:,}</span>'
            f"<span>{sev.value}</span></div>"
        )
    cards.append(
        f'<div class="card {sources_class}"><span class="n">{complete}/{sources}</span>'
        "<span>sources complete</span></div>"
    )
    code_cards = []
    for code in Code:
        if code in withheld:
            code_cards.append(
                f'<div class="card withheld" id="tile-{code.value}" title="{e(withheld[code])}">'
                f'<span class="n">n/a</span><span>{code.value} · withheld</span></div>'
            )
        else:
            n = summary["by_code"][code.value]
            code_cards.append(
                f'<div class="card" id="tile-{code.value}"><span class="n">{n:,}</span>'
                f"<span>{code.value}</span></div>"
            )
    return (
        '<header class="top"><div class="title">'
        f"<h1>{e(report.title)}</h1>"
        f'<p class="meta">Run <strong>#{e(run.id)}</strong> '
        f'<span class="pill {status_class}">{e(run.status)}</span>'
        f" · started <time>{e(run.started_at)}</time> · finished <time>{_dash(run.finished_at)}</time></p>"
        f'</div><div class="cards">{"".join(cards)}</div>'
        f'<div class="cards small codes" aria-label="Findings by code">{"".join(code_cards)}</div></header>'
    )


def _coverage_table(caption: str, rows: list[SourceCoverage]) -> str:
    body = []
    for c in rows:
        if c.complete:
            row_class, state = "", '<span class="state ok">✓ complete</span>'
        else:
            row_class, state = ' class="incomplete"', '<span class="state bad">✗ incomplete</span>'
        notes = "".join(f"<li>{e(n)}</li>" for n in c.notes or [])
        states = "".join(
            f'<li class="coll {e(col.state)}"><strong>{e(col.name)}</strong> {e(col.state)}'
            + (f": {e(col.reason)} — <em>{e(affects(col.name))}</em>" if not col.complete else "")
            + (f" (via {e(col.via)})" if col.via else "")
            + "</li>"
            for col in c.collections
        )
        detail = f'<ul class="collections">{states}</ul>' if states else _dash(c.error)
        notes_html = f'<ul class="notes">{notes}</ul>' if notes else _NONE
        body.append(
            f'<tr{row_class}><th scope="row">{e(c.source)}</th><td>{e(c.kind)}</td><td>{state}</td>'
            f'<td class="err">{detail}</td><td class="num">{_num(c.requests)}</td>'
            f'<td class="num">{_num(c.throttled)}</td><td class="num">{_num(c.records)}</td>'
            f'<td class="num">{_num(c.quarantined)}</td><td>{notes_html}</td></tr>'
        )
    return (
        f'<table class="coverage"><caption>{e(caption)}</caption>{_COVERAGE_COLS}<thead><tr>'
        '<th scope="col">Source</th><th scope="col">Kind</th><th scope="col">Complete</th>'
        '<th scope="col">Collections</th><th scope="col" class="num">Requests</th>'
        '<th scope="col" class="num" title="responses with HTTP 429 Too Many Requests">429s</th>'
        '<th scope="col" class="num">Records</th><th scope="col" class="num">Quarantined</th>'
        f'<th scope="col">Notes</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _coverage_banner(report: ReportInput) -> str:
    coverage, incomplete, unavailable = report.coverage, report.incomplete(), report.unavailable
    gaps = report.recall_gaps
    if not coverage:
        return (
            '<div class="banner bad" role="alert" id="coverage-banner"><p><strong>No coverage recorded for '
            "this run.</strong> Nothing here proves that any source was read completely.</p></div>"
        )
    if not incomplete and not unavailable and not gaps:
        return (
            f'<div class="banner ok" role="status" id="coverage-banner"><p><strong>All {len(coverage)} '
            "sources completed.</strong> Every verdict was evaluated against complete listings.</p></div>"
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
                f'<tr><th scope="row">{e(cov.source)}</th><td>{_NONE} (reasons not recorded)</td>'
                f'<td class="num">{_num(summary.count)}</td><td>{_NONE}</td></tr>'
            )
        for reason in reasons:
            examples = ", ".join(f"<code>{e(x)}</code>" for x in reason.examples) or _NONE
            rows.append(
                f'<tr><th scope="row">{e(cov.source)}</th><td class="reason">{e(reason.reason)}</td>'
                f'<td class="num">{_num(reason.count)}</td><td class="examples">{examples}</td></tr>'
            )
    return (
        '<details id="quarantine" class="quarantine" open><summary><strong>Quarantined records: '
        f"{_plural(total, 'record')} in {_plural(len(sources), 'source')}</strong> — read but not "
        "understood, never guessed; fix the data or the config and crawl again</summary>"
        '<div class="scroll"><table class="quarantine"><thead><tr><th scope="col">Source</th>'
        '<th scope="col">Reason</th><th scope="col" class="num">Records</th>'
        f'<th scope="col">Examples</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div></details>'
    )


def _coverage(report: ReportInput) -> str:
    coverage = report.ordered_coverage()
    portals = [c for c in coverage if c.kind == "learnupon"]
    idps = [c for c in coverage if c.kind != "learnupon"]
    tables = (_coverage_table("LearnUpon portals", portals) if portals else "") + (
        _coverage_table("Identity providers", idps) if idps else ""
    )
    return (
        '<section id="coverage" aria-labelledby="coverage-h"><h2 id="coverage-h">Coverage</h2>'
        f'{_coverage_banner(report)}<div class="scroll">{tables}</div>{_quarantine(report)}</section>'
    )


# --- totals -----------------------------------------------------------------------------------------
def _bar_chart(chart_id: str, title: str, rows: list[tuple[str, Mapping[str, int]]], mono: bool) -> str:
    """A horizontal bar per row, stacked by severity, as inline SVG (no script, no fonts to fetch)."""
    label_w, bar_w, row_h, pad = 180, 360, 28, 4
    width = label_w + bar_w + 50
    height = pad * 2 + row_h * max(len(rows), 1)
    peak = max((sum(c.values()) for _, c in rows), default=0) or 1
    label_class = "lbl mono" if mono else "lbl"
    parts = [
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="{chart_id}-t" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-t">{e(title)}</title>'
    ]
    for i, (label, counts) in enumerate(rows):
        y = pad + i * row_h
        mid = y + row_h / 2
        shown = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f'<text x="{label_w - 10}" y="{mid:.1f}" text-anchor="end" dominant-baseline="central" '
            f'class="{label_class}"><title>{e(label)}</title>{e(shown)}</text>'
            f'<rect x="{label_w}" y="{y + 5}" width="{bar_w}" height="{row_h - 10}" rx="3" class="track"/>'
        )
        x = float(label_w)
        for sev in Severity:
            n = counts.get(sev.value, 0)
            if n:
                w = n / peak * bar_w
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}" '
                    f'fill="{SEVERITY_COLOURS[sev]}"><title>{e(label)} — {sev.value}: {n}</title></rect>'
                )
                x += w
        parts.append(
            f'<text x="{x + 8:.1f}" y="{mid:.1f}" dominant-baseline="central" class="val">'
            f"{sum(counts.values()):,}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _matrix(
    caption: str,
    first: str,
    rows: Iterable[tuple[str, str, Mapping[str, int]]],
    withheld: Mapping[str, str] | None = None,
) -> str:
    """Counts by severity per row; a row in `withheld` (its key is the row's title) reads n/a, never 0."""
    head = "".join(f'<th scope="col" class="num">{sev.value}</th>' for sev in Severity)
    body = []
    for label_html, title, counts in rows:
        why = (withheld or {}).get(title)
        if why is not None:
            cells = '<td class="num na">n/a</td>' * len(Severity)
            body.append(
                f'<tr class="withheld"><th scope="row" title="{e(title)}">{label_html}</th>{cells}'
                f'<td class="num total na">n/a — withheld: {e(why)}</td></tr>'
            )
            continue
        cells = "".join(f'<td class="num">{_num(counts.get(sev.value, 0))}</td>' for sev in Severity)
        total = sum(counts.values())
        body.append(
            f'<tr><th scope="row" title="{e(title)}">{label_html}</th>{cells}'
            f'<td class="num total">{_num(total)}</td></tr>'
        )
    return (
        f'<table class="matrix"><caption>{e(caption)}</caption><thead><tr><th scope="col">{e(first)}</th>'
        f'{head}<th scope="col" class="num">total</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _totals(report: ReportInput) -> str:
    by_code = report.by_code_and_severity()
    by_portal = report.by_portal_and_severity()
    legend = "".join(
        '<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2" '
        f'fill="{SEVERITY_COLOURS[s]}"/></svg>{s.value}</li>'
        for s in Severity
    )
    code_chart = _bar_chart(
        "chart-code", "Findings by code, stacked by severity", list(by_code.items()), True
    )
    portal_chart = _bar_chart(
        "chart-portal", "Findings by portal, stacked by severity", list(by_portal.items()), False
    )
    code_rows = [(f"<code>{e(c)}</code>", CODE_MEANING.get(Code(c), ""), n) for c, n in by_code.items()]
    withheld = {CODE_MEANING[code]: reason for code, reason in report.withheld().items()}
    code_matrix = _matrix("Findings by code", "finding", code_rows, withheld)
    portal_rows = [(e(p), p, n) for p, n in by_portal.items()]
    portal_matrix = _matrix("Findings by portal", "portal", portal_rows) if portal_rows else ""
    meanings = "".join(f"<dt><code>{c.value}</code></dt><dd>{e(CODE_MEANING[c])}</dd>" for c in Code)
    extras = []
    if report.collisions is not None:
        extras.append(
            f"<li><strong>{report.collisions:,}</strong> identity collisions (one address claimed by more "
            "than one IdP identity)</li>"
        )
    if report.unmatchable is not None:
        extras.append(
            f"<li><strong>{report.unmatchable:,}</strong> LearnUpon accounts without a usable email "
            "(they cannot be matched to any IdP)</li>"
        )
    extra_html = f'<ul class="extras">{"".join(extras)}</ul>' if extras else ""
    return (
        '<section id="totals" aria-labelledby="totals-h"><h2 id="totals-h">Totals</h2>'
        f'<ul class="legend" aria-label="Severity colours">{legend}</ul>'
        '<div class="grid2">'
        f"<figure><figcaption>By finding</figcaption>{code_chart}</figure>"
        f"<figure><figcaption>By portal</figcaption>{portal_chart}</figure></div>"
        f'<div class="grid2">{code_matrix}{portal_matrix}</div>'
        f'<dl class="meanings">{meanings}</dl>{extra_html}</section>'
    )


# --- changes ----------------------------------------------------------------------------------------
def _diff_items(items: list[Any]) -> str:
    lis = []
    for item in items:
        detail = ""
        if isinstance(item, Mapping):
            fields = [item.get(k) for k in ("finding", "code", "email", "portal")]
            detail = " " + " · ".join(e(v) for v in fields if v not in (None, ""))
        lis.append(f"<li><code>{e(item_id(item))}</code>{detail}</li>")
    return f'<ul class="ids">{"".join(lis)}</ul>'


def _changes(report: ReportInput) -> str:
    diff = report.diff
    if diff is None:
        return ""
    since = f"run #{e(diff.previous_run_id)}" if diff.previous_run_id is not None else "the previous run"
    blocks = []
    for label, items, note in (
        ("Resolved", diff.resolved, "no longer found, and every fact they rested on was read again"),
        (
            "Not re-checked",
            diff.not_rechecked,
            "a fact they rested on was not read again this run: neither fixed nor confirmed",
        ),
    ):
        if items:
            blocks.append(
                f"<details><summary>{label}: {len(items):,} — {note}</summary>{_diff_items(items)}</details>"
            )
    return (
        f'<section id="changes" aria-labelledby="changes-h"><h2 id="changes-h">Changes since {since}</h2>'
        '<div class="cards small">'
        f'<div class="card bad"><span class="n">{len(diff.new):,}</span><span>new</span></div>'
        f'<div class="card ok"><span class="n">{len(diff.resolved):,}</span><span>resolved</span></div>'
        f'<div class="card warn"><span class="n">{len(diff.not_rechecked):,}</span>'
        "<span>not re-checked</span></div>"
        f"</div>{''.join(blocks)}"
        '<p class="hint">New findings carry a <span class="badge new">new</span> mark in the table below.</p>'
        "</section>"
    )


# --- findings ---------------------------------------------------------------------------------------
def _select(label: str, select_id: str, values: Iterable[str]) -> str:
    options = "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)
    return f'<label>{label} <select id="{select_id}"><option value="">all</option>{options}</select></label>'


def _finding_body(report: ReportInput, f: Finding, new_ids: set[str]) -> str:
    first_seen = report.first_seen.get(f.id) or ""
    name = _display_name(f.evidence)
    new = f.id in new_ids
    new_badge = ' <span class="badge new">new</span>' if new else ""
    name_html = f'<span class="name">{e(name)}</span>' if name else ""
    lu_id = "" if f.learnupon_user_id is None else str(f.learnupon_user_id)
    person = f" · person <code>{e(f.person)}</code>" if f.person else ""
    cells = (
        f'<td data-sort="{SEVERITY_RANK[f.severity]}"><span class="badge sev-{f.severity.value}">'
        f"{f.severity.value}</span>{new_badge}</td>"
        f"<td><code>{e(f.code.value)}</code></td>"
        f'<td class="acct" data-sort="{e((f.email or "").casefold())}">'
        f'<span class="email">{_dash(f.email)}</span>{name_html}</td>'
        f'<td data-sort="{e(f.portal or "")}">{_dash(f.portal)}</td>'
        f'<td class="num" data-sort="{e(lu_id)}">{_dash(lu_id)}</td>'
        f"<td>{_dash(f.user_type)}</td>"
        f"<td>{_dash(f.idp)}</td>"
        f'<td><span class="status">{_dash(f.idp_status)}</span></td>'
        f'<td class="date" data-sort="{e(first_seen)}"><time title="{e(first_seen)}">{_dash(first_seen[:10])}'
        "</time></td>"
    )
    evidence = (
        f'<tr class="ev"><td colspan="{len(COLUMNS)}"><details>'
        '<summary><span class="ev-label">Evidence</span> '
        f"{e(_evidence_summary(f.evidence))}</summary>"
        f'<div class="ev-body">{_evidence_html(dict(f.evidence))}'
        f'<p class="fid">finding id <code>{e(f.id)}</code>{person}</p></div></details></td></tr>'
    )
    return (
        f'<tbody class="finding" data-id="{e(f.id)}" data-code="{e(f.code.value)}" '
        f'data-severity="{e(f.severity.value)}" data-portal="{e(f.portal or NO_PORTAL)}" '
        f'data-new="{1 if new else 0}"><tr class="main">{cells}</tr>{evidence}</tbody>'
    )


def _findings(report: ReportInput, max_rows: int) -> str:
    everything = report.ordered()
    ordered = everything[:max_rows]
    total = len(ordered)
    capped = ""
    if len(everything) > max_rows:
        capped = (
            f'<p class="banner bad" id="capped">This page lists the {total:,} most severe of '
            f"{len(everything):,} findings, to stay quick to open; the totals above count all of them, and "
            "<code>findings.csv</code> / <code>findings.json</code> list every one.</p>"
        )
    new_ids = report.diff.new_ids() if report.diff is not None else set()
    codes = [c.value for c in Code if any(f.code == c for f in ordered)]
    sevs = [s.value for s in Severity if any(f.severity == s for f in ordered)]
    portals = sorted({f.portal or NO_PORTAL for f in ordered})
    heads = []
    for key, label in COLUMNS:
        sort = ' aria-sort="ascending"' if key == "severity" else ""
        heads.append(
            f'<th scope="col" data-col="{key}"{sort}{_NUMERIC.get(key, "")}><button type="button">{label}'
            '<span class="arrow" aria-hidden="true"></span></button></th>'
        )
    new_toggle = (
        '<label class="check"><input type="checkbox" id="filter-new"> new since the previous run</label>'
        if report.diff is not None
        else ""
    )
    body = "".join(_finding_body(report, f, new_ids) for f in ordered)
    empty_text = "No findings match the filter." if total else "No findings in this run."
    empty_hidden = " hidden" if total else ""
    return (
        '<section id="findings" aria-labelledby="findings-h"><h2 id="findings-h">Findings</h2>'
        '<form class="controls" role="search" aria-label="Filter findings" id="controls">'
        '<label class="grow">Filter <input type="search" id="filter" '
        'placeholder="email, name, portal, group, id…" '
        'autocomplete="off" spellcheck="false"></label>'
        f"{_select('Finding', 'filter-code', codes)}{_select('Severity', 'filter-severity', sevs)}"
        f"{_select('Portal', 'filter-portal', portals)}"
        f'{new_toggle}<button type="reset" id="reset">Reset</button></form>'
        f'{capped}<p id="count" class="count" aria-live="polite">{total:,} of {_plural(total, "finding")}</p>'
        f'<div class="scroll"><table id="findings-table" class="findings"><thead><tr>{"".join(heads)}</tr>'
        f"</thead>{body}</table></div>"
        f'<p id="no-match" class="empty"{empty_hidden}>{empty_text}</p></section>'
    )


def render_html(report: ReportInput, max_rows: int = MAX_ROWS) -> str:
    """The whole page. At most `max_rows` findings (most severe first) are listed; the totals count all."""
    csp = (
        f"default-src 'none'; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    changes_link = '<a href="#changes">Changes</a>' if report.diff is not None else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{e(csp)}">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="idgraph">
<title>{e(report.title)} — run {e(report.run.id)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<a class="skip" href="#findings">Skip to findings</a>
{_header(report)}
<nav class="toc" aria-label="Sections"><a href="#coverage">Coverage</a><a href="#totals">Totals</a>\
{changes_link}<a href="#findings">Findings</a></nav>
<main>
{_coverage(report)}
{_totals(report)}
{_changes(report)}
{_findings(report, max_rows)}
</main>
<footer>Generated by idgraph from snapshot run #{e(report.run.id)}. This file is self-contained: it loads
nothing from the network. It names people and their access: keep it where only the reviewers can read
it.</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_html(path: Path | str, report: ReportInput) -> Path:
    return write_private(path, render_html(report))


STYLE = """
:root{--bg:#f4f5f7;--fg:#1d2939;--muted:#5d6b7e;--line:#e1e5ea;--card:#fff;--ok:#067647;--ok-bg:#ecfdf3;
--ok-line:#abefc6;--bad:#b42318;--bad-bg:#fef3f2;--bad-line:#fecdca;--warn:#b54708;--warn-bg:#fffaeb;
--warn-line:#fedf89;--accent:#1d4ed8}
*{box-sizing:border-box}
[hidden]{display:none!important}
html{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);
background:var(--bg)}
body{margin:0 auto;max-width:1360px;padding:0 24px 32px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
font-size:.9em}
.skip{position:absolute;left:-9999px}
.skip:focus{left:8px;top:8px;background:#fff;padding:6px 10px;z-index:9}
header.top{display:flex;flex-wrap:wrap;gap:14px 32px;align-items:flex-end;justify-content:space-between;
padding:22px 0 14px}
h1{font-size:22px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:16px;margin:0 0 12px}
.meta{margin:0;color:var(--muted)}
.pill{display:inline-block;padding:0 8px;border-radius:999px;font-size:11px;font-weight:700;
text-transform:uppercase;letter-spacing:.04em;vertical-align:1px}
.pill.ok{background:var(--ok-bg);color:var(--ok)}
.pill.bad{background:var(--bad-bg);color:var(--bad)}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:7px 14px;min-width:84px;
display:flex;flex-direction:column}
.card .n{font-size:21px;font-weight:700;line-height:1.15;font-variant-numeric:tabular-nums}
.card span:last-child{color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.05em}
.card.sev-critical .n{color:#7f1d1d}
.card.sev-high .n{color:#dc2626}
.card.sev-medium .n{color:#b45309}
.card.sev-low .n{color:#475467}
.card.ok{border-color:var(--ok-line);background:var(--ok-bg)}
.card.withheld{border-color:var(--warn-line);background:var(--warn-bg)}.card.withheld .n{color:var(--warn)}
.cards.codes{margin-top:8px}.na{color:var(--warn)}
ul.collections{margin:0;padding-left:16px}li.coll.incomplete,li.coll.unavailable{color:var(--bad)}
.card.ok .n{color:var(--ok)}
.card.bad{border-color:var(--bad-line);background:var(--bad-bg)}
.card.bad .n{color:var(--bad)}
.card.warn{border-color:var(--warn-line);background:var(--warn-bg)}
.card.warn .n{color:var(--warn)}
.cards.small{margin:0 0 10px}
nav.toc{display:flex;gap:18px;padding:8px 2px 12px;font-size:13px;border-top:1px solid var(--line)}
nav.toc a{color:var(--accent);text-decoration:none}
nav.toc a:hover{text-decoration:underline}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;
margin:0 0 16px;
box-shadow:0 1px 2px rgba(16,24,40,.04)}
.banner{border-radius:8px;padding:8px 14px;margin:0 0 10px;border:1px solid}
.banner p{margin:4px 0}
.banner ul{margin:2px 0 6px;padding-left:20px}
.banner.ok{background:var(--ok-bg);border-color:var(--ok-line);color:#054f31}
.banner.bad{background:var(--bad-bg);border-color:var(--bad-line);color:#7a271a;
border-left:4px solid var(--bad)}
.banner code{background:rgba(255,255,255,.6);padding:0 4px;border-radius:3px}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:700;padding:10px 0 6px;font-size:11px;color:var(--muted);
text-transform:uppercase;letter-spacing:.06em}
th,td{padding:6px 10px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
thead th{font-size:12px;color:var(--muted);font-weight:600;background:#f9fafb;white-space:nowrap}
tbody th{font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600;white-space:nowrap}
.state.ok{color:var(--ok)}
.state.bad{color:var(--bad)}
tr.incomplete{background:var(--bad-bg)}
table.coverage{table-layout:fixed;min-width:920px}
table.findings{min-width:960px}
col.c-src{width:9%}
col.c-kind{width:8%}
col.c-ok{width:11%}
col.c-err{width:21%}
col.c-n{width:7%}
col.c-q{width:8%}
col.c-notes{width:22%}
td.date{white-space:nowrap}
details.quarantine{margin:12px 0 0}
details.quarantine[open]>summary{color:var(--warn)}
table.quarantine{margin:6px 0 0}
table.quarantine td.reason{overflow-wrap:anywhere}
tbody.finding tr.main td:first-child{white-space:nowrap}
table.findings th.num button{text-align:right}
td.err{color:#912018;overflow-wrap:anywhere}
ul.notes{margin:0;padding-left:16px;color:var(--muted)}
.none{color:#98a2b3}
.scroll{overflow-x:auto}
.legend{display:flex;gap:16px;list-style:none;padding:0;margin:0 0 6px;font-size:12px;color:var(--muted)}
.legend li{display:flex;align-items:center;gap:5px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:8px 32px;align-items:start}
figure{margin:0}
figcaption{font-weight:600;font-size:13px;margin:6px 0 0}
svg.chart{max-width:100%;height:auto;display:block}
svg .lbl{font-size:12px;fill:#344054}
svg .mono{font-family:ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:11.5px}
svg .val{font-size:12px;font-weight:700;fill:#344054}
svg .track{fill:#f2f4f7}
table.matrix td.total{font-weight:700}
dl.meanings{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:12.5px;
margin:14px 0 0}
dl.meanings dd{margin:0;color:var(--muted)}
ul.extras{margin:10px 0 0;padding-left:18px;color:var(--muted)}
ul.ids{columns:3 18em;font-size:12.5px}
.hint{color:var(--muted);font-size:12.5px;margin:8px 0 0}
.controls{display:flex;flex-wrap:wrap;gap:10px 14px;align-items:flex-end;margin:0 0 6px;padding:10px 12px;
background:#f9fafb;border:1px solid var(--line);border-radius:8px}
.controls label{display:flex;flex-direction:column;font-size:11px;font-weight:600;color:var(--muted);
gap:3px;
text-transform:uppercase;letter-spacing:.04em}
.controls label.grow{flex:1 1 280px}
.controls label.check{flex-direction:row;align-items:center;gap:6px;padding-bottom:8px;text-transform:none;
font-size:13px;letter-spacing:0}
input[type=search],select{font:inherit;font-size:13.5px;padding:6px 8px;border:1px solid #c8ced6;
border-radius:6px;
background:#fff;color:var(--fg);text-transform:none;letter-spacing:0}
#reset{font:inherit;font-size:13px;padding:6px 14px;border:1px solid #c8ced6;border-radius:6px;
background:#fff;
cursor:pointer;color:var(--fg)}
#reset:hover{background:#f2f4f7}
:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
.count{margin:8px 2px;font-weight:600;color:var(--muted)}
table.findings thead th{padding:0;border-bottom:2px solid var(--line)}
table.findings thead th button{all:unset;box-sizing:border-box;display:block;width:100%;padding:7px 10px;
cursor:pointer}
table.findings thead th button:focus-visible{outline:2px solid var(--accent);outline-offset:-2px}
table.findings thead th button:hover{color:var(--fg)}
table.findings thead th[aria-sort]{color:var(--fg)}
th[aria-sort=ascending] .arrow::after{content:" ▲";font-size:9px}
th[aria-sort=descending] .arrow::after{content:" ▼";font-size:9px}
tbody.finding tr.main td{border-bottom:0;padding-top:8px;padding-bottom:2px}
tbody.finding tr.ev td{padding-top:0;padding-bottom:7px}
tbody.finding:hover{background:#fafbfc}
.acct{min-width:220px}
.acct .email{display:block;overflow-wrap:anywhere;font-weight:500}
.acct .name{display:block;color:var(--muted);font-size:12px}
.badge{display:inline-block;padding:1px 7px;border-radius:4px;font-size:11px;font-weight:700;
text-transform:uppercase;
letter-spacing:.04em;white-space:nowrap}
.badge.sev-critical{background:#7f1d1d;color:#fff}
.badge.sev-high{background:#dc2626;color:#fff}
.badge.sev-medium{background:#fef0c7;color:#93370d}
.badge.sev-low{background:#eaecf0;color:#344054}
.badge.new{background:#dbeafe;color:#1e40af}
.status{font-weight:500}
details summary{cursor:pointer;color:var(--muted);font-size:12px;overflow-wrap:anywhere}
.ev-label{font-weight:600;color:var(--accent);margin-right:4px}
.ev-body{margin:6px 0 2px;padding:10px 12px;background:#f9fafb;border:1px solid var(--line);
border-radius:6px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0;font-size:12.5px}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;overflow-wrap:anywhere}
table.ev-table{width:auto;font-size:12px;background:#fff;border:1px solid var(--line)}
table.ev-table th,table.ev-table td{padding:3px 8px}
ul.chips{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:4px}
ul.chips li{background:#eef2f6;border-radius:4px;padding:0 6px}
.fid{margin:8px 0 0;font-size:11.5px;color:var(--muted)}
.empty{color:var(--muted);padding:10px 2px}
footer{color:var(--muted);font-size:12px;margin-top:18px}
@media print{
html{background:#fff;font-size:10.5px}
body{max-width:none;padding:0}
section{border:0;box-shadow:none;padding:0;margin:0 0 14px}
.controls,nav.toc,.skip,.arrow{display:none}
tbody.finding{break-inside:avoid}
thead{display:table-header-group}
.badge,.card,.banner,tr.incomplete,svg{print-color-adjust:exact;-webkit-print-color-adjust:exact}
.scroll{overflow:visible}
table.coverage,table.findings{min-width:0}
.grid2{grid-template-columns:1fr 1fr}
}
"""

SCRIPT = """
(() => {
  "use strict";
  const table = document.getElementById("findings-table");
  const form = document.getElementById("controls");
  if (!table || !form) return;
  const byId = (id) => document.getElementById(id);
  const bodies = Array.from(table.tBodies);
  const text = new Map(bodies.map((b) => [b, b.textContent.toLocaleLowerCase()]));
  const filter = byId("filter");
  const selects = [["code", byId("filter-code")], ["severity", byId("filter-severity")],
                   ["portal", byId("filter-portal")]];
  const newOnly = byId("filter-new");
  const count = byId("count");
  const noMatch = byId("no-match");
  const total = bodies.length;

  function apply() {
    const terms = filter.value.toLocaleLowerCase().split(/\\s+/).filter(Boolean);
    let shown = 0;
    for (const body of bodies) {
      let visible = terms.every((t) => text.get(body).includes(t));
      for (const [key, select] of selects) {
        if (visible && select.value && body.dataset[key] !== select.value) visible = false;
      }
      if (visible && newOnly && newOnly.checked && body.dataset.new !== "1") visible = false;
      body.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = `${shown.toLocaleString("en")} of ${total.toLocaleString("en")} finding` +
      (total === 1 ? "" : "s");
    noMatch.hidden = shown !== 0;
  }

  const headers = Array.from(table.tHead.rows[0].cells);
  const collator = new Intl.Collator("en", {numeric: true, sensitivity: "base"});
  const sortKey = (body, col) => {
    const cell = body.rows[0].cells[col];
    return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  };
  function sortBy(col, direction) {
    const sign = direction === "ascending" ? 1 : -1;
    // Ties keep their current order, so sorting by one column then another sorts by both.
    const position = new Map(Array.from(table.tBodies).map((b, i) => [b, i]));
    const sorted = bodies.slice().sort((a, b) => {
      const ka = sortKey(a, col), kb = sortKey(b, col);
      if (ka === "" && kb !== "") return 1;   // blanks last, whichever the direction
      if (kb === "" && ka !== "") return -1;
      return sign * collator.compare(ka, kb) || position.get(a) - position.get(b);
    });
    table.append(...sorted);
    headers.forEach((th, i) => {
      if (i === col) th.setAttribute("aria-sort", direction); else th.removeAttribute("aria-sort");
    });
  }
  headers.forEach((th, col) => {
    const button = th.querySelector("button");
    if (!button) return;
    button.addEventListener("click", () => {
      const current = th.getAttribute("aria-sort");
      sortBy(col, current === "ascending" ? "descending" : "ascending");
    });
  });

  filter.addEventListener("input", apply);
  for (const [, select] of selects) select.addEventListener("change", apply);
  if (newOnly) newOnly.addEventListener("change", apply);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("reset", () => setTimeout(apply, 0));

  // Printing shows every finding's evidence; closing again afterwards restores what the reader had open.
  let opened = [];
  window.addEventListener("beforeprint", () => {
    opened = Array.from(document.querySelectorAll("details:not([open])"));
    opened.forEach((d) => { d.open = true; });
  });
  window.addEventListener("afterprint", () => { opened.forEach((d) => { d.open = false; }); opened = []; });

  apply();
})();
"""
