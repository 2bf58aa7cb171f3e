"""One IdP's users listing into the snapshot: the part every directory source shares.

A resumed run skips a listing it already finished, and a refused credential is reported with what it most
likely means for that vendor (`auth_hint`). Each vendor says how it pages in `walk`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from crawler.coverage import USERS
from crawler.idp.auth_hint import auth_hint
from crawler.source import SourceContext

Cfg = TypeVar("Cfg")


class UsersListing(Generic[Cfg]):
    """Subclasses implement `walk` (and `hint`, for sources with credentials)."""

    def __init__(self, cfg: Cfg) -> None:
        self.cfg = cfg

    async def run(self, ctx: SourceContext) -> None:
        if USERS in ctx.done:
            return
        with auth_hint(self.hint):
            await self.walk(ctx)

    def hint(self) -> str:
        """What a 401 or 403 from this source most likely means."""
        return "check the source's credentials"

    async def walk(self, ctx: SourceContext) -> None:
        raise NotImplementedError
