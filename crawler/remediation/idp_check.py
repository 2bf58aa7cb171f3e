"""Re-checking the IdP just before a disable: has the person been let back in since the crawl?

A plan can be days old. Someone re-hired, or re-enabled after a mistaken offboarding, must not lose their
LearnUpon access because of yesterday's snapshot. Where an IdP source can be searched by email, `apply` asks
it once per account, through that IdP's own auth context (`open_source`: its session, token and limiter), and
skips the account if any identity there holding the address is not disabled — the same test the
`idp_disabled_active` rule applies. Where no lookup exists, the outcome says plainly that the IdP was not
re-checked. A lookup that fails is a failed action, never a silent pass.

Only Okta is searchable today (`search=profile.email eq "…"`, which also returns DEPROVISIONED users).
Entra (`$filter=mail eq '…'`), SCIM (`filter=emails.value eq "…"`) and Google (`query=email:…`) could be
added to `LOOKUPS` the same way; their sources and fakes only list today.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from crawler.config import CrawlConfig, OktaConfig
from crawler.errors import AuthError, SourceError
from crawler.http import SourceHttp
from crawler.records import Identity
from crawler.vocabulary import is_disabled

MAX_PAGES = 5  # one address matches a handful of people at most; more pages means the search was ignored


class IdpLookup(Protocol):
    """What an IdP needs to offer to be re-checked: find the identities holding one address."""

    async def find(self, email: str) -> list[Identity]: ...

    async def close(self) -> None: ...


@dataclass
class IdpVerdict:
    """What the IdPs say about one address right now."""

    statuses: dict[str, str] = field(
        default_factory=dict
    )  # idp -> "DEPROVISIONED" / "not found" / "not re-checked…"
    active_in: list[str] = field(default_factory=list)  # "okta (ACTIVE)" for each identity not disabled
    disabled_in: list[str] = field(default_factory=list)  # "okta (DEPROVISIONED)" for each disabled one
    error: str | None = None


class OktaLookup:
    """`GET /api/v1/users?search=profile.email eq "x" or profile.login eq "x"` through Okta's own source."""

    def __init__(self, cfg: OktaConfig, connector: aiohttp.BaseConnector, crawl: CrawlConfig) -> None:
        from crawler.idp.okta import open_source

        self.cfg = cfg
        self.http: SourceHttp
        self.http, _ = open_source(cfg, connector, crawl)

    async def find(self, email: str) -> list[Identity]:
        from crawler.idp.okta import next_link, parse_user
        from crawler.idp.status import same_origin_link

        if any(c in email for c in '"\\') or any(c.isspace() for c in email):
            raise SourceError(
                f"{self.cfg.name}: cannot search Okta safely for an address with quotes or spaces"
            )
        url = f"{self.cfg.base_url}/api/v1/users"
        query: dict[str, Any] | None = {
            "search": f'profile.email eq "{email}" or profile.login eq "{email}"',
            "limit": 200,
        }
        found: list[Identity] = []
        for _ in range(MAX_PAGES):
            response = await self.http.get_json(url, query, purpose="remediation_recheck")
            if not isinstance(response.body, list):
                raise SourceError(f"{self.cfg.name}: the user search did not answer a list")
            for raw in response.body:
                try:
                    identity = parse_user(raw)
                except ValueError as exc:
                    raise SourceError(f"{self.cfg.name}: a matching user cannot be read ({exc})") from None
                # Never trust that the search was applied: keep only identities holding the address.
                if any(a.address.strip().casefold() == email.strip().casefold() for a in identity.addresses):
                    found.append(identity)
            link = next_link(response.headers)
            if link is None:
                return found
            url, query = same_origin_link(link, url, self.cfg.base_url, self.cfg.name), None
        raise SourceError(f"{self.cfg.name}: the user search returned more than {MAX_PAGES} pages")

    async def close(self) -> None:
        await self.http.close()


# IdP `type` -> a lookup built from that IdP's config: the types `IDP_TYPES` marks `lookup_by_email`
# (tests/test_architecture.py holds the two together).
LOOKUPS: dict[str, Callable[[Any, aiohttp.BaseConnector, CrawlConfig], IdpLookup]] = {
    "okta": OktaLookup,
}


class IdpChecker:
    """Every IdP of the apply config: searchable ones are asked, the others are named as not re-checked."""

    def __init__(self, idps: Sequence[Any], connector: aiohttp.BaseConnector, crawl: CrawlConfig) -> None:
        self.lookups: dict[str, IdpLookup] = {}
        self.not_checked: dict[str, str] = {}
        self._asked: dict[str, asyncio.Future[IdpVerdict]] = {}
        self._refused: dict[str, str] = {}  # idp -> the auth failure every later check reports
        for idp in idps:
            factory = LOOKUPS.get(idp.type)
            if factory is None:
                self.not_checked[idp.name] = f"not re-checked: {idp.type} sources offer no lookup by email"
            else:
                self.lookups[idp.name] = factory(idp, connector, crawl)
        if not idps:
            self.not_checked["*"] = "not re-checked: the config names no IdP"

    async def check(self, email: str) -> IdpVerdict:
        """Ask once per address per run: a person with accounts in five portals costs one search per IdP."""
        key = email.strip().casefold()
        if key not in self._asked:
            self._asked[key] = asyncio.ensure_future(self._check(email))
        return await asyncio.shield(self._asked[key])

    async def _check(self, email: str) -> IdpVerdict:
        verdict = IdpVerdict(statuses=dict(self.not_checked))
        for name, lookup in sorted(self.lookups.items()):
            if name in self._refused:  # bad credentials do not get better by asking again
                verdict.error, verdict.statuses[name] = self._refused[name], "lookup failed"
                return verdict
            try:
                identities = await lookup.find(email)
            except SourceError as exc:
                verdict.error = f"IdP re-check failed: {exc}"
                verdict.statuses[name] = "lookup failed"
                if isinstance(exc, AuthError):
                    self._refused[name] = verdict.error
                return verdict
            if not identities:
                verdict.statuses[name] = "not found"
                continue
            verdict.statuses[name] = ";".join(sorted(i.raw_status for i in identities))
            for i in identities:
                side = verdict.disabled_in if is_disabled(i.status) else verdict.active_in
                side.append(f"{name} ({i.raw_status})")
        return verdict

    async def close(self) -> None:
        for pending in self._asked.values():
            pending.cancel()
        for lookup in self.lookups.values():
            await lookup.close()
