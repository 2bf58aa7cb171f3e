"""Shared pytest setup: the real Neo4j server fixture (tests/neo4j_fixture.py) for export tests."""

pytest_plugins = ["neo4j_fixture"]
