"""What the notebooks (notebooks/*.py) need beyond `graph.api`: tables, charts and small helpers.

Every function takes an `IdentityGraph` (from `graph.api.load_run`) and/or its findings frame
(`IdentityGraph.findings_df()`) and returns a DataFrame or a matplotlib `Figure`, so notebook cells stay
one line each and the same calls work in a script:

    ig = load_run(locate_snapshot("idgraph-demo/idgraph.db"))
    findings = ig.findings_df()
    findings_chart(findings, ig.sources.portals).savefig("findings.png")

Figures are built with the object API (`matplotlib.figure.Figure`, no pyplot state), so they are shown
once when a cell returns them (after `%matplotlib inline`) and never leak between cells. matplotlib is
imported only by the chart functions: the tables need pandas alone.

The helpers live in `graph.notebook`, one concern per module — common (names and colours), snapshot
(finding or building one), tables, charts, layout (a neighbourhood drawn), neo4j — and this module is the
notebooks' one import: `from graph import notebook_api as nb`.
"""

from __future__ import annotations

from graph.notebook.charts import findings_chart, held_items_chart
from graph.notebook.common import (
    CHANGES,
    CODE_COLOURS,
    CODES,
    DEMO_DB,
    KIND_COLOURS,
    ORPHAN,
    REPO_ROOT,
    SEVERITIES,
    SEVERITY_COLOURS,
)
from graph.notebook.layout import draw_neighbourhood, node_label, orphan_neighbourhood, ring_layout
from graph.notebook.neo4j import NEO4J_HOWTO, Neo4jTarget, export_table, parity, query_df, query_library
from graph.notebook.snapshot import locate_snapshot
from graph.notebook.tables import (
    changes_summary,
    changes_table,
    coverage_table,
    default_ticket_path,
    evidence_table,
    export_ticket,
    findings_by_code,
    findings_by_portal,
    headline,
    held_items,
    may_be_missing,
    not_covered,
    orphan_exposure,
    orphan_summary,
    run_changes,
    summarise,
    ticket_table,
    withheld,
)

__all__ = [
    "CHANGES",
    "CODES",
    "CODE_COLOURS",
    "DEMO_DB",
    "KIND_COLOURS",
    "NEO4J_HOWTO",
    "ORPHAN",
    "REPO_ROOT",
    "SEVERITIES",
    "SEVERITY_COLOURS",
    "Neo4jTarget",
    "changes_summary",
    "changes_table",
    "coverage_table",
    "default_ticket_path",
    "draw_neighbourhood",
    "evidence_table",
    "export_table",
    "export_ticket",
    "findings_by_code",
    "findings_by_portal",
    "findings_chart",
    "headline",
    "held_items",
    "held_items_chart",
    "locate_snapshot",
    "may_be_missing",
    "node_label",
    "not_covered",
    "orphan_exposure",
    "orphan_neighbourhood",
    "orphan_summary",
    "parity",
    "query_df",
    "query_library",
    "ring_layout",
    "run_changes",
    "summarise",
    "ticket_table",
    "withheld",
]
