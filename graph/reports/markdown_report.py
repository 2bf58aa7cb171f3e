"""report.md: a summary to paste into a ticket — what to act on (counts by severity and person, coverage in
one line when complete), coverage, totals, then findings grouped by code."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from graph.model import Code, Finding
from graph.reports.input import CODE_MEANING, ReportInput, collections_line, item_id
from graph.reports.safe_files import write_private

MAX_ROWS_PER_CODE = 200

# Characters that would end a table cell, start markup, or open raw HTML in a ticket renderer.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")
_NEWLINES = re.compile(r"[\r\n\u2028\u2029]+")


class Verbatim(str):
    """Trusted text set in a code span as it is (finding codes, ids): never user data."""


def md_cell(value: Any) -> str:
    """One table cell: newlines become spaces, `|` and markdown/HTML syntax are backslash-escaped."""
    if isinstance(value, Verbatim):
        return f"`{value}`"
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        value = "yes" if value else "no"
    text = _NEWLINES.sub(" ", str(value)).strip()
    return _MD_SPECIAL.sub(r"\\\1", text) or "—"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return lines


def _coverage_summary(report: ReportInput) -> list[str]:
    """One line when every source is complete and every verdict given; otherwise each gap, quoted."""
    out: list[str] = []
    incomplete = report.incomplete()
    if not report.coverage:
        return ["> **No coverage recorded for this run:** nothing proves any source was read completely."]
    if report.coverage_clean():
        quarantined = report.quarantined_count()
        unread = (
            f" {quarantined} record{'' if quarantined == 1 else 's'} could not be understood (see "
            "Quarantined records)."
            if quarantined
            else ""
        )
        return [f"All {len(report.coverage)} sources completed; every verdict was evaluated.{unread}"]
    if incomplete:
        out.append(
            f"> **Coverage incomplete:** {len(incomplete)} of {len(report.coverage)} sources did not "
            "complete. Findings below are not the whole picture."
        )
    for cov in incomplete:
        out.append(
            f"> - {md_cell(cov.source)} ({md_cell(cov.kind)}): {md_cell(cov.error or 'did not complete')}"
        )
    if report.unavailable:
        if incomplete:
            out.append(">")
        out.append("> **Verdicts not given** (withheld, not guessed: a fact they need was not read):")
        for u in report.unavailable:
            scope = "all portals" if u.scope == "all" else md_cell(u.scope)
            out.append(f"> - `{u.code!s}` ({scope}): {md_cell(u.reason)}")
    if report.recall_gaps:
        if out:
            out.append(">")
        out.append("> **Findings may be missing** (verdicts were given for every record read):")
        for g in report.recall_gaps:
            out.append(f"> - `{g.code!s}` on {md_cell(g.portal)}: {md_cell(g.reason)}")
    return out


def render_markdown(report: ReportInput, max_rows: int = MAX_ROWS_PER_CODE) -> str:
    run = report.run
    summary = report.summary()
    out: list[str] = [f"# {md_cell(report.title)} — run {run.id}", ""]
    out.append(
        f"Run **{run.id}** ({md_cell(run.status)}), started {md_cell(run.started_at)}, "
        f"finished {md_cell(run.finished_at)}."
    )
    out.append("")

    # --- what to act on: counts by severity and by person, and whether the coverage holds ----------
    out += ["## What to act on", ""]
    reach = report.reach()
    at_least = "≥ " if summary["withheld"] else ""
    total, people, accounts = reach["total"]
    out.append(
        f"**{at_least}{people} {'person' if people == 1 else 'people'}, {at_least}{accounts} "
        f"account{'' if accounts == 1 else 's'}**, {at_least}{total} finding{'' if total == 1 else 's'}."
    )
    out.append("")
    out += _table(
        ("severity", "findings", "people", "accounts"),
        ((sev, *reach[sev]) for sev in summary["by_severity"]),
    )
    out.append("")
    if summary["withheld"]:
        out += [
            "_Counts are lower bounds: "
            + ", ".join(f"`{code}`" for code in summary["withheld"])
            + " could not be judged this run._",
            "",
        ]
    out += _coverage_summary(report)
    out.append("")

    # --- coverage ---------------------------------------------------------------------------------
    out += ["## Coverage", ""]
    out += _table(
        ("source", "kind", "complete", "what was read", "records", "quarantined"),
        (
            (
                c.source,
                c.kind,
                "✓" if c.complete else "✗",
                collections_line(c) or c.error,
                c.records,
                c.quarantined,
            )
            for c in report.ordered_coverage()
        ),
    )
    out.append("")
    quarantined = report.quarantined_sources()
    if quarantined:
        total = sum(q.count for _, q in quarantined)
        out += [
            "### Quarantined records",
            "",
            f"{total} record{'' if total == 1 else 's'} read but not understood (never guessed); "
            "fix the data or the config and crawl again.",
            "",
        ]
        rows: list[tuple[Any, ...]] = []
        for cov, q in quarantined:
            if not q.reasons:
                rows.append((cov.source, "(reasons not recorded)", q.count, None))
            for r in q.reasons:
                rows.append((cov.source, r.reason, r.count, ", ".join(r.examples)))
        out += _table(("source", "reason", "records", "examples"), rows)
        out.append("")

    out += [
        "### Crawl detail",
        "",
        "How the crawl went, for whoever runs idgraph: requests, rate limiting, and LearnUpon's own "
        "counters checked against the listings.",
        "",
    ]
    out += _table(
        ("source", "requests", "429s", "retries", "notes"),
        (
            (c.source, c.requests, c.throttled, c.retries, "; ".join(c.notes or []))
            for c in report.ordered_coverage()
        ),
    )
    out.append("")

    # --- counts -----------------------------------------------------------------------------------
    out += ["## Totals", ""]
    out += _table(
        ("finding", "count", "meaning"),
        ((Verbatim(c.value), summary["by_code"][c.value], CODE_MEANING[c]) for c in Code),
    )
    out.append("")
    if summary["by_portal"]:
        out += _table(("portal", "count"), summary["by_portal"].items())
        out.append("")
    extras = []
    if report.collisions is not None:
        extras.append(f"identity collisions: {report.collisions}")
    if report.unmatchable is not None:
        extras.append(f"accounts without a usable email (unmatchable): {report.unmatchable}")
    if extras:
        out += ["Also: " + "; ".join(extras) + ".", ""]

    # --- changes ----------------------------------------------------------------------------------
    if report.diff is not None:
        diff = report.diff
        since = f"run {diff.previous_run_id}" if diff.previous_run_id is not None else "the previous run"
        out += [f"## Changes since {since}", ""]
        out.append(
            f"- new: **{len(diff.new)}**\n- resolved: **{len(diff.resolved)}**\n"
            "- not re-checked (a fact they rested on was not read again this run): "
            f"**{len(diff.not_rechecked)}**"
        )
        out.append("")
        for label, items in (("Resolved", diff.resolved), ("Not re-checked", diff.not_rechecked)):
            if items:
                shown = ", ".join(md_cell(item_id(i)) for i in items[:max_rows])
                more = f" … and {len(items) - max_rows} more" if len(items) > max_rows else ""
                out += [f"{label}: {shown}{more}", ""]

    # --- findings by code -------------------------------------------------------------------------
    out += ["## Findings", ""]
    grouped: dict[Code, list[Finding]] = {}
    for finding in report.ordered():
        grouped.setdefault(finding.code, []).append(finding)
    if not grouped:
        out += ["No findings.", ""]
    new_ids = report.diff.new_ids() if report.diff is not None else set()
    for code in sorted(grouped, key=lambda c: list(Code).index(c)):
        findings = grouped[code]
        out += [f"### `{code.value}` ({len(findings)})", "", CODE_MEANING[code] + ".", ""]
        rows = []
        for f in findings[:max_rows]:
            first_seen = report.first_seen.get(f.id)
            rows.append(
                (
                    f.severity.value,
                    f.email,
                    f.portal,
                    f.learnupon_user_id,
                    f.user_type,
                    f.idp,
                    f.idp_status,
                    (first_seen or "") + (" (new)" if f.id in new_ids else ""),
                    Verbatim(f.id),
                )
            )
        out += _table(
            (
                "severity",
                "email",
                "portal",
                "LU user id",
                "user type",
                "IdP",
                "IdP status",
                "first seen",
                "id",
            ),
            rows,
        )
        if len(findings) > max_rows:
            out += [
                "",
                f"_Showing {max_rows} of {len(findings)}; the rest are in findings.csv / findings.json._",
            ]
        out.append("")
    out += _review_parts(report, max_rows)
    return "\n".join(out).rstrip("\n") + "\n"


def _review_parts(report: ReportInput, max_rows: int) -> list[str]:
    """The per-person view, then what the review took out of the headline (never dropped)."""
    out: list[str] = []
    if report.people:
        out += ["## People", "", "Every account of each person with findings, and one verdict.", ""]
        rows = [
            (Verbatim(v.person), v.verdict, ", ".join(v.codes), v.idp_status, v.summary.split(" — ", 1)[1])
            for v in report.people[:max_rows]
        ]
        out += _table(("person", "verdict", "findings", "IdP status", "accounts"), rows)
        out.append("")
    reviewed = report.out_of_headline()
    if reviewed or report.exclusion_rules:
        out += ["## Accepted and excluded", ""]
        out.append(
            f"{len(report.accepted)} accepted under a live exception, "
            f"{len(report.excluded)} excluded by a rule."
        )
        out.append("")
        if reviewed:
            found: list[tuple[Any, ...]] = [
                (
                    state,
                    f.severity.value,
                    Verbatim(f.code.value),
                    f.email,
                    f.portal,
                    f.learnupon_user_id,
                    item.note,
                )
                for state, item in reviewed[:max_rows]
                for f in (item.finding,)
            ]
            out += _table(("state", "severity", "finding", "email", "portal", "LU user id", "why"), found)
            out.append("")
        if report.exclusion_rules:
            rules = [
                (Verbatim(r["rule"]), r["reason"], r["expires"], r["state"], r["accounts"])
                for r in report.exclusion_rules
            ]
            out += _table(("rule", "reason", "expires", "state", "accounts"), rules)
            out.append("")
    return out


def write_markdown(path: Path | str, report: ReportInput) -> Path:
    return write_private(path, render_markdown(report))
