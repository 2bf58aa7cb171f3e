"""`idgraph remediate …`: plan, apply, verify, undo. Mounted by crawler/cli.py as the `remediate` group.

Exit codes: 0 — done (every planned action done or legitimately skipped; a log that verifies);
1 — `verify` found a broken chain, or the operator answered no; 2 — bad usage, config, plan or log, or
no confirmation possible (nothing was changed); 3 — some action failed (see the table and the log).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crawler.config import Config, ConfigError, load_config
from crawler.remediation.apply import (
    DONE,
    FAILED,
    SKIPPED,
    Outcome,
    Target,
    UndoError,
    failed,
    run_targets,
    targets_from_plan,
    undo_targets,
)
from crawler.remediation.audit import AuditError, AuditLog, read_entries, verify_log
from crawler.remediation.idp_check import LOOKUPS
from crawler.remediation.plan import REMEDIABLE, Plan, PlanError, load_plan, plan_from_snapshot, write_plan
from crawler.terminal import escaped, visible
from graph.model import SEVERITY_ORDER, Code, Severity

EXIT_OK, EXIT_BROKEN, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
DEFAULT_DB = Path("idgraph.db")
DEFAULT_LOG = Path("idgraph-remediation.jsonl")
SHOWN_ROWS = 100  # the confirmation table; the plan file has every row

remediate_app = typer.Typer(
    name="remediate",
    help=(
        "Disable orphan accounts with human approval: make a plan, have it reviewed, apply it, "
        "and keep a hash-chained audit log.\n\n"
        "  idgraph remediate plan --finding idp_disabled_active --out plan.json\n\n"
        "  idgraph remediate apply plan.json --config idgraph.toml --log audit.jsonl\n\n"
        "  idgraph remediate verify audit.jsonl"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback's locals would print the secrets in memory
)
console = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="TOML config naming the portals (and IdPs).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask: for schedulers, after review.")]
LogOpt = Annotated[Path, typer.Option("--log", help="Audit log (JSON Lines, hash-chained; created 0o600).")]


def _usage(message: str) -> typer.Exit:
    console.print(f"[bold red]idgraph remediate:[/] {escaped(message)}", highlight=False)
    return typer.Exit(EXIT_USAGE)


def _config(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _usage(f"config error: {exc}") from None


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


@remediate_app.command("plan")
def plan_command(
    finding: Annotated[str, typer.Option("--finding", help="Finding code to remediate.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the plan (JSON).")],
    db: Annotated[Path, typer.Option("--db", help="Snapshot file (SQLite).")] = DEFAULT_DB,
    run: Annotated[int | None, typer.Option("--run", help="Run id (default: the newest).")] = None,
    portal: Annotated[
        list[str] | None, typer.Option("--portal", help="Only these portals (repeatable).")
    ] = None,
    severity: Annotated[
        list[str] | None, typer.Option("--severity", help="Only these severities (repeatable or a,b).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Take managed_domains/dormant_days from this config."),
    ] = None,
) -> None:
    """Write a plan of the accounts to disable for one finding of one run. Changes nothing anywhere.

    Example: idgraph remediate plan --db snap.db --finding idp_disabled_active --severity critical,high
    --out plan.json
    """
    try:
        code = Code(finding)
    except ValueError:
        choices = ", ".join(sorted(c.value for c in REMEDIABLE))
        raise _usage(f"--finding: unknown finding {finding!r}; remediable: {choices}") from None
    try:
        severities = [Severity(s.lower()) for s in _split(severity)]
    except ValueError:
        raise _usage(f"--severity: expected {', '.join(s.value for s in Severity)}") from None
    cfg = _config(config) if config is not None else None
    try:
        plan = plan_from_snapshot(
            db, code=code, run_id=run, portals=_split(portal), severities=severities, config=cfg
        )
    except PlanError as exc:
        raise _usage(str(exc)) from None
    write_plan(plan, out)
    console.print(plan_table(plan))
    for scope in plan.unavailable:
        console.print(
            visible(f"not judged ({scope['scope']}): {scope['reason']}"), highlight=False, markup=False
        )
    console.print(
        f"plan {plan.plan_hash} → {out}: disable {len(plan.actions)} account(s) in "
        f"{len(plan.portals)} portal(s), run {plan.run.id}. Nothing was changed; have it reviewed, then "
        f"`idgraph remediate apply {out} --config FILE`.",
        highlight=False,
        markup=False,
    )


def plan_table(plan: Plan, *, limit: int = SHOWN_ROWS) -> Table:
    """What apply will do, one row per account, as a reviewer wants to see it."""
    table = Table(
        title=f"plan {plan.plan_hash[:16]} — disable {len(plan.actions)} account(s) (run {plan.run.id})"
    )
    for column in ("#", "portal", "user id", "email", "type", "finding", "severity", "IdP status"):
        table.add_column(column, justify="right" if column in ("#", "user id") else "left")
    ordered = sorted(plan.actions, key=lambda a: (SEVERITY_ORDER[a.finding.severity], a.portal, a.user_id))
    for index, action in enumerate(ordered[:limit], start=1):
        table.add_row(
            str(index),
            escaped(action.portal),
            str(action.user_id),
            escaped(action.email),
            escaped(action.state.user_type or ""),
            action.finding.code.value,
            action.finding.severity.value,
            escaped(action.finding.idp_status or ""),
        )
    if len(ordered) > limit:
        table.caption = f"… and {len(ordered) - limit} more: every row is in the plan file"
    return table


def results_table(outcomes: list[Outcome]) -> Table:
    table = Table(title="remediation results")
    for column in ("portal", "user id", "email", "action", "result", "reason"):
        table.add_column(column, justify="right" if column == "user id" else "left")
    style = {DONE: "green", SKIPPED: "yellow", FAILED: "bold red"}
    for o in sorted(outcomes, key=lambda o: (o.target.portal, o.target.user_id, o.action)):
        action = o.action if o.group is None else f"{o.action} {o.group['id']}"
        table.add_row(
            escaped(o.target.portal),
            str(o.target.user_id),
            escaped(o.target.email),
            action,
            f"[{style[o.result]}]{o.result}[/]",
            escaped(o.reason),
        )
    return table


def _confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, only `--yes` may proceed."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise _usage("no terminal to confirm on and no --yes: refusing; nothing was changed")
    if not typer.confirm(question, default=False, err=True):
        console.print("not confirmed; nothing was changed")
        raise typer.Exit(EXIT_BROKEN)


def _execute(
    targets: list[Target], cfg: Config, log_path: Path, command: str, remove_memberships: bool
) -> None:
    """Run the targets under the audit log, print the results, exit 0 or 3."""
    log = AuditLog(log_path)
    try:
        log.open()
    except AuditError as exc:
        raise _usage(str(exc)) from None
    try:
        outcomes = asyncio.run(
            run_targets(targets, cfg, log, command=command, remove_memberships=remove_memberships)
        )
    except (AuditError, KeyboardInterrupt) as exc:
        why = visible("interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc))
        console.print(
            f"{why}: {log.appended} action(s) were logged to {log_path} before it stopped (head {log.head})",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        log.close()
    head, appended = log.head, log.appended
    console.print(results_table(outcomes))
    counts = {r: sum(o.result == r for o in outcomes) for r in (DONE, SKIPPED, FAILED)}
    console.print(
        f"{counts[DONE]} done, {counts[SKIPPED]} skipped, {counts[FAILED]} failed; "
        f"{appended} entries appended to {log_path} (head {head})",
        highlight=False,
        markup=False,
    )
    raise typer.Exit(EXIT_FAILED if failed(outcomes) else EXIT_OK)


@remediate_app.command("apply")
def apply_command(
    plan_path: Annotated[Path, typer.Argument(metavar="PLAN.json", help="A plan made by `remediate plan`.")],
    config: ConfigOpt,
    yes: YesOpt = False,
    remove_memberships: Annotated[
        bool,
        typer.Option("--remove-memberships", help="Also remove each disabled account's group memberships."),
    ] = False,
    log: LogOpt = DEFAULT_LOG,
    plan_hash: Annotated[
        str | None,
        typer.Option("--plan-hash", help="Refuse unless the plan hashes to this (approved) value."),
    ] = None,
) -> None:
    """Disable the plan's accounts: re-read each, skip what changed, write, verify by reading back.

    Exit 0 when every account was done or legitimately skipped, 3 when any action failed, 2 when nothing
    was attempted (bad plan/config/log, or no confirmation).

    Example: idgraph remediate apply plan.json --config idgraph.toml --log audit.jsonl
    """
    try:
        plan = load_plan(plan_path, plan_hash)
    except PlanError as exc:
        raise _usage(str(exc)) from None
    cfg = _config(config)
    missing = sorted(set(plan.portals) - {p.name for p in cfg.portals})
    if missing:
        raise _usage(f"--config: the plan names portal(s) the config lacks: {', '.join(missing)}")
    if not plan.actions:
        console.print(f"plan {plan.plan_hash[:16]} lists no account; nothing to do")
        raise typer.Exit(EXIT_OK)
    console.print(plan_table(plan))
    console.print(
        f"plan {plan.plan_hash} made by {plan.created_by} at {plan.created_at} from run {plan.run.id} "
        f"({plan.run.status}) of {plan.run.snapshot}",
        highlight=False,
        markup=False,
    )
    for idp in cfg.idps:
        how = "searched by email before each disable" if idp.type in LOOKUPS else "NOT re-checked (no lookup)"
        console.print(f"IdP {idp.name} ({idp.type}): {how}", highlight=False, markup=False)
    if not cfg.idps:
        console.print("IdPs: none in the config, so people are not re-checked in any IdP", highlight=False)
    if remove_memberships:
        console.print("group memberships of each disabled account will be removed too", highlight=False)
    what = "and remove their memberships " if remove_memberships else ""
    _confirm(f"Disable {len(plan.actions)} account(s) {what}in {len(plan.portals)} portal(s)?", yes)
    _execute(targets_from_plan(plan), cfg, log, "apply", remove_memberships)


@remediate_app.command("verify")
def verify_command(
    log: Annotated[Path, typer.Argument(metavar="LOG", help="The audit log to check.")],
) -> None:
    """Check the audit log's hash chain. Exit 0 when it holds, 1 naming the first broken entry.

    Example: idgraph remediate verify audit.jsonl
    """
    try:
        result = verify_log(log)
    except OSError as exc:
        raise _usage(f"cannot read {log}: {exc.strerror}") from None
    if result.ok:
        console.print(f"{log}: {result.entries} entries, chain intact; head {result.head}", highlight=False)
        raise typer.Exit(EXIT_OK)
    console.print(
        f"{log}: BROKEN at entry {result.broken_entry}: {result.reason} "
        f"({result.entries} entries before it verify)",
        highlight=False,
        markup=False,
    )
    raise typer.Exit(EXIT_BROKEN)


@remediate_app.command("undo")
def undo_command(
    log: Annotated[Path, typer.Argument(metavar="LOG", help="The audit log the disables were written to.")],
    entry: Annotated[
        list[int], typer.Option("--entry", "-e", help="Log entry number of a disable (repeatable).")
    ],
    config: ConfigOpt,
    yes: YesOpt = False,
) -> None:
    """Re-enable accounts that logged disables turned off by mistake; appends its own entries to the log.

    Group memberships removed by `--remove-memberships` are not restored: their groups are in the log.

    Example: idgraph remediate undo audit.jsonl --entry 3 --entry 7 --config idgraph.toml
    """
    try:
        entries = read_entries(log)
        targets = undo_targets(entries, entry)
    except FileNotFoundError:
        raise _usage(f"no audit log at {log}") from None
    except (AuditError, UndoError) as exc:
        raise _usage(str(exc)) from None
    cfg = _config(config)
    missing = sorted({t.portal for t in targets} - {p.name for p in cfg.portals})
    if missing:
        raise _usage(f"--config: the entries name portal(s) the config lacks: {', '.join(missing)}")
    table = Table(title=f"undo: re-enable {len(targets)} account(s)")
    for column in ("entry", "portal", "user id", "email", "plan"):
        table.add_column(column)
    for t in targets:
        table.add_row(str(t.undo_of), escaped(t.portal), str(t.user_id), escaped(t.email), t.plan_hash[:12])
    console.print(table)
    _confirm(f"Re-enable {len(targets)} account(s)?", yes)
    _execute(targets, cfg, log, "undo", remove_memberships=False)


if __name__ == "__main__":  # `python -m crawler.remediation.cli …` until the lead mounts it under idgraph
    remediate_app()
