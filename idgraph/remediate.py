"""`idgraph remediate …`: plan, apply, verify, undo. Mounted by idgraph/cli.py as the `remediate` group.

Exit codes: 0 — done (every planned action done or legitimately skipped; a log that verifies);
1 — `verify` found a broken chain, or the operator answered no; 2 — bad usage, config, plan or log, or
no confirmation possible (nothing was changed); 3 — some action failed (see the table and the log).

Every command needs the remediation key (`[remediation] key_env` in the config, or `--key-env VAR`): it
authenticates plans and audit entries. `apply --yes` needs `--plan-hash` with the full approved hash.
`apply`/`undo` print the log's new head: record it, and pass it back as `--expect-head` to `verify`,
`apply` and `undo`, which then refuse a log that was cut short or replaced.

Results on stdout: the plan table and hash, apply's and undo's results and head, verify's verdict. On
stderr: what a person reads before confirming (the live table, the IdP re-check notes), and errors.
`plan`, `apply` and `undo` take `--log-format json` (`idgraph.run_log`: one summary event at the end).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from crawler.config import Config, ConfigError, load_config
from crawler.records import LUUser
from crawler.remediation.apply import (
    DONE,
    FAILED,
    SKIPPED,
    Outcome,
    Target,
    UndoError,
    drift,
    failed,
    read_live,
    run_targets,
    targets_from_plan,
    undo_targets,
)
from crawler.remediation.audit import (
    AuditError,
    AuditLog,
    entries_of,
    open_intents,
    read_entries,
    verify_log_bytes,
)
from crawler.remediation.idp_check import LOOKUPS
from crawler.remediation.keys import KeyMissing, resolve_key
from crawler.remediation.plan import (
    REMEDIABLE,
    Plan,
    PlanError,
    check_config,
    check_unused,
    load_plan,
    write_plan,
)
from crawler.terminal import escaped, readable, visible
from crawler.vocabulary import SEVERITY_ORDER, Code, Severity
from idgraph import run_log
from idgraph.run_log import CommandLog, LogFormat, LogFormatOpt, command_log
from idgraph.snapshot_arg import DEFAULT_DB, DbOpt, require_snapshot

if TYPE_CHECKING:
    from graph.remediation_plan import NotPlanned

EXIT_OK, EXIT_BROKEN, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
DEFAULT_LOG = Path("idgraph-remediation.jsonl")
SHOWN_ROWS = 100  # the confirmation table; the plan file has every row

remediate_app = typer.Typer(
    name="remediate",
    help=(
        "Disable orphan accounts with human approval: make a plan, have it reviewed, apply it, "
        "and keep a hash-chained audit log.\n\nExamples:\n\n"
        "  idgraph remediate plan -c idgraph.toml --finding idp_disabled_active --out plan.json\n\n"
        "  idgraph remediate apply plan.json -c idgraph.toml --plan-hash HASH --log audit.jsonl\n\n"
        "  idgraph remediate verify audit.jsonl -c idgraph.toml --expect-head HEAD"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback's locals would print the secrets in memory
)
console = Console(stderr=True)  # what a person reads before confirming; notes
results = Console()  # the result: stdout

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="TOML config naming the portals (and IdPs).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask: for schedulers, after review.")]
LogOpt = Annotated[Path, typer.Option("--log", help="Audit log (JSON Lines, hash-chained; created 0o600).")]
KeyEnvOpt = Annotated[
    str | None,
    typer.Option("--key-env", help="Env var holding the remediation key (default: remediation.key_env)."),
]
ExpectHeadOpt = Annotated[
    str | None,
    typer.Option(
        "--expect-head", help="The log head recorded last time: refuse a log that no longer has it."
    ),
]


def _usage(message: str) -> typer.Exit:
    return run_log.fail(message, EXIT_USAGE)


def _config(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _usage(f"config error: {exc}") from None


def _key(cfg: Config | None, key_env: str | None) -> bytes:
    """The remediation key, or exit 2 naming where it should come from (never what it is)."""
    try:
        return resolve_key(cfg, key_env)
    except KeyMissing as exc:
        raise _usage(str(exc)) from None


def _check_log(path: Path, key: bytes, expect_head: str | None, plan: Plan | None = None) -> None:
    """Refuse a log that will not be extended before any request is sent (read-only: nothing is created),
    and with `plan`, a plan the log shows was applied already, or partly undone (a plan is single-use).
    The log is read once for both."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if expect_head is None:
            return
        data = b""
    except OSError as exc:
        raise _usage(f"audit log {path}: {exc.strerror}") from None
    result = verify_log_bytes(data, key, expect_head)
    if not result.ok and result.broken_entry is None:
        raise _usage(f"audit log {path}: {result.reason}; refusing to extend it")
    if not result.ok:
        raise _usage(
            f"audit log {path} fails verification at entry {result.broken_entry} ({result.reason}); "
            "refusing to extend it: keep it as evidence and use a new log"
        )
    if plan is not None:
        try:
            check_unused(plan, entries_of(data, result))
        except PlanError as exc:
            raise _usage(f"{exc}; nothing was changed") from None


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


