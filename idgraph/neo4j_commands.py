"""`idgraph export neo4j` and `idgraph query`: the Neo4j export and the Cypher query library on the CLI.

Mounted by idgraph/cli.py (`app.add_typer(export_app, name="export")`, `app.command("query")(query_command)`).
The Neo4j password is read only from the environment variable named by `--password-env`; it is never
printed, logged or put in an error. Exit codes: 0 done, 1 the export or query failed (Neo4j said no), 2 bad
usage (one line naming the option; nothing written), a `--db` that is not a snapshot, or a Neo4j that
cannot be reached (closed port, unreachable host, not Bolt: within 10 s, `graph.neo4j_connect`).
Results (rows, statistics, the query list) go to stdout; errors and notes to stderr.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from crawler.config import ConfigError, load_review_config
from crawler.terminal import plain, readable
from graph.query_library import QueryError, get_query, load_queries, run_query, write_cypher_files
from idgraph import run_log
from idgraph.run_log import LogFormat, LogFormatOpt, command_log
from idgraph.snapshot_arg import DEFAULT_DB, DbOpt, require_snapshot

# The neo4j driver and the exporter (pandas, networkx) load only when a command runs: mounting these
# commands must not slow every other `idgraph` command down.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_DATABASE = "neo4j"
console = Console(stderr=True)
out = Console()

export_app = typer.Typer(
    help="Export a snapshot run to another store.\n\nExample: idgraph export neo4j --uri bolt://localhost:7687",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback's locals would print the secrets in memory
)

UriOpt = Annotated[str, typer.Option("--uri", help="Neo4j Bolt URI, e.g. neo4j://localhost:7687.")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Neo4j user (with --password-env).")]
PasswordEnvOpt = Annotated[
    str | None,
    typer.Option("--password-env", help="Name of the environment variable holding the Neo4j password."),
]
DatabaseOpt = Annotated[str, typer.Option("--database", help="Neo4j database name.")]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    return run_log.fail(message, code)


@contextmanager
def neo4j_errors(uri: str, user: str | None, failed: str, option: str = "--uri") -> Iterator[None]:
    """Neo4j's refusals as one line each: unreachable is a usage error (`option`, exit 2), wrong
    credentials and everything else Neo4j says no to exit 1."""
    from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable

    try:
        yield
    except AuthError:
        raise _fail(f"Neo4j at {uri} refused the credentials of user {user!r}", EXIT_FAILED) from None
    except ServiceUnavailable as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__  # the driver's lines, as one
        raise _fail(f"{option}: Neo4j at {uri} is not reachable: {detail}", EXIT_USAGE) from None
    except (DriverError, Neo4jError) as exc:
        raise _fail(f"{failed}: {type(exc).__name__}: {exc}", EXIT_FAILED) from None


def neo4j_auth(user: str | None, password_env: str | None) -> tuple[str, str] | None:
    """(user, password) from the named environment variable, or None for a server without auth."""
    if user is None and password_env is None:
        return None
    if user is None or password_env is None:
        raise _fail("--user and --password-env go together (the password is read from that variable)")
    password = os.environ.get(password_env)
    if not password:
        raise _fail(f"--password-env: environment variable {password_env} is not set")
    return (user, password)


def _review_settings(config: Path | None) -> tuple[list[str] | None, int | None]:
    """The `[review]` table of a config file; only that table is read (no portal secrets are needed)."""
    if config is None:
        return None, None
    try:
        review = load_review_config(config)
    except ConfigError as exc:
        raise _fail(f"--config: {str(exc).removeprefix('config: ')}") from None
    return list(review.managed_domains), review.dormant_days


@export_app.command("neo4j")
def export_neo4j(
    uri: UriOpt,
    db: DbOpt = DEFAULT_DB,
    run: Annotated[int | None, typer.Option("--run", help="Run to export (default: the newest).")] = None,
    user: UserOpt = None,
    password_env: PasswordEnvOpt = None,
    database: DatabaseOpt = DEFAULT_DATABASE,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Rows per UNWIND transaction (default: measured, BENCHMARKS.md)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file: only its review table is read.")
    ] = None,
    managed_domain: Annotated[
        list[str] | None, typer.Option("--managed-domain", help="A managed email domain (repeatable).")
    ] = None,
    dormant_days: Annotated[
        int | None,
        typer.Option("--dormant-days", min=1, help="Days without a sign-in that make an account dormant."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the export statistics as JSON.")] = False,
    log_format: LogFormatOpt = LogFormat.text,
) -> None:
    """Export one snapshot run (graph and findings) into Neo4j, idempotently.

    Only sources whose crawl completed in the run have their vanished records removed; a failed portal
    or IdP keeps what the graph last saw. Review settings: the options, else the review table of
    --config, else those saved with the run.

    Example: NEO4J_PASSWORD=… idgraph export neo4j --uri neo4j://localhost:7687 --user neo4j
    --password-env NEO4J_PASSWORD --db snapshots.db
    """
    with command_log("export neo4j", log_format) as log:
        auth = neo4j_auth(user, password_env)
        require_snapshot(db)
        domains, days = _review_settings(config)
        if managed_domain:
            domains = managed_domain
        if dormant_days is not None:
            days = dormant_days
        from graph.neo4j_export import ExportError, export_run

        sizing = {} if batch_size is None else {"batch_size": batch_size}
        with neo4j_errors(uri, user, "Neo4j export failed"):
            try:
                stats = export_run(
                    db,
                    uri,
                    run_id=run,
                    auth=auth,
                    database=database,
                    managed_domains=domains,
                    dormant_days=days,
                    **sizing,
                )
            except LookupError as exc:
                raise _fail(f"--run: {exc}") from None
            except ExportError as exc:
                raise _fail(str(exc), EXIT_FAILED) from None
        log.record(**stats.as_dict())
        if as_json:
            print(json.dumps(stats.as_dict(), indent=2))
            return
        out.print(
            f"run {stats.run_id} → {uri} (database {database}): {stats.rows_written} rows in "
            f"{stats.transactions} transactions, {stats.seconds:.1f}s; created "
            f"{sum(stats.nodes_created.values())} nodes / {sum(stats.rels_created.values())} relationships, "
            f"deleted {sum(stats.nodes_deleted.values())} nodes / {sum(stats.rels_deleted.values())} "
            f"relationships; cleaned up portals {list(stats.complete_portals)}, "
            f"IdPs {list(stats.complete_idps)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str, sort_keys=False) + "\n")
        return
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([_cell(row[c]) for c in columns] for row in rows)
        return
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(plain(_cell(row[c])) for c in columns))
    out.print(readable(table))
    console.print(f"{len(rows)} row(s)", highlight=False)


def _list_queries() -> None:
    for query in load_queries().values():
        params = " ".join(f"--param {p.name}=<{p.type}>" for p in query.parameters)
        finding = f"  (finding {query.finding})" if query.finding else ""
        out.print(Text(f"{query.name}{finding}  {params}".rstrip(), style="bold"))
        out.print(Text(f"    {query.description}"), highlight=False)


def _parse_params(name: str, items: Sequence[str]) -> dict[str, Any]:
    query = get_query(name)
    declared = {p.name: p for p in query.parameters}
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise QueryError(f"--param: expected NAME=VALUE, got {item!r}")
        if key not in declared:
            expected = ", ".join(declared) or "none"
            raise QueryError(f"--param: query {name} has no parameter {key!r} (expected: {expected})")
        params[key] = declared[key].parse(text)
    return params


def query_command(
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Query name (see --list).")] = None,
    uri: Annotated[str | None, typer.Option("--uri", help="Neo4j Bolt URI.")] = None,
    user: UserOpt = None,
    password_env: PasswordEnvOpt = None,
    database: DatabaseOpt = DEFAULT_DATABASE,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE (lists comma-separated; repeatable)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json (one object per line) or csv.")] = "table",
    list_queries: Annotated[
        bool, typer.Option("--list", help="List the library's queries and exit.")
    ] = False,
    save_cypher: Annotated[
        Path | None, typer.Option("--save-cypher", help="Write every query as DIR/NAME.cypher and exit.")
    ] = None,
) -> None:
    """Run a query of the Cypher library (graph/queries/) against an exported graph.

    Example: idgraph query orphan_accounts --uri neo4j://localhost:7687 --user neo4j --password-env
    NEO4J_PASSWORD --format csv
    """
    if list_queries:
        _list_queries()
        return
    if save_cypher is not None:
        paths = write_cypher_files(save_cypher)
        console.print(
            f"{len(paths)} queries written to {save_cypher} (drag them onto Browser's Favorites)",
            highlight=False,
        )
        return
    if name is None:
        raise _fail("name a query (idgraph query --list shows them)")
    if uri is None:
        raise _fail("--uri: the Neo4j to query is required")
    if fmt not in ("table", "json", "csv"):
        raise _fail(f"--format: expected table, json or csv, got {fmt!r}")
    try:
        params = _parse_params(name, param or [])
    except QueryError as exc:
        raise _fail(str(exc)) from None
    auth = neo4j_auth(user, password_env)
    from graph.neo4j_connect import open_driver

    with neo4j_errors(uri, user, f"query {name} failed"), open_driver(uri, auth) as driver:
        rows = run_query(driver, name, params, database)
    _print_rows(rows, fmt)
