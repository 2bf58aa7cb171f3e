"""Names and colours every notebook helper shares, so a chart's legend and a table's columns agree."""

from __future__ import annotations

from pathlib import Path

from crawler.vocabulary import SEVERITY_ORDER, Code, Severity

DEMO_DB = "idgraph-demo/idgraph.db"
REPO_ROOT = Path(__file__).resolve().parents[2]
CODES = [c.value for c in Code]
SEVERITIES = [s.value for s in sorted(Severity, key=SEVERITY_ORDER.__getitem__)]
CHANGES = ("new", "still_open", "resolved", "not_rechecked")
ORPHAN = Code.IDP_DISABLED_ACTIVE.value
CODE_COLOURS = dict(
    zip(CODES, ("#b2182b", "#ef8a62", "#8073ac", "#67a9cf", "#878787", "#67001f"), strict=True)
)
SEVERITY_COLOURS = dict(zip(SEVERITIES, ("#67001f", "#d6604d", "#f4a582", "#92c5de"), strict=True))
KIND_COLOURS = {
    "person": "#4d4d4d",
    "account": "#d6604d",
    "identity": "#4393c3",
    "idp": "#2166ac",
    "portal": "#b2182b",
    "group": "#5aae61",
    "course": "#c2a5cf",
}
