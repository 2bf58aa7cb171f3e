"""`idgraph review …`: an access review of a run — export the findings to decide on, import the decisions,
follow progress, and write the evidence pack an auditor asks for. Mounted by idgraph/cli.py.

Exit codes: 0 — done, over a complete run; 2 — bad usage, or a decisions file refused (every problem
listed; nothing imported); 3 — done, but the run is incomplete or some verdict was withheld, so every count
is a lower bound (each output says so); 4 — the snapshot file failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crawler.config import ConfigError, load_review_config
from crawler.private import write_private
from crawler.store import SnapshotStore
from crawler.terminal import plain, readable, visible
from idgraph import run_log
from idgraph.run_log import CommandLog, LogFormat, LogFormatOpt, QuietOpt, command_log
from idgraph.snapshot_arg import DEFAULT_DB, SNAPSHOT_ERRORS, DbOpt, fail_snapshot, require_snapshot

if TYPE_CHECKING:  # the graph side loads when a review command runs, not with every `idgraph` command
    from graph.campaign import RunReview
    from graph.rules import ReviewSettings

EXIT_OK, EXIT_USAGE, EXIT_INCOMPLETE = 0, 2, 3

review_app = typer.Typer(
    name="review",
    help=(
        "Run an access review of a crawl: decide on each finding, keep exceptions, prove it to an auditor."
        "\n\nExamples:\n\n  idgraph review export --run 4 --out decisions.csv\n\n"
        "  idgraph review import decisions.csv --reviewer lead@acme.com\n\n"
        "  idgraph review status --format json\n\n"
        "  idgraph review evidence --run 4 --out evidence-2026q2"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback's locals would print the secrets in memory
)

RunOpt = Annotated[int | None, typer.Option("--run", help="Run id (default: the newest).")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file: only its [review] table is read (no secrets needed)."),
]


def _usage(message: str, **fields: Any) -> typer.Exit:
    return run_log.fail(message, EXIT_USAGE, **fields)


def _settings(config: Path | None) -> ReviewSettings | None:
    from graph.rules import ReviewSettings

    if config is None:
        return None
    try:
        return ReviewSettings.from_config(load_review_config(config))
    except ConfigError as exc:
        raise _usage(f"config error: {exc}") from None


@contextmanager
def reviewing(
    db: Path, run: int | None, config: Path | None = None
) -> Iterator[tuple[SnapshotStore, RunReview]]:
    """The run under review, with every failure turned into its exit code."""
    from graph.campaign import open_review

    settings = _settings(config)
    require_snapshot(db)  # exit 2 for a missing, empty or foreign file, left untouched
    try:
        with SnapshotStore(db) as store, open_review(store, run, settings) as review:
            yield store, review
    except LookupError as exc:
        raise _usage(f"--run: {exc}") from None
    except SNAPSHOT_ERRORS as exc:
        raise fail_snapshot(db, exc) from None


def incomplete_banner(review: RunReview, run: CommandLog) -> int:
    """Say on stderr why the numbers are lower bounds (and record it in the summary); the exit code."""
    lines = review.incompleteness()
    run.record(run_id=review.run_id, complete=not lines)
    if not lines:
        return EXIT_OK
    run.notice(
        f"run {review.run_id} is INCOMPLETE: every count is a lower bound and findings may be missing —",
        event="incomplete",
        reasons=lines,
    )
    if not run.json:  # a scheduler has the reasons in the notice
        for line in lines:
            run.info(f"  {line}")
    return EXIT_INCOMPLETE


@review_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the decisions file (CSV).")],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Write one row per open finding of a run, with empty decision columns for reviewers to fill.

    Findings accepted under a live exception, or excluded by a [review] exclude rule, are not listed
    (`review status` and the report count them). Exit 3 when the run is incomplete.

    Example: idgraph review export --db snapshots.db --run 4 --out decisions.csv
    """
    from graph.decisions_file import render_export
    from graph.review import report_input

    with (
        command_log("review export", log_format, quiet) as log,
        reviewing(db, run, config) as (store, review),
    ):
        report = report_input(store, review)
        write_private(out, render_export(review, report))
        counts = (len(review.open), len(review.accepted), len(review.excluded))
        log.record(file=str(out), open=counts[0], accepted=counts[1], excluded=counts[2])
        print(f"{visible(out)}: {counts[0]} open finding(s) of run {review.run_id} to decide on")
        log.info(
            f"not listed: {counts[1]} accepted under a live exception, {counts[2]} excluded by a rule. Fill "
            "decision (revoke|keep|exception), reason, and for exceptions scope (account|person) and "
            f"expires_at; then `idgraph review import {out} --reviewer EMAIL`."
        )
        raise typer.Exit(incomplete_banner(review, log))


