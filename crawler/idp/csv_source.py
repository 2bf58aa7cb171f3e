"""CSV export: the universal fallback — one row per identity, columns and status words from the config.

A row whose status is not in the configured vocabulary, or that has no email, is quarantined with the
reason and counted, never guessed: an HR export's "on leave" is a question for a human, not a default.
A missing file or a missing column fails the source, naming the column, so nobody reads "absent from
the IdP" out of a file we could not read.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from crawler.config import CrawlConfig, CsvConfig
from crawler.errors import SourceError
from crawler.http import SourceHttp
from crawler.idp.listing import UsersListing
from crawler.idp.status import AddressBook, UnknownStatus, is_email, parse_time, vocabulary_status
from crawler.ratelimit import RateController
from crawler.records import Identity
from crawler.source import PARSE_ERRORS, SourceContext, quarantine_reason, source_session

USERS = "users"
UNKNOWN_STATUS_NOTE = "unknown status values seen"  # `idgraph crawl` repeats this note after its summary
ROWS_PER_COMMIT = 1000
_ALIAS_SPLIT = re.compile(r"[;,\s|]+")


def row_parser(cfg: CsvConfig) -> Callable[[Mapping[str, Any]], Identity]:
    """The parse function for one row under this config's columns and vocabulary."""
    columns = cfg.columns

    def parse(row: Mapping[str, Any]) -> Identity:
        idp_id = (row.get(columns.id) or "").strip()
        if not idp_id:
            raise ValueError(f"no id in column {columns.id!r}")
        email = (row.get(columns.email) or "").strip()
        if not email:
            raise ValueError(f"no email in column {columns.email!r}")
        if not is_email(email):
            raise ValueError(f"{email!r} in column {columns.email!r} is not an email address")
        raw_status = (row.get(columns.status) or "").strip()
        status = vocabulary_status(
            raw_status,
            active=cfg.active_values,
            disabled=cfg.disabled_values,
            not_activated=cfg.not_activated_values,
        )
        book = AddressBook()
        book.add(email, kind="email", primary=True)
        if columns.aliases:
            for alias in _ALIAS_SPLIT.split(row.get(columns.aliases) or ""):
                book.add(alias, kind="alias")
        changed = parse_time(row.get(columns.status_changed_at)) if columns.status_changed_at else None
        last_login = parse_time(row.get(columns.last_login)) if columns.last_login else None
        return Identity(
            idp_id=idp_id,
            addresses=book.build(),
            raw_status=raw_status,
            status=status,
            status_changed_at=changed,
            last_login=last_login,
        )

    return parse


def row_addresses(cfg: CsvConfig, row: Mapping[str, Any]) -> list[str]:
    """The casefolded addresses a row carries (email and aliases), even a row `parse` refuses."""
    book = AddressBook()
    book.add(row.get(cfg.columns.email), kind="email", primary=True)
    if cfg.columns.aliases:
        for alias in _ALIAS_SPLIT.split(row.get(cfg.columns.aliases) or ""):
            book.add(alias, kind="alias")
    return book.keys()


def unknown_status_note(seen: Mapping[str, int]) -> str:
    """The note naming the status words the vocabulary does not map, so the user can map them."""
    values = ", ".join(
        f"{value!r} ({count} row{'' if count == 1 else 's'})"
        for value, count in sorted(seen.items(), key=lambda item: (-item[1], item[0]))
    )
    return (
        f"{UNKNOWN_STATUS_NOTE}: {values}: "
        "map them with active_values / disabled_values / not_activated_values"
    )


def _delimiter(text: str) -> str:
    """Comma, semicolon (European Excel) or tab, whichever the header row uses most."""
    header = text.split("\n", 1)[0]
    return max(",;\t", key=header.count) if any(c in header for c in ",;\t") else ","


def read_rows(cfg: CsvConfig) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and rows; a missing file or column is a SourceError naming it."""
    try:
        text = cfg.path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SourceError(f"{cfg.name}: cannot read {cfg.path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SourceError(f"{cfg.name}: {cfg.path} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise SourceError(f"{cfg.name}: {cfg.path} is empty (no header row)")
    reader.fieldnames = header
    wanted = {"id": cfg.columns.id, "email": cfg.columns.email, "status": cfg.columns.status}
    for optional in ("aliases", "status_changed_at", "last_login"):
        if getattr(cfg.columns, optional):
            wanted[optional] = getattr(cfg.columns, optional)
    for field, column in wanted.items():
        if column not in header:
            raise SourceError(
                f"{cfg.name}: column {column!r} (columns.{field}) is not in {cfg.path}; "
                f"the header has: {', '.join(header)}"
            )
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise SourceError(f"{cfg.name}: {cfg.path} is not valid CSV: {exc}") from None
    return header, rows


class CsvCrawl(UsersListing[CsvConfig]):
    """One CSV file into the snapshot, a commit per `ROWS_PER_COMMIT` rows."""

    async def walk(self, ctx: SourceContext) -> None:
        _, rows = await asyncio.to_thread(read_rows, self.cfg)
        parse = row_parser(self.cfg)
        seen: set[str] = set()
        duplicates = 0
        if not rows:
            ctx.commit_page(USERS, [], done=True)
        unknown: dict[str, int] = {}
        for start in range(0, len(rows), ROWS_PER_COMMIT):
            chunk = rows[start : start + ROWS_PER_COMMIT]
            identities: list[Identity] = []
            for offset, row in enumerate(chunk):
                try:
                    identities.append(parse(row))
                except PARSE_ERRORS as exc:
                    if isinstance(exc, UnknownStatus):
                        unknown[exc.value] = unknown.get(exc.value, 0) + 1
                    # The row as a spreadsheet numbers it: the header is row 1.
                    ctx.quarantine(
                        USERS,
                        quarantine_reason(exc),
                        row,
                        addresses=row_addresses(self.cfg, row),
                        label=f"row {start + offset + 2}",
                    )
            for identity in identities:
                duplicates += identity.idp_id in seen
                seen.add(identity.idp_id)
            ctx.commit_page(USERS, identities, done=start + ROWS_PER_COMMIT >= len(rows))
            await asyncio.sleep(0)  # let the network sources breathe between chunks
        if unknown:
            ctx.note(unknown_status_note(unknown))
        if duplicates:
            ctx.note(
                f"{duplicates} rows repeat an id already seen in {self.cfg.path.name}; the last one wins"
            )


def open_source(
    cfg: CsvConfig, connector: aiohttp.BaseConnector, crawl_config: CrawlConfig
) -> tuple[SourceHttp, Callable[[SourceContext], Awaitable[None]]]:
    """A CSV source needs no network; it still gets an (idle) SourceHttp, as every source does."""
    session = source_session(connector, crawl_config)
    http = SourceHttp(cfg.name, session, RateController(ceiling=cfg.requests_per_minute, window_seconds=60))
    return http, CsvCrawl(cfg).run
