"""One redactor for every secret the crawl holds: configured credentials and the forms they travel in.

A server can echo what we sent — a 401 body quoting the `Authorization` header, a token in an error
description — and that text would otherwise reach coverage, logs and reports. Every configured secret is
registered here when the config is loaded (and bearer tokens when they are fetched), together with its
derived forms: base64 of `user:password`, the Basic header value, URL-quoted and base64 forms. `redact`
replaces each with `[redacted]`; it runs where text is stored or printed (`store.save_coverage`, the log
filter, error text taken from a response body).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
MIN_SECRET_LENGTH = 4  # shorter values would mangle ordinary text; they are not credentials worth the name


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Redactor:
    """A set of secret strings (and their derived forms), replaced in any text handed to `redact`."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._ordered: list[str] = []
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        """Register one secret and its base64, URL-quoted and PEM-line forms."""
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        forms = {secret, _b64(secret), quote(secret, safe=""), quote_plus(secret)}
        if "-----BEGIN" in secret:  # a PEM key: each base64 line can be quoted on its own
            forms |= {line.strip() for line in secret.splitlines() if len(line.strip()) >= 16}
            forms |= {line.strip() for line in secret.split("\\n") if len(line.strip()) >= 16}
        self._add_forms(forms)

    def add_basic(self, username: str | None, password: str | None) -> None:
        """A Basic credential: the pair's base64 (what the header carries), plus each half."""
        self.add(username)
        self.add(password)
        if username and password:
            pair = _b64(f"{username}:{password}")
            self._add_forms({pair, f"Basic {pair}"})

    def _add_forms(self, forms: set[str]) -> None:
        with self._lock:
            new = {f for f in forms if len(f) >= MIN_SECRET_LENGTH} - self._forms
            if new:
                self._forms |= new
                # Longest first: a secret's base64 may contain a shorter secret.
                self._ordered = sorted(self._forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._ordered:
            if form in text:
                text = text.replace(form, MASK)
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    """`text` with every registered secret (in any registered form) replaced by `[redacted]`."""
    return REDACTOR.redact(text)


def redact_optional(text: str | None) -> str | None:
    return None if text is None else REDACTOR.redact(text)


class MessageFilter(logging.Filter):
    """A handler filter that rewrites each record's formatted message with `transform` (one string in, one
    out), keeping the record as it is when nothing changed."""

    def __init__(self, transform: Callable[[str], str]) -> None:
        super().__init__()
        self.transform = transform

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        changed = self.transform(message)
        if changed != message:
            record.msg, record.args = changed, None
        return True


class RedactingFilter(MessageFilter):
    """A handler filter: the formatted message (and any exception text) of a record, redacted."""

    def __init__(self) -> None:
        super().__init__(redact)

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            text = redact(str(error))
            if text != str(error):
                record.exc_info, record.exc_text = None, f"{type(error).__name__}: {text}"
        return True
