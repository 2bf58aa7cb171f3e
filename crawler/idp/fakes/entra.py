"""A fake Entra ID tenant: the v2.0 client-credentials token endpoint, Graph `GET /v1.0/users` and
`GET /v1.0/users/delta` (`entra_delta.py`).

Faithful where crawlers go wrong: without `$select` Graph returns its default property set, which has no
`accountEnabled`, `proxyAddresses` or `userType`; pages are `@odata.nextLink` URLs carrying an opaque
`$skiptoken` (and a page may be empty); throttling is 429 with `Retry-After`; the token endpoint checks the
tenant, client id, secret and scope, and Graph checks the token and its expiry. `disable`, `enable`,
`update`, `remove` and `restore` change a user and feed the delta query's change log.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from yarl import URL

from crawler.idp.fakes import Exchange, Faults, recording_middleware
from crawler.idp.fakes.directory import FakePerson
from crawler.idp.fakes.entra_delta import DeltaEndpoint, DeltaState

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Graph v1.0's default `user` projection: what you get without $select.
DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
KNOWN_PROPERTIES = frozenset(
    (*DEFAULT_PROPERTIES, "accountEnabled", "otherMails", "proxyAddresses", "userType", "createdDateTime")
)


def entra_user(person: FakePerson, tenant_domain: str = "acme.onmicrosoft.com") -> dict[str, Any]:
    """A Graph user. Guests get a `#EXT#` UPN and no proxyAddresses; `otherMails` is the recovery address."""
    local_name = person.email.replace("@", "_")
    upn = f"{local_name}#EXT#@{tenant_domain}" if person.guest else (person.login or person.email)
    proxies = []
    if not person.guest:
        proxies = [f"SMTP:{person.email}", *(f"smtp:{a}" for a in person.aliases), f"SIP:{person.email}"]
        proxies.append(f"X500:/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn={person.id}")
    record: dict[str, Any] = {
        "id": person.stable_uuid("entra"),
        "businessPhones": [],
        "displayName": person.display_name,
        "givenName": person.given_name.title(),
        "surname": person.family_name.title(),
        "jobTitle": None,
        "mail": person.email,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "userPrincipalName": upn,
        "accountEnabled": not person.disabled,
        "otherMails": [person.second_email] if person.second_email else [],
        "proxyAddresses": proxies,
        "userType": "Guest" if person.guest else "Member",
        "createdDateTime": "2023-01-10T08:00:00Z",
    }
    return person.render("entra", record)


def graph_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    inner = {"date": now, "request-id": secrets.token_hex(16), "client-request-id": secrets.token_hex(16)}
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return web.json_response(body, status=status, headers=headers)


def token_error(status: int, error: str, description: str) -> web.Response:
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [int(description[6:].split(":")[0]) if description.startswith("AADSTS") else 0],
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": secrets.token_hex(16),
        "correlation_id": secrets.token_hex(16),
    }
    return web.json_response(body, status=status)


class EntraFake:
    """One tenant. Login and Graph are served by the same app (point both URLs at it)."""

    def __init__(
        self,
        users: Iterable[FakePerson | Mapping[str, Any]],
        *,
        tenant_id: str = "11111111-2222-3333-4444-555555555555",
        client_id: str = "client-app-id",
        client_secret: str = "entra-test-secret",
        token_lifetime: int = 3599,
        default_page_size: int = 100,
        page_size_cap: int = 999,
        faults: Faults | None = None,
        empty_pages: Iterable[int] = (),
        ignore_select: bool = False,
    ) -> None:
        self.users = [entra_user(u) if isinstance(u, FakePerson) else dict(u) for u in users]
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.default_page_size = default_page_size
        self.page_size_cap = page_size_cap  # Graph may serve fewer than $top per page
        self.faults = faults or Faults()
        self.empty_pages = set(empty_pages)
        self.ignore_select = ignore_select  # simulate a proxy or SDK that loses $select
        self.exchanges: list[Exchange] = []
        self.issued_tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.token_requests = 0
        self._skiptokens: dict[str, tuple[int, int]] = {}  # token -> (offset, page number)
        self.delta = DeltaState(page_size=default_page_size)
        self.removed: dict[str, dict[str, Any]] = {}  # id -> user, deleted but restorable
        self._delta = DeltaEndpoint(lambda: self.users, _project, KNOWN_PROPERTIES, self.delta)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[recording_middleware(self.exchanges)])
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/v1.0/users", self._list_users)
        app.router.add_get("/v1.0/users/delta", self._users_delta)
        return app

    # --- changes, as an admin makes them: the user changes and the delta query's log records it -----
    def user(self, who: str) -> dict[str, Any]:
        """A current user by id, mail or userPrincipalName (case-insensitive)."""
        for user in self.users:
            keys = {str(user.get(k)).casefold() for k in ("id", "mail", "userPrincipalName")}
            if who.casefold() in keys:
                return user
        raise KeyError(f"no Entra user {who!r}")

    def disable(self, who: str) -> dict[str, Any]:
        return self.update(who, accountEnabled=False)

    def enable(self, who: str) -> dict[str, Any]:
        return self.update(who, accountEnabled=True)

    def update(self, who: str, **properties: Any) -> dict[str, Any]:
        user = self.user(who)
        user.update(properties)
        self.delta.record(user["id"], frozenset(properties))
        return user

    def remove(self, who: str, reason: str = "changed") -> dict[str, Any]:
        """Delete a user: "changed" = soft-deleted (restorable for 30 days), "deleted" = permanently."""
        user = self.user(who)
        self.users.remove(user)
        if reason == "changed":
            self.removed[user["id"]] = user
        self.delta.record(user["id"], frozenset(), removed=reason)
        return user

    def restore(self, user_id: str) -> dict[str, Any]:
        """Restore a soft-deleted user: it comes back as an ordinary object, every property new."""
        user = self.removed.pop(user_id)
        self.users.append(user)
        self.delta.record(user_id, frozenset(user))
        return user

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if request.match_info["tenant"] != self.tenant_id:
            return token_error(400, "invalid_request", "AADSTS90002: Tenant not found.")
        if form.get("grant_type") != "client_credentials":
            return token_error(
                400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type."
            )
        if form.get("client_id") != self.client_id:
            return token_error(
                400, "unauthorized_client", "AADSTS700016: Application was not found in the directory."
            )
        secret = form.get("client_secret")
        if not isinstance(secret, str) or not secrets.compare_digest(
            secret.encode(), self.client_secret.encode()
        ):
            return token_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != GRAPH_SCOPE:
            return token_error(
                400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid."
            )
        token = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(32)
        self.issued_tokens[token] = time.monotonic() + self.token_lifetime
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            }
        )

    def _auth_failure(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        expiry = self.issued_tokens.get(token)
        if expiry is None:
            return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if time.monotonic() >= expiry:
            return graph_error(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            )
        return None

    def _refused(self, request: web.Request) -> web.Response | None:
        """Graph's answer before any query is read: a bad token, or throttling."""
        failure = self._auth_failure(request)
        if failure is None and self.faults.take_throttle():
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else None
            return graph_error(429, "TooManyRequests", "Too many requests", headers)
        return failure

    async def _users_delta(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if self.faults.page_fails(1):
            return graph_error(
                self.faults.fail_status, "generalException", "General exception while processing."
            )
        return self._delta.handle(request, graph_error)

    async def _list_users(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        query = request.query
        try:
            top = int(query.get("$top", self.default_page_size))
        except ValueError:
            return graph_error(400, "Request_BadRequest", "Invalid value specified for $top.")
        if not 1 <= top <= 999:
            return graph_error(
                400,
                "Request_UnsupportedQuery",
                f"Invalid page size specified: '{top}'. Must be between 1 and 999.",
            )
        select = None
        if "$select" in query and not self.ignore_select:
            select = [p.strip() for p in query["$select"].split(",") if p.strip()]
            unknown = [p for p in select if p not in KNOWN_PROPERTIES]
            if unknown:
                return graph_error(
                    400,
                    "Request_BadRequest",
                    f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.user'.",
                )
        offset, page_number = 0, 1
        if "$skiptoken" in query:
            if query["$skiptoken"] not in self._skiptokens:
                return graph_error(400, "Request_BadRequest", "Invalid $skiptoken.")
            offset, page_number = self._skiptokens[query["$skiptoken"]]
        if self.faults.page_fails(page_number):
            return graph_error(
                self.faults.fail_status, "generalException", "General exception while processing."
            )
        size = min(top, self.page_size_cap)
        page = [] if page_number in self.empty_pages else self.users[offset : offset + size]
        next_offset = offset + len(page)
        origin = request.url.origin()
        selected = "(" + ",".join(select) + ")" if select else ""
        body: dict[str, Any] = {
            "@odata.context": f"{origin}/v1.0/$metadata#users{selected}",
            "value": [_project(u, select) for u in page],
        }
        if next_offset < len(self.users):
            skiptoken = "RFNwdAIAAQAAA" + secrets.token_urlsafe(24)
            self._skiptokens[skiptoken] = (next_offset, page_number + 1)
            params = {k: v for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = skiptoken
            body["@odata.nextLink"] = str(URL(f"{origin}/v1.0/users").with_query(params))
        return web.json_response(body)


def _project(user: Mapping[str, Any], select: list[str] | None) -> dict[str, Any]:
    """Graph returns exactly the selected properties (null when unset), or its default set."""
    keys = select if select else DEFAULT_PROPERTIES
    return {key: user.get(key) for key in keys if key in user or select}


__all__ = ["GRAPH_SCOPE", "EntraFake", "entra_user", "graph_error"]
