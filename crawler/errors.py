"""Errors a source can end with. Messages are written by us, never copied from a request, so they cannot
carry credentials (aiohttp's request_info holds the Authorization header; we never chain to it)."""

from __future__ import annotations


class SourceError(Exception):
    """A source could not be crawled completely; the message is safe to log and to store in coverage.

    `status` is the HTTP status that ended it, when one did.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def endpoint_absent(self) -> bool:
        """The server has no such endpoint (404/405/501), as opposed to refusing us (401/403) or failing."""
        return self.status in ABSENT_STATUSES


class AuthError(SourceError):
    """401/403: wrong or insufficient credentials. Not retried."""


class NotFoundError(SourceError):
    """404 on a collection: the endpoint or the id does not exist. Not retried."""


class ClientRequestError(SourceError):
    """Another 4xx the API will keep answering: retrying would burn budget for nothing."""


ABSENT_STATUSES = frozenset({404, 405, 501})


class TransientError(SourceError):
    """Connection errors, timeouts, 5xx, truncated or malformed bodies: retried with jitter."""


class BudgetReserveReached(SourceError):
    """The portal's weekly budget would drop under the configured reserve: stop cleanly."""
