"""The `idgraph` command line. Its commands, options and exit codes are a public contract (README;
docs/architecture.md, "Public contracts").

Exit codes: 0 — every source complete; 3 — finished, some source incomplete; 2 — bad config or usage
(every problem listed, each naming its field; nothing written), including a `--db` that is not an idgraph
snapshot (left untouched); 4 — the snapshot file failed (locked by another process, disk full or I/O
error, or readable by others and not ours to narrow): one line `idgraph: snapshot error: …`; 130 —
interrupted (Ctrl-C, SIGINT): every source stopped, what was read is committed, and
`idgraph crawl --resume N` finishes the run; 141 — stdout was closed early (`| head`), quietly.

Results go to stdout; progress, logs and errors to stderr (`idgraph.run_log`).
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from crawler.config import Config, ConfigError, load_config, load_review_config
from crawler.errors import SourceError
from crawler.orchestrator import CrawlInterrupted, CrawlResult, LiveSource
from crawler.progress import print_summary, with_live_progress
from crawler.snapshot_reader import NotASnapshot
from crawler.store import SnapshotStore
from crawler.terminal import escaped, plain, readable
from crawler.workers import crawl_with_workers, usable_cores
from idgraph import closed_pipe, help_format, run_log
from idgraph.run_log import CommandLog, LogFormat, LogFormatOpt, QuietOpt, command_log
from idgraph.snapshot_arg import DEFAULT_DB, SNAPSHOT_ERRORS, DbOpt, fail_snapshot, require_snapshot

if TYPE_CHECKING:  # the rules and report writers load in the commands that use them, not for `crawl`
    from graph.review import Review
    from graph.rules import ReviewSettings

EXIT_OK, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_SNAPSHOT, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

app = typer.Typer(
    name="idgraph",
    help=(
        "Crawl every LearnUpon portal and IdP into one identity graph and report the accounts that should "
        "not be alive. Results go to stdout; progress, logs and errors to stderr.\n\nExamples:\n\n"
        "  idgraph demo --out ./demo-report\n\n"
        "  idgraph init idgraph.toml\n\n"
        "  idgraph crawl --config idgraph.toml --db snapshots.db\n\n"
        "  idgraph report --db snapshots.db --out ./review\n\n"
        "  idgraph diff --db snapshots.db --format csv | head"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # a traceback's locals would print the secrets in memory
)
help_format.show_flags_as_flags()
console = Console(stderr=True)  # progress and notes for a person
results = Console()  # the command's result: stdout (80 columns when it is not a terminal, unless COLUMNS)
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


def _fail_usage(message: str) -> typer.Exit:
    return run_log.fail(message, EXIT_USAGE)


def _interrupted(run_id: int | None) -> typer.Exit:
    if run_id is None:
        return run_log.fail("interrupted", EXIT_INTERRUPTED)
    return run_log.fail(f"interrupted — resume with `idgraph crawl --resume {run_id}`", EXIT_INTERRUPTED)


async def run_crawl(
    config: Config, db: Path, *, resume: int | None, show_progress: bool, workers: int = 1
) -> CrawlResult:
    """Crawl with a live table when a person is watching."""
    with SnapshotStore(db) as store:
        live: dict[str, LiveSource] = {}
        work = crawl_with_workers(config, store, workers=workers, resume_run=resume, live=live)
        if not show_progress:
            return await work
        return await with_live_progress(console, live, work)


@app.command("crawl")
def crawl_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="TOML config naming portals and IdPs.")],
    db: DbOpt = DEFAULT_DB,
    resume: Annotated[int | None, typer.Option("--resume", help="Finish an interrupted run.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help=(
                "Processes the sources are split across (default: the cores this process may use, "
                "capped by its CPU quota); 1: this one."
            ),
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Crawl every portal and IdP in the config into a new snapshot run.

    Exit 0 when every source completed, 3 when some source is incomplete (see the coverage table),
    2 on a bad config or a --db that is not a snapshot, 4 when the snapshot file fails, 130 when
    interrupted (resume with --resume N). A config without an IdP crawls, with a warning: its IdP
    verdicts will be withheld. The coverage table is the result (stdout); the live progress is not.

    Example: idgraph crawl --config idgraph.toml --db snapshots.db --workers 4
    """
    with command_log("crawl", log_format, quiet) as run:
        if workers is None:
            workers = usable_cores()  # read here, not when the CLI loads: only a crawl needs it
        if workers < 1:
            raise _fail_usage(f"--workers: expected a number of processes of at least 1, got {workers}")
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            raise run_log.fail(f"config error: {exc}", EXIT_USAGE, problems=list(exc.problems)) from None
        try:
            result = asyncio.run(
                run_crawl(cfg, db, resume=resume, show_progress=not quiet and not run.json, workers=workers)
            )
            _save_review_settings(db, result.run_id, cfg)
        except (SourceError, NotASnapshot) as exc:
            raise _fail_usage(str(exc)) from None
        except CrawlInterrupted as exc:
            raise _interrupted(exc.run_id) from None
        except KeyboardInterrupt:  # a second Ctrl-C while the first was stopping the sources
            raise _interrupted(resume) from None
        except SNAPSHOT_ERRORS as exc:
            raise fail_snapshot(db, exc) from None
        run.record(run_id=result.run_id, db=str(db))
        run.record_coverage(result.coverage)
        _print_outcome(result, db, quiet, run)
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


