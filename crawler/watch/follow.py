"""Cursor discipline, in one place: read a feed from its saved cursor, page by page; handle the page (its
results committed), deliver the outbox, and only then — once no alert waits for any sink — save the page's
cursor. A kill anywhere replays at most what was not saved, and replays are harmless (every change is an
assertion of state, every alert keyed). The reverse order would lose events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from crawler.errors import SourceError
from crawler.feeds.events import ChangeFeed, FeedPage
from crawler.store import SnapshotStore
from crawler.watch import tables
from crawler.watch.outbox import Outbox


async def follow(
    store: SnapshotStore,
    outbox: Outbox,
    cursor_key: str,
    feed: ChangeFeed[Any],
    handle: Callable[[FeedPage[Any]], Awaitable[None]],
) -> str | None:
    """Read `feed` until it is caught up; why it failed, or None."""
    try:
        async for page in feed.pages(tables.load_cursor(store, cursor_key)):
            await handle(page)
            await outbox.deliver()
            if outbox.settled():
                tables.save_cursor(store, cursor_key, page.cursor)
            if page.caught_up:
                break
    except SourceError as exc:
        return str(exc)
    return None
