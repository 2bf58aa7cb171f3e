"""`idgraph review …`: an access review of a run — export the findings to decide on, import the decisions,
follow progress, and write the evidence pack an auditor asks for. Mounted by idgraph/cli.py.

Exit codes: 0 — done, over a complete run; 2 — bad usage, or a decisions file refused (every problem
listed; nothing imported); 3 — done, but the run is incomplete or some verdict was withheld, so every count
is a lower bound (each output says so); 4 — the snapshot file failed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crawler.config import ConfigError, load_review_config
from crawler.private import PermissionsError, write_private
from crawler.store import SnapshotStore
from crawler.terminal import escaped, plain, readable, visible
from graph.campaign import RunReview, open_review
from graph.rules import ReviewSettings
from idgraph.snapshot_arg import DEFAULT_DB, DbOpt, require_snapshot

EXIT_OK, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_SNAPSHOT = 0, 2, 3, 4
console = Console(stderr=True)

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


def _usage(message: str) -> typer.Exit:
    console.print(f"[bold red]idgraph review:[/] {escaped(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def _settings(config: Path | None) -> ReviewSettings | None:
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
    settings = _settings(config)
    require_snapshot(db)  # exit 2 for a missing, empty or foreign file, left untouched
    try:
        with SnapshotStore(db) as store, open_review(store, run, settings) as review:
            yield store, review
    except LookupError as exc:
        raise _usage(f"--run: {exc}") from None
    except (sqlite3.Error, PermissionsError) as exc:
        console.print(f"[bold red]idgraph:[/] snapshot error: {escaped(f'{db}: {exc}')}", highlight=False)
        raise typer.Exit(EXIT_SNAPSHOT) from None


def incomplete_banner(review: RunReview) -> int:
    """Say on stderr why the numbers are lower bounds; the exit code to end with."""
    lines = review.incompleteness()
    if not lines:
        return EXIT_OK
    console.print(
        f"[bold yellow]run {review.run_id} is INCOMPLETE:[/] every count is a lower bound and findings may "
        "be missing —",
        highlight=False,
    )
    for line in lines:
        console.print(f"  {escaped(line)}", highlight=False, soft_wrap=True)
    return EXIT_INCOMPLETE


@review_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the decisions file (CSV).")],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write one row per open finding of a run, with empty decision columns for reviewers to fill.

    Findings accepted under a live exception, or excluded by a [review] exclude rule, are not listed
    (`review status` and the report count them). Exit 3 when the run is incomplete.

    Example: idgraph review export --db snapshots.db --run 4 --out decisions.csv
    """
    from graph.decisions_file import render_export
    from graph.review import report_input

    with reviewing(db, run, config) as (store, review):
        report = report_input(store, review)
        write_private(out, render_export(review, report))
        counts = (len(review.open), len(review.accepted), len(review.excluded))
    print(f"{out}: {counts[0]} open finding(s) of run {review.run_id} to decide on")
    console.print(
        f"not listed: {counts[1]} accepted under a live exception, {counts[2]} excluded by a rule. Fill "
        "decision (revoke|keep|exception), reason, and for exceptions scope (account|person) and "
        f"expires_at; then `idgraph review import {out} --reviewer EMAIL`.",
        highlight=False,
        markup=False,
    )
    raise typer.Exit(incomplete_banner(review))


@review_app.command("import")
def import_command(
    file: Annotated[
        Path, typer.Argument(metavar="DECISIONS.csv", help="A file `review export` wrote, filled in.")
    ],
    reviewer: Annotated[str, typer.Option("--reviewer", help="The email of the reviewer who decided.")],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
) -> None:
    """Record a reviewer's decisions: validated as a whole against the run, in one transaction.

    Refused, with every problem and its line, and nothing recorded (exit 2): unknown finding ids,
    findings no longer open, facts changed since the export, duplicate rows, a missing reason, an
    exception without scope or expiry, a malformed file, a reviewer deciding on their own account.
    Decisions are never edited: a later import of the same finding is a correction that supersedes.

    Example: idgraph review import decisions.csv --reviewer lead@acme.com --db snapshots.db
    """
    from graph.decision_import import ImportRefused, check_reviewer, import_decisions

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
            console.print(f"[bold red]idgraph review:[/] {escaped(file)} refused: {exc}", highlight=False)
            for problem in exc.problems[:50]:
                console.print(f"  {escaped(problem)}", highlight=False, soft_wrap=True)
            if len(exc.problems) > 50:
                console.print(f"  … and {len(exc.problems) - 50} more", highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
    counts = result.counts()
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
) -> None:
    """Decided and undecided findings of a run, by severity, portal and reviewer (on stdout).

    Exit 3 when the run is incomplete: the counts are then lower bounds.

    Example: idgraph review status --db snapshots.db --format json
    """
    from graph.review_status import COUNTS, status

    if output not in STATUS_FORMATS:
        raise _usage(f"--format: expected table or json, got {output!r}")
    with reviewing(db, run) as (_, review):
        counts = status(review)
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
    raise typer.Exit(incomplete_banner(review))


@review_app.command("evidence")
def evidence_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="A new directory for the pack (never overwritten).")
    ],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    log: Annotated[
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
) -> None:
    """Write the evidence pack of a run: population and coverage, findings, decisions, exceptions,
    exclusions, remediation entries with read-backs and the audit chain's head, an HTML summary, and
    manifest.json + SHA256SUMS of every file. Prints the SHA-256 of SHA256SUMS (record it).

    Exit 3 when the run is incomplete, the log is missing or does not verify: the pack is written and says so.

    Example: idgraph review evidence --db snapshots.db --run 5 --out evidence-2026q2 --log audit.jsonl
    --key-env IDGRAPH_REMEDIATION_KEY
    """
    from crawler.config import load_config
    from crawler.remediation.keys import KeyMissing, resolve_key
    from graph.evidence_pack import AuditEvidence, PackError, build_pack, write_pack

    key = None
    if log is not None:
        try:
            cfg = load_config(config) if config is not None else None
            key = resolve_key(cfg, key_env)
        except (ConfigError, KeyMissing) as exc:
            raise _usage(str(exc)) from None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _usage(f"--out: {out} exists and is not empty; a pack is never overwritten")
    try:
        audit = AuditEvidence.read(log, key, expect_head)
    except PackError as exc:
        raise _usage(str(exc)) from None
    with reviewing(db, run, config) as (store, review):
        pack = build_pack(store, review, audit)
        try:
            _, sums = write_pack(out, pack, snapshot=db.name)
        except PackError as exc:
            raise _usage(str(exc)) from None
    print(f"{out}: {len(pack.files) + 2} files; SHA256SUMS sha256 {sums}")
    code = incomplete_banner(review)
    chain = pack.facts["audit_chain"]
    if not chain["given"]:
        console.print("no --log given: the pack shows no remediation (exit 3)", highlight=False)
        code = EXIT_INCOMPLETE
    elif not chain["verified"]:
        console.print(f"the audit log does not verify: {escaped(chain['reason'])} (exit 3)", highlight=False)
        code = EXIT_INCOMPLETE
    raise typer.Exit(code)


if __name__ == "__main__":  # `python -m idgraph.review_cli …`, as tests drive the group alone
    review_app()
