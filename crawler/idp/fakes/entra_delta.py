"""The fake tenant's `GET /v1.0/users/delta`, as Graph's delta query documents it (change-feeds.md §2).

A first call (query parameters only there) returns every current user, page by page through
`@odata.nextLink` (`$skiptoken`, opaque; a page may be empty), then an `@odata.deltaLink` (`$deltatoken`)
that carries the `$select` along. Calling the deltaLink returns the users changed since it was issued —
only those whose *selected* properties changed — with every selected property, or only the changed ones
under `Prefer: return=minimal`; a removed user is `{"id", "@removed": {"reason": "changed"|"deleted"}}`
and nothing else. `$deltatoken=latest` returns a deltaLink and no data. Knobs: a token older than
`token_max_age` answers `400 syncStateNotFound`; `reset_next` answers `410 Gone` with a `Location`
(a synchronization reset); `sync_state_not_found_next` forces the 400.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from yarl import URL

SYNC_STATE_NOT_FOUND = (
    "The sync state generation is not found. The delta token is expired and data must be synchronized again."
)


@dataclass
class Change:
    seq: int
    user_id: str
    properties: frozenset[str]  # what changed; empty for a removal
    removed: str | None = None  # "changed" (soft-deleted) or "deleted" (permanently)


@dataclass
class _Round:
    entries: list[dict[str, Any]]  # the round's answer, computed when it starts
    select: tuple[str, ...] | None  # carried into the deltaLink
    offset: int = 0
    page: int = 1


@dataclass
class DeltaState:
    """The change log the delta endpoint serves, and its knobs."""

    clock: Callable[[], float] = time.time
    token_max_age: float | None = 7 * 86400.0  # Graph: directory delta tokens last 7 days
    reset_next: int = 0  # the next N delta requests answer 410 Gone with a Location
    sync_state_not_found_next: int = 0  # the next N delta requests answer 400 syncStateNotFound
    page_size: int = 100
    empty_pages: set[int] = field(default_factory=set)  # page numbers of every round served empty
    changes: list[Change] = field(default_factory=list)
    _seq: int = 0
    _tokens: dict[str, tuple[int, tuple[str, ...] | None, float]] = field(default_factory=dict)
    _rounds: dict[str, _Round] = field(default_factory=dict)

    def record(self, user_id: str, properties: frozenset[str], removed: str | None = None) -> None:
        self._seq += 1
        self.changes.append(Change(self._seq, user_id, properties, removed))

    def issue(self, select: tuple[str, ...] | None) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (self._seq, select, self.clock())
        return token

    def since(self, seq: int, select: tuple[str, ...] | None) -> list[tuple[str, frozenset[str], str | None]]:
        """(user id, changed selected properties, removal reason) of each user changed after `seq`, in
        the order of their last change; a change to unselected properties only is not reported."""
        latest: dict[str, tuple[int, frozenset[str], str | None]] = {}
        for change in self.changes:
            if change.seq <= seq:
                continue
            tracked = change.properties if select is None else change.properties & set(select)
            if change.removed is None and not tracked:
                continue
            _, before, _ = latest.pop(change.user_id, (0, frozenset(), None))
            latest[change.user_id] = (change.seq, before | tracked, change.removed)
        return [(uid, props, removed) for uid, (_, props, removed) in latest.items()]


class DeltaEndpoint:
    """`/v1.0/users/delta` over an EntraFake's users (`users()`), their `project` and its `DeltaState`."""

    def __init__(
        self,
        users: Callable[[], list[dict[str, Any]]],
        project: Callable[[Mapping[str, Any], list[str] | None], dict[str, Any]],
        known: frozenset[str],
        state: DeltaState,
    ) -> None:
        self.users, self.project, self.known, self.state = users, project, known, state

    def handle(self, request: web.Request, error: Callable[..., web.Response]) -> web.Response:
        state, query = self.state, request.query
        origin = request.url.origin()
        if "$skiptoken" in query:
            current = state._rounds.get(query["$skiptoken"])
            if current is None:
                return error(400, "Request_BadRequest", "Invalid $skiptoken.")
            return self._page(request, current)
        if "$deltatoken" in query and query["$deltatoken"] != "latest":
            return self._delta_round(request, query["$deltatoken"], error)
        select = None
        if "$select" in query:
            select = tuple(p.strip() for p in query["$select"].split(",") if p.strip())
            unknown = [p for p in select if p not in self.known]
            if unknown:
                return error(400, "Request_BadRequest", f"Could not find a property named '{unknown[0]}'.")
        if query.get("$deltatoken") == "latest":
            return self._answer(origin, [], None, state.issue(select))
        entries = [self.project(u, list(select) if select else None) for u in self.users()]
        return self._start(request, entries, select)

    def _delta_round(
        self, request: web.Request, token: str, error: Callable[..., web.Response]
    ) -> web.Response:
        state = self.state
        if state.reset_next > 0:
            state.reset_next -= 1
            location = f"{request.url.origin()}/v1.0/users/delta?$deltatoken="
            return error(410, "resyncRequired", "Resync required.", {"Location": location})
        issued = state._tokens.get(token)
        too_old = (
            issued is not None
            and state.token_max_age is not None
            and (state.clock() - issued[2] > state.token_max_age)
        )
        if state.sync_state_not_found_next > 0 or issued is None or too_old:
            state.sync_state_not_found_next = max(0, state.sync_state_not_found_next - 1)
            return error(400, "syncStateNotFound", SYNC_STATE_NOT_FOUND)
        seq, select, _ = issued
        minimal = "return=minimal" in request.headers.get("Prefer", "")
        by_id = {u["id"]: u for u in self.users()}
        entries: list[dict[str, Any]] = []
        for user_id, changed, removed in state.since(seq, select):
            user = by_id.get(user_id)
            if removed is not None or user is None:
                entries.append({"id": user_id, "@removed": {"reason": removed or "deleted"}})
            elif minimal:
                entries.append({"id": user_id, **{p: user.get(p) for p in sorted(changed)}})
            else:
                entries.append(self.project(user, list(select) if select else None))
        response = self._start(request, entries, select)
        if minimal:
            response.headers["Preference-Applied"] = "return=minimal"
        return response

    def _start(
        self, request: web.Request, entries: list[dict[str, Any]], select: tuple[str, ...] | None
    ) -> web.Response:
        return self._page(request, _Round(entries, select))

    def _page(self, request: web.Request, round_: _Round) -> web.Response:
        state = self.state
        size = 0 if round_.page in state.empty_pages else state.page_size
        page = round_.entries[round_.offset : round_.offset + size]
        offset = round_.offset + len(page)
        origin = request.url.origin()
        if offset < len(round_.entries) or round_.page in state.empty_pages:
            token = "RFNwdAIAAQAAA" + secrets.token_urlsafe(24)
            state._rounds[token] = _Round(round_.entries, round_.select, offset, round_.page + 1)
            return self._answer(origin, page, token, None)
        return self._answer(origin, page, None, state.issue(round_.select))

    @staticmethod
    def _answer(
        origin: URL, page: list[dict[str, Any]], skiptoken: str | None, deltatoken: str | None
    ) -> web.Response:
        body: dict[str, Any] = {"@odata.context": f"{origin}/v1.0/$metadata#users", "value": page}
        link = f"{origin}/v1.0/users/delta"
        if skiptoken is not None:
            body["@odata.nextLink"] = str(URL(link).with_query({"$skiptoken": skiptoken}))
        if deltatoken is not None:
            body["@odata.deltaLink"] = str(URL(link).with_query({"$deltatoken": deltatoken}))
        return web.json_response(body)
