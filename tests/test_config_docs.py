"""The README's "Configuration reference" documents exactly the keys the config accepts, with their defaults.

The expected tables come from the pydantic models in `crawler/config.py`, walked from `Config`: a model field
is a `[table]`, a list of models is `[[table]]`, a list of a discriminated union is `[[table]]` per `type`
(the keys every type shares in one `[[table]]` every-type table), and a model inside a table is its own
table. Secret fields filled from the environment (`exclude=True`) are not keys and are never documented.
Adding a config field without documenting it fails here, naming the key.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from crawler.config import Config

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Configuration reference"


# --- what the README says --------------------------------------------------------------------------
def documented_tables(text: str) -> dict[str, dict[str, str]]:
    """Table id (the heading's code spans joined by spaces) -> {key: default cell}."""
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in section.splitlines():
        if line.startswith("### "):
            name = " ".join(re.findall(r"`([^`]+)`", line))
            assert name, f"a heading of the configuration reference names no table: {line!r}"
            current = tables.setdefault(name, {})
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if current is None or len(cells) < 3 or not cells[0].startswith("`"):
            continue
        key = cells[0].strip("`")
        assert key not in current, f"{key!r} is documented twice in the table {name!r}"
        current[key] = cells[1]
    return tables


# --- what the models accept -------------------------------------------------------------------------
def _keys(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {name: info for name, info in model.model_fields.items() if not info.exclude}


def _strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> list[Any]:
    annotation = _strip_annotated(annotation)
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return [_strip_annotated(a) for a in get_args(annotation)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def expected_tables() -> dict[str, dict[str, FieldInfo]]:
    """Table id -> {key: field}, walked from `Config` as the module docstring says."""
    tables: dict[str, dict[str, FieldInfo]] = {}

    def add(name: str, fields: dict[str, FieldInfo]) -> None:
        tables[name] = fields
        for key, info in fields.items():
            member = _union_members(info.annotation)
            models = [m for m in member if _is_model(m)]
            if len(models) == 1:
                add(f"{name} {key}", _keys(models[0]))

    top_level: dict[str, FieldInfo] = {}
    for field_name, info in Config.model_fields.items():
        if info.exclude:
            continue
        present = [m for m in _union_members(info.annotation) if m is not type(None)]
        annotation = present[0] if len(present) == 1 else info.annotation
        if _is_model(annotation):
            add(f"[{field_name}]", _keys(annotation))
            continue
        item = get_args(annotation)[0] if get_origin(annotation) is list else None
        members = _union_members(item) if item is not None else []
        if not members or not all(_is_model(m) for m in members):
            top_level[field_name] = info  # a plain key outside any table
            continue
        if len(members) == 1:
            add(f"[[{field_name}]]", _keys(members[0]))
            continue
        shared = set.intersection(*(set(_keys(m)) for m in members))
        first = _keys(members[0])
        tables[f"[[{field_name}]]"] = {k: first[k] for k in first if k in shared}
        for model in members:
            (tag,) = get_args(model.model_fields["type"].annotation)
            add(
                f'[[{field_name}]] type = "{tag}"',
                {k: v for k, v in _keys(model).items() if k not in shared},
            )
    if top_level:
        tables["top level"] = top_level
    return tables


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return json.dumps(str(value))
    return json.dumps(value)


def _default_problem(info: FieldInfo, cell: str) -> str | None:
    """Why the documented default does not match the model's, or None."""
    if info.is_required():
        return None if "required" in cell else f"is required, the README says {cell!r}"
    factory = info.default_factory
    value = factory() if factory is not None else info.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return None
    if isinstance(value, BaseModel):
        return None  # a table of its own, documented with its keys
    if value is None:
        return None if "unset" in cell else f"is unset by default, the README says {cell!r}"
    return None if f"`{_toml(value)}`" in cell else f"defaults to `{_toml(value)}`, the README says {cell!r}"


# --- the tests --------------------------------------------------------------------------------------
def test_every_config_key_is_documented_and_nothing_else() -> None:
    documented = documented_tables(README.read_text(encoding="utf-8"))
    expected = expected_tables()

    undocumented = [
        f"{table} {key}" if table in documented else f"{table} {key} (the table has no section)"
        for table, fields in expected.items()
        for key in fields
        if key not in documented.get(table, {})
    ]
    unknown = [
        f"{table} {key}"
        for table, keys in documented.items()
        for key in keys
        if key not in expected.get(table, {})
    ]
    assert not undocumented, (
        "README.md's Configuration reference does not document these config keys (add a row "
        "`| key | default | meaning |` under the table's heading): " + ", ".join(undocumented)
    )
    assert not unknown, (
        "README.md's Configuration reference documents keys the config does not accept: " + ", ".join(unknown)
    )


def test_documented_defaults_match_the_models() -> None:
    documented = documented_tables(README.read_text(encoding="utf-8"))
    wrong = [
        f"{table} {key} {problem}"
        for table, fields in expected_tables().items()
        for key, info in fields.items()
        if key in documented.get(table, {})
        and (problem := _default_problem(info, documented[table][key])) is not None
    ]
    assert not wrong, "README.md's Configuration reference has wrong defaults: " + "; ".join(wrong)


def test_secret_fields_are_never_documented_as_keys() -> None:
    documented = documented_tables(README.read_text(encoding="utf-8"))
    every_key = {key for keys in documented.values() for key in keys}
    assert not every_key & {"token", "client_secret", "username", "password"}


def test_the_walk_sees_a_new_field() -> None:
    """The comparison is only as good as the walk: a field added to a model shows up in its table."""
    tables = expected_tables()
    assert set(tables) >= {
        "[review]",
        "[crawl]",
        "[[portals]]",
        "[[idps]]",
        '[[idps]] type = "okta"',
        '[[idps]] type = "csv" columns',
    }
    assert set(tables["[[idps]]"]) == {"name", "type", "requests_per_minute"}
    assert "token" not in tables['[[idps]] type = "okta"']  # secret, filled from token_env
    assert "max_concurrency" in tables['[[idps]] type = "okta"']
