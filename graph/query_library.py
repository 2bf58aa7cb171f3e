"""The Cypher query library: one small YAML file per saved query in graph/queries/, BloodHound-style.

Each file holds `name` (its file name), `description`, `category`, optionally `finding` (the finding code
the query computes straight from the graph, kept equal to the networkx rules by tests/neo4j), a list of
`parameters` (`name`, `type`, `default`, `description`) and the `cypher`. `run_query` fills the defaults,
checks the names, and returns plain dicts (Neo4j temporal values as Python datetimes).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from graph.model import Code

if TYPE_CHECKING:
    from neo4j import Driver

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
PARAM_TYPES = ("str", "int", "bool", "list", "datetime")
_REQUIRED = ("name", "description", "cypher")
_KEYS = {*_REQUIRED, "category", "finding", "parameters"}


class QueryError(ValueError):
    """A query file is malformed, a query name unknown, or its parameters wrong."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    description: str

    def parse(self, text: str) -> Any:
        """A command-line value (`--param name=text`) as this parameter's type; `null` is None."""
        if text.strip().lower() in ("null", "none", ""):
            return None
        if self.type == "int":
            try:
                return int(text)
            except ValueError:
                raise QueryError(f"parameter {self.name}: expected an integer, got {text!r}") from None
        if self.type == "bool":
            if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise QueryError(f"parameter {self.name}: expected true or false, got {text!r}")
            return text.strip().lower() in ("true", "1", "yes")
        if self.type == "list":
            return [item.strip() for item in text.split(",") if item.strip()]
        return text


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    cypher: str
    category: str = "exploration"
    finding: str | None = None
    parameters: tuple[Parameter, ...] = ()
    path: Path | None = None

    def bind(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults overlaid with `params`; an unknown name is an error (a typo must not pass)."""
        params = dict(params or {})
        known = {p.name for p in self.parameters}
        unknown = sorted(set(params) - known)
        if unknown:
            expected = ", ".join(sorted(known)) or "none"
            raise QueryError(
                f"query {self.name}: unknown parameter(s) {', '.join(unknown)} (expected: {expected})"
            )
        return {p.name: params.get(p.name, p.default) for p in self.parameters}


def _parse(path: Path) -> Query:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise QueryError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise QueryError(f"{path.name}: expected a mapping")
    missing = [key for key in _REQUIRED if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        raise QueryError(f"{path.name}: missing {', '.join(missing)}")
    if extra := sorted(set(data) - _KEYS):
        raise QueryError(f"{path.name}: unknown key(s) {', '.join(extra)}")
    if data["name"] != path.stem:
        raise QueryError(f"{path.name}: name {data['name']!r} must match the file name")
    finding = data.get("finding")
    if finding is not None and finding not in {c.value for c in Code}:
        raise QueryError(f"{path.name}: finding {finding!r} is not a finding code")
    parameters = []
    for item in data.get("parameters") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise QueryError(f"{path.name}: each parameter needs a name")
        kind = item.get("type", "str")
        if kind not in PARAM_TYPES:
            raise QueryError(f"{path.name}: parameter {item['name']}: type must be one of {PARAM_TYPES}")
        parameters.append(Parameter(item["name"], kind, item.get("default"), item.get("description", "")))
    return Query(
        name=data["name"],
        description=" ".join(data["description"].split()),
        cypher=data["cypher"].strip(),
        category=data.get("category", "exploration"),
        finding=finding,
        parameters=tuple(parameters),
        path=path,
    )


@cache
def _load(directory: Path) -> dict[str, Query]:
    paths = sorted(directory.glob("*.yaml"))
    if not paths:  # e.g. an install whose wheel lost its package data: never an empty, silent library
        raise QueryError(f"the query library at {directory} has no queries (*.yaml): the install is broken")
    return {q.name: q for q in map(_parse, paths)}


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, Query]:
    """Every query of the library, by name."""
    return dict(_load(directory.resolve()))


def get_query(name: str, directory: Path = QUERIES_DIR) -> Query:
    queries = load_queries(directory)
    if name not in queries:
        raise QueryError(f"no query named {name!r}; the library has: {', '.join(sorted(queries))}")
    return queries[name]


def finding_queries(directory: Path = QUERIES_DIR) -> dict[str, Query]:
    """Finding code -> the query that computes it from the graph."""
    return {q.finding: q for q in load_queries(directory).values() if q.finding}


def browser_text(query: Query) -> str:
    """The query as a `.cypher` file for Neo4j Browser's favourites: its first comment line names it, the
    `:param` lines to run first follow as comments, then the Cypher."""
    lines = [f"// idgraph: {query.name}"]
    lines += [f"// {line}" for line in textwrap.wrap(query.description, 100)]
    lines += [f"// :param {p.name} => {json.dumps(p.default)}" for p in query.parameters]
    return "\n".join([*lines, query.cypher, ""])


def write_cypher_files(directory: Path) -> list[Path]:
    """Every query as `NAME.cypher` in `directory` (drag them onto Browser's Favorites drawer)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for query in load_queries().values():
        path = directory / f"{query.name}.cypher"
        path.write_text(browser_text(query), encoding="utf-8")
        paths.append(path)
    return paths


def _plain(value: Any) -> Any:
    """Neo4j temporal values -> Python ones, recursively through lists and maps."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    to_native = getattr(value, "to_native", None)
    return to_native() if callable(to_native) else value


def run_query(
    driver: Driver,
    name: str,
    params: Mapping[str, Any] | None = None,
    database: str = "neo4j",
) -> list[dict[str, Any]]:
    """Run one library query (read routing, the database named) and return its rows as dicts."""
    query = get_query(name)
    bound = query.bind(params)
    # A graph without findings (or runs) yet lacks some property keys: not worth a warning per query.
    with driver.session(
        database=database, notifications_disabled_classifications=["UNRECOGNIZED"]
    ) as session:
        records = session.execute_read(lambda tx: list(tx.run(query.cypher, bound)))
    return [_plain(record.data()) for record in records]
