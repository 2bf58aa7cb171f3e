"""The `idgraph` command line. Its commands, options and exit codes are a public contract (README;
docs/architecture.md, "Public contracts").

Exit codes: 0 — every source complete; 3 — finished, some source incomplete; 2 — bad config or usage
(one line naming the field; nothing written); 4 — the snapshot file failed (locked by another process,
not a SQLite database, disk full or I/O error, or readable by others and not ours to narrow): one line
`idgraph: snapshot error: …`; 130 — interrupted (Ctrl-C, SIGINT): every source stopped, what was read is
committed, and `idgraph crawl --resume N` finishes the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from crawler.config import Config, ConfigError, load_config, load_review_config
from crawler.errors import SourceError
from crawler.logs import setup_logging
from crawler.orchestrator import CrawlInterrupted, CrawlResult, LiveSource, crawl
from crawler.private import PermissionsError
from crawler.progress import summary_table, with_live_progress
from crawler.store import SnapshotStore
from crawler.terminal import escaped, plain

if TYPE_CHECKING:  # the rules and report writers load in the commands that use them, not for `crawl`
    from graph.review import Review
    from graph.rules import ReviewSettings

EXIT_OK, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_SNAPSHOT, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
DEFAULT_DB = Path("idgraph.db")

app = typer.Typer(
    name="idgraph",
    help=(
        "Crawl every LearnUpon portal and IdP into one identity graph and report the accounts that should "
        "not be alive.\n\nExamples:\n\n  idgraph demo --out ./demo-report\n\n"
        "  idgraph crawl --config idgraph.toml --db snapshots.db\n\n"
        "  idgraph simulate --port 8080 --portals emea,apac"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # a traceback's locals would print the secrets in memory
)
console = Console(stderr=True)
log = logging.getLogger("idgraph")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"idgraph {version('idgraph')}")  # a result: stdout
        except PackageNotFoundError:
            print("idgraph (not installed: run from a source tree)")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """Crawl every LearnUpon portal and IdP into one identity graph and report the accounts that should
    not be alive."""


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; warnings only.")]
LogFormatOpt = Annotated[
    str, typer.Option("--log-format", help="text (for people) or json (one object per line, for schedulers).")
]


def _fail_usage(message: str) -> typer.Exit:
    console.print(f"[bold red]idgraph:[/] {escaped(message)}", highlight=False)
    return typer.Exit(EXIT_USAGE)


SNAPSHOT_ERRORS = (sqlite3.Error, PermissionsError)


def _fail_snapshot(db: Path, exc: BaseException) -> typer.Exit:
    """One line for a snapshot that cannot be read or written (locked, not SQLite, disk full…)."""
    detail = str(exc) or type(exc).__name__
    if str(db) not in detail:
        detail = f"{db}: {detail}"
    console.print(f"[bold red]idgraph:[/] snapshot error: {escaped(detail)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_SNAPSHOT)


def _interrupted(run_id: int | None) -> typer.Exit:
    if run_id is None:
        console.print("interrupted", highlight=False)
    else:
        hint = f"interrupted — resume with `idgraph crawl --resume {run_id}`"
        console.print(hint, highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_INTERRUPTED)


async def run_crawl(config: Config, db: Path, *, resume: int | None, show_progress: bool) -> CrawlResult:
    """Crawl with a live table when a person is watching."""
    with SnapshotStore(db) as store:
        live: dict[str, LiveSource] = {}
        work = crawl(config, store, resume_run=resume, live=live)
        if not show_progress:
            return await work
        return await with_live_progress(console, live, work)


@app.command("crawl")
def crawl_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="TOML config naming portals and IdPs.")],
    db: Annotated[Path, typer.Option("--db", help="Snapshot file (SQLite).")] = DEFAULT_DB,
    resume: Annotated[int | None, typer.Option("--resume", help="Finish an interrupted run.")] = None,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = "text",
) -> None:
    """Crawl every portal and IdP in the config into a new snapshot run.

    Exit 0 when every source completed, 3 when some source is incomplete (see the coverage table),
    2 on a bad config, 4 when the snapshot file fails, 130 when interrupted (resume with --resume N).
    A config without an IdP crawls, with a warning: its IdP verdicts will be withheld.

    Example: idgraph crawl --config idgraph.toml --db snapshots.db
    """
    if log_format not in ("text", "json"):
        raise _fail_usage(f"--log-format: expected text or json, got {log_format!r}")
    setup_logging(log_format, quiet)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail_usage(f"config error: {exc}") from None
    try:
        result = asyncio.run(
            run_crawl(cfg, db, resume=resume, show_progress=not quiet and log_format == "text")
        )
        _save_review_settings(db, result.run_id, cfg)
    except SourceError as exc:
        raise _fail_usage(str(exc)) from None
    except CrawlInterrupted as exc:
        raise _interrupted(exc.run_id) from None
    except KeyboardInterrupt:  # a second Ctrl-C while the first was stopping the sources
        raise _interrupted(resume) from None
    except SNAPSHOT_ERRORS as exc:
        raise _fail_snapshot(db, exc) from None
    _print_outcome(result, db, quiet, log_format)
    if not cfg.idps:
        log.warning(
            "no IdP configured: idp_disabled_active and not_in_idp cannot be given for anyone this run",
            extra={"event": "verdicts_withheld", "run_id": result.run_id},
        )
    raise typer.Exit(EXIT_OK if result.complete else EXIT_INCOMPLETE)


def _save_review_settings(db: Path, run_id: int, cfg: Config) -> None:
    """Keep the run's [review] settings with it, so `idgraph report` needs no config file."""
    from graph.history import save_review_settings
    from graph.rules import ReviewSettings

    with SnapshotStore(db) as store:
        save_review_settings(store, run_id, ReviewSettings.from_config(cfg.review))


