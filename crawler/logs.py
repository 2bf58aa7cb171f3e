"""Logging for people (rich text) and for schedulers (one JSON object per line on stderr)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from crawler.redact import MessageFilter, RedactingFilter, redact
from crawler.terminal import visible

# What every LogRecord carries; anything else on a record came in `extra=` and is a field of the event.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record came with in `extra=` (`event`, `source`, `run_id`, a summary's fields…)."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}


def _redacted(value: Any) -> Any:
    """`value` with every string in it redacted, before JSON escapes a quote or backslash of a secret and
    the secret no longer matches in the encoded line."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then every `extra=` field. Every string in
    it is redacted before encoding, extras included, and the line once more after."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_extras(record),
        }
        if record.exc_info and record.exc_info[1] is not None:
            entry["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        elif record.exc_text:
            entry["error"] = record.exc_text
        return redact(json.dumps(_redacted(entry), ensure_ascii=False))


def setup_logging(log_format: str = "text", quiet: bool = False) -> None:
    """Route idgraph's loggers; library loggers stay at WARNING so their chatter never hides ours."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        # stderr: stdout carries the command's result (rich's default console would write logs into it).
        handler = RichHandler(
            console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False
        )
        handler.addFilter(MessageFilter(visible))  # control characters a source sent, shown escaped
    handler.addFilter(RedactingFilter())  # no configured secret reaches a log line, whatever echoed it
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("idgraph").setLevel(logging.WARNING if quiet else logging.INFO)