@remediate_app.command("plan")
def plan_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the plan (JSON).")],
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="The config the plan is for: portals' base_urls, review settings, key."
        ),
    ],
    db: DbOpt = DEFAULT_DB,
    run: Annotated[int | None, typer.Option("--run", help="Run id (default: the newest).")] = None,
    portal: Annotated[
        list[str] | None, typer.Option("--portal", help="Only these portals (repeatable).")
    ] = None,
    severity: Annotated[
        list[str] | None, typer.Option("--severity", help="Only these severities (repeatable or a,b).")
    ] = None,
    key_env: KeyEnvOpt = None,
    finding: Annotated[
        str | None, typer.Option("--finding", help="Finding code to remediate (or --from-review).")
    ] = None,
    from_review: Annotated[
        bool,
        typer.Option(
            "--from-review",
            help="Plan the reviewers' revoke decisions that still stand (`idgraph review import`).",
        ),
    ] = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Write a plan of the accounts to disable, for one finding code or from review decisions, over one
    run. Changes nothing anywhere.

    --from-review plans exactly the revoke decisions whose facts still hold: never an account under a live
    exception or excluded by a [review] exclude rule; it lists every revoke it leaves out, with why.

    Example: idgraph remediate plan --db snap.db --config idgraph.toml --finding idp_disabled_active
    --severity critical,high --out plan.json

    Example: idgraph remediate plan --from-review --db snap.db --config idgraph.toml --out plan.json
    """
    with command_log("remediate plan", log_format) as log:
        if (finding is None) == (not from_review):
            raise _usage("give one of --finding CODE or --from-review")
        try:
            severities = [Severity(s.lower()) for s in _split(severity)]
        except ValueError:
            raise _usage(f"--severity: expected {', '.join(s.value for s in Severity)}") from None
        code = None
        if finding is not None:
            try:
                code = Code(finding)
            except ValueError:
                choices = ", ".join(sorted(c.value for c in REMEDIABLE))
                raise _usage(f"--finding: unknown finding {finding!r}; remediable: {choices}") from None
        cfg = _config(config)
        key = _key(cfg, key_env)
        require_snapshot(db)
        left_out: list[NotPlanned] = []
        try:  # evaluating findings: loaded when planning
            if code is not None:
                from graph.remediation_plan import plan_from_snapshot

                plan = plan_from_snapshot(
                    db, code=code, config=cfg, key=key, run_id=run, portals=_split(portal),
                    severities=severities, left_out=left_out,
                )  # fmt: skip
            else:
                from graph.review_plan import plan_from_review

                plan, left_out = plan_from_review(
                    db, config=cfg, key=key, run_id=run, portals=_split(portal), severities=severities
                )
        except PlanError as exc:
            raise _usage(str(exc)) from None
        write_plan(plan, out)
        log.record(
            run_id=plan.run.id, plan_hash=plan.plan_hash, plan=str(out), actions=len(plan.actions),
            portals=list(plan.portals), not_judged=[dict(scope) for scope in plan.unavailable],
            not_planned=[{"portal": i.portal, "user_id": i.user_id, "reason": i.reason} for i in left_out],
        )  # fmt: skip
        results.print(plan_table(plan))
        for item in left_out:
            results.print(
                visible(f"not planned: {item.portal}/{item.user_id} {item.email or ''}: {item.reason}"),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        for scope in plan.unavailable:
            results.print(
                visible(f"not judged ({scope['scope']}): {scope['reason']}"),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        results.print(
            f"plan {plan.plan_hash} → {out}: disable {len(plan.actions)} account(s) in "
            f"{len(plan.portals)} portal(s), run {plan.run.id}; expires {plan.expires_at}. Nothing was "
            f"changed; have it reviewed, then "
            f"`idgraph remediate apply {out} --config FILE --plan-hash {plan.plan_hash}`.",
            highlight=False,
            markup=False,
            soft_wrap=True,
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
    return readable(table)


def live_table(
    plan: Plan, live: dict[tuple[str, int], LUUser | str | None], *, limit: int = SHOWN_ROWS
) -> Table:
    """What apply is about to change, as the portals show it now (not as the plan claims it)."""
    table = Table(title=f"plan {plan.plan_hash[:16]} — live accounts to disable ({len(plan.actions)})")
    for column in ("#", "portal", "user id", "email (live)", "enabled", "type (live)", "finding", "changed?"):
        table.add_column(column, justify="right" if column in ("#", "user id") else "left")
    ordered = sorted(plan.actions, key=lambda a: (SEVERITY_ORDER[a.finding.severity], a.portal, a.user_id))
    targets = {(t.portal, t.user_id): t for t in targets_from_plan(plan)}
    for index, action in enumerate(ordered[:limit], start=1):
        user = live.get((action.portal, action.user_id))
        if isinstance(user, LUUser):
            changes = drift(targets[(action.portal, action.user_id)].expect, user)
            cells = [escaped(user.email or ""), str(user.enabled).lower(), escaped(user.user_type or "")]
            note = "[yellow]" + escaped("; ".join(changes)) + " → will be skipped[/]" if changes else "no"
        else:
            cells = ["", "", ""]
            note = "[yellow]" + escaped(user or "not found") + "[/]"
        table.add_row(
            str(index), escaped(action.portal), str(action.user_id), *cells,
            f"{action.finding.code.value} ({action.finding.severity.value})", note,
        )  # fmt: skip
    if len(ordered) > limit:
        table.caption = f"… and {len(ordered) - limit} more: every row is in the plan file"
    return readable(table)


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
    return readable(table)


def _can_confirm(yes: bool) -> None:
    """Refuse before any request when nobody can answer the question."""
    if not yes and not sys.stdin.isatty():
        raise _usage("no terminal to confirm on and no --yes: refusing; nothing was changed")


def _confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, only `--yes` may proceed."""
    if yes:
        return
    _can_confirm(yes)
    if not typer.confirm(question, default=False, err=True):
        console.print("not confirmed; nothing was changed")
        raise typer.Exit(EXIT_BROKEN)


