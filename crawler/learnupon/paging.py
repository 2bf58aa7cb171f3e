"""Walking a paged LearnUpon listing without assuming its page size.

`LU-Has-Next-Page` is followed when the server sends it; without it (the seed's dialect) the listing
ends at the first empty page. Records are deduplicated by id within one listing, because offset pages
shift when records are added or removed during a scan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from crawler.errors import TransientError
from crawler.http import SourceHttp
from crawler.learnupon.dialect import extract_list

HAS_NEXT = "LU-Has-Next-Page"
MAX_PAGES = 100_000  # a guard against a server that says "true" forever


@dataclass
class Page:
    number: int
    records: list[Any]
    duplicates: int
    last: bool


async def iterate_pages(
    http: SourceHttp,
    url: str,
    params: Mapping[str, Any],
    keys: tuple[str, ...],
    *,
    purpose: str,
    start_page: int = 1,
) -> AsyncIterator[Page]:
    """Yield each page's new records (by id) until the listing ends."""
    seen: set[Any] = set()
    number = start_page
    while number <= MAX_PAGES:
        response = await http.get_json(url, {**params, "page": number}, purpose=purpose)
        raw = extract_list(response.body, keys, f"{http.name}: {purpose} page {number}")
        fresh = []
        duplicates = 0
        for record in raw:
            key = record.get("id") if isinstance(record, dict) else None
            if key is not None and key in seen:
                duplicates += 1
                continue
            if key is not None:
                seen.add(key)
            fresh.append(record)
        has_next = response.headers.get(HAS_NEXT)
        # An empty page ends the listing even if the header claims more: never loop on nothing.
        last = not raw or (has_next is not None and has_next.strip().lower() != "true")
        yield Page(number, fresh, duplicates, last)
        if last:
            return
        number += 1
    raise TransientError(f"{http.name}: {purpose} did not end after {MAX_PAGES} pages")
