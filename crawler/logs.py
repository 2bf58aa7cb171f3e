"""Logging for people (rich text) and for schedulers (one JSON object per line on stderr)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from rich.logging import RichHandler

from crawler.redact import RedactingFilter
from crawler.terminal import visible


class VisibleTextFilter(logging.Filter):
    """For the terminal: control characters a source put in a message are shown escaped, never sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = visible(message)
        if shown != message:
            record.msg, record.args = shown, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("source", "event", "run_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        return json.dumps(entry)


def setup_logging(log_format: str = "text", quiet: bool = False) -> None:
    """Route idgraph's loggers; library loggers stay at WARNING so their chatter never hides ours."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        handler.addFilter(VisibleTextFilter())
    handler.addFilter(RedactingFilter())  # no configured secret reaches a log line, whatever echoed it
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("idgraph").setLevel(logging.WARNING if quiet else logging.INFO)
