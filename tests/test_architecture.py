"""The seams docs/architecture.md describes, checked: SQL lives beside the schema, the Cypher library and
the graph speak the shared vocabulary, and the store hands out no raw connection."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from crawler import vocabulary
from crawler.store import SnapshotStore
from graph.query_library import load_queries

ROOT = Path(__file__).resolve().parent.parent
SQL_HOMES = {
    "crawler/store.py",
    "crawler/snapshot_reader.py",
    "crawler/review_tables.py",
    "crawler/watch/tables.py",  # the watcher's cursors, statuses, findings and outbox, beside store.SCHEMA
}
SNAPSHOT_SQL = re.compile(
    r"\b(SELECT\s.+\bFROM|INSERT\s+INTO|CREATE\s+TABLE|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b"
    r"|[\"']SELECT\s"  # a query string whose FROM is on the next line
)


def _sources() -> list[Path]:
    return [p for package in ("crawler", "graph", "idgraph") for p in (ROOT / package).rglob("*.py")]


def test_snapshot_sql_lives_only_beside_the_schema() -> None:
    offenders = []
    for path in _sources():
        relative = path.relative_to(ROOT).as_posix()
        if relative in SQL_HOMES or relative.startswith("graph/neo4j"):  # Cypher, not SQL
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SNAPSHOT_SQL.search(line) and "$select" not in line:
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_the_store_exposes_no_connection(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s.db") as store:
        assert not hasattr(store, "connection")
        assert store.reader().run_started_at(1) is None


def test_the_cypher_library_uses_only_the_vocabularys_labels_relationships_and_codes() -> None:
    labels: set[str] = set()
    rels: set[str] = set()
    status_lists: set[frozenset[str]] = set()
    codes: set[str] = set()
    for path in sorted((ROOT / "graph" / "queries").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        cypher = doc["cypher"]
        labels |= set(re.findall(r"\(\w*:(\w+)", cypher))
        rels |= set(re.findall(r"\[\w*:(\w+)", cypher))
        status_lists |= {
            frozenset(re.findall(r"'(\w+)'", group))
            for group in re.findall(r"status IN \[([^\]]*)\]", cypher)
        }
        codes |= set(re.findall(r"'(\w+)' AS finding", cypher))
        if doc.get("finding"):
            codes.add(doc["finding"])
    assert labels and labels <= set(vocabulary.NODE_LABELS)
    assert rels and rels <= set(vocabulary.REL_TYPES)
    assert status_lists == {frozenset(s.value for s in vocabulary.DISABLED_STATUSES)}
    assert codes and codes <= {c.value for c in vocabulary.Code}
    assert load_queries()  # the library loads as the CLI loads it


def test_the_graph_builder_uses_only_the_vocabularys_kinds_and_relationships() -> None:
    source = (ROOT / "graph" / "build.py").read_text(encoding="utf-8")
    kinds = set(re.findall(r'kind="(\w+)"|"kind": "(\w+)"', source))
    rel_types = set(re.findall(r'type="(\w+)"|"type": "(\w+)"', source))
    assert {k for pair in kinds for k in pair if k} <= set(vocabulary.NODE_LABELS_BY_KIND)
    assert {r for pair in rel_types for r in pair if r} <= set(vocabulary.REL_TYPES)
    assert rel_types  # the patterns still match the builder's spelling


def test_every_idp_type_is_registered_once_with_a_config_a_source_and_a_fake() -> None:
    import importlib

    from crawler.config import IDP_TYPES
    from crawler.idp import IDP_SOURCES
    from crawler.remediation.idp_check import LOOKUPS

    assert set(IDP_SOURCES) == set(IDP_TYPES)
    for name, kind in IDP_TYPES.items():
        assert kind.config.model_fields["type"].annotation.__args__ == (name,)  # Literal[name]
        assert callable(importlib.import_module(kind.source).open_source)
        if kind.fake is not None:
            module, _, cls = kind.fake.partition(":")
            assert isinstance(getattr(importlib.import_module(module), cls), type)
    assert set(LOOKUPS) == {name for name, kind in IDP_TYPES.items() if kind.lookup_by_email}
    for name, kind in IDP_TYPES.items():
        if kind.feed is not None:
            assert callable(importlib.import_module(kind.feed).open_feed), name
    assert {name for name, kind in IDP_TYPES.items() if kind.feed is None} == {"scim", "csv"}


def test_starting_the_cli_loads_no_rule_report_writer_pandas_or_networkx() -> None:
    """Every command pays for what `import idgraph.cli` loads: the graph side loads when needed."""
    import subprocess
    import sys

    code = (
        "import sys, idgraph.cli\n"
        "heavy = ('graph.rules', 'graph.api', 'graph.campaign', 'graph.reports', 'pandas', 'networkx')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
