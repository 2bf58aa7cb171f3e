"""One guard for every pager: a listing that never ends is stopped, and said to be incomplete.

A hostile or broken server can answer "there is a next page" forever — the same page with
`LU-Has-Next-Page: true`, an Okta `Link` that always points onward, a cursor that cycles. Each pager
calls `PageGuard.page(new, cursor)` once per page it reads: the listing fails (a non-retried
`SourceError`) after `max_pages` pages, after `max_pages_without_new` consecutive pages that brought no
record not already seen in the listing, or when a cursor (next URL, page token, start index) repeats.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from crawler.errors import SourceError

DEFAULT_MAX_PAGES = 100_000
DEFAULT_MAX_PAGES_WITHOUT_NEW = 20


@dataclass(frozen=True)
class PageLimits:
    max_pages: int = DEFAULT_MAX_PAGES
    max_pages_without_new: int = DEFAULT_MAX_PAGES_WITHOUT_NEW


class ListingNeverEnds(SourceError):
    """A listing stopped by the page guard: it is incomplete, not retried."""


class PageGuard:
    def __init__(self, source: str, listing: str, limits: PageLimits | None = None) -> None:
        self.source, self.listing = source, listing
        self.limits = limits or PageLimits()
        self.pages = 0
        self._without_new = 0
        self._cursors: set[Hashable] = set()

    def page(self, new_records: int, cursor: Hashable | None = None) -> None:
        """Count one page read (`new_records` not seen before); raise when the listing must stop.

        `cursor` is what leads to the *next* page; call this before following it.
        """
        self.pages += 1
        self._without_new = 0 if new_records else self._without_new + 1
        where = f"{self.source}: {self.listing}"
        if self._without_new >= self.limits.max_pages_without_new:
            raise ListingNeverEnds(
                f"{where}: {self._without_new} pages in a row brought nothing new; "
                "stopped, listing incomplete"
            )
        if cursor is not None:
            if cursor in self._cursors:
                raise ListingNeverEnds(f"{where}: paging loops back on itself; listing incomplete")
            self._cursors.add(cursor)
            if self.pages >= self.limits.max_pages:
                raise ListingNeverEnds(
                    f"{where}: did not end after {self.pages} pages (the page cap); listing incomplete"
                )


def new_ids(seen: set[Any], raw_records: Iterable[Any], field: str = "id") -> int:
    """How many raw records of a page have an `id` (or `field`) not in `seen` (added to it): the page's
    new records.

    Raw records, not parsed ones: a page of malformed (quarantined) records is still a page of records.
    A record without a hashable id cannot be told apart from the others, so it counts as new.
    """
    new = 0
    for record in raw_records:
        key = record.get(field) if isinstance(record, dict) else None
        if not isinstance(key, str | int) or key not in seen:
            new += 1
            if isinstance(key, str | int):
                seen.add(key)
    return new
