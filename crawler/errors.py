"""Errors a source can end with. Messages are written by us, never copied from a request, so they cannot
carry credentials (aiohttp's request_info holds the Authorization header; we never chain to it)."""

from __future__ import annotations


class SourceError(Exception):
    """A source could not be crawled completely; the message is safe to log and to store in coverage."""


class AuthError(SourceError):
    """401/403: wrong or insufficient credentials. Not retried."""


class NotFoundError(SourceError):
    """404 on a collection: the endpoint or the id does not exist. Not retried."""


class ClientRequestError(SourceError):
    """Another 4xx the API will keep answering: retrying would burn budget for nothing."""


class TransientError(SourceError):
    """Connection errors, timeouts, 5xx, truncated or malformed bodies: retried with jitter."""


class BudgetReserveReached(SourceError):
    """The portal's weekly budget would drop under the configured reserve: stop cleanly."""