def _execute(
    targets: list[Target],
    cfg: Config,
    log_path: Path,
    command: str,
    remove_memberships: bool,
    *,
    key: bytes,
    expect_head: str | None,
    run: CommandLog,
) -> None:
    """Run the targets under the audit log, print the results (stdout), exit 0 or 3."""
    log = AuditLog(log_path, key=key, expect_head=expect_head)
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
        run.record(appended=log.appended, head=log.head, audit_log=str(log_path))
        raise run_log.fail(
            f"{why}: {log.appended} action(s) were logged to {log_path} before it stopped (head {log.head})",
            EXIT_FAILED,
        ) from None
    finally:
        log.close()
    head, appended = log.head, log.appended
    counts = {r: sum(o.result == r for o in outcomes) for r in (DONE, SKIPPED, FAILED)}
    run.record(**counts, appended=appended, head=head, audit_log=str(log_path))
    results.print(results_table(outcomes))
    results.print(
        f"{counts[DONE]} done, {counts[SKIPPED]} skipped, {counts[FAILED]} failed; "
        f"{appended} entries appended to {log_path}",
        highlight=False,
        markup=False,
    )
    print(f"head {head}", flush=True)  # for the reviewer (or the scheduler) to record, then --expect-head
    run.info(f"new log head {head}: record it and pass it as --expect-head to the next verify/apply/undo")
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
        typer.Option("--plan-hash", help="The approved plan hash, in full; required with --yes."),
    ] = None,
    key_env: KeyEnvOpt = None,
    expect_head: ExpectHeadOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Disable the plan's accounts: re-read each, skip what changed, write, verify by reading back.

    Exit 0 when every account was done or legitimately skipped, 3 when any action failed, 2 when nothing
    was attempted (bad plan/config/log, or no confirmation).

    Example: idgraph remediate apply plan.json --config idgraph.toml --log audit.jsonl
    """
    with command_log("remediate apply", log_format) as run:
        if yes and plan_hash is None:
            raise _usage("--yes needs --plan-hash with the full approved plan hash; nothing was changed")
        cfg = _config(config)
        key = _key(cfg, key_env)
        try:
            plan = load_plan(plan_path, key, plan_hash)
            check_config(plan, cfg)
        except PlanError as exc:
            raise _usage(str(exc)) from None
        if not plan.actions:
            run.info(f"plan {plan.plan_hash[:16]} lists no account; nothing to do")
            raise typer.Exit(EXIT_OK)
        _can_confirm(yes)
        _check_log(log, key, expect_head, plan)
        targets = targets_from_plan(plan)
        live = asyncio.run(read_live(targets, cfg))
        run.show(live_table(plan, live))
        run.info(
            f"plan {plan.plan_hash} made by {plan.created_by} at {plan.created_at} from run {plan.run.id} "
            f"({plan.run.status}) of {plan.run.snapshot}"
        )
        for idp in cfg.idps:
            how = (
                "searched by email before each disable"
                if idp.type in LOOKUPS
                else "NOT re-checked (no lookup)"
            )
            run.info(f"IdP {idp.name} ({idp.type}): {how}", idp=idp.name)
        if not cfg.idps:
            run.info("IdPs: none in the config, so people are not re-checked in any IdP")
        if remove_memberships:
            run.info("group memberships of each disabled account will be removed too")
        what = "and remove their memberships " if remove_memberships else ""
        _confirm(f"Disable {len(plan.actions)} account(s) {what}in {len(plan.portals)} portal(s)?", yes)
        run.record(plan_hash=plan.plan_hash, run_id=plan.run.id, actions=len(plan.actions))
        _execute(targets, cfg, log, "apply", remove_memberships, key=key, expect_head=expect_head, run=run)


@remediate_app.command("verify")
def verify_command(
    log: Annotated[Path, typer.Argument(metavar="LOG", help="The audit log to check.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config whose remediation.key_env names the key's env var."),
    ] = None,
    key_env: KeyEnvOpt = None,
    expect_head: ExpectHeadOpt = None,
) -> None:
    """Check the audit log's chain and MACs. Exit 0 when it holds, 1 naming the first broken entry.

    Without --expect-head a log cut short still verifies: pass the head you recorded.

    Example: idgraph remediate verify audit.jsonl --config idgraph.toml --expect-head HEAD
    """
    key = _key(_config(config) if config is not None else None, key_env)
    try:
        data = log.read_bytes()
    except OSError as exc:
        raise _usage(f"cannot read {log}: {exc.strerror}") from None
    result = verify_log_bytes(data, key, expect_head)
    if result.torn_tail:
        console.print(
            f"{log}: the last line is torn ({len(result.torn_tail)} bytes, an interrupted write): "
            "not an entry; the next apply or undo cuts it off and logs that",
            highlight=False,
            markup=False,
        )
    unsettled = open_intents(entries_of(data, result)) if result.ok else []
    if unsettled:
        console.print(
            f"{log}: {len(unsettled)} intent(s) without an outcome (entries "
            f"{', '.join(map(str, unsettled))}): the run stopped around those writes, so those accounts' "
            "state is unknown until a new apply re-reads them",
            highlight=False,
            markup=False,
        )
    if result.ok:
        pinned = (
            " (contains the expected head)" if expect_head else " (no --expect-head: truncation not checked)"
        )
        results.print(
            f"{log}: {result.entries} entries, chain intact{pinned}; head {result.head}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(EXIT_OK)
    if result.broken_entry is None:
        results.print(f"{log}: REFUSED: {result.reason}", highlight=False, markup=False)
        raise typer.Exit(EXIT_BROKEN)
    results.print(
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
    force: Annotated[
        bool,
        typer.Option("--force", help="Re-enable even while the IdP still says the person is disabled."),
    ] = False,
    key_env: KeyEnvOpt = None,
    expect_head: ExpectHeadOpt = None,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Re-enable accounts that logged disables turned off by mistake; appends its own entries to the log.

    An account is re-enabled only while it is exactly as the disable's read-back left it, and (unless
    --force) only when no searchable IdP still says the person is disabled. Group memberships removed by
    `--remove-memberships` are not restored: their groups are in the log.

    Example: idgraph remediate undo audit.jsonl --entry 3 --entry 7 --config idgraph.toml --expect-head HEAD
    """
    with command_log("remediate undo", log_format) as run:
        cfg = _config(config)
        key = _key(cfg, key_env)
        try:
            entries = read_entries(log, key, expect_head)
            targets = undo_targets(entries, entry, force=force)
        except FileNotFoundError:
            raise _usage(f"no audit log at {log}") from None
        except (AuditError, UndoError) as exc:
            raise _usage(str(exc)) from None
        missing = sorted({t.portal for t in targets} - {p.name for p in cfg.portals})
        if missing:
            raise _usage(f"--config: the entries name portal(s) the config lacks: {', '.join(missing)}")
        table = Table(title=f"undo: re-enable {len(targets)} account(s)")
        for column in ("entry", "portal", "user id", "email", "plan"):
            table.add_column(column)
        for t in targets:
            table.add_row(
                str(t.undo_of), escaped(t.portal), str(t.user_id), escaped(t.email), t.plan_hash[:12]
            )
        run.show(table)
        _confirm(f"Re-enable {len(targets)} account(s)?", yes)
        _execute(
            targets, cfg, log, "undo", remove_memberships=False, key=key, expect_head=expect_head, run=run
        )


if __name__ == "__main__":  # `python -m idgraph.remediate …`, as the tests drive the group alone
    remediate_app()
