"""The totals and changes parts of report.html: counts by code and portal as inline SVG bars and tables,
and what changed since the previous run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graph.model import Code, Severity
from graph.reports.html_common import SEVERITY_COLOURS, e, num
from graph.reports.input import CODE_MEANING, ReportInput, item_id


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
        cells = "".join(f'<td class="num">{num(counts.get(sev.value, 0))}</td>' for sev in Severity)
        total = sum(counts.values())
        body.append(
            f'<tr><th scope="row" title="{e(title)}">{label_html}</th>{cells}'
            f'<td class="num total">{num(total)}</td></tr>'
        )
    return (
        f'<table class="matrix"><caption>{e(caption)}</caption><thead><tr><th scope="col">{e(first)}</th>'
        f'{head}<th scope="col" class="num">total</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _code_tiles(report: ReportInput) -> str:
    """One tile per finding code; a withheld code reads n/a with the reason, never 0."""
    summary, withheld = report.summary(), report.withheld()
    tiles = []
    for code in Code:
        if code in withheld:
            tiles.append(
                f'<div class="card withheld" id="tile-{code.value}" title="{e(withheld[code])}">'
                f'<span class="n">n/a</span><span>{code.value} · withheld</span></div>'
            )
        else:
            tiles.append(
                f'<div class="card" id="tile-{code.value}"><span class="n">{summary["by_code"][code.value]:,}'
                f"</span><span>{code.value}</span></div>"
            )
    return f'<div class="cards small codes" aria-label="Findings by code">{"".join(tiles)}</div>'


def totals_section(report: ReportInput) -> str:
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
        f"{_code_tiles(report)}"
        f'<ul class="legend" aria-label="Severity colours">{legend}</ul>'
        '<div class="grid2">'
        f"<figure><figcaption>By finding</figcaption>{code_chart}</figure>"
        f"<figure><figcaption>By portal</figcaption>{portal_chart}</figure></div>"
        f'<div class="grid2"><div class="scroll">{code_matrix}</div>'
        f'<div class="scroll">{portal_matrix}</div></div>'
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


def changes_section(report: ReportInput) -> str:
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
        '<p class="hint">New findings carry a <span class="badge new">new</span> mark in the findings '
        "table.</p>"
        "</section>"
    )
