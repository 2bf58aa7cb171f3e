"""A fake Google Workspace: the service-account JWT-bearer token endpoint, Directory `users.list` and the
Reports API's activities (`google_reports.py`).

Faithful where crawlers go wrong: the token endpoint verifies the RS256 assertion against the service
account's public key (issuer, audience, subject, scope, lifetime) and each API checks its token carries its
scope; the listing pages by `nextPageToken`, caps `maxResults` at 500, and answers quota errors as Google
does — 403 `userRateLimitExceeded` / `quotaExceeded` and 429 `rateLimitExceeded` — next to a real 403
`forbidden` that no retry will fix. `suspend`, `unsuspend`, `delete`, `undelete` and `google_disables`
change a user and log the activity the Reports API then serves.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import jwt
from aiohttp import web

from crawler.idp.fakes import Exchange, Faults, recording_middleware
from crawler.idp.fakes.directory import FakePerson, iso
from crawler.idp.fakes.google_reports import ActivityLog, ReportsError, admin_activity, login_activity

READONLY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
REPORTS_SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
SCOPES = frozenset({READONLY_SCOPE, REPORTS_SCOPE})
INSUFFICIENT = (403, "insufficientPermissions", "Request had insufficient authentication scopes.")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
NEVER = "1970-01-01T00:00:00.000Z"  # Google's lastLoginTime for "never signed in"
QUOTA_ERRORS = {
    "userRateLimitExceeded": (403, "User Rate Limit Exceeded"),
    "quotaExceeded": (
        403,
        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
    ),
    "rateLimitExceeded": (429, "Rate Limit Exceeded"),
}


def google_user(person: FakePerson) -> dict[str, Any]:
    """A Directory API user resource."""
    local, _, domain = person.email.partition("@")
    suspended = person.status in ("disabled", "deprovisioned", "suspended")
    record: dict[str, Any] = {
        "kind": "admin#directory#user",
        "id": str(int(person.stable_hex("google", 15), 16)).rjust(21, "1")[:21],
        "etag": f'"{person.stable_hex("google-etag", 27)}"',
        "primaryEmail": person.email,
        "name": {
            "givenName": person.given_name.title(),
            "familyName": person.family_name.title(),
            "fullName": person.display_name,
        },
        "isAdmin": False,
        "isDelegatedAdmin": False,
        "lastLoginTime": iso(person.last_login) or NEVER,
        "creationTime": iso(person.status_changed_at - timedelta(days=400)),
        "agreedToTerms": True,
        "suspended": suspended,
        "archived": person.status == "archived",
        "changePasswordAtNextLogin": False,
        "ipWhitelisted": False,
        "emails": [{"address": person.email, "primary": True}, *({"address": a} for a in person.aliases)],
        "nonEditableAliases": [f"{local}@{domain}.test-google-a.com"],
        "customerId": "C03az79cb",
        "orgUnitPath": "/",
        "isMailboxSetup": True,
        "includeInGlobalAddressList": True,
    }
    if person.aliases:
        record["aliases"] = list(person.aliases)
    if suspended:
        record["suspensionReason"] = "ADMIN"
    return person.render("google", record)


def api_error(status: int, reason: str, message: str, domain: str = "global") -> web.Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }
    return web.json_response(body, status=status)


class GoogleFake:
    """One Workspace customer. `token_path` is where the key file's `token_uri` must point."""

    def __init__(
        self,
        users: Iterable[FakePerson | Mapping[str, Any]],
        *,
        public_key: Any,
        client_email: str = "idgraph@acme-project.iam.gserviceaccount.com",
        subject: str = "admin@acme.com",
        token_path: str = "/token",
        default_page_size: int = 100,
        page_size_cap: int = 500,
        faults: Faults | None = None,
        quota_errors: Iterable[str] = (),
        forbidden: bool = False,
        clock: Callable[[], float] = time.time,  # the Reports API's clock (tests move it by hand)
    ) -> None:
        self.users = [google_user(u) if isinstance(u, FakePerson) else dict(u) for u in users]
        self.deleted: list[dict[str, Any]] = []  # restorable with `undelete`
        self.public_key = public_key
        self.client_email = client_email
        self.subject = subject
        self.token_path = token_path
        self.default_page_size = default_page_size
        self.page_size_cap = page_size_cap  # serve fewer than maxResults per page, as Google may
        self.faults = faults or Faults()
        self.quota_errors = list(quota_errors)  # answered, in order, by the next listing requests
        self.forbidden = forbidden  # e.g. the subject is not an admin: a real 403
        self.exchanges: list[Exchange] = []
        self.issued_tokens: dict[str, float] = {}
        self.token_scopes: dict[str, frozenset[str]] = {}
        self.assertions: list[str] = []
        self._page_tokens: dict[str, tuple[int, int]] = {}
        self.reports = ActivityLog(clock=clock)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[recording_middleware(self.exchanges)])
        app.router.add_post(self.token_path, self._token)
        app.router.add_get("/admin/directory/v1/users", self._list_users)
        app.router.add_get(
            "/admin/reports/v1/activity/users/{user_key}/applications/{app}", self._list_activities
        )
        return app

    # --- changes, as an admin (or Google) makes them: the user changes, the activity is logged ------
    def user(self, email: str) -> dict[str, Any]:
        for user in self.users:
            if str(user.get("primaryEmail")).casefold() == email.casefold():
                return user
        raise KeyError(f"no Google user {email!r}")

    def suspend(self, email: str, *, lag: float | None = None) -> dict[str, Any]:
        self.user(email).update(suspended=True, suspensionReason="ADMIN")
        return self.reports.append(admin_activity("SUSPEND_USER", email, self.reports.clock()), lag=lag)

    def unsuspend(self, email: str, *, lag: float | None = None) -> dict[str, Any]:
        user = self.user(email)
        user["suspended"] = False
        user.pop("suspensionReason", None)
        return self.reports.append(admin_activity("UNSUSPEND_USER", email, self.reports.clock()), lag=lag)

    def delete(self, email: str, *, lag: float | None = None) -> dict[str, Any]:
        user = self.user(email)
        self.users.remove(user)
        self.deleted.append(user)
        return self.reports.append(admin_activity("DELETE_USER", email, self.reports.clock()), lag=lag)

    def undelete(self, email: str, *, lag: float | None = None) -> dict[str, Any]:
        """Restore a deleted user. Google restores it suspended if it was suspended when deleted."""
        user = next(u for u in self.deleted if str(u.get("primaryEmail")).casefold() == email.casefold())
        self.deleted.remove(user)
        self.users.append(user)
        return self.reports.append(admin_activity("UNDELETE_USER", email, self.reports.clock()), lag=lag)

    def google_disables(self, email: str, name: str = "account_disabled_hijacked") -> dict[str, Any]:
        """Google suspends an account itself: a `login` event, not an admin SUSPEND_USER."""
        self.user(email).update(suspended=True, suspensionReason="ABUSE")
        return self.reports.append(login_activity(name, email, self.reports.clock()))

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion")
        if not isinstance(assertion, str):
            return _oauth_error(400, "invalid_request", "Missing required parameter: assertion")
        self.assertions.append(assertion)
        audience = f"{request.url.origin()}{self.token_path}"
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=audience,
                options={"require": ["iss", "aud", "exp", "iat", "scope"]},
            )
        except jwt.InvalidSignatureError:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        except jwt.ExpiredSignatureError:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token.")
        except jwt.InvalidTokenError as exc:
            return _oauth_error(400, "invalid_grant", f"Invalid JWT: {type(exc).__name__}")
        if claims["iss"] != self.client_email:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: issuer is not the service account.")
        if claims["exp"] - claims["iat"] > 3600:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token.")
        scopes = frozenset(str(claims["scope"]).split())
        if not scopes or not scopes <= SCOPES:
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        if claims.get("sub") != self.subject:
            return _oauth_error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client not "
                "authorized for any of the scopes requested.",
            )
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        self.issued_tokens[token] = time.monotonic() + 3599
        self.token_scopes[token] = scopes
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _refused(self, request: web.Request, scope: str) -> web.Response | None:
        """Google's answer before a query is read: a bad token or scope, a real 403, a quota error."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or self.issued_tokens.get(token, 0) <= time.monotonic():
            return api_error(401, "authError", "Invalid Credentials")
        if scope not in self.token_scopes.get(token, ()):
            return api_error(*INSUFFICIENT)
        if self.forbidden:
            return api_error(403, "forbidden", "Not Authorized to access this resource/api")
        if self.quota_errors:
            reason = self.quota_errors.pop(0)
            status, message = QUOTA_ERRORS[reason]
            return api_error(status, reason, message, domain="usageLimits")
        if self.faults.take_throttle():
            status, message = QUOTA_ERRORS["rateLimitExceeded"]
            return api_error(status, "rateLimitExceeded", message, domain="usageLimits")
        return None

    async def _list_activities(self, request: web.Request) -> web.Response:
        response = self._refused(request, REPORTS_SCOPE)
        if response is None and self.faults.page_fails(1):
            response = api_error(self.faults.fail_status, "backendError", "Backend Error")
        if response is None:
            info = request.match_info
            try:
                response = web.json_response(self.reports.query(info["app"], info["user_key"], request.query))
            except ReportsError as exc:
                response = api_error(exc.status, exc.reason, exc.message)
        response.headers.update(self.reports.date_header())  # Google's clock, not the caller's
        return response

    async def _list_users(self, request: web.Request) -> web.Response:
        refused = self._refused(request, READONLY_SCOPE)
        if refused is not None:
            return refused
        query = request.query
        if query.get("customer") not in ("my_customer", "C03az79cb") and "domain" not in query:
            return api_error(400, "badRequest", "Bad Request")
        try:
            size = int(query.get("maxResults", self.default_page_size))
        except ValueError:
            return api_error(400, "invalid", "Invalid value for maxResults")
        if not 1 <= size <= 500:
            return api_error(
                400, "invalid", f"Invalid value '{size}'. Values must be within the range: [1, 500]"
            )
        offset, page_number = 0, 1
        if query.get("pageToken"):
            if query["pageToken"] not in self._page_tokens:
                return api_error(400, "invalid", "Invalid pageToken")
            offset, page_number = self._page_tokens[query["pageToken"]]
        if self.faults.page_fails(page_number):
            return api_error(self.faults.fail_status, "backendError", "Backend Error")
        size = min(size, self.page_size_cap)
        page = self.users[offset : offset + size]
        body: dict[str, Any] = {"kind": "admin#directory#users", "etag": '"fake-etag"'}
        if page:
            body["users"] = page
        if offset + size < len(self.users):
            page_token = secrets.token_urlsafe(24)
            self._page_tokens[page_token] = (offset + size, page_number + 1)
            body["nextPageToken"] = page_token
        return web.json_response(body)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


__all__ = ["JWT_BEARER", "READONLY_SCOPE", "REPORTS_SCOPE", "GoogleFake", "google_user"]
