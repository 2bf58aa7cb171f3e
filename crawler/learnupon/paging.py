"""Walking a paged LearnUpon listing without assuming its page size, and without losing records to drift.

`LU-Has-Next-Page` is followed when the server sends it; without it (the seed's dialect) the listing
ends at the first empty page.

Offset pages shift when records are added or removed during a scan: an insertion before our offset
repeats a record on the next page (dropped here by id, and counted as drift); a deletion before our
offset pulls the first record of the next page back onto the page we already read, and a plain scan
never sees it. With `boundary_check`, after reading page k+1 we read page k once more: a record that
slid back across the boundary shows up there and is kept, and any change is counted as drift. It costs
one request per page boundary, so it is used for the entity listings (users, groups, courses), where a
missed record is a missed account; the relationship listings are verified by LearnUpon's own counters
instead (see the crawl plan).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from yarl import URL

from crawler.http import SourceHttp
from crawler.learnupon.dialect import PageReader
from crawler.paging_guard import PageGuard

HAS_NEXT = "LU-Has-Next-Page"


@dataclass
class Page:
    number: int
    records: list[Any]  # records not seen before in this listing
    duplicates: int  # records seen before: an insertion shifted the pages
    last: bool  # nothing follows: the listing (and its checks) is complete
    drift: bool = False  # a boundary re-check found the previous page changed
    has_next_header: bool | None = None  # what `LU-Has-Next-Page` said; None when it was not sent


def _record_id(record: Any) -> Any:
    """A raw record's `id`, or a validated one's (see `PageReader`)."""
    return record.get("id") if isinstance(record, dict) else getattr(record, "id", None)


class _Listing:
    """The state of one listing: ids seen, and a fetch that keeps only new records."""

    def __init__(
        self,
        http: SourceHttp,
        url: str,
        params: Mapping[str, Any],
        reader: PageReader,
        key: Callable[[Any], Hashable | None] = _record_id,
    ) -> None:
        self.http, self.reader, self.key = http, reader, key
        # Encoded once per listing; each page only appends its number (no per-page query building).
        self._page_url = f"{url}?{urlencode({**params, 'page': ''})}"
        self.seen: set[Any] = set()
        self.has_next_header: bool | None = None  # of the last page fetched

    async def fetch(self, number: int, purpose: str) -> tuple[list[Any], list[Any], int, bool]:
        """(all records, new records, duplicates, server says more pages) of page `number`."""
        url = URL(f"{self._page_url}{number}", encoded=True)
        response = await self.http.get_json(url, purpose=purpose, decode=self.reader.decode)
        raw = self.reader.records(response.body, f"{self.http.name}: {purpose} page {number}")
        fresh: list[Any] = []
        duplicates = 0
        for record in raw:
            key = self.key(record)
            if key is not None and key in self.seen:
                duplicates += 1
                continue
            if key is not None:
                self.seen.add(key)
            fresh.append(record)
        has_next = response.headers.get(HAS_NEXT)
        self.has_next_header = None if has_next is None else has_next.strip().lower() == "true"
        # An empty page ends the listing even if the header claims more: never loop on nothing.
        more = bool(raw) and (has_next is None or has_next.strip().lower() == "true")
        return raw, fresh, duplicates, more


async def iterate_pages(
    http: SourceHttp,
    url: str,
    params: Mapping[str, Any],
    reader: PageReader,
    *,
    purpose: str,
    boundary_check: bool = False,
    key: Callable[[Any], Hashable | None] = _record_id,
) -> AsyncIterator[Page]:
    """Yield each page's new records until the listing ends; the final Page has `last=True`.

    `key` tells records apart (default: their `id`); records without one (None) are always new.
    """
    listing = _Listing(http, url, params, reader, key)
    previous_ids: list[Any] | None = None
    # A server that says "true" forever (or repeats one page) is stopped: the listing is incomplete.
    guard = PageGuard(http.name, purpose, http.limits.pages)
    number = 0
    while True:
        number += 1
        raw, fresh, duplicates, more = await listing.fetch(number, purpose)
        check = boundary_check and previous_ids is not None and bool(raw)
        yield Page(
            number, fresh, duplicates, last=not more and not check, has_next_header=listing.has_next_header
        )
        if check:
            again, extra, _, _ = await listing.fetch(number - 1, f"{purpose}_boundary_check")
            changed = [_record_id(r) for r in again] != previous_ids
            yield Page(number - 1, extra, 0, last=not more, drift=changed)
        if not more:
            return
        guard.page(len(fresh), number + 1)
        previous_ids = [_record_id(r) for r in raw]
