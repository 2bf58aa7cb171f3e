"""summary.html of an evidence pack: what an auditor reads first, every number citing the pack file behind it.

Same style as report.html (its CSS, inlined, under a Content Security Policy that allows that one style and
nothing else: no script, no fetch). No clock: the page is the same bytes for the same inputs.
"""

from __future__ import annotations

from string import Template
from typing import Any

from graph.campaign import RunReview
from graph.reports.html_common import asset, csp_hash, dash, e, num

CONTROLS = (
    ("SOC 2", "CC6.2, CC6.3"),
    ("ISO/IEC 27001:2022", "A.5.15, A.5.16, A.5.18, A.8.2"),
    ("PCI DSS v4.0.1", "7.2.4, 8.2.5, 8.2.6"),
    ("NIST SP 800-53", "AC-2, AC-2(3)"),
)


def _file(name: str) -> str:
    return f'<span class="src">— <code>{e(name)}</code></span>'


def _banner(facts: dict[str, Any]) -> str:
    problems = list(facts["incomplete"])
    chain = facts["audit_chain"]
    if chain["given"] and not chain["verified"]:
        problems.append(f"the remediation audit log does not verify: {chain['reason']}")
    if not chain["given"]:
        problems.append("no remediation audit log was given (--log): revocations cannot be shown as executed")
    if not problems:
        return (
            '<p class="banner ok" id="pack-banner"><strong>Complete.</strong> Every source of the run was '
            "read to the end, every verdict was given, and the remediation log's chain verifies.</p>"
        )
    items = "".join(f"<li>{e(p)}</li>" for p in problems)
    return (
        '<div class="banner bad" id="pack-banner"><p><strong>Not a clean review:</strong> counts are lower '
        f"bounds or evidence is missing —</p><ul>{items}</ul></div>"
    )


def _population(coverage: list[dict[str, Any]]) -> str:
    rows = []
    for c in coverage:
        pop = c.get("population")
        if pop is None:
            continue
        users = pop.get("users_listing") or {}
        counters = pop["counters_cross_check"]
        state = (
            '<span class="state ok">✓ complete</span>'
            if c["complete"]
            else '<span class="state bad">✗</span>'
        )
        rows.append(
            f'<tr data-portal="{e(c["source"])}"><th scope="row">{e(c["source"])}</th><td>{state}</td>'
            f'<td class="num">{num(pop["accounts_read"])}</td><td class="num">{num(pop["enabled"])}</td>'
            f'<td class="num">{num(pop["excluded"])}</td><td class="num">{num(users.get("pages"))}</td>'
            f'<td class="num">{num(c["requests"])}</td>'
            f'<td class="num">{num(counters["users_whose_number_of_enrollments_disagrees"])} / '
            f"{num(counters['groups_whose_number_of_members_disagrees'])}</td></tr>"
        )
    idps = "".join(
        f"<li><strong>{e(c['source'])}</strong> ({e(c['kind'])}): "
        + ("read completely" if c["complete"] else f"INCOMPLETE: {e(c['error'])}")
        + f", {num(c['records'])} identities, {num(c['requests'])} requests</li>"
        for c in coverage
        if "population" not in c
    )
    return (
        '<section id="population" aria-labelledby="population-h"><h2 id="population-h">Population</h2>'
        f'<p class="hint">Every LearnUpon account read, per portal {_file("population/accounts.csv")}; '
        f"how each listing was read {_file('population/coverage.json')}. LearnUpon's own counters "
        "(enrollments per user, members per group) were cross-checked against the listings.</p>"
        '<div class="scroll"><table class="population"><thead><tr><th scope="col">Portal</th>'
        '<th scope="col">Listing</th><th scope="col" class="num">Accounts read</th>'
        '<th scope="col" class="num">Enabled</th><th scope="col" class="num">Excluded</th>'
        '<th scope="col" class="num">User pages</th><th scope="col" class="num">Requests</th>'
        '<th scope="col" class="num">Counters disagreeing (users / groups)</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="hint">Identity providers:</p><ul class="idps">{idps or "<li>none</li>"}</ul></section>'
    )