@review_app.command("import")
def import_command(
    file: Annotated[
        Path, typer.Argument(metavar="DECISIONS.csv", help="A file `review export` wrote, filled in.")
    ],
    reviewer: Annotated[str, typer.Option("--reviewer", help="The email of the reviewer who decided.")],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Record a reviewer's decisions: validated as a whole against the run, in one transaction.

    Refused, with every problem and its line, and nothing recorded (exit 2): unknown finding ids,
    findings no longer open, facts changed since the export, duplicate rows, a missing reason, an
    exception without scope or expiry, a malformed file, a reviewer deciding on their own account.
    Decisions are never edited: a later import of the same finding is a correction that supersedes.

    Example: idgraph review import decisions.csv --reviewer lead@acme.com --db snapshots.db
    """
    from graph.decision_import import MAX_ERRORS_SHOWN, ImportRefused, check_reviewer, import_decisions

    with command_log("review import", log_format, quiet) as log:
        try:
            check_reviewer(reviewer)
        except ValueError as exc:
            raise _usage(str(exc)) from None
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise _usage(f"cannot read {file}: {exc.strerror}") from None
        with reviewing(db, run) as (store, review):
            try:
                result = import_decisions(store, review, data, reviewer=reviewer, file_name=file.name)
            except ImportRefused as exc:
                more = len(exc.problems) - MAX_ERRORS_SHOWN
                shown = exc.problems[:MAX_ERRORS_SHOWN] + [f"… and {more} more"] * (more > 0)
                raise _usage(
                    "\n  ".join([f"{file} refused: {exc}", *shown]), problems=list(exc.problems)
                ) from None
        counts = result.counts()
        log.record(
            run_id=result.run_id, import_id=result.import_id, decisions=counts, undecided=result.undecided
        )
        print(
            f"imported {len(result.decisions)} decision(s) from {visible(file.name)} as import "
            f"#{result.import_id} (run {result.run_id}): {counts['revoke']} revoke, {counts['keep']} keep, "
            f"{counts['exception']} exception; {result.undecided} row(s) left undecided"
        )


STATUS_FORMATS = ("table", "json")


@review_app.command("status")
def status_command(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    output: Annotated[str, typer.Option("--format", help="table or json (on stdout).")] = "table",
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Decided and undecided findings of a run, by severity, portal and reviewer (on stdout).

    Exit 3 when the run is incomplete: the counts are then lower bounds.

    Example: idgraph review status --db snapshots.db --format json
    """
    from graph.review_status import status

    with command_log("review status", log_format, quiet) as log:
        if output not in STATUS_FORMATS:
            raise _usage(f"--format: expected table or json, got {output!r}")
        with reviewing(db, run) as (_, review):
            counts = status(review)
        log.record(totals=counts["totals"])
        _print_status(counts, output)
        raise typer.Exit(incomplete_banner(review, log))


def _print_status(counts: dict[str, Any], output: str) -> None:
    """The status on stdout: JSON, or a table that stays whole at 80 columns when not a terminal."""
    from graph.review_status import COUNTS

    if output == "json":
        print(json.dumps(counts, indent=2, ensure_ascii=False))
    else:
        table = Table(
            title=f"review of run {counts['run']}" + ("" if counts["complete"] else " (INCOMPLETE)")
        )
        table.add_column("by")
        table.add_column("")
        for column in COUNTS:
            table.add_column(column, justify="right")
        table.add_row("all", "", *(str(counts["totals"][c]) for c in COUNTS), end_section=True)
        for group in ("severity", "portal", "reviewer"):
            rows: dict[str, Any] = counts[f"by_{group}"]
            for index, (key, values) in enumerate(rows.items()):
                table.add_row(
                    group if index == 0 else "", plain(key), *(str(values[c]) for c in COUNTS),
                    end_section=index == len(rows) - 1,
                )  # fmt: skip
        Console().print(readable(table))  # stdout; whole at 80 columns when it is not a terminal


@review_app.command("evidence")
def evidence_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="A new directory for the pack (never overwritten).")
    ],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    log_path: Annotated[
        Path | None,
        typer.Option("--log", help="The remediation audit log (JSON Lines) to include and verify."),
    ] = None,
    key_env: Annotated[
        str | None, typer.Option("--key-env", help="Env var holding the remediation key (verifies --log).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config: its remediation.key_env names the key; its review table applies.",
        ),
    ] = None,
    expect_head: Annotated[
        str | None, typer.Option("--expect-head", help="The log head recorded last: refuse a log without it.")
    ] = None,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Write the evidence pack of a run: population and coverage, findings, decisions, exceptions,
    exclusions, remediation entries with read-backs and the audit chain's head, an HTML summary, and
    manifest.json + SHA256SUMS of every file. Prints the SHA-256 of SHA256SUMS (record it).

    Exit 3 when the run is incomplete, the log is missing or does not verify: the pack is written and says so.

    Example: idgraph review evidence --db snapshots.db --run 5 --out evidence-2026q2 --log audit.jsonl
    --key-env IDGRAPH_REMEDIATION_KEY
    """
    with command_log("review evidence", log_format, quiet) as log:
        raise typer.Exit(_evidence(out, db, run, log_path, key_env, config, expect_head, log))


def _evidence(
    out: Path,
    db: Path,
    run: int | None,
    log_path: Path | None,
    key_env: str | None,
    config: Path | None,
    expect_head: str | None,
    log: CommandLog,
) -> int:
    """Write the pack; the exit code (3 when the run is incomplete or the audit chain is not shown)."""
    from crawler.config import load_config
    from crawler.remediation.keys import KeyMissing, resolve_key
    from graph.evidence_pack import AuditEvidence, PackError, build_pack, write_pack

    key = None
    if log_path is not None:
        try:
            cfg = load_config(config) if config is not None else None
            key = resolve_key(cfg, key_env)
        except (ConfigError, KeyMissing) as exc:
            raise _usage(str(exc)) from None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _usage(f"--out: {out} exists and is not empty; a pack is never overwritten")
    try:
        audit = AuditEvidence.read(log_path, key, expect_head)
    except PackError as exc:
        raise _usage(str(exc)) from None
    with reviewing(db, run, config) as (store, review):
        pack = build_pack(store, review, audit)
        try:
            _, sums = write_pack(out, pack, snapshot=db.name)
        except PackError as exc:
            raise _usage(str(exc)) from None
    print(f"{visible(out)}: {len(pack.files) + 2} files; SHA256SUMS sha256 {sums}")
    log.record(pack=str(out), files=len(pack.files) + 2, sha256sums_sha256=sums)
    code = incomplete_banner(review, log)
    chain = pack.facts["audit_chain"]
    log.record(audit_chain_verified=bool(chain["verified"]) if chain["given"] else None)
    if not chain["given"]:
        log.notice("no --log given: the pack shows no remediation (exit 3)")
        code = EXIT_INCOMPLETE
    elif not chain["verified"]:
        log.notice(f"the audit log does not verify: {chain['reason']} (exit 3)")
        code = EXIT_INCOMPLETE
    return code


if __name__ == "__main__":  # `python -m idgraph.review_cli …`, as tests drive the group alone
    review_app()
