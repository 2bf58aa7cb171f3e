"""Test helpers that live in another test folder's conftest or script, loaded by their path.

A conftest cannot be imported by name from another folder (every folder's is called `conftest`), so the
graph tests' snapshot builder and the report tests' browser driver are loaded here, once per name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent


def load(relative: str, name: str) -> ModuleType:
    """The module at tests/`relative`, registered as `name` (loaded on the first call only)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_builder() -> type:
    """`RunBuilder` of tests/graph/conftest.py: writes a run the way the crawler does (`write_page`)."""
    return load("graph/conftest.py", "_idgraph_graph_test_builders").RunBuilder
