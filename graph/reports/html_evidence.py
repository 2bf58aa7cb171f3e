"""Evidence as readable HTML: any JSON-like value as key/value lists and small tables, plus a one-line
preview, so a reviewer reads the facts behind a finding without opening the JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph.reports.html_common import NONE, e, humanise
from graph.reports.input import evidence_json

_MAX_DEPTH = 6
_NAME_KEYS = ("name", "display_name", "full_name", "first_name", "last_name")


def evidence_html(value: Any, depth: int = 0) -> str:
    """Any JSON-like evidence as readable HTML: dicts as key/value lists, lists of dicts as small tables."""
    if depth > _MAX_DEPTH:
        return "<code>" + e(evidence_json(value) if isinstance(value, Mapping) else value) + "</code>"
    if isinstance(value, Mapping):
        if not value:
            return NONE
        items = "".join(
            f"<dt>{e(humanise(k))}</dt><dd>{evidence_html(v, depth + 1)}</dd>" for k, v in value.items()
        )
        return f'<dl class="kv">{items}</dl>'
    if isinstance(value, list | tuple | set | frozenset):
        values = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if not values:
            return NONE
        if all(isinstance(v, Mapping) for v in values):
            keys: list[Any] = []
            for v in values:
                keys += [k for k in v if k not in keys]
            head = "".join(f'<th scope="col">{e(humanise(k))}</th>' for k in keys)
            rows = "".join(
                "<tr>" + "".join(f"<td>{evidence_html(v.get(k), depth + 1)}</td>" for k in keys) + "</tr>"
                for v in values
            )
            return f'<table class="ev-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        if all(not isinstance(v, Mapping | list | tuple) for v in values):
            return '<ul class="chips">' + "".join(f"<li>{_scalar(v)}</li>" for v in values) + "</ul>"
        return "<ol>" + "".join(f"<li>{evidence_html(v, depth + 1)}</li>" for v in values) + "</ol>"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "isoformat"):
        value = value.isoformat()
    return e(value)


def evidence_summary(evidence: Mapping[str, Any]) -> str:
    """A one-line preview of the evidence, readable before the reviewer opens it (plain text, unescaped)."""
    parts: list[str] = []
    for key, value in evidence.items():
        if key in _NAME_KEYS:  # already shown under the email
            continue
        if len(parts) == 5:
            parts.append("…")
            break
        label = humanise(key)
        if isinstance(value, list | tuple | set | frozenset):
            parts.append(f"{label}: {len(value)}")
        elif isinstance(value, Mapping):
            parts.append(label)
        elif value not in (None, ""):
            text = str(value)
            parts.append(f"{label}: {text if len(text) <= 40 else text[:39] + '…'}")
    return " · ".join(parts) if parts else "none recorded"


def display_name(evidence: Mapping[str, Any]) -> str | None:
    for key in _NAME_KEYS[:3]:
        value = evidence.get(key)
        if isinstance(value, str) and value.strip():
            return value
    joined = " ".join(str(p) for p in (evidence.get("first_name"), evidence.get("last_name")) if p)
    return joined or None