def _print_outcome(result: CrawlResult, db: Path, quiet: bool, log_format: str) -> None:
    if log_format == "json":
        for cov in result.coverage:
            log.info(
                "source %s %s",
                cov.source,
                "complete" if cov.complete else f"incomplete: {cov.error}",
                extra={"source": cov.source, "event": "coverage", "run_id": result.run_id},
            )
        return
    if not quiet:
        console.print(summary_table(result.coverage))
    _print_vocabulary_notes(result)
    state = "complete" if result.complete else "INCOMPLETE"
    console.print(f"run {result.run_id} {state} → {db}", highlight=False)


def _print_vocabulary_notes(result: CrawlResult) -> None:
    """Status words no vocabulary maps, once per source: their rows were quarantined until mapped."""
    from crawler.idp.csv_source import UNKNOWN_STATUS_NOTE

    shown: set[tuple[str, str]] = set()
    for cov in result.coverage:
        for note in cov.notes or []:
            if note.startswith(UNKNOWN_STATUS_NOTE) and (cov.source, note) not in shown:
                shown.add((cov.source, note))
                console.print(f"[yellow]{escaped(cov.source)}:[/] {escaped(note)}", highlight=False)


@app.command("init")
def init_command(
    out: Annotated[Path, typer.Argument(help="Where to write the sample config.")] = Path("idgraph.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented sample config that validates as written; edit it, then set its env vars.

    Example: idgraph init idgraph.toml && idgraph crawl --config idgraph.toml
    """
    from crawler.sample_config import SAMPLE_CONFIG

    if out.exists() and not force:
        raise _fail_usage(f"{out} exists; pass --force to overwrite it")
    out.write_text(SAMPLE_CONFIG, encoding="utf-8")
    console.print(f"wrote {out}: edit the portals and IdPs, export the variables its *_env keys name, then "
                  f"`idgraph crawl --config {out}`", highlight=False, markup=False)  # fmt: skip


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Option("--out", help="Directory for the report files.")],
    db: Annotated[Path, typer.Option("--db", help="Snapshot file (SQLite).")] = DEFAULT_DB,
    run: Annotated[int | None, typer.Option("--run", help="Run id (default: the newest).")] = None,
    formats: Annotated[str, typer.Option("--format", help="Any of csv,json,html,md.")] = "csv,json,html,md",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Config file: only its review table is read (no secrets needed)."
        ),
    ] = None,
) -> None:
    """Write the findings of a run as CSV, JSON, HTML and Markdown (offline: no source is queried).

    Exit 0 when the run's coverage is complete and every verdict was given, 3 when some source was
    incomplete or some verdict was withheld (no IdP configured, or a quarantined record, included; the
    report says which and why), 2 on bad usage.

    Example: idgraph report --db snapshots.db --out ./review --format html,csv
    """
    from graph.review import review_run

    settings = _review_settings(config) if config is not None else None
    if not db.exists():
        raise _fail_usage(f"--db: no snapshot at {db}")
    try:
        review = review_run(db, out, run_id=run, formats=formats, settings=settings)
    except (LookupError, ValueError) as exc:
        raise _fail_usage(str(exc)) from None
    except SNAPSHOT_ERRORS as exc:
        raise _fail_snapshot(db, exc) from None
    _print_review(review)
    raise typer.Exit(EXIT_OK if review.complete and not review.verdicts_withheld else EXIT_INCOMPLETE)


DIFF_FORMATS = ("table", "json", "csv")
DIFF_COLUMNS = ("change", "finding", "severity", "email", "portal", "learnupon_user_id", "finding_id")


@app.command("diff")
def diff_command(
    db: Annotated[Path, typer.Option("--db", help="Snapshot file (SQLite).")] = DEFAULT_DB,
    to_run: Annotated[
        int | None, typer.Option("--to", "--run", help="The newer run (default: the newest).")
    ] = None,
    from_run: Annotated[
        int | None, typer.Option("--from", help="The older run (default: the run before --to).")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, json or csv (on stdout).")] = "table",
) -> None:
    """What is new, resolved and not re-checked between two runs (results on stdout).

    A finding is resolved only when the newer run read every fact it rested on again; a finding that
    disappeared because a source was incomplete is "not re-checked". Runs never reported are evaluated
    and recorded first, so diff does not depend on earlier `idgraph report` calls.

    Example: idgraph diff --db snapshots.db --from 3 --to 4 --format json > changes.json
    """
    from graph.reports.csv_report import neutralise
    from graph.review import diff_runs

    if output not in DIFF_FORMATS:
        raise _fail_usage(f"--format: expected one of {', '.join(DIFF_FORMATS)}, got {output!r}")
    if not db.exists():
        raise _fail_usage(f"--db: no snapshot at {db}")
    try:
        changes = diff_runs(db, to_run, from_run)
    except (LookupError, ValueError) as exc:
        raise _fail_usage(str(exc)) from None
    except SNAPSHOT_ERRORS as exc:
        raise _fail_snapshot(db, exc) from None
    if changes.previous_run_id is None:
        console.print(f"run {changes.run_id} is the first run of {db}: nothing to compare with")
        if output == "json":
            print(json.dumps(changes.as_dict(), indent=2, ensure_ascii=False))
        return
    rows = [
        {"change": label, "finding": e.code.value, "severity": e.severity or "", "email": e.email or "",
         "portal": e.portal or "", "learnupon_user_id": e.learnupon_user_id, "finding_id": e.finding_id}
        for label, entries in (("new", changes.new), ("resolved", changes.resolved),
                               ("not_rechecked", changes.not_rechecked), ("still_open", changes.still_open))
        for e in entries
    ]  # fmt: skip
    if output == "json":
        print(json.dumps(changes.as_dict(), indent=2, ensure_ascii=False))
    elif output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=DIFF_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: neutralise(v) for k, v in row.items()} for row in rows)
    else:
        table = Table(title=f"run {changes.run_id} vs run {changes.previous_run_id}")
        for column in ("change", "finding", "severity", "email", "portal", "user id"):
            table.add_column(column)
        for row in rows:
            if row["change"] != "still_open":
                table.add_row(
                    str(row["change"]).replace("_", " "), plain(row["finding"]), plain(row["severity"]),
                    plain(row["email"]), plain(row["portal"]), plain(row["learnupon_user_id"] or ""),
                )  # fmt: skip
        # A pipe or a file gets every column whole, not a terminal's 80-column cut.
        Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160).print(table)
    console.print(
        f"{len(changes.new)} new, {len(changes.resolved)} resolved, {len(changes.not_rechecked)} not "
        f"re-checked, {len(changes.still_open)} still open",
        highlight=False,
    )


def _review_settings(config_path: Path) -> ReviewSettings:
    from graph.rules import ReviewSettings

    try:
        review = load_review_config(config_path)  # the [review] table only, as `export neo4j` reads it
    except ConfigError as exc:
        raise _fail_usage(f"config error: {exc}") from None
    return ReviewSettings.from_config(review)


def _print_review(review: Review) -> None:
    counts: dict[str, int] = {}
    for finding in review.findings.findings:
        counts[finding.code.value] = counts.get(finding.code.value, 0) + 1
    withheld = {code.value: reason for code, reason in review.findings.withheld().items()}
    table = Table(title=f"findings of run {review.run_id}")
    table.add_column("finding")
    table.add_column("accounts", justify="right")
    for code in sorted(set(counts) | set(withheld)):
        table.add_row(code, "n/a — withheld" if code in withheld else str(counts[code]))
    console.print(table)
    for item in review.findings.unavailable:
        console.print(
            f"[yellow]not given:[/] {item.code.value} ({escaped(item.scope)}): {escaped(item.reason)}",
            highlight=False,
        )
    for gap in review.findings.recall_gaps:
        console.print(
            f"[yellow]may be missing:[/] {gap.code.value} on {escaped(gap.portal)}: {escaped(gap.reason)}",
            highlight=False,
        )
    for kind, path in review.paths.items():
        console.print(f"{kind}: {path}", highlight=False)


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Where the snapshot and reports go.")] = Path(
        "idgraph-demo"
    ),
    portals: Annotated[int, typer.Option(help="Number of simulated portals.")] = 3,
    users: Annotated[int, typer.Option(help="Users per simulated portal.")] = 2000,
    neo4j: Annotated[
        str | None, typer.Option("--neo4j", help="Also load the demo graph into this Neo4j (bolt://…).")
    ] = None,
    neo4j_user: Annotated[str | None, typer.Option("--neo4j-user", help="Neo4j user, if auth is on.")] = None,
    neo4j_password_env: Annotated[
        str | None, typer.Option("--neo4j-password-env", help="Env var holding the Neo4j password.")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Then offboard someone in the simulated Okta and show the alert.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Start simulated LearnUpon portals in-process, crawl them, and summarise.

    Everything runs on loopback with a time-compressed rate window, so it takes seconds. With --watch,
    a person is then deactivated in the simulated Okta and one `idgraph watch` round shows the alert
    arriving at a signed webhook (and in alerts.jsonl).

    Example: idgraph demo --out ./demo --portals 5 --users 5000 --neo4j bolt://127.0.0.1:7687
    """
    from idgraph.demo import run_demo

    setup_logging("text", quiet)
    auth = None
    if neo4j_user is not None:
        password = os.environ.get(neo4j_password_env or "")
        if not password:
            raise _fail_usage("--neo4j-password-env: name an environment variable holding the password")
        auth = (neo4j_user, password)
    code = asyncio.run(run_demo(out, portals=portals, users=users, console=console, quiet=quiet, watch=watch))
    if neo4j is not None:
        from graph.neo4j_export import export_run

        stats = export_run(out / "idgraph.db", neo4j, auth=auth)
        if not quiet:
            console.print(
                f"neo4j: run {stats.run_id} loaded into {neo4j} ({stats.rows_written:,} rows in "
                f"{stats.seconds:.1f} s); try `idgraph query --list`",
                highlight=False,
            )
    raise typer.Exit(code)


@app.command("simulate")
def simulate_command(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    portals: Annotated[str, typer.Option(help="Comma-separated portal names.")] = "emea,amer,apac",
    users: Annotated[int, typer.Option(help="Users per portal.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic directory.")] = 7,
    window_seconds: Annotated[float, typer.Option(help="Length of the rate-limit window.")] = 60.0,
) -> None:
    """Run the LearnUpon simulator standalone until interrupted.

    Prints each portal's base URL and API credentials (synthetic, for local use only).

    Example: idgraph simulate --port 8080 --portals emea,apac --users 5000
    """
    from crawler.simulator.server import make_portals, serve_forever

    names = [name.strip() for name in portals.split(",") if name.strip()]
    if not names:
        raise _fail_usage("--portals: name at least one portal")
    sims = make_portals(names, users=users, seed=seed)
    for sim in sims:
        console.print(
            f"{sim.spec.name}: base_url=http://{host}:{port}/{sim.spec.name} "
            f"username={sim.spec.username} password={sim.spec.password}",
            highlight=False,
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(sims, host, port, window_seconds))


def _mount_subcommands() -> None:
    """Command groups that live beside the concept they drive."""
    from graph.cli_neo4j import export_app, query_command
    from idgraph.remediate import remediate_app
    from idgraph.review_cli import review_app
    from idgraph.watch import watch_command

    app.add_typer(remediate_app, name="remediate")
    app.add_typer(review_app, name="review")
    app.add_typer(export_app, name="export")
    app.command("query")(query_command)
    app.command("watch")(watch_command)


_mount_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
