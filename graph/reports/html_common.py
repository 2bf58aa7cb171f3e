"""What every part of report.html shares: escaping, number and blank formatting, severity colours, assets.

The CSS, the script and the page skeleton are package data (`graph/reports/assets/`), read once: they are
easier to review and lint as files than as Python strings, and the page still inlines them.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from html import escape
from importlib.resources import files
from typing import Any

from graph.model import Severity

SEVERITY_COLOURS = {
    Severity.CRITICAL: "#7f1d1d",
    Severity.HIGH: "#dc2626",
    Severity.MEDIUM: "#f59e0b",
    Severity.LOW: "#94a3b8",
}
SEVERITY_RANK = {sev: rank for rank, sev in enumerate(Severity)}
NONE = '<span class="none">—</span>'


@cache
def csp_hash(text: str) -> str:
    """The Content-Security-Policy source that allows exactly this inline style or script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def asset(name: str) -> str:
    """One file of `graph/reports/assets/` (CSS, script, page template), as text."""
    return files("graph.reports").joinpath("assets", name).read_text(encoding="utf-8")


def e(value: Any) -> str:
    """Escape any value for HTML text or a double-quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def num(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def dash(value: Any) -> str:
    return NONE if value in (None, "") else e(value)


def humanise(key: Any) -> str:
    return str(key).replace("_", " ")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")