def _findings(facts: dict[str, Any], review: RunReview) -> str:
    f = facts["findings"]
    by_reviewer: dict[str, dict[str, int]] = {}
    for state in review.states.values():
        if state.decision is not None:
            counts = by_reviewer.setdefault(state.decision.reviewer, {"revoke": 0, "keep": 0, "exception": 0})
            counts[state.decision.decision] += 1
    reviewers = "".join(
        f"<tr><th scope='row'>{e(r)}</th><td class='num'>{c['revoke']}</td><td class='num'>{c['keep']}</td>"
        f"<td class='num'>{c['exception']}</td></tr>"
        for r, c in sorted(by_reviewer.items())
    )
    return (
        '<section id="decisions" aria-labelledby="decisions-h">'
        '<h2 id="decisions-h">Findings and decisions</h2><div class="cards small">'
        f'<div class="card"><span class="n">{f["open"]:,}</span><span>open</span></div>'
        f'<div class="card ok"><span class="n">{f["accepted"]:,}</span><span>accepted (exception)</span>'
        "</div>"
        f'<div class="card"><span class="n">{f["excluded"]:,}</span><span>excluded (rule)</span></div></div>'
        f'<p class="hint">Every finding and where it stands {_file("findings.csv")}; every decision, '
        f"append-only, with reviewer, time and reason {_file('decisions/decisions.csv')}; reviewers' files "
        f"as received {_file('decisions/imports.csv')}.</p>"
        '<table class="reviewers"><caption>Decisions that hold on this run, per reviewer</caption><thead><tr>'
        '<th scope="col">Reviewer</th><th scope="col" class="num">revoke</th><th scope="col" class="num">keep'
        '</th><th scope="col" class="num">exception</th></tr></thead>'
        f"<tbody>{reviewers or '<tr><td colspan=4>none</td></tr>'}</tbody></table></section>"
    )


def _enabled(value: Any) -> str:
    return (
        {True: "enabled", False: "disabled"}.get(value, str(value)) if isinstance(value, bool) else str(value)
    )


def _remediation(facts: dict[str, Any], revocations: list[dict[str, Any]]) -> str:
    counts = "".join(f"<li>{e(k)}: <strong>{v:,}</strong></li>" for k, v in facts["revocations"].items())
    open_ = [r for r in revocations if r["status"] != "verified"]
    rows = "".join(
        f"<tr><td>{e(r['portal'])}</td><td class='num'>{e(r['learnupon_user_id'])}</td><td>{dash(r['email'])}"
        f"</td><td>{e(r['status'])}</td><td>{e(_enabled(r['enabled_in_run']))}</td></tr>"
        for r in open_
    )
    chain = facts["audit_chain"]
    head = (
        f"<p>Audit log <code>{e(chain['log'])}</code>: {chain['entries']:,} entries, chain "
        + (
            "<strong>verifies</strong>"
            if chain["verified"]
            else f"<strong>BROKEN</strong>: {e(chain['reason'])}"
        )
        + f"; head <code id='chain-head'>{e(chain['head'])}</code> {_file('remediation/chain.json')}</p>"
        if chain["given"]
        else "<p>No remediation audit log was given.</p>"
    )
    table = (
        '<table class="unverified"><caption>Revocations not verified by read-back</caption><thead><tr>'
        '<th scope="col">Portal</th><th scope="col" class="num">LU user id</th><th scope="col">Email</th>'
        '<th scope="col">Status</th><th scope="col">Enabled in this run</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if open_
        else ""
    )
    return (
        '<section id="remediation" aria-labelledby="remediation-h"><h2 id="remediation-h">Remediation</h2>'
        '<p class="hint">Each revoke decision followed to its disable and the read-back that shows the '
        f"account disabled {_file('remediation/revocations.csv')}; every logged action "
        f'{_file("remediation/actions.csv")}.</p><ul class="revocations">{counts or "<li>none</li>"}</ul>'
        f"{table}{head}</section>"
    )


