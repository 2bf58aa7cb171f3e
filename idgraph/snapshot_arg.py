"""A command's `--db`: the option, and how a command refuses a file it must not read or write.

A read command (report, diff, export, plan…) needs an existing idgraph snapshot: anything else — no
file, an empty file, a text file, someone else's SQLite database — is exit 2 naming `--db`, with the
file left untouched (`crawler.snapshot_reader.check_snapshot`). A snapshot that fails while in use
(locked, disk full, I/O error, readable by others) is exit 4: `idgraph: snapshot error: …`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import typer

from crawler.private import PermissionsError
from crawler.snapshot_reader import NotASnapshot, check_snapshot
from idgraph import run_log

EXIT_USAGE, EXIT_SNAPSHOT = 2, 4
DEFAULT_DB = Path("idgraph.db")
SNAPSHOT_ERRORS = (sqlite3.Error, PermissionsError)

DbOpt = Annotated[Path, typer.Option("--db", help="Snapshot file (SQLite).")]


def fail_snapshot(db: Path, exc: BaseException) -> typer.Exit:
    """One line for a snapshot that cannot be read or written (locked, disk full…): exit 4."""
    detail = str(exc) or type(exc).__name__
    if str(db) not in detail:
        detail = f"{db}: {detail}"
    return run_log.fail(f"snapshot error: {detail}", EXIT_SNAPSHOT)


def require_snapshot(db: Path) -> None:
    """A read command's `--db` must be an idgraph snapshot: exit 2 (file untouched) when it is not."""
    try:
        check_snapshot(db, may_be_new=False)
    except NotASnapshot as exc:
        raise run_log.fail(str(exc), EXIT_USAGE) from None
    except SNAPSHOT_ERRORS as exc:
        raise fail_snapshot(db, exc) from None