def _print_outcome(result: CrawlResult, db: Path, quiet: bool, run: CommandLog) -> None:
    """The result on stdout (unless --quiet): the coverage table and the run's one-line outcome."""
    if run.json:
        for cov in result.coverage:
            log.info(
                "source %s %s",
                cov.source,
                "complete" if cov.complete else f"incomplete: {cov.error}",
                extra={"source": cov.source, "event": "coverage", "run_id": result.run_id},
            )
    _print_vocabulary_notes(result, run)
    if quiet:
        return
    state = "complete" if result.complete else "INCOMPLETE"
    print_summary(results, result.coverage)
    results.print(f"run {result.run_id} {state} → {escaped(db)}", highlight=False, soft_wrap=True)


def _print_vocabulary_notes(result: CrawlResult, run: CommandLog) -> None:
    """Status words no vocabulary maps, once per source: their rows were quarantined until mapped."""
    from crawler.idp.csv_source import UNKNOWN_STATUS_NOTE

    shown: set[tuple[str, str]] = set()
    for cov in result.coverage:
        for note in cov.notes or []:
            if note.startswith(UNKNOWN_STATUS_NOTE) and (cov.source, note) not in shown:
                shown.add((cov.source, note))
                run.notice(f"{cov.source}: {note}", source=cov.source, event="unknown_status_values")


