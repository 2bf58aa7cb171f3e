"""report.html's review parts: the per-person view, and the findings out of the headline — accepted under
a live exception, or excluded by a `[review] exclude` rule — each with why, and the rules themselves.

Nothing a review takes out of the headline disappears: it is counted on the first screen and listed here.
"""

from __future__ import annotations

from graph.person_view import PersonView
from graph.reports.html_common import dash, e
from graph.reports.input import ReportInput, Reviewed

MAX_PEOPLE = 2_000  # the JSON lists every person; the page stays quick to open


def _verdict_badge(verdict: str) -> str:
    kind = "accepted" if verdict == "accepted" else f"sev-{verdict}"
    return f'<span class="badge {e(kind)}">{e(verdict)}</span>'


def _account_line(account: dict[str, object]) -> str:
    state = "enabled" if account["enabled"] else "disabled"
    findings = account.get("findings") or []
    codes = "".join(f"<code>{e(c)}</code> " for c in findings) if isinstance(findings, list) else ""
    return (
        f'<li class="{state}"><span class="portal">{e(account["portal"])}</span> '
        f"#{e(account['learnupon_user_id'])} {dash(account.get('email'))} · "
        f"{dash(account.get('user_type'))} · "
        f'<span class="state {"bad" if account["enabled"] else "ok"}">{state}</span> {codes}</li>'
    )


def _person_row(view: PersonView) -> str:
    accounts = "".join(_account_line(a) for a in view.accounts)
    return (
        f'<tr data-person="{e(view.person)}"><td><code>{e(view.person)}</code></td>'
        f"<td>{_verdict_badge(view.verdict)}</td>"
        f"<td>{''.join(f'<code>{e(c)}</code> ' for c in view.codes)}</td>"
        f"<td>{dash(view.idp_status)}</td>"
        f'<td><ul class="accounts">{accounts}</ul></td></tr>'
    )


def people_section(report: ReportInput) -> str:
    """A person's accounts across portals, with one combined verdict (the worst open finding)."""
    if not report.people:
        return ""
    shown = report.people[:MAX_PEOPLE]
    capped = (
        f'<p class="hint">The {len(shown):,} most severe of {len(report.people):,} people are listed; '
        "<code>findings.json</code> (<code>people</code>) has every one.</p>"
        if len(report.people) > len(shown)
        else ""
    )
    rows = "".join(_person_row(v) for v in shown)
    return (
        '<section id="people" aria-labelledby="people-h"><h2 id="people-h">People</h2>'
        f'<p class="hint">{len(report.people):,} {"person" if len(report.people) == 1 else "people"} with '
        "findings: every account each has, in every portal (disabled ones too), and one verdict — the most "
        "severe finding still open.</p>"
        f'{capped}<div class="scroll"><table class="people" id="people-table"><thead><tr>'
        '<th scope="col">Person</th><th scope="col">Verdict</th><th scope="col">Findings</th>'
        '<th scope="col">IdP status</th><th scope="col">Accounts</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _reviewed_rows(items: list[Reviewed]) -> str:
    return "".join(
        f'<tr data-id="{e(r.finding.id)}"><td><span class="badge sev-{e(r.finding.severity.value)}">'
        f"{e(r.finding.severity.value)}</span></td><td><code>{e(r.finding.code.value)}</code></td>"
        f"<td>{dash(r.finding.email)}</td><td>{dash(r.finding.portal)}</td>"
        f'<td class="num">{dash(r.finding.learnupon_user_id)}</td><td class="note">{e(r.note)}</td></tr>'
        for r in items
    )


def _table(table_id: str, items: list[Reviewed], why: str) -> str:
    return (
        f'<div class="scroll"><table class="reviewed" id="{table_id}"><thead><tr>'
        '<th scope="col">Severity</th><th scope="col">Finding</th><th scope="col">Account</th>'
        f'<th scope="col">Portal</th><th scope="col" class="num">LU user id</th><th scope="col">{why}</th>'
        f"</tr></thead><tbody>{_reviewed_rows(items)}</tbody></table></div>"
    )


def _rules_table(report: ReportInput) -> str:
    if not report.exclusion_rules:
        return ""
    rows = "".join(
        f'<tr data-rule="{e(r["rule"])}"><td><code>{e(r["rule"])}</code></td><td>{e(r["reason"])}</td>'
        f"<td>{e(_matchers(r))}</td><td>{dash(r['expires'])}</td>"
        f'<td class="state {"bad" if r["state"] == "expired" else "ok"}">{e(r["state"])}</td>'
        f'<td class="num">{e(r["accounts"])}</td></tr>'
        for r in report.exclusion_rules
    )
    return (
        '<div class="scroll"><table class="rules" id="exclusion-rules"><caption>Exclusion rules</caption>'
        '<thead><tr><th scope="col">Rule</th><th scope="col">Reason</th><th scope="col">Matches</th>'
        '<th scope="col">Expires</th><th scope="col">State</th><th scope="col" class="num">Accounts</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _matchers(rule: dict[str, object]) -> str:
    return ", ".join(f"{k} {rule[k]}" for k in ("email", "username", "portal", "user_type") if rule.get(k))


def reviewed_section(report: ReportInput) -> str:
    """Accepted (live exceptions) and excluded (rules) findings, and the rules; empty when neither exists."""
    if not (report.accepted or report.excluded or report.exclusion_rules):
        return ""
    parts = [
        '<section id="accepted" aria-labelledby="accepted-h"><h2 id="accepted-h">Accepted and excluded</h2>',
        '<p class="hint">Out of the headline, never out of sight: findings under a live exception (until '
        "it expires, or the facts behind it change) and accounts a <code>[review] exclude</code> rule "
        "names.</p>",
    ]
    accepted = [item for state, item in report.out_of_headline() if state == "accepted"]
    excluded = [item for state, item in report.out_of_headline() if state == "excluded"]
    parts.append(f'<h3 id="accepted-list">Accepted: {len(accepted):,}</h3>')
    parts.append(
        _table("accepted-table", accepted, "Exception") if accepted else '<p class="empty">None.</p>'
    )
    parts.append(f'<h3 id="excluded-list">Excluded: {len(excluded):,}</h3>')
    parts.append(_table("excluded-table", excluded, "Rule") if excluded else '<p class="empty">None.</p>')
    parts.append(_rules_table(report))
    parts.append("</section>")
    return "".join(parts)


def review_note(report: ReportInput, finding_id: str) -> tuple[str, str]:
    """(badge, evidence line) for an open finding with a review note: a decision on it, or one that lapsed."""
    note = report.review_notes.get(finding_id)
    if not note:
        return "", ""
    back = finding_id in report.reopened
    badge = ' <span class="badge back">back</span>' if back else ' <span class="badge decided">decided</span>'
    return badge, f'<p class="review-note"><strong>Review:</strong> {e(note)}</p>'


def headline_note(report: ReportInput) -> str:
    """One line on the first screen: what the review took out of the headline, and where it is."""
    if not (report.accepted or report.excluded):
        return ""
    return (
        f'<p class="hint" id="out-of-headline">Not counted above: {len(report.accepted):,} accepted under a '
        f"live exception and {len(report.excluded):,} excluded by a rule — "
        '<a href="#accepted">listed below</a>.</p>'
    )
