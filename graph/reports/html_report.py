"""report.html: one self-contained offline page for a reviewer — what to act on first, then the findings,
then the coverage that proves nothing was missed, then totals and changes.

Everything is rendered and escaped on the Python side; the inline script only filters, sorts and counts
rows already in the page, so no finding data ever passes through JavaScript source. A Content Security
Policy carrying the hashes of the one inline style and the one inline script forbids every network fetch and
every other script: a second line of defence behind the escaping. The CSS, script and page skeleton are
package data (`assets/`), inlined here so the report stays one file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from string import Template

from graph.model import Code, Finding, Severity
from graph.reports.html_common import SEVERITY_RANK, asset, csp_hash, dash, e, plural
from graph.reports.html_coverage import coverage_banner, coverage_section
from graph.reports.html_evidence import display_name, evidence_html, evidence_summary
from graph.reports.html_review import headline_note, people_section, review_note, reviewed_section
from graph.reports.html_totals import changes_section, totals_section
from graph.reports.input import NO_PORTAL, ReportInput
from graph.reports.safe_files import write_private

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
# Past this many rows a browser takes many seconds to open the page; the CSV and JSON always have them all.
MAX_ROWS = 5_000
_NUMERIC = {"learnupon_user_id": ' class="num"'}


# --- the first screen -------------------------------------------------------------------------------
def _header(report: ReportInput) -> str:
    run = report.run
    status_class = "ok" if run.status == "complete" else "bad"
    return (
        '<header class="top"><div class="title">'
        f"<h1>{e(report.title)}</h1>"
        f'<p class="meta">Run <strong>#{e(run.id)}</strong> '
        f'<span class="pill {status_class}">{e(run.status)}</span>'
        f" · started <time>{e(run.started_at)}</time> · finished <time>{dash(run.finished_at)}</time></p>"
        "</div></header>"
    )


def _who(people: int, accounts: int, at_least: str) -> str:
    noun = "person" if people == 1 else "people"
    return f'<span class="who">{at_least}{people:,} {noun}, {at_least}{plural(accounts, "account")}</span>'


def _summary(report: ReportInput) -> str:
    """What a reviewer acts on: counts by severity and by person, and whether the coverage holds."""
    reach = report.reach()
    withheld = report.withheld()
    # While a code is withheld every other count is a lower bound: "≥ 0 critical", never a clean "0".
    at_least = "≥ " if withheld else ""
    hint = f' title="lower bound: {e(", ".join(c.value for c in withheld))} withheld"' if withheld else ""
    total, people, accounts = reach["total"]
    cards = [
        f'<div class="card total"{hint}><span class="n">{at_least}{total:,}</span><span>findings</span>'
        f"{_who(people, accounts, at_least)}</div>"
    ]
    for sev in Severity:
        n, people, accounts = reach[sev.value]
        cards.append(
            f'<div class="card sev-{sev.value}"{hint}><span class="n">{at_least}{n:,}</span>'
            f"<span>{sev.value}</span>{_who(people, accounts, at_least)}</div>"
        )
    _, people, accounts = reach["total"]
    lead = (
        f'<p class="reach" id="reach"><strong>{at_least}{people:,} '
        f"{'person' if people == 1 else 'people'}</strong> with {at_least}{plural(accounts, 'account')} "
        "to review, most severe first below.</p>"
        if total
        else '<p class="reach" id="reach">No findings in this run.</p>'
    )
    return (
        '<section id="summary" class="first" aria-labelledby="summary-h">'
        '<h2 id="summary-h">What to act on</h2>'
        f'{lead}<div class="cards sev" id="severity-counts" aria-label="Findings by severity">'
        f"{''.join(cards)}</div>{headline_note(report)}{coverage_banner(report)}</section>"
    )


# --- findings ---------------------------------------------------------------------------------------
def _select(label: str, select_id: str, values: Iterable[str]) -> str:
    options = "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)
    return f'<label>{label} <select id="{select_id}"><option value="">all</option>{options}</select></label>'


def _finding_body(report: ReportInput, f: Finding, new_ids: set[str]) -> str:
    first_seen = report.first_seen.get(f.id) or ""
    name = display_name(f.evidence)
    new = f.id in new_ids
    new_badge = ' <span class="badge new">new</span>' if new else ""
    review_badge, review_line = review_note(report, f.id)
    new_badge += review_badge
    name_html = f'<span class="name">{e(name)}</span>' if name else ""
    lu_id = "" if f.learnupon_user_id is None else str(f.learnupon_user_id)
    person = f" · person <code>{e(f.person)}</code>" if f.person else ""
    cells = (
        f'<td data-sort="{SEVERITY_RANK[f.severity]}"><span class="badge sev-{f.severity.value}">'
        f"{f.severity.value}</span>{new_badge}</td>"
        f"<td><code>{e(f.code.value)}</code></td>"
        f'<td class="acct" data-sort="{e((f.email or "").casefold())}">'
        f'<span class="email">{dash(f.email)}</span>{name_html}</td>'
        f'<td data-sort="{e(f.portal or "")}">{dash(f.portal)}</td>'
        f'<td class="num" data-sort="{e(lu_id)}">{dash(lu_id)}</td>'
        f"<td>{dash(f.user_type)}</td>"
        f"<td>{dash(f.idp)}</td>"
        f'<td><span class="status">{dash(f.idp_status)}</span></td>'
        f'<td class="date" data-sort="{e(first_seen)}"><time title="{e(first_seen)}">{dash(first_seen[:10])}'
        "</time></td>"
    )
    evidence = (
        f'<tr class="ev"><td colspan="{len(COLUMNS)}"><details>'
        '<summary><span class="ev-label">Evidence</span> '
        f"{e(evidence_summary(f.evidence))}</summary>"
        f'<div class="ev-body">{review_line}{evidence_html(dict(f.evidence))}'
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
        f'{capped}<p id="count" class="count" aria-live="polite">{total:,} of {plural(total, "finding")}</p>'
        f'<div class="scroll"><table id="findings-table" class="findings"><thead><tr>{"".join(heads)}</tr>'
        f"</thead>{body}</table></div>"
        f'<p id="no-match" class="empty"{empty_hidden}>{empty_text}</p></section>'
    )


def render_html(report: ReportInput, max_rows: int = MAX_ROWS) -> str:
    """The whole page. At most `max_rows` findings (most severe first) are listed; the totals count all."""
    style, script = asset("report.css"), asset("report.js")
    csp = (
        f"default-src 'none'; style-src {csp_hash(style)}; script-src {csp_hash(script)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    toc = '<a href="#findings">Findings</a>'
    if report.people:
        toc += '<a href="#people">People</a>'
    if report.accepted or report.excluded or report.exclusion_rules:
        toc += '<a href="#accepted">Accepted</a>'
    toc += '<a href="#coverage">Coverage</a><a href="#totals">Totals</a>'
    if report.diff is not None:
        toc += '<a href="#changes">Changes</a>'
    sections = (
        _summary(report),
        _findings(report, max_rows),
        people_section(report),
        reviewed_section(report),
        coverage_section(report),
        totals_section(report),
        changes_section(report),
    )
    return Template(asset("page.html")).substitute(
        csp=e(csp),
        title=e(report.title),
        run_id=e(report.run.id),
        style=style,
        script_block=f"<script>{script}</script>",
        skip='<a class="skip" href="#findings">Skip to findings</a>',
        header=_header(report),
        toc=toc,
        main="\n".join(s for s in sections if s),
        footer=FOOTER.format(run_id=e(report.run.id)),
    )


FOOTER = (
    "Generated by idgraph from snapshot run #{run_id}. This file is self-contained: it loads\nnothing from "
    "the network. It names people and their access: keep it where only the reviewers can read\nit."
)


def write_html(path: Path | str, report: ReportInput) -> Path:
    return write_private(path, render_html(report))