@app.command("init")
def init_command(
    out: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the sample config.")] = Path(
        "idgraph.toml"
    ),
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
    db: DbOpt = DEFAULT_DB,
    run_id: Annotated[int | None, typer.Option("--run", help="Run id (default: the newest).")] = None,
    formats: Annotated[str, typer.Option("--format", help="Any of csv,json,html,md.")] = "csv,json,html,md",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Config file: only its review table is read (no secrets needed)."
        ),
    ] = None,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Write the findings of a run as CSV, JSON, HTML and Markdown (offline: no source is queried).

    Exit 0 when the run's coverage is complete and every verdict was given, 3 when some source was
    incomplete or some verdict was withheld (no IdP configured, or a quarantined record, included; the
    report says which and why), 2 on bad usage or a --db that is not a snapshot. The findings table and
    the files written are the result (stdout).

    Example: idgraph report --db snapshots.db --out ./review --format html,csv
    """
    from graph.review import review_run

    with command_log("report", log_format) as run:
        settings = _review_settings(config) if config is not None else None
        require_snapshot(db)
        try:
            review = review_run(db, out, run_id=run_id, formats=formats, settings=settings)
        except (LookupError, ValueError) as exc:
            raise _fail_usage(str(exc)) from None
        except SNAPSHOT_ERRORS as exc:
            raise fail_snapshot(db, exc) from None
        run.record_coverage(review.coverage)
        run.record_findings(review.findings)
        run.record(files={kind: str(path) for kind, path in review.paths.items()})
        _print_review(review)
        raise typer.Exit(EXIT_OK if review.complete and not review.verdicts_withheld else EXIT_INCOMPLETE)


DIFF_FORMATS = ("table", "json", "csv")
DIFF_COLUMNS = ("change", "finding", "severity", "email", "portal", "learnupon_user_id", "finding_id")


@app.command("diff")
def diff_command(
    db: DbOpt = DEFAULT_DB,
    to_run: Annotated[
        int | None, typer.Option("--to", "--run", help="The newer run (default: the newest).")
    ] = None,
    from_run: Annotated[
        int | None, typer.Option("--from", help="The older run (default: the run before --to).")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, json or csv (on stdout).")] = "table",
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """What is new, resolved and not re-checked between two runs (results on stdout).

    A finding is resolved only when the newer run read every fact it rested on again; a finding that
    disappeared because a source was incomplete is "not re-checked". Runs never reported are evaluated
    and recorded first, so diff does not depend on earlier `idgraph report` calls.

    Example: idgraph diff --db snapshots.db --from 3 --to 4 --format json > changes.json
    """
    from graph.reports.csv_report import neutralise
    from graph.review import diff_runs

    with command_log("diff", log_format) as run:
        if output not in DIFF_FORMATS:
            raise _fail_usage(f"--format: expected one of {', '.join(DIFF_FORMATS)}, got {output!r}")
        require_snapshot(db)
        try:
            changes = diff_runs(db, to_run, from_run)
        except (LookupError, ValueError) as exc:
            raise _fail_usage(str(exc)) from None
        except SNAPSHOT_ERRORS as exc:
            raise fail_snapshot(db, exc) from None
        counts = {
            name: len(getattr(changes, name)) for name in ("new", "resolved", "not_rechecked", "still_open")
        }
        run.record(run_id=changes.run_id, previous_run_id=changes.previous_run_id, changes=counts)
        if changes.previous_run_id is None:
            run.info(f"run {changes.run_id} is the first run of {db}: nothing to compare with")
            if output == "json":
                print(json.dumps(changes.as_dict(), indent=2, ensure_ascii=False))
            return
        rows = [
            {"change": label, "finding": e.code.value, "severity": e.severity or "", "email": e.email or "",
             "portal": e.portal or "", "learnupon_user_id": e.learnupon_user_id, "finding_id": e.finding_id}
            for label in ("new", "resolved", "not_rechecked", "still_open")
            for e in getattr(changes, label)
        ]  # fmt: skip
        tally = (
            f"{counts['new']} new, {counts['resolved']} resolved, {counts['not_rechecked']} not re-checked, "
            f"{counts['still_open']} still open"
        )
        if output == "json":
            print(json.dumps(changes.as_dict(), indent=2, ensure_ascii=False))
        elif output == "csv":
            writer = csv.DictWriter(sys.stdout, fieldnames=DIFF_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: neutralise(v) for k, v in row.items()} for row in rows)
        else:
            results.print(_diff_table(changes.run_id, changes.previous_run_id, rows))
            results.print(tally, highlight=False)  # part of the table's result
            return
        run.info(tally)  # beside json/csv on stdout: a note for the person


def _diff_table(run_id: int, previous_run_id: int, rows: list[dict[str, str | int | None]]) -> Table:
    """The changes a person reads: every row but the still-open ones, whole at 80 columns."""
    table = Table(title=f"run {run_id} vs run {previous_run_id}")
    for column in ("change", "finding", "severity", "email", "portal", "user id"):
        table.add_column(column, no_wrap=column in ("change", "severity"))
    for row in rows:
        if row["change"] != "still_open":
            table.add_row(
                str(row["change"]).replace("_", " "), plain(row["finding"]), plain(row["severity"]),
                plain(row["email"]), plain(row["portal"]), plain(row["learnupon_user_id"] or ""),
            )  # fmt: skip
    return readable(table)


def _review_settings(config_path: Path) -> ReviewSettings:
    from graph.rules import ReviewSettings

    try:
        review = load_review_config(config_path)  # the [review] table only, as `export neo4j` reads it
    except ConfigError as exc:
        raise _fail_usage(f"config error: {exc}") from None
    return ReviewSettings.from_config(review)


def _print_review(review: Review) -> None:
    """The report's result on stdout: findings per code (withheld never as 0), gaps, the files written."""
    counts: dict[str, int] = {}
    for finding in review.findings.findings:
        counts[finding.code.value] = counts.get(finding.code.value, 0) + 1
    withheld = {code.value: reason for code, reason in review.findings.withheld().items()}
    table = Table(title=f"findings of run {review.run_id}")
    table.add_column("finding")
    table.add_column("accounts", justify="right")
    for code in sorted(set(counts) | set(withheld)):
        table.add_row(code, "n/a — withheld" if code in withheld else str(counts[code]))
    results.print(readable(table))
    for item in review.findings.unavailable:
        results.print(
            f"[yellow]not given:[/] {item.code.value} ({escaped(item.scope)}): {escaped(item.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    for gap in review.findings.recall_gaps:
        results.print(
            f"[yellow]may be missing:[/] {gap.code.value} on {escaped(gap.portal)}: {escaped(gap.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    for kind, path in review.paths.items():
        results.print(f"{kind}: {escaped(path)}", highlight=False, soft_wrap=True)  # whole, for grep


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
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Start simulated LearnUpon portals in-process, crawl them, and summarise.

    Everything runs on loopback with a time-compressed rate window, so it takes seconds. The coverage,
    throughput and findings tables are the result (stdout); the live progress is not. With --watch, a
    person is then deactivated in the simulated Okta and one `idgraph watch` round shows the alert
    arriving at a signed webhook (and in alerts.jsonl).

    Example: idgraph demo --out ./demo --portals 5 --users 5000 --neo4j bolt://127.0.0.1:7687
    """
    from idgraph.demo import run_demo

    with command_log("demo", log_format, quiet) as run:
        auth = None
        if neo4j_user is not None:
            password = os.environ.get(neo4j_password_env or "")
            if not password:
                raise _fail_usage("--neo4j-password-env: name an environment variable holding the password")
            auth = (neo4j_user, password)
        try:
            demo = asyncio.run(
                run_demo(
                    out, portals=portals, users=users,
                    console=None if quiet or run.json else console, results=None if quiet else results,
                    watch=watch,
                )
            )  # fmt: skip
        except NotASnapshot as exc:
            raise _fail_usage(str(exc)) from None
        run.record(db=str(out / "idgraph.db"), files={k: str(p) for k, p in demo.review.paths.items()})
        run.record_coverage(demo.result.coverage)
        run.record_findings(demo.review.findings)
        if neo4j is not None:
            from graph.neo4j_export import export_run
            from idgraph.neo4j_commands import neo4j_errors

            with neo4j_errors(neo4j, neo4j_user, "Neo4j load failed", option="--neo4j"):
                stats = export_run(out / "idgraph.db", neo4j, auth=auth)
            run.record(neo4j_rows_written=stats.rows_written)
            if not quiet:
                results.print(
                    f"neo4j: run {stats.run_id} loaded into {escaped(neo4j)} ({stats.rows_written:,} rows in "
                    f"{stats.seconds:.1f} s); try `idgraph query --list`",
                    highlight=False,
                )
        raise typer.Exit(demo.code)


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

    Once listening, prints each portal's base URL and API credentials (synthetic, for local use only)
    on stdout. A port already in use is one line and exit 2, with nothing printed before it.

    Example: idgraph simulate --port 8080 --portals emea,apac --users 5000
    """
    from crawler.simulator.server import RunningSimulator, make_portals, serve_forever

    names = [name.strip() for name in portals.split(",") if name.strip()]
    if not names:
        raise _fail_usage("--portals: name at least one portal")
    sims = make_portals(names, users=users, seed=seed)
    listening = False

    def announce(simulator: RunningSimulator) -> None:
        nonlocal listening
        listening = True
        for sim in sims:  # only now: credentials for a server that is not ours are never shown
            results.print(
                f"{escaped(sim.spec.name)}: base_url={escaped(simulator.base_url(sim.spec.name))} "
                f"username={escaped(sim.spec.username)} password={escaped(sim.spec.password)}",
                highlight=False,
                soft_wrap=True,
            )
        console.print(f"simulating {len(sims)} portals on {simulator.url}; Ctrl-C stops", highlight=False)

    try:
        asyncio.run(serve_forever(sims, host, port, window_seconds, on_ready=announce))
    except KeyboardInterrupt:
        return
    except OSError as exc:
        if listening:
            raise
        raise _fail_usage(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _mount_subcommands() -> None:
    """Command groups that live beside the concept they drive."""
    from idgraph.neo4j_commands import export_app, query_command
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
    """The console script (`idgraph`): the app, and a quiet end when stdout's reader goes away early."""
    stdout = closed_pipe.StdoutWatch()
    try:
        app()
        code: int | str | None = EXIT_OK
    except SystemExit as exc:
        code = exc.code
    if stdout.closed():
        stdout.silence()
        code = closed_pipe.EXIT_CLOSED
    sys.exit(code)


if __name__ == "__main__":
    main()
