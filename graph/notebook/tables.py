"""The notebooks' tables: pandas DataFrames over one run's findings, exposure, coverage and changes.

pandas alone: nothing here imports matplotlib, so a table cell works where no plotting stack is installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from crawler.private import write_private
from crawler.vocabulary import SEVERITY_ORDER, Code, Severity
from graph import history
from graph.api import EXPOSURE_COLUMNS, IdentityGraph
from graph.notebook.common import CHANGES, CODES, ORPHAN, SEVERITIES
from graph.reports.csv_report import neutralise
from graph.reports.input import CODE_MEANING, CONTRACT_COLUMNS, NO_PORTAL


# --- headline and findings ---------------------------------------------------------------------------------
def headline(ig: IdentityGraph, findings: pd.DataFrame | None = None) -> pd.DataFrame:
    """The numbers a reviewer reads first, one per row."""
    findings = ig.findings_df() if findings is None else findings
    portals, idps = ig.sources.portals, ig.sources.idps
    accounts = ig.resolution.accounts
    rows = {
        "run": f"{ig.run.id} ({ig.run.status}, started {ig.run.started_at})",
        "portals complete": f"{sum(r is None for r in portals.values())} of {len(portals)}",
        "IdPs complete": f"{sum(r is None for r in idps.values())} of {len(idps)}",
        "accounts": len(accounts),
        "enabled accounts": sum(a.enabled for a in accounts),
        "people": len(ig.resolution.persons),
        "people in several portals": len(ig.multi_portal_people()),
        "findings": len(findings),
        "people with findings": findings["person"].fillna(findings["email"]).nunique(),
        "critical or high findings": int(findings["severity"].isin(["critical", "high"]).sum()),
        "orphans (disabled in the IdPs, enabled here)": findings.loc[
            findings["finding"] == ORPHAN, "person"
        ].nunique(),
        "verdicts withheld": len(ig.findings().unavailable),
        "colliding addresses": len({c.address for c in ig.collisions}),
        "unmatchable accounts (no email)": len(ig.unmatchable),
    }
    return pd.DataFrame({"value": pd.Series(rows, dtype=object)}).rename_axis("metric")


def findings_by_portal(findings: pd.DataFrame, portals: Iterable[str] = ()) -> pd.DataFrame:
    """Portal x finding code counts, every portal listed (zeros included), a total column."""
    portal = findings["portal"].fillna(NO_PORTAL)
    table = pd.crosstab(portal, findings["finding"])
    index = sorted(set(portals) | set(table.index))
    table = table.reindex(index=index, columns=CODES, fill_value=0).rename_axis(index="portal", columns=None)
    table["total"] = table.sum(axis=1)
    return table.astype(int)


def findings_by_code(findings: pd.DataFrame) -> pd.DataFrame:
    """Finding code x severity counts, with the total and the number of distinct people."""
    table = pd.crosstab(findings["finding"], findings["severity"])
    table = table.reindex(index=CODES, columns=SEVERITIES, fill_value=0).rename_axis(
        index="finding", columns=None
    )
    table["total"] = table.sum(axis=1)
    people = findings.groupby("finding")["person"].nunique()
    table["people"] = people.reindex(CODES, fill_value=0)
    table["meaning"] = [CODE_MEANING[Code(c)] for c in table.index]
    return table


# --- evidence -----------------------------------------------------------------------------------------------
def _item(value: Any) -> str:
    if isinstance(value, Mapping):
        if "idp" in value and "status" in value:
            since = f" since {value['status_changed_at']}" if value.get("status_changed_at") else ""
            return f"{value['idp']}:{value['status']}{since}"
        if "portal" in value and "learnupon_user_id" in value:
            state = "enabled" if value.get("enabled") else "disabled"
            return f"{value['portal']}:{value['learnupon_user_id']} ({state})"
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def summarise(value: Any) -> Any:
    """An evidence value as one readable cell: lists joined by "; ", counts as "status=n"."""
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={summarise(v)}" for k, v in sorted(value.items())) or None
    if isinstance(value, list | tuple):
        return "; ".join(_item(v) for v in value) or None
    return value


def evidence_table(findings: pd.DataFrame, code: str | None = None) -> pd.DataFrame:
    """One row per finding (of one code), its evidence spread into readable columns."""
    rows = findings if code is None else findings[findings["finding"] == code]
    base = rows[["finding", "severity", "email", "portal", "learnupon_user_id", "idp_status"]]
    spread = pd.DataFrame(
        [{k: summarise(v) for k, v in (e or {}).items() if k != "user_type"} for e in rows["evidence"]],
        index=rows.index,
    )
    return base.join(spread.dropna(axis=1, how="all"))


# --- orphans: people disabled in the IdPs with accounts still enabled -------------------------------------
def orphan_exposure(
    ig: IdentityGraph, findings: pd.DataFrame | None = None, code: str = ORPHAN
) -> pd.DataFrame:
    """Every group and course the enabled accounts of every orphan still hold, across all portals."""
    findings = ig.findings_df() if findings is None else findings
    people = sorted(findings.loc[findings["finding"] == code, "person"].dropna().unique())
    frames = [ig.exposure(person) for person in people]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(EXPOSURE_COLUMNS))


def orphan_summary(findings: pd.DataFrame, exposure: pd.DataFrame, code: str = ORPHAN) -> pd.DataFrame:
    """Per orphan: the portals where they are still enabled and how much they still hold there."""
    rows = findings[findings["finding"] == code].dropna(subset=["person"])
    per_person = rows.groupby("person").agg(
        portals=("portal", lambda p: ", ".join(sorted(set(p)))),
        enabled_accounts=("learnupon_user_id", "size"),
        severity=("severity", lambda s: min(s, key=lambda v: SEVERITY_ORDER[Severity(v)])),
    )
    held = exposure.pivot_table(index="person", columns="kind", values="id", aggfunc="size", fill_value=0)
    held = held.reindex(columns=["group", "course"], fill_value=0).rename(
        columns={"group": "groups", "course": "courses"}
    )
    out = per_person.join(held).fillna({"groups": 0, "courses": 0}).astype({"groups": int, "courses": int})
    out["portal_count"] = out["portals"].str.count(",") + 1
    out = out.sort_values(["portal_count", "groups", "courses"], ascending=False, kind="stable")
    return out.drop(columns="portal_count")


def held_items(exposure: pd.DataFrame) -> pd.DataFrame:
    """The groups and courses orphans still hold, the most widely held first."""
    columns = ["portal", "kind", "id", "title", "orphans", "not_finished"]
    if exposure.empty:
        return pd.DataFrame(columns=columns)
    open_course = (exposure["kind"] == "course") & ~exposure["status"].isin(["completed", "passed"])
    out = (
        exposure.assign(not_finished=open_course)
        .groupby(["portal", "kind", "id"], as_index=False)
        .agg(title=("title", "first"), orphans=("person", "nunique"), not_finished=("not_finished", "sum"))
    )
    return out.sort_values(["orphans", "portal", "kind", "id"], ascending=[False, True, True, True])[columns]


# --- the access review: coverage, withheld verdicts, changes, the ticket ----------------------------------
def coverage_table(ig: IdentityGraph) -> pd.DataFrame:
    """Every source of the run: did its crawl complete, why not, and what it cost."""
    columns = ["complete", "error", "records", "quarantined", "requests", "throttled", "retries", "notes"]
    rows = {
        (c.kind, c.source): {**{k: getattr(c, k) for k in columns[:-1]}, "notes": "; ".join(c.notes) or None}
        for c in ig.coverage
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    return table.rename_axis(["kind", "source"]).sort_values("complete", kind="stable")


def not_covered(ig: IdentityGraph) -> pd.DataFrame:
    """What this run could not judge: incomplete sources, quarantined records, collisions, no-email
    accounts."""
    rows: list[dict[str, Any]] = []
    for kind, sources in (("portal", ig.sources.portals), ("IdP", ig.sources.idps)):
        rows += [
            {"gap": f"{kind} crawl incomplete", "scope": name, "count": None, "why": reason}
            for name, reason in sorted(sources.items())
            if reason is not None
        ]
    rows += [
        {
            "gap": "quarantined records",
            "scope": c.source,
            "count": c.quarantined,
            "why": "malformed; see quarantine",
        }
        for c in ig.coverage
        if c.quarantined
    ]
    collided = {a for c in ig.collisions for a in c.accounts}
    if collided:
        why = "address claimed by several identities of one IdP: no IdP verdict"
        rows.append({"gap": "colliding addresses", "scope": "accounts", "count": len(collided), "why": why})
    for portal, count in pd.Series([a.portal for a in ig.unmatchable], dtype=object).value_counts().items():
        why = "username only: no IdP can be asked about it"
        rows.append({"gap": "accounts without email", "scope": portal, "count": int(count), "why": why})
    return pd.DataFrame(rows, columns=["gap", "scope", "count", "why"]).astype({"count": "Int64"})


def withheld(ig: IdentityGraph) -> pd.DataFrame:
    """The verdicts the rules refused to give because a fact they need was not read."""
    rows = [
        {"finding": u.code.value, "scope": u.scope, "reason": u.reason} for u in ig.findings().unavailable
    ]
    return pd.DataFrame(rows, columns=["finding", "scope", "reason"])


def may_be_missing(ig: IdentityGraph) -> pd.DataFrame:
    """Where findings may be missing: a users listing that did not finish (every record read was judged)."""
    rows = [
        {"finding": g.code.value, "portal": g.portal, "reason": g.reason} for g in ig.findings().recall_gaps
    ]
    return pd.DataFrame(rows, columns=["finding", "portal", "reason"])


def run_changes(ig: IdentityGraph) -> history.Diff:
    """What changed since the previous recorded run. A run whose findings were never recorded (crawled,
    never reported) is recorded first, exactly as `idgraph report` would."""
    try:
        history.run_findings(ig.store, ig.run.id)
    except LookupError:
        history.record(ig.store, ig.findings(), ig.settings)
    return history.diff(ig.store, ig.run.id)


def changes_table(diff: history.Diff) -> pd.DataFrame:
    """Every finding of this run or the previous one, with how it changed (`change`)."""
    rows = [{"change": name, **e.as_dict()} for name in CHANGES for e in getattr(diff, name)]
    columns = ["change", "code", "severity", "email", "portal", "learnupon_user_id", "first_seen_run"]
    frame = pd.DataFrame(rows)
    return frame[[*columns, "finding_id"]] if rows else pd.DataFrame(columns=[*columns, "finding_id"])


def changes_summary(diff: history.Diff) -> pd.DataFrame:
    """Finding code x change (new, still open, resolved, not re-checked) counts; zeros included."""
    table = changes_table(diff)
    counts = pd.crosstab(table["code"], table["change"]) if len(table) else pd.DataFrame()
    return counts.reindex(index=CODES, columns=list(CHANGES), fill_value=0).rename_axis(
        index="finding", columns=None
    )


def ticket_table(ig: IdentityGraph, findings: pd.DataFrame, diff: history.Diff | None = None) -> pd.DataFrame:
    """The findings to act on, worst first: the contract columns, then what a ticket needs to decide.

    With `diff`, `change` says new or still open, and the findings this run could not re-check (their
    portal's crawl failed) are kept as `not_rechecked` rows from the run that last saw them: a failed
    crawl must not quietly drop an open finding from the ticket.
    """
    new = {e.finding_id for e in diff.new} if diff is not None else set()
    seen = history.first_seen(ig.store, set(findings["finding_id"]))
    evidence = findings["evidence"].map(lambda e: e or {})
    details = ("other_accounts", "disabled_in", "domain", "never_signed_in", "cutoff")
    table = findings[list(CONTRACT_COLUMNS)].assign(
        finding_id=findings["finding_id"],
        person=findings["person"],
        change=None
        if diff is None
        else ["new" if f in new else "still_open" for f in findings["finding_id"]],
        first_seen=findings["finding_id"].map(seen),
        last_seen_run=ig.run.id,
        last_sign_in_at=evidence.map(lambda e: e.get("last_sign_in_at")),
        idp_status_since=evidence.map(lambda e: summarise(e.get("identities"))),
        groups=evidence.map(lambda e: summarise(e.get("groups"))),
        enrollments=evidence.map(lambda e: summarise(e.get("enrollments"))),
        details=evidence.map(lambda e: summarise({k: e[k] for k in details if e.get(k) is not None})),
    )
    carried = [
        {
            **{c: getattr(e, c) for c in CONTRACT_COLUMNS[1:]},
            "finding": e.code.value,
            "finding_id": e.finding_id,
            "person": e.person,
            "change": "not_rechecked",
            "first_seen": e.first_seen_at,
            "last_seen_run": e.last_seen_run,
        }
        for e in (diff.not_rechecked if diff is not None else ())
    ]
    if carried:
        table = pd.concat([table, pd.DataFrame(carried)], ignore_index=True)
    table = table.astype({"learnupon_user_id": "Int64", "last_seen_run": "Int64"})
    order = table.assign(
        _severity=table["severity"].map(lambda s: SEVERITY_ORDER[Severity(s)]),
        _code=table["finding"].map(CODES.index),
        _portal=table["portal"].fillna(""),
    ).sort_values(["_severity", "_code", "_portal", "learnupon_user_id"], kind="stable")
    return order.drop(columns=["_severity", "_code", "_portal"]).reset_index(drop=True)


def default_ticket_path(db: str | Path, run_id: int) -> Path:
    return Path(db).resolve().parent / f"access-review-run{run_id}.csv"


def export_ticket(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the ticket CSV: owner-only (0o600), formula-looking cells neutralised for spreadsheets."""
    return write_private(path, table.map(neutralise).to_csv(index=False, lineterminator="\r\n"))