def _exceptions(exceptions: list[dict[str, Any]], review: RunReview) -> str:
    rows = "".join(
        f"<tr><td>{e(x['expires_at'])}</td><td>{dash(x['email'])}</td><td>{dash(x['portal'])}</td>"
        f"<td>{e(x['scope'])}</td><td><code>{e(x['finding'])}</code></td><td>{e(x['reviewer'])}</td>"
        f"<td>{e(x['reason'])}</td></tr>"
        for x in exceptions
    )
    rules = "".join(
        f"<tr><td><code>{e(r['rule'])}</code></td><td>{e(r['reason'])}</td><td>{dash(r['expires'])}</td>"
        f"<td>{e(r['state'])}</td><td class='num'>{r['accounts']:,}</td></tr>"
        for r in review.exclusions.rows()
    )
    return (
        '<section id="exceptions" aria-labelledby="exceptions-h"><h2 id="exceptions-h">Exceptions and '
        'exclusions</h2><p class="hint">Exceptions in force, expiring soonest first '
        f"{_file('exceptions.csv')}; "
        f"exclusion rules and the accounts each excluded {_file('exclusions.csv')}.</p>"
        '<div class="scroll"><table class="exceptions"><thead><tr><th scope="col">Expires</th>'
        '<th scope="col">Account</th><th scope="col">Portal</th><th scope="col">Scope</th>'
        '<th scope="col">Finding</th><th scope="col">Approved by</th><th scope="col">Reason</th></tr></thead>'
        f"<tbody>{rows or '<tr><td colspan=7>none</td></tr>'}</tbody></table></div>"
        '<div class="scroll"><table class="rules"><caption>Exclusion rules</caption><thead><tr>'
        '<th scope="col">Rule</th><th scope="col">Reason</th><th scope="col">Expires</th>'
        '<th scope="col">State</th><th scope="col" class="num">Accounts</th></tr></thead>'
        f"<tbody>{rules or '<tr><td colspan=5>none</td></tr>'}</tbody></table></div></section>"
    )


def render_summary(
    facts: dict[str, Any],
    coverage: list[dict[str, Any]],
    exceptions: list[dict[str, Any]],
    revocations: list[dict[str, Any]],
    review: RunReview,
) -> str:
    style = asset("report.css")
    csp = (
        f"default-src 'none'; style-src {csp_hash(style)}; img-src data:; base-uri 'none'; form-action 'none'"
    )
    run = facts["run"]
    controls = "".join(f"<li>{e(name)}: {e(ids)}</li>" for name, ids in CONTROLS)
    header = (
        '<header class="top"><div class="title"><h1>Access review evidence</h1>'
        f'<p class="meta">Run <strong>#{e(run["id"])}</strong> <span class="pill '
        f'{"ok" if run["status"] == "complete" else "bad"}">{e(run["status"])}</span> · started '
        f"<time>{e(run['started_at'])}</time> · finished <time>{dash(run['finished_at'])}</time> · "
        f"{num(facts['accounts_read'])} accounts read {_file('run.json')}</p></div></header>"
    )
    first = (
        '<section id="summary" class="first" aria-labelledby="summary-h"><h2 id="summary-h">At a glance</h2>'
        f'{_banner(facts)}<p class="hint">Controls this review evidences:</p>'
        f'<ul class="control-ids">{controls}</ul></section>'
    )
    toc = "".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in (
            ("population", "Population"),
            ("decisions", "Decisions"),
            ("remediation", "Remediation"),
            ("exceptions", "Exceptions"),
        )
    )
    sections = (
        first,
        _population(coverage),
        _findings(facts, review),
        _remediation(facts, revocations),
        _exceptions(exceptions, review),
    )
    return Template(asset("page.html")).substitute(
        csp=e(csp),
        title="Access review evidence",
        run_id=e(run["id"]),
        style=style,
        script_block="",
        skip="",
        header=header,
        toc=toc,
        main="\n".join(sections),
        footer=FOOTER.format(run_id=e(run["id"])),
    )


FOOTER = (
    "Generated by idgraph from snapshot run #{run_id}. Every number on this page is backed by a file of this "
    "evidence pack, named beside it; <code>manifest.json</code> and <code>SHA256SUMS</code> hold the SHA-256 "
    "of every file (check with <code>sha256sum -c SHA256SUMS</code>). This file loads nothing from the "
    "network. It names people and their access: keep the pack where only reviewers and auditors can read it."
)
